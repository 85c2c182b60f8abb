"""CNN building blocks written from scratch in NumPy, with the names and meanings of PyTorch.

- ``functional``: each operation and its backward (``conv2d`` / ``conv2d_backward``, ...),
  with the loop versions that define them (``conv2d_loop``, ``max_pool2d_loop``, ...);
- ``nn``: layers with ``torch.nn``'s constructor signatures and ``state_dict`` keys;
- ``optim``: SGD, Adam, AdamW and RMSprop with ``torch.optim``'s update rules;
- ``gradcheck``: centred-difference gradient checks of any backward;
- ``lenet``: chapter 2's LeNet-style network, trained on Fashion-MNIST with the above.

Nothing in this folder imports torch (a test checks it); only the book's comparison cells
and the tests put these functions next to PyTorch's.
"""
from cnnbook._lazy import lazy_submodules

__getattr__ = lazy_submodules(__name__, ["functional", "nn", "optim", "gradcheck", "lenet"])
