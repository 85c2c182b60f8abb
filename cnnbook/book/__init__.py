"""The book's own machinery, not part of what it teaches about CNNs:

- ``widgets``: the interactive figures (live in Jupyter, preset pictures in the HTML);
- ``exercises``: the checkers that test a reader's answer and say what went wrong;
- ``student``: writes the student edition of the notebooks (solutions removed);
- ``glue``: numbers from cells into the prose (myst-nb in the build, shown elsewhere).
"""
from cnnbook._lazy import lazy_submodules

__getattr__ = lazy_submodules(__name__, ["widgets", "exercises", "student", "glue"])
