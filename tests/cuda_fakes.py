"""Stand-ins for GPU arrays on machines without one, for testing the CUDA bindings' checks."""
import fastnn


class FakeCudaArray:
    """An object with a __cuda_array_interface__ and no memory behind it. The CUDA bindings check
    dtype, rank, shape and contiguity before any CUDA call, so those errors show without a GPU;
    an array that passes them reaches the runtime's memory query (see expected_runtime_error)."""

    def __init__(self, shape, typestr="<f4", strides=None, address=0x7F0000000000):
        self.__cuda_array_interface__ = {"shape": tuple(shape), "typestr": typestr, "strides": strides,
                                         "data": (address, False), "version": 3}


def expected_runtime_error():
    """(exception type, message pattern) that a binding raises for a FakeCudaArray that passes its
    argument checks: with no driver the runtime's own error, with a GPU the host-memory check's."""
    if fastnn.build_info()["cuda_devices"] == 0:
        return RuntimeError, r"cudaPointerGetAttributes failed: CUDA error cuda\w+: "
    return ValueError, r"is in host memory, not on the GPU"
