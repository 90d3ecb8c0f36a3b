"""torch.nn for fastnn: Module and Parameter, layers, losses, `functional` and `init`."""
from . import functional, init
from .module import Module, ModuleList, Parameter, Sequential
from .modules import *  # noqa: F401,F403
from . import modules as _modules

__all__ = ["functional", "init", "Module", "ModuleList", "Parameter", "Sequential"] + _modules.__all__
