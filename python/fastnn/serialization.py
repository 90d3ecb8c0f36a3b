"""fastnn.save / fastnn.load: state dicts (a module's or an optimizer's) as a NumPy .npz file.

Nothing is pickled, so loading a file runs no code: every array is its own .npz entry, and the
structure around them (nested dicts with str or int keys, lists, tuples, numbers, strings,
None) is one JSON string stored as a unicode array, read back with allow_pickle=False. Arrays
on a GPU (CUDA tensors, CuPy arrays) are stored as host data and load as CPU ones, as
torch.load(..., map_location="cpu") gives them.
"""
import json
import numbers

import numpy as np

from .tensor import Tensor, _host, array_module

__all__ = ["save", "load"]

_STRUCTURE = "__structure__"


def _encode(obj, arrays):
    """A JSON-able description of obj; arrays (and Tensors) go to `arrays` and are named."""
    if isinstance(obj, Tensor) or isinstance(obj, np.ndarray) or array_module(obj) is not np:
        name = f"array_{len(arrays)}"
        arrays[name] = _host(obj)
        return {"tensor" if isinstance(obj, Tensor) else "array": name}
    if isinstance(obj, dict):
        for key in obj:
            if not isinstance(key, (str, int)) or isinstance(key, bool):
                raise TypeError(f"fastnn.save: dict keys must be str or int, got {key!r}")
        return {"dict": [[key, _encode(value, arrays)] for key, value in obj.items()]}
    if isinstance(obj, (list, tuple)):
        return {type(obj).__name__: [_encode(item, arrays) for item in obj]}
    if obj is None or isinstance(obj, (bool, str)):
        return {"value": obj}
    if isinstance(obj, numbers.Integral):
        return {"value": int(obj)}
    if isinstance(obj, numbers.Real):
        return {"value": float(obj)}
    raise TypeError(f"fastnn.save: cannot store a {type(obj).__name__} (only arrays, Tensors, dicts, "
                    f"lists, tuples, numbers, strings and None)")


def _decode(node, arrays):
    (kind, content), = node.items()
    if kind == "array":
        return arrays[content]
    if kind == "tensor":
        return Tensor(arrays[content])
    if kind == "dict":
        return {key: _decode(value, arrays) for key, value in content}
    if kind == "list":
        return [_decode(item, arrays) for item in content]
    if kind == "tuple":
        return tuple(_decode(item, arrays) for item in content)
    return content


def save(obj, path):
    """Writes obj (e.g. model.state_dict() or optimizer.state_dict()) to path, exactly that name
    (no '.npz' appended), or to an open binary file."""
    arrays = {}
    structure = json.dumps(_encode(obj, arrays))
    entries = {**arrays, _STRUCTURE: np.array(structure)}
    if hasattr(path, "write"):
        np.savez(path, **entries)
    else:
        with open(path, "wb") as file:
            np.savez(file, **entries)


def load(path):
    """Reads what save wrote: arrays come back as NumPy arrays, Tensors as Tensors."""
    with np.load(path, allow_pickle=False) as archive:
        if _STRUCTURE not in archive.files:
            raise ValueError(f"fastnn.load: {path} was not written by fastnn.save (no {_STRUCTURE} entry)")
        arrays = {name: archive[name] for name in archive.files if name != _STRUCTURE}
        return _decode(json.loads(str(archive[_STRUCTURE])), arrays)
