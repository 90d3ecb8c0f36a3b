"""fastnn.interop.torch: every Function against native PyTorch in float64, whole networks against
the same networks in native PyTorch, state_dict compatibility, module swapping, errors."""
import copy
import subprocess
import sys

import pytest

torch = pytest.importorskip("torch")
import fastnn.interop.torch as fnt  # noqa: E402
from fastnn import ops  # noqa: E402

F = torch.nn.functional
generator = torch.Generator().manual_seed(0)


def randn(*shape):
    return torch.randn(shape, generator=generator)


def classes(n, count):
    return torch.randint(0, count, (n,), generator=generator)


def assert_close(name, actual, expected, reduction):
    """float32 `actual` against the float64 `expected`, within float32 rounding over sums of
    `reduction` terms, relative to the larger of 1 and the largest expected magnitude."""
    assert isinstance(actual, torch.Tensor) and actual.dtype == torch.float32, \
        f"{name}: expected a float32 torch.Tensor, got {type(actual).__name__} {getattr(actual, 'dtype', '')}"
    assert actual.shape == expected.shape, f"{name}: shape {tuple(actual.shape)} != {tuple(expected.shape)}"
    actual, expected = actual.detach(), expected.detach()
    tol = 2e-5 * max(1, reduction) ** 0.5 * max(1.0, float(expected.abs().max()) if expected.numel() else 1.0)
    err = (actual.double() - expected).abs()
    assert err.numel() == 0 or float(err.max()) <= tol, f"{name}: max error {float(err.max()):.3g} > {tol:.3g}"


def assert_through_fastnn(output):
    """`output` came from a fastnn Function, not from torch's own kernel."""
    assert output.grad_fn.name() in ("_OpBackward", "_MaxPool2dBackward"), f"computed by {output.grad_fn.name()}"


def check(fastnn_fn, torch_fn, inputs, kwargs, reduction):
    """fastnn_fn(*inputs, **kwargs) and the gradients of its float inputs against torch_fn on
    float64 copies (float tensors in kwargs, like class weights, are copied too)."""
    ours = [t.clone().requires_grad_(t.is_floating_point()) for t in inputs]
    ref = [t.double().requires_grad_() if t.is_floating_point() else t for t in inputs]
    ref_kwargs = {k: v.double() if isinstance(v, torch.Tensor) and v.is_floating_point() else v
                  for k, v in kwargs.items()}
    out, expected = fastnn_fn(*ours, **kwargs), torch_fn(*ref, **ref_kwargs)
    assert_through_fastnn(out)
    assert_close("forward", out, expected, reduction)
    grad_output = randn(*out.shape)
    out.backward(grad_output)
    expected.backward(grad_output.double())
    for i, (a, e) in enumerate(zip(ours, ref)):
        if a.is_floating_point():
            assert_close(f"grad of input {i}", a.grad, e.grad, reduction)


