"""Using fastnn's kernels from other frameworks.

`fastnn.interop.torch`: torch.autograd Functions and drop-in torch.nn modules that compute
through fastnn (needs PyTorch, which fastnn itself never imports).
"""
