"""An independent check that a student notebook gives no solution away.

:mod:`cnnbook.book.student` strips the solutions; this module checks its result and on purpose
shares none of its code: it reads the teacher notebook's raw JSON with its own, deliberately
loose rules, so that a bug in the stripping parser is not repeated in the check.

- In any cell, a line that mentions ``begin solution`` (any case, any number of ``#``, any
  spacing) opens a secret region and one that mentions ``end solution`` closes it.
- In Markdown, a line holding ``{solution}`` opens a secret block that ends at the next line
  made only of the same fence character, at least as long; ``{solution-start}`` ...
  ``{solution-end}`` makes everything between them secret, across cells.
- A cell tagged ``solution`` is secret as a whole, and so is a code cell inside a
  ``{solution-start}`` block, unless it has a marker region: then, as in the student
  edition, only the region is secret (the ``def`` line and the checker call are the exercise).

A secret line (12 characters or more once stripped) must not appear anywhere in the student
notebook's text, unless the teacher notebook also shows it outside every secret region (a
standard line such as ``optimizer.zero_grad()``); neither may any marker or solution directive.

>>> teacher = {"cells": [{"cell_type": "code", "metadata": {},
...     "source": "x = 1\\n## begin solution\\nanswer = 6 * 7  # the secret\\n## end solution"}]}
>>> student = {"cells": [{"cell_type": "code", "metadata": {}, "source": "x = 1\\nanswer = 6 * 7  # the secret"}]}
>>> leaked_lines(teacher, student)
['answer = 6 * 7  # the secret']
"""
from __future__ import annotations

import re

__all__ = ["secret_and_public_lines", "leaked_lines"]

MIN_LENGTH = 12
_BEGIN = re.compile(r"(?i)begin[ \t_-]*solution")
_END = re.compile(r"(?i)end[ \t_-]*solution")
_OPTION = re.compile(r"^:[\w-]+:")
_TELLTALES = re.compile(r"(?i)(begin|end)[ \t_-]*solution|\{solution(-start|-end)?\}")


def _source(cell) -> str:
    source = cell.get("source", "")
    return "".join(source) if isinstance(source, list) else source


def _fence(line: str) -> str:
    """The fence (```` ``` ````, ``:::``...) that opens a directive on this line, or ''."""
    text = line.lstrip()
    run = len(text) - len(text.lstrip(text[:1])) if text[:1] in "`:" else 0
    return text[:run] if run >= 3 else ""


def secret_and_public_lines(nb) -> tuple[list[str], set[str]]:
    """Stripped lines of teacher notebook ``nb`` inside solutions, in order, and those outside them.

    Secret lines shorter than 12 characters, markers and directive lines (``{solution}``,
    ``:class: dropdown``) are left out of the first list: the first give nothing away, the
    others are looked for as telltales.
    """
    secret, public = {}, set()
    across_cells = False                 # inside {solution-start} ... {solution-end}
    for cell in nb["cells"]:
        lines = _source(cell).splitlines()
        marked = cell["cell_type"] == "code" and any(_BEGIN.search(line) for line in lines)
        whole = "solution" in cell.get("metadata", {}).get("tags", [])
        in_region, closing = False, ""   # a marker region; a {solution} block's fence
        for line in lines:
            stripped = line.strip()
            hidden = whole or (across_cells and not marked) or in_region or bool(closing)
            if "{solution-start}" in line:
                across_cells, hidden = True, True
            elif "{solution-end}" in line:
                across_cells, hidden = False, True
            elif "{solution}" in line:
                closing, hidden = _fence(line), True
            elif closing and stripped and set(stripped) == {closing[0]} and len(stripped) >= len(closing):
                closing = ""
            elif _BEGIN.search(line):
                in_region, hidden = True, True
            elif _END.search(line):
                in_region, hidden = False, True
            if not hidden:
                public.add(stripped)
            elif len(stripped) >= MIN_LENGTH and not (_TELLTALES.search(line) or _OPTION.match(stripped)):
                secret[stripped] = None
    return list(secret), public


def leaked_lines(teacher, student) -> list[str]:
    """Secret lines of ``teacher`` that ``student`` shows, then the solution telltales it shows."""
    secret, public = secret_and_public_lines(teacher)
    shown, public_text = "\n".join(_source(c) for c in student["cells"]), "\n".join(public)
    found = [line for line in secret if line in shown and line not in public_text]
    found += [m.group(0) for m in _TELLTALES.finditer(shown)]
    return found
