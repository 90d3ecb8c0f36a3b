import os

import pytest

import fastnn

ISAS = fastnn.build_info()["isas_available"]


@pytest.fixture(params=ISAS)
def isa(request):
    """Runs a test once per SIMD kernel set this CPU supports, then restores the default."""
    default = fastnn.build_info()["isa"]
    fastnn._C._set_isa(request.param)
    yield request.param
    fastnn._C._set_isa(default)


def gpu_available():
    return fastnn.build_info()["cuda_devices"] > 0


@pytest.fixture
def require_gpu():
    """Skips without a usable GPU, unless FASTNN_REQUIRE_GPU=1 turns that into a failure."""
    if not gpu_available():
        reason = f"no usable GPU ({fastnn.build_info()['cuda_error']})"
        if os.environ.get("FASTNN_REQUIRE_GPU") == "1":
            pytest.fail(f"FASTNN_REQUIRE_GPU=1 but {reason}")
        pytest.skip(reason)