# (fastnn function, native function, inputs, kwargs, longest sum behind one output or gradient)
CASES = {
    "conv2d": (fnt.conv2d, F.conv2d, lambda: [randn(2, 3, 9, 9), randn(4, 3, 3, 3), randn(4)],
               dict(stride=2, padding=1), 2 * 5 * 5),
    "conv2d_no_bias_dilation_groups": (fnt.conv2d, F.conv2d, lambda: [randn(2, 4, 10, 11), randn(6, 2, 3, 3)],
                                       dict(dilation=2, groups=2), 2 * 6 * 7),
    "conv2d_transposed_input": (fnt.conv2d, F.conv2d, lambda: [randn(2, 3, 8, 9).transpose(2, 3), randn(4, 3, 3, 3)],
                                {}, 2 * 7 * 6),
    "conv2d_same": (fnt.conv2d, F.conv2d, lambda: [randn(1, 2, 7, 7), randn(3, 2, 3, 3), randn(3)],
                    dict(padding="same"), 49),
    "linear": (fnt.linear, F.linear, lambda: [randn(5, 7), randn(3, 7), randn(3)], {}, 7),
    "linear_3d_no_bias": (fnt.linear, F.linear, lambda: [randn(2, 4, 7), randn(3, 7)], {}, 8),
    "matmul": (fnt.matmul, torch.matmul, lambda: [randn(5, 6), randn(6, 4)], {}, 6),
    "matmul_batched": (fnt.matmul, torch.matmul, lambda: [randn(3, 5, 6), randn(3, 6, 4)], {}, 6),
    "matmul_3d_2d": (fnt.matmul, torch.matmul, lambda: [randn(3, 5, 6), randn(6, 4)], {}, 15),
    "max_pool2d": (fnt.max_pool2d, F.max_pool2d, lambda: [randn(2, 3, 8, 8)], dict(kernel_size=2), 1),
    "max_pool2d_padded_ceil": (fnt.max_pool2d, F.max_pool2d, lambda: [randn(2, 3, 9, 8)],
                               dict(kernel_size=3, stride=2, padding=1, ceil_mode=True), 1),
    "max_pool2d_dilation": (fnt.max_pool2d, F.max_pool2d, lambda: [randn(1, 2, 9, 9)],
                            dict(kernel_size=2, dilation=2), 1),
    "avg_pool2d": (fnt.avg_pool2d, F.avg_pool2d, lambda: [randn(2, 3, 8, 8)], dict(kernel_size=2), 4),
    "avg_pool2d_excluding_pad": (fnt.avg_pool2d, F.avg_pool2d, lambda: [randn(2, 3, 9, 7)],
                                 dict(kernel_size=3, stride=2, padding=1, ceil_mode=True, count_include_pad=False), 9),
    "avg_pool2d_divisor": (fnt.avg_pool2d, F.avg_pool2d, lambda: [randn(1, 2, 6, 6)],
                           dict(kernel_size=3, divisor_override=5), 9),
    "relu": (fnt.relu, F.relu, lambda: [randn(4, 5, 3)], {}, 1),
    "leaky_relu": (fnt.leaky_relu, F.leaky_relu, lambda: [randn(4, 5)], dict(negative_slope=0.2), 1),
    "sigmoid": (fnt.sigmoid, torch.sigmoid, lambda: [randn(4, 5)], {}, 1),
    "tanh": (fnt.tanh, torch.tanh, lambda: [randn(4, 5)], {}, 1),
    "gelu": (fnt.gelu, F.gelu, lambda: [randn(4, 5)], {}, 1),
    "gelu_tanh": (fnt.gelu, F.gelu, lambda: [randn(4, 5)], dict(approximate="tanh"), 1),
    "softmax": (fnt.softmax, F.softmax, lambda: [randn(3, 7, 2)], dict(dim=1), 7),
    "log_softmax": (fnt.log_softmax, F.log_softmax, lambda: [randn(4, 9)], dict(dim=-1), 9),
    "cross_entropy": (fnt.cross_entropy, F.cross_entropy, lambda: [randn(6, 5), classes(6, 5)], {}, 30),
    "cross_entropy_weighted_sum": (fnt.cross_entropy, F.cross_entropy, lambda: [randn(6, 5), classes(6, 5)],
                                   dict(weight=torch.rand(5, generator=generator) + 0.5, reduction="sum",
                                        ignore_index=2), 30),
    "cross_entropy_smoothing_none": (fnt.cross_entropy, F.cross_entropy, lambda: [randn(6, 5), classes(6, 5)],
                                     dict(reduction="none", label_smoothing=0.1), 5),
    "nll_loss": (fnt.nll_loss, F.nll_loss, lambda: [randn(6, 5), classes(6, 5)], {}, 6),
    "nll_loss_weighted": (fnt.nll_loss, F.nll_loss, lambda: [randn(6, 5), classes(6, 5)],
                          dict(weight=torch.rand(5, generator=generator) + 0.5, ignore_index=0), 6),
}


@pytest.mark.parametrize("case", list(CASES))
def test_function_matches_torch(case):
    fastnn_fn, torch_fn, make_inputs, kwargs, reduction = CASES[case]
    check(fastnn_fn, torch_fn, make_inputs(), kwargs, reduction)


def test_max_pool2d_indices_match_torch_and_are_not_differentiable():
    x = randn(2, 3, 7, 7).requires_grad_()
    out, indices = fnt.max_pool2d(x, 3, stride=2, padding=1, return_indices=True)
    expected, expected_indices = F.max_pool2d(x.detach(), 3, stride=2, padding=1, return_indices=True)
    assert torch.equal(out.detach(), expected) and torch.equal(indices, expected_indices)
    assert out.requires_grad and not indices.requires_grad
    out.sum().backward()
    reference = x.detach().clone().requires_grad_()
    F.max_pool2d(reference, 3, stride=2, padding=1).sum().backward()
    assert torch.equal(x.grad, reference.grad)


