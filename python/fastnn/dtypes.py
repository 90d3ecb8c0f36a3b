"""Dtype names as torch spells them; they are NumPy dtypes, so `t.dtype == fastnn.float32`
and `np.zeros(3, dtype=fastnn.float32)` both work."""
import numpy as np

float32 = np.dtype(np.float32)
float64 = np.dtype(np.float64)
int32 = np.dtype(np.int32)
int64 = np.dtype(np.int64)
uint8 = np.dtype(np.uint8)
bool = np.dtype(np.bool_)  # noqa: A001 (torch.bool; nothing in this module needs the builtin)
float = float32  # noqa: A001 (torch.float)
double = float64
long = int64

__all__ = ["float32", "float64", "int32", "int64", "uint8", "bool", "float", "double", "long"]
