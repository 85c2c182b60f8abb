"""cnnbook: the helper package of the book *Convolutional Neural Networks in Python*.

Three parts, one folder each (imported on demand, so ``import cnnbook`` stays light):

- :mod:`cnnbook.scratch` — every building block written from scratch in NumPy, with
  PyTorch's names: ``functional`` (the definitions, loop version first), ``nn`` (layers),
  ``optim`` (optimizers), ``gradcheck`` (numerical gradients), ``lenet`` (chapter 2's
  network trained end to end). This part never imports torch.
- :mod:`cnnbook.pytorch` — tools built on PyTorch for chapters 3-6: ``data``
  (Fashion-MNIST), ``models``, ``train`` (the training loop and callbacks),
  ``classifier`` (chapter 5's task), ``explain``, ``metrics``, ``plots``, ``utils``.
- :mod:`cnnbook.book` — the book's own machinery: ``widgets``, ``exercises`` (checkers),
  ``student`` (the student edition).
"""
from cnnbook._lazy import lazy_submodules

__version__ = "0.1.0"

__getattr__ = lazy_submodules(__name__, ["scratch", "pytorch", "book"])
