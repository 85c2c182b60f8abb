"""cnnbook: the helper package of the book *Convolutional Neural Networks in Python*.

Submodules (imported on demand, so ``import cnnbook`` stays light and NumPy-only code never
pulls in torch): ``data``, ``utils``, ``functional``, ``nn``, ``optim``, ``gradcheck``,
``train``, ``metrics``, ``models``, ``plots``, ``widgets``, ``scratch``,
``classifier``, ``explain``, ``exercises``, ``student``.
"""
import importlib

__version__ = "0.1.0"

_SUBMODULES = {"data", "utils", "functional", "nn", "optim", "gradcheck", "train",
               "metrics", "models", "widgets", "exercises", "student", "plots", "scratch",
               "classifier", "explain"}


def __getattr__(name):
    if name in _SUBMODULES:
        return importlib.import_module(f"{__name__}.{name}")
    raise AttributeError(f"module 'cnnbook' has no attribute {name!r}")
