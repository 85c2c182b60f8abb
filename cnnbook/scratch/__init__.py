"""CNN building blocks written from scratch in NumPy, with the names and meanings of PyTorch.

What a student reads first, the definitions (each op's loop version, one vectorized version
and its backward), gathered in ``functional``:

- ``conv``, ``pool``, ``activations``, ``linear`` (and dropout), ``normalization``, ``losses``;
- ``checks``: the argument checks and window geometry they share.

Built on them:

- ``nn``: layers with ``torch.nn``'s constructor signatures and ``state_dict`` keys
  (``module``: Parameter, Module, no_grad; ``layers``: the layers themselves);
- ``optim``: SGD, Adam, AdamW and RMSprop with ``torch.optim``'s update rules and state dicts;
- ``gradcheck``: centred-difference gradient checks of any backward;
- ``lenet``: chapter 2's LeNet-style network, trained on Fashion-MNIST with the above.

The performance paths the layers run on, apart from the definitions (CS231n's
``fast_layers``): ``fast`` (which path, and each path's forward and backward), ``fast_conv``
(im2col in two layouts, the shifted-view convolution) and ``threads``.

Nothing in this folder imports torch (a test checks it); the torch twin of the LeNet lives
in :mod:`cnnbook.pytorch.twins`, and only the book's comparison cells and the tests put these
functions next to PyTorch's.
"""
from cnnbook._lazy import lazy_submodules

__getattr__ = lazy_submodules(__name__, [
    "functional", "conv", "pool", "activations", "linear", "normalization", "losses", "checks",
    "nn", "module", "layers", "optim", "gradcheck", "lenet", "fast", "fast_conv", "threads"])
