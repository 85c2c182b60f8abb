"""Lazy submodules: ``package.name`` imports ``package/name.py`` on first use, so importing a
package never pulls in torch or matplotlib before a module that needs them is used."""
import importlib


def lazy_submodules(package: str, names):
    """Return a module ``__getattr__`` that imports ``package.<name>`` for each of ``names``."""
    names = frozenset(names)

    def __getattr__(name):
        if name in names:
            return importlib.import_module(f"{package}.{name}")
        raise AttributeError(f"module {package!r} has no attribute {name!r}")

    return __getattr__
