"""Module, Parameter and the containers, with torch.nn's registration rules: assigning a
Parameter or a Module to an attribute registers it, in assignment order."""
import collections

import numpy as np

from ..tensor import Tensor, _as_array, _cuda_device, _host, _move, _resolved, device

__all__ = ["Parameter", "Module", "Sequential", "ModuleList"]


class Parameter(Tensor):
    """A Tensor that a Module learns: requires grad unless told otherwise, and shares memory
    with the tensor or array it is built from."""

    def __init__(self, data=None, requires_grad=True):
        super().__init__(np.empty(0, dtype=np.float32) if data is None else _as_array(data), requires_grad)

    def __repr__(self):
        return "Parameter containing:\n" + super().__repr__()


_IncompatibleKeys = collections.namedtuple("IncompatibleKeys", ["missing_keys", "unexpected_keys"])


class Module:
    """Base class of every layer and model. Subclasses call super().__init__() and define forward()."""

    def __init__(self):
        object.__setattr__(self, "training", True)
        object.__setattr__(self, "_parameters", {})
        object.__setattr__(self, "_buffers", {})
        object.__setattr__(self, "_non_persistent_buffers", set())
        object.__setattr__(self, "_modules", {})

    def forward(self, *args, **kwargs):
        raise NotImplementedError(f'Module [{type(self).__name__}] is missing the required "forward" function')

    def __call__(self, *args, **kwargs):
        return self.forward(*args, **kwargs)

    def _fused_with(self, following):
        """A function computing following(self(x)) as one op, or None (Sequential asks each of its
        modules about the next)."""
        return None

    # ---- registration ----

    def _registry(self, name):
        if not isinstance(name, str) or not name or "." in name:
            raise ValueError(f"{type(self).__name__}: a parameter, buffer or submodule name must be a non-empty "
                             f"string without '.', got {name!r}")
        if "_parameters" not in self.__dict__:
            raise AttributeError(f"cannot assign {name!r} before {type(self).__name__}.__init__() called "
                                 "super().__init__()")

    def _forget(self, name):
        self.__dict__.pop(name, None)
        for store in (self._parameters, self._buffers, self._modules):
            store.pop(name, None)
        self._non_persistent_buffers.discard(name)

    def __setattr__(self, name, value):
        params, buffers, modules = (self.__dict__.get(s) for s in ("_parameters", "_buffers", "_modules"))
        if isinstance(value, Parameter):
            self._registry(name)
            self._forget(name)
            params[name] = value
        elif isinstance(value, Module):
            self._registry(name)
            self._forget(name)
            modules[name] = value
        elif params is not None and name in params:
            if value is not None:
                raise TypeError(f"cannot assign '{type(value).__name__}' as parameter '{name}' "
                                "(fastnn.nn.Parameter or None expected)")
            params[name] = None
        elif buffers is not None and name in buffers:
            if value is not None and not isinstance(value, Tensor):
                raise TypeError(f"cannot assign '{type(value).__name__}' as buffer '{name}' (Tensor or None expected)")
            buffers[name] = value
        elif modules is not None and name in modules and value is None:
            modules[name] = None
        else:
            object.__setattr__(self, name, value)

    def __getattr__(self, name):
        # Reached only when normal lookup fails: registered parameters, buffers and submodules.
        d = self.__dict__
        for store in ("_parameters", "_buffers", "_modules"):
            if store in d and name in d[store]:
                return d[store][name]
        raise AttributeError(f"'{type(self).__name__}' object has no attribute '{name}'")

    def __delattr__(self, name):
        if any(name in self.__dict__.get(s, ()) for s in ("_parameters", "_buffers", "_modules")):
            self._forget(name)
        else:
            object.__delattr__(self, name)

    def register_parameter(self, name, param):
        self._registry(name)
        if param is not None and not isinstance(param, Parameter):
            raise TypeError(f"cannot assign '{type(param).__name__}' as parameter '{name}' "
                            "(fastnn.nn.Parameter or None expected)")
        self._forget(name)
        self._parameters[name] = param

    def register_buffer(self, name, tensor, persistent=True):
        """A tensor that is state but not learned (BatchNorm's running stats); in state_dict
        unless persistent=False."""
        self._registry(name)
        if tensor is not None and not isinstance(tensor, Tensor):
            raise TypeError(f"cannot assign '{type(tensor).__name__}' as buffer '{name}' (Tensor or None expected)")
        self._forget(name)
        self._buffers[name] = tensor
        if not persistent:
            self._non_persistent_buffers.add(name)

    def add_module(self, name, module):
        self._registry(name)
        if module is not None and not isinstance(module, Module):
            raise TypeError(f"{type(module).__name__} is not a Module subclass")
        self._forget(name)
        self._modules[name] = module

    register_module = add_module

    # ---- traversal ----

    def named_modules(self, memo=None, prefix=""):
        """(name, module) for this module and every submodule, depth first, each once."""
        memo = set() if memo is None else memo
        if id(self) in memo:
            return
        memo.add(id(self))
        yield prefix, self
        for name, module in self._modules.items():
            if module is not None:
                yield from module.named_modules(memo, f"{prefix}.{name}" if prefix else name)

    def modules(self):
        return (module for _, module in self.named_modules())

    def named_children(self):
        return ((name, m) for name, m in self._modules.items() if m is not None)

    def children(self):
        return (m for _, m in self.named_children())

    def _named_members(self, store, prefix, recurse):
        seen = set()
        modules = self.named_modules(prefix=prefix) if recurse else [(prefix, self)]
        for module_prefix, module in modules:
            for name, value in getattr(module, store).items():
                if value is None or id(value) in seen:
                    continue
                seen.add(id(value))
                yield (f"{module_prefix}.{name}" if module_prefix else name), value

    def named_parameters(self, prefix="", recurse=True):
        """(name, Parameter) in registration order; a parameter shared by two modules comes once."""
        return self._named_members("_parameters", prefix, recurse)

    def parameters(self, recurse=True):
        return (p for _, p in self.named_parameters(recurse=recurse))

    def named_buffers(self, prefix="", recurse=True):
        return self._named_members("_buffers", prefix, recurse)

    def buffers(self, recurse=True):
        return (b for _, b in self.named_buffers(recurse=recurse))

    def apply(self, fn):
        for module in self.children():
            module.apply(fn)
        fn(self)
        return self

    # ---- modes and devices ----

    def train(self, mode=True):
        object.__setattr__(self, "training", bool(mode))
        for module in self.children():
            module.train(mode)
        return self

    def eval(self):
        return self.train(False)

    def requires_grad_(self, requires_grad=True):
        for p in self.parameters():
            p.requires_grad_(requires_grad)
        return self

    def zero_grad(self, set_to_none=True):
        for p in self.parameters():
            if p.grad is None:
                continue
            if set_to_none:
                p.grad = None
            else:
                p.grad.zero_()

    def to(self, *args, **kwargs):
        """to(device), to(dtype) or to(device, dtype) as in torch, in place: parameters and buffers
        stay the same objects (an optimizer made before holds them still), their arrays (and the
        parameters' gradients) moved or cast. A dtype casts the floating ones only."""
        for arg in list(args) + list(kwargs.values()):
            if isinstance(arg, Tensor):
                self._cast(arg.dtype)._move_to(arg.device)
            elif isinstance(arg, (str, device)):
                self._move_to(device(arg))
            elif arg is not None and not isinstance(arg, bool):
                self._cast(np.dtype(arg))
        return self

    def _tensors(self):
        return list(self.parameters()) + list(self.buffers())

    def _cast(self, dtype):
        for t in self._tensors():
            if t.dtype.kind == "f":
                t._data = t._data.astype(dtype, copy=False)
        return self

    def _move_to(self, target):
        target = _resolved(target)  # once: "cuda" checks that CUDA tensors can be made here
        for t in self._tensors():
            t._data = _move(t._data, target)
            if t.grad is not None:
                t.grad._data = _move(t.grad._data, target)
        return self

    def cpu(self):
        return self.to("cpu")

    def cuda(self, device=None):
        """Moves parameters and buffers to GPU `device` (an index, "cuda:N" or a device; None: the
        current GPU)."""
        return self._move_to(_cuda_device(device))

    def float(self):
        return self.to(np.float32)

    def double(self):
        return self.to(np.float64)

    # ---- state ----

    def state_dict(self, destination=None, prefix="", keep_vars=False):
        """Ordered name -> array (the live storage, as torch shares it: NumPy, or CuPy for a model on
        a GPU) of every parameter and persistent buffer; keep_vars gives the Tensors themselves."""
        destination = collections.OrderedDict() if destination is None else destination
        for name, p in self._parameters.items():
            if p is not None:
                destination[prefix + name] = p if keep_vars else p._data
        for name, b in self._buffers.items():
            if b is not None and name not in self._non_persistent_buffers:
                destination[prefix + name] = b if keep_vars else b._data
        for name, module in self._modules.items():
            if module is not None:
                module.state_dict(destination, f"{prefix}{name}.", keep_vars)
        return destination

    def load_state_dict(self, state_dict, strict=True):
        """Copies arrays (or Tensors) into the parameters and buffers in place, so optimizers
        holding them see the new values. Every key and shape is checked before anything is copied."""
        own = self.state_dict(keep_vars=True)
        missing = [k for k in own if k not in state_dict]
        unexpected = [k for k in state_dict if k not in own]
        errors = []
        if strict and unexpected:
            errors.append("Unexpected key(s) in state_dict: " + ", ".join(f'"{k}"' for k in unexpected) + ".")
        if strict and missing:
            errors.append("Missing key(s) in state_dict: " + ", ".join(f'"{k}"' for k in missing) + ".")
        values = {k: _host(state_dict[k]) for k in own if k in state_dict}
        for name, value in values.items():
            if value.shape != own[name].shape:
                errors.append(f"size mismatch for {name}: copying a param with shape {value.shape} from checkpoint, "
                              f"the shape in current model is {own[name].shape}.")
        if errors:
            raise RuntimeError(f"Error(s) in loading state_dict for {type(self).__name__}:\n\t" + "\n\t".join(errors))
        for name, value in values.items():
            xp = own[name]._xp
            xp.copyto(own[name]._data, xp.asarray(value), casting="unsafe")  # onto the parameter's device
        return _IncompatibleKeys(missing, unexpected)

    # ---- printing ----

    def extra_repr(self):
        return ""

    def __repr__(self):
        lines = [f"({name}): " + repr(module).replace("\n", "\n  ") for name, module in self._modules.items()]
        if not lines:
            return f"{type(self).__name__}({self.extra_repr()})"
        extra = [self.extra_repr()] if self.extra_repr() else []
        return f"{type(self).__name__}(\n  " + "\n  ".join(extra + lines) + "\n)"