def test_conv2d_skips_gradients_nobody_needs():
    x, w = randn(2, 3, 6, 6), randn(4, 3, 3, 3).requires_grad_()
    fnt.conv2d(x, w).sum().backward()
    assert x.grad is None and w.grad is not None


def _net(layers, pool):
    return torch.nn.Sequential(layers.Conv2d(1, 4, 3, padding=1), layers.ReLU(), pool(layers)(2),
                               layers.Conv2d(4, 6, 3, stride=2), layers.Tanh(), torch.nn.Flatten(),
                               layers.Linear(6 * 3 * 3, 10))


@pytest.mark.parametrize("pool", [lambda m: m.MaxPool2d, lambda m: m.AvgPool2d], ids=["max_pool", "avg_pool"])
def test_network_matches_native_torch(pool):
    torch.manual_seed(0)
    native = _net(torch.nn, pool)
    ours = _net(fnt, pool)
    ours.load_state_dict(native.state_dict())
    assert all(type(m).__module__ == fnt.__name__ for m in ours if not isinstance(m, torch.nn.Flatten))
    images, labels = randn(8, 1, 16, 16), classes(8, 10)
    native_loss = torch.nn.CrossEntropyLoss()(native(images), labels)
    loss = fnt.CrossEntropyLoss()(ours(images), labels)
    native_loss.backward()
    loss.backward()
    assert abs(loss.item() - native_loss.item()) <= 1e-5 * abs(native_loss.item())
    for (name, p), (_, q) in zip(ours.named_parameters(), native.named_parameters()):
        assert_close(f"grad of {name}", p.grad, q.grad.double(), 8 * 16 * 16)


def test_modules_have_torch_parameters_init_and_state_dict():
    for make in (lambda m: m.Conv2d(3, 8, 3, bias=False), lambda m: m.Linear(5, 4),
                 lambda m: m.CrossEntropyLoss(weight=torch.ones(3))):
        torch.manual_seed(1)
        native = make(torch.nn)
        torch.manual_seed(1)
        ours = make(fnt)
        assert isinstance(ours, type(native)) and type(ours) is not type(native)
        assert list(ours.state_dict()) == list(native.state_dict())
        assert all(torch.equal(a, b) for a, b in zip(ours.state_dict().values(), native.state_dict().values()))
        native.load_state_dict(ours.state_dict())
        ours.load_state_dict(native.state_dict())


@pytest.mark.parametrize("padding_mode", ["reflect", "circular", "replicate"])
def test_conv2d_module_padding_modes(padding_mode):
    torch.manual_seed(2)
    native = torch.nn.Conv2d(2, 3, 3, padding=1, padding_mode=padding_mode)
    ours = fnt.Conv2d(2, 3, 3, padding=1, padding_mode=padding_mode)
    ours.load_state_dict(native.state_dict())
    x = randn(2, 2, 6, 5)
    out = ours(x.requires_grad_())
    assert_through_fastnn(out)
    assert_close("forward", out, native(x).double(), 18)


@pytest.mark.parametrize("name, args, input_shape", [
    ("ReLU", (True,), (4, 6)), ("LeakyReLU", (0.3,), (4, 6)), ("Sigmoid", (), (4, 6)), ("Tanh", (), (4, 6)),
    ("GELU", ("tanh",), (4, 6)), ("Softmax", (1,), (4, 6)), ("LogSoftmax", (1,), (4, 6)),
    ("MaxPool2d", (3, 2, 1), (2, 2, 7, 7)), ("AvgPool2d", (2,), (2, 2, 6, 6))])
def test_module_matches_native(name, args, input_shape):
    x = randn(*input_shape).requires_grad_()
    out = getattr(fnt, name)(*args)(x)
    assert_through_fastnn(out)
    assert_close(name, out, getattr(torch.nn, name)(*args)(x.detach()).double(), 9)


