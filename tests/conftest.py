import os
import random

import pytest
from hypothesis import settings

import fastnn

ISAS = fastnn.build_info()["isas_available"]


@pytest.fixture(params=ISAS)
def isa(request):
    """Runs a test once per SIMD kernel set this CPU supports, then restores the default."""
    default = fastnn.build_info()["isa"]
    fastnn._C._set_isa(request.param)
    yield request.param
    fastnn._C._set_isa(default)


@pytest.fixture
def require_gpu():
    """Skips without a usable GPU and CuPy, unless FASTNN_REQUIRE_GPU=1 turns that into a failure."""
    reason = fastnn.cuda.unavailable_reason()
    if reason is not None:
        if os.environ.get("FASTNN_REQUIRE_GPU") == "1":
            pytest.fail(f"FASTNN_REQUIRE_GPU=1 but {reason}")
        pytest.skip(reason)


@pytest.fixture(params=["cpu", "cuda"])
def device(request):
    """Runs a test on the host and again on the GPU (skipped as require_gpu skips)."""
    if request.param == "cuda":
        request.getfixturevalue("require_gpu")
    return request.param


def pytest_collection_modifyitems(config, items):
    """GPU tests run under the default ISA only: the module-wide isa fixture would run each once
    per CPU ISA, tripling the GPU time for nothing."""
    default = fastnn.build_info()["isa"]
    keep, drop = [], []
    for item in items:
        params = item.callspec.params if hasattr(item, "callspec") else {}
        on_gpu = params.get("device") == "cuda" or "require_gpu" in item.fixturenames
        (drop if on_gpu and params.get("isa", default) != default else keep).append(item)
    if drop:
        config.hook.pytest_deselected(items=drop)
        items[:] = keep


# Hypothesis profiles, picked by HYPOTHESIS_PROFILE. "ci" (the default) derandomizes: each
# test draws the same examples every run, so a failure reproduces by rerunning it; "long" draws
# fresh ones for a campaign, from a seed printed at the end of the run. Both print the
# falsifying example and its @reproduce_failure blob.
settings.register_profile("ci", max_examples=100, deadline=None, derandomize=True, print_blob=True)
settings.register_profile("long", max_examples=1000, deadline=None, print_blob=True)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))


@pytest.hookimpl(tryfirst=True)  # before hypothesis' own hook reads the seed
def pytest_configure(config):
    """A run with fresh examples gets a seed, printed at the end, so that any failure it
    finds can be rerun exactly with --hypothesis-seed."""
    if not settings.default.derandomize and config.getoption("--hypothesis-seed") is None:
        config.option.hypothesis_seed = str(random.randrange(2**32))


def pytest_terminal_summary(terminalreporter, config):
    seed = config.getoption("--hypothesis-seed")
    if seed is not None:
        terminalreporter.write_line(f"hypothesis seed {seed} (rerun with --hypothesis-seed={seed})")