class _ModuleSequence(Module):
    """What Sequential and ModuleList share: indexing, length, iteration and append."""

    def _slice(self, items):
        raise NotImplementedError

    def __getitem__(self, index):
        if isinstance(index, slice):
            return self._slice(list(self._modules.items())[index])
        if not -len(self) <= index < len(self):
            raise IndexError(f"{type(self).__name__}: index {index} is out of range for {len(self)} modules")
        return list(self._modules.values())[index]

    def __len__(self):
        return len(self._modules)

    def __iter__(self):
        return iter(self._modules.values())

    def append(self, module):
        self.add_module(str(len(self)), module)
        return self


class Sequential(_ModuleSequence):
    """Runs its modules in order, each on the previous one's output."""

    def __init__(self, *modules):
        super().__init__()
        if len(modules) == 1 and isinstance(modules[0], collections.OrderedDict):
            for name, module in modules[0].items():
                self.add_module(name, module)
        else:
            for index, module in enumerate(modules):
                self.add_module(str(index), module)

    def _slice(self, items):
        return Sequential(collections.OrderedDict(items))

    def forward(self, input):
        modules = list(self._modules.values())
        i = 0
        while i < len(modules):
            fused = modules[i]._fused_with(modules[i + 1]) if i + 1 < len(modules) else None
            input = (fused or modules[i])(input)
            i += 2 if fused else 1
        return input


class ModuleList(_ModuleSequence):
    """A list of modules, registered so their parameters are found; no forward of its own."""

    def __init__(self, modules=None):
        super().__init__()
        for module in modules or ():
            self.append(module)

    def _slice(self, items):
        return ModuleList(module for _, module in items)

    def extend(self, modules):
        for module in modules:
            self.append(module)
        return self