class _SmallNet(torch.nn.Module):
    """A model written for native PyTorch, with a custom Conv2d subclass convert must leave alone."""

    class Custom(torch.nn.Conv2d):
        pass

    def __init__(self):
        super().__init__()
        self.features = torch.nn.Sequential(torch.nn.Conv2d(1, 4, 3), torch.nn.ReLU(inplace=True),
                                            torch.nn.AvgPool2d(2))
        self.custom = self.Custom(4, 4, 1)
        self.classifier = torch.nn.Linear(4 * 3 * 3, 5)
        self.loss = torch.nn.CrossEntropyLoss()

    def forward(self, images, labels):
        return self.loss(self.classifier(self.custom(self.features(images)).flatten(1)), labels)


def test_convert_swaps_layers_of_an_existing_model():
    torch.manual_seed(3)
    native = _SmallNet()
    ours = fnt.convert(copy.deepcopy(native))
    assert [type(m) for m in ours.features] == [fnt.Conv2d, fnt.ReLU, fnt.AvgPool2d]
    assert type(ours.classifier) is fnt.Linear and type(ours.loss) is fnt.CrossEntropyLoss
    assert type(ours.custom) is _SmallNet.Custom
    assert list(ours.state_dict()) == list(native.state_dict())
    images, labels = randn(3, 1, 8, 8), classes(3, 5)
    native_loss, loss = native(images, labels), ours(images, labels)
    native_loss.backward()
    loss.backward()
    assert abs(loss.item() - native_loss.item()) <= 1e-5 * abs(native_loss.item())
    for (name, p), (_, q) in zip(ours.named_parameters(), native.named_parameters()):
        assert_close(f"grad of {name}", p.grad, q.grad.double(), 3 * 36)


def test_assigning_a_fastnn_layer_into_a_native_model():
    torch.manual_seed(4)
    native = _SmallNet()
    ours = copy.deepcopy(native)
    ours.classifier = fnt.Linear(4 * 3 * 3, 5)
    ours.load_state_dict(native.state_dict())
    images, labels = randn(3, 1, 8, 8), classes(3, 5)
    loss, native_loss = ours(images, labels).item(), native(images, labels).item()
    assert abs(loss - native_loss) <= 1e-5 * abs(native_loss)


def test_float64_is_refused_with_a_type_error():
    with pytest.raises(TypeError, match="float32"):
        fnt.relu(randn(3).double())
    with pytest.raises(TypeError, match="float32"):
        fnt.Linear(3, 2).double()(randn(4, 3).double())


def test_unsupported_arguments_are_refused():
    with pytest.raises(ValueError, match="inplace"):
        fnt.relu(randn(3), inplace=True)
    with pytest.raises(ValueError, match="dim"):
        fnt.softmax(randn(3, 4))
    with pytest.raises(ValueError, match="reduction"):
        fnt.cross_entropy(randn(3, 4), classes(3, 4), size_average=False)


def test_device_tensors_get_fastnn_ops_error_unchanged():
    """A tensor on a device fastnn has no kernels for gets fastnn.ops' error."""
    x = randn(4, 5).to("meta")
    with pytest.raises(TypeError) as from_ops:
        ops.relu(x)
    with pytest.raises(TypeError) as from_adapter:
        fnt.relu(x.requires_grad_())
    assert str(from_adapter.value) == str(from_ops.value)


def test_cuda_tensors_run_on_the_cuda_kernels(require_gpu):
    if not torch.cuda.is_available():
        pytest.skip("this torch build has no CUDA")
    x = randn(4, 5).cuda().requires_grad_()
    y = fnt.gelu(x)
    y.backward(torch.ones_like(y))
    assert y.device == x.device and x.grad.device == x.device
    expected = x.detach().cpu().requires_grad_()
    torch.nn.functional.gelu(expected).backward(torch.ones(4, 5))
    torch.testing.assert_close(y.detach().cpu(), torch.nn.functional.gelu(expected.detach()), rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(x.grad.cpu(), expected.grad, rtol=1e-5, atol=1e-6)


def _run_python(code):
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout


def test_import_fastnn_does_not_import_torch():
    assert _run_python("import sys, fastnn, fastnn.interop; print('torch' in sys.modules)").strip() == "False"


def test_import_without_torch_says_to_install_it():
    out = _run_python("import sys\nsys.modules['torch'] = None\n"
                      "try:\n    import fastnn.interop.torch\nexcept ImportError as error:\n    print(error)")
    assert "pip install torch" in out
