"""Student edition of the book's notebooks: the same chapters with the solutions taken out.

The teacher notebooks in ``book/`` hold every exercise with its solution:

- solution code sits between nbgrader's markers ``### BEGIN SOLUTION`` and
  ``### END SOLUTION`` inside a code cell;
- in the HTML book, solutions are collapsed: a ``{solution}`` directive with
  ``:class: dropdown``, or ``{solution-start}`` ... ``{solution-end}`` around code cells;
- a cell tagged ``solution`` belongs to a solution wherever it is.

:func:`make_student` turns one into the student notebook: each marked region becomes
``raise NotImplementedError()`` (the code around it, such as the ``def`` line and the
checker call, stays); other cells inside a solution block and cells tagged ``solution`` are
dropped; ``{solution}`` directives and solution blocks are cut from the Markdown (a student
opening the raw ``.ipynb`` would otherwise read them); ``{exercise}`` directives become
plain Markdown headed ``Exercise N: title``, numbered as in the HTML book; outputs,
execution counts and saved widget state are cleared. The code cell that held a solution region
is tagged ``exercise``.

Run ``python -m cnnbook.book.student [--book book] [--out student] [NOTEBOOK ...]`` (or
``make student``) from the repository root. A line that looks like a solution marker but is
not exactly one (``## BEGIN SOLUTION``, lower case...) stops it with the cell named, and it
refuses to write a notebook in which any line of a solution survives, by the independent
check of :mod:`cnnbook.book.leakcheck`.

With ``--nbgrader`` it writes nbgrader *source* assignments instead (one folder per chapter,
default ``nbgrader/source``; see :mod:`cnnbook.book.grading`): nbgrader 0.9's
``generate_assignment`` releases them with default settings, and ``autograde`` gives each code
exercise's locked test cell its point; written answers are graded by hand.
"""
from __future__ import annotations

import argparse
import copy
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path

import nbformat

from cnnbook.book.leakcheck import leaked_lines

BEGIN, END = "### BEGIN SOLUTION", "### END SOLUTION"
PLACEHOLDER = ("# YOUR CODE HERE", "raise NotImplementedError()")
SOLUTION_TAG, EXERCISE_TAG = "solution", "exercise"
NOTE = ("> **Student edition.** The solutions of the exercises are removed. Replace each "
        "`raise NotImplementedError()` with your code, then run the cell: the checker below it "
        "tells you what is right and what to look at. The HTML book has the worked solutions.")

# Anything a teacher might have meant as a marker: any number of '#', any case, any spacing.
_MARKER_LIKE = re.compile(r"(?i)\b(begin|end)[ \t_-]*solutions?\b")
_OPEN = re.compile(r"^(?P<indent>[ \t]*)(?P<fence>`{3,}|:{3,})\{(?P<name>[\w-]+)\}[ \t]*(?P<arg>.*?)\s*$")
_OPTION = re.compile(r"^\s*:[\w-]+:")


@dataclass
class _State:
    """What the conversion carries from cell to cell."""

    path: str = "<notebook>"
    in_solution: bool = False
    exercise_number: int = 0
    dropped: list = field(default_factory=list)


# --------------------------------------------------------------------------- code cells

def check_markers(source: str, where: str = "cell") -> None:
    """Refuse a line that looks like a solution marker but is not exactly one.

    ``## BEGIN SOLUTION``, ``###BEGIN SOLUTION`` or ``### begin solution`` would pass through
    the conversion as ordinary text, and the solution under it with them.

    Raises
    ------
    ValueError
        Naming ``where``, the line and the marker it should be.
    """
    for number, line in enumerate(source.splitlines(), start=1):
        stripped, match = line.strip(), _MARKER_LIKE.search(line)
        if match and stripped not in (BEGIN, END):
            meant = BEGIN if match[1].lower() == "begin" else END
            raise ValueError(f"student: {where}, line {number}: {stripped!r} looks like a solution marker "
                             f"but is not one; write exactly {meant!r} (a solution would leak otherwise)")


def strip_solution_code(source: str, where: str = "cell") -> str:
    """Replace every ``### BEGIN SOLUTION`` ... ``### END SOLUTION`` region by the placeholder.

    The placeholder (``# YOUR CODE HERE`` then ``raise NotImplementedError()``) takes the
    indentation of the ``BEGIN`` marker, so a region inside a function body stays valid code.

    Raises
    ------
    ValueError
        If the markers are unbalanced or nested, or a line looks like a marker but is not
        exactly one (:func:`check_markers`); the message names ``where``.
    """
    check_markers(source, where)
    out, inside = [], False
    for number, line in enumerate(source.splitlines(), start=1):
        stripped = line.strip()
        if stripped == BEGIN:
            if inside:
                raise ValueError(f"student: {where}, line {number}: {BEGIN!r} inside another solution region")
            inside = True
            indent = line[:len(line) - len(line.lstrip())]
            out += [indent + text for text in PLACEHOLDER]
        elif stripped == END:
            if not inside:
                raise ValueError(f"student: {where}, line {number}: {END!r} without {BEGIN!r}")
            inside = False
        elif not inside:
            out.append(line)
    if inside:
        raise ValueError(f"student: {where}: {BEGIN!r} without {END!r}")
    return "\n".join(out)


# --------------------------------------------------------------------------- markdown cells

def _closing(lines: list[str], start: int, fence: str) -> int:
    """Index of the line that closes the directive opened at ``start`` (or len(lines))."""
    char, width = fence[0], len(fence)
    pattern = re.compile(rf"^[ \t]*{re.escape(char)}{{{width},}}[ \t]*$")
    for j in range(start + 1, len(lines)):
        if pattern.match(lines[j]):
            return j
    return len(lines)


def _exercise_markdown(arg: str, body: list[str], number: int) -> list[str]:
    """An ``{exercise}`` directive as plain Markdown: a heading, then its body without options."""
    while body and _OPTION.match(body[0]):
        body = body[1:]
    while body and not body[0].strip():
        body = body[1:]
    title = f"### Exercise {number}" + (f": {arg}" if arg else "")
    return [title, ""] + body


def convert_markdown(source: str, state: _State) -> str:
    """Student version of one Markdown cell; ``state`` tracks solution blocks across cells."""
    lines, out, i = source.splitlines(), [], 0
    while i < len(lines):
        match = _OPEN.match(lines[i])
        if not match:
            if not state.in_solution:
                out.append(lines[i])
            i += 1
            continue
        end = _closing(lines, i, match["fence"])
        name, body = match["name"], lines[i + 1:end]
        if name == "solution-start":
            state.in_solution = True
        elif name == "solution-end":
            state.in_solution = False
        elif name in ("exercise", "exercise-start") and not state.in_solution:
            state.exercise_number += 1
            out += _exercise_markdown(match["arg"], body, state.exercise_number)
        elif name not in ("solution", "exercise-end") and not state.in_solution:
            out += lines[i:end + 1]
        i = end + 1
    return "\n".join(out).strip("\n")


# --------------------------------------------------------------------------- notebooks

def _tags(cell) -> list:
    return list(cell.get("metadata", {}).get("tags", []))


def _student_code_cell(cell, state: _State, index: int):
    """The student version of one code cell, or None to drop it."""
    has_markers = BEGIN in cell.source
    if SOLUTION_TAG in _tags(cell) or (state.in_solution and not has_markers):
        state.dropped.append(index)
        return None
    cell = copy.deepcopy(cell)
    cell.source = strip_solution_code(cell.source, where=f"{state.path}, cell {index}")
    cell.outputs, cell.execution_count = [], None
    cell.metadata.pop("execution", None)
    if has_markers:
        cell.metadata["tags"] = _tags(cell) + [EXERCISE_TAG] * (EXERCISE_TAG not in _tags(cell))
    return cell


def finished_copy(nb, cells: list, state, path) -> nbformat.NotebookNode:
    """A copy of ``nb`` holding ``cells`` and no saved widget state, once every solution block
    that ``state`` saw opened was closed (else ``ValueError`` naming the notebook)."""
    if state.in_solution:
        raise ValueError(f"student: {path}: a {{solution-start}} block is never closed by {{solution-end}}")
    out = copy.deepcopy(nb)
    out.cells = cells
    out.metadata.pop("widgets", None)
    return out


def make_student(nb, path: str = "<notebook>", first_exercise: int = 1):
    """Return the student edition of notebook ``nb`` (a new notebook; ``nb`` is unchanged).

    Parameters
    ----------
    nb : nbformat.NotebookNode
        A teacher notebook (nbformat 4).
    path : str
        Its name, used in error messages.
    first_exercise : int, default 1
        The number of its first exercise (the HTML book numbers exercises across chapters).

    Raises
    ------
    ValueError
        If solution markers are unbalanced, or a solution block is not closed.
    """
    state = _State(path=path, exercise_number=first_exercise - 1)
    cells = []
    for index, cell in enumerate(nb.cells):
        check_markers(cell.source, where=f"{path}, cell {index}")
        if cell.cell_type == "code":
            new = _student_code_cell(cell, state, index)
        elif SOLUTION_TAG in _tags(cell):
            new = None
        else:
            new = copy.deepcopy(cell)
            new.source = convert_markdown(cell.source, state) if cell.cell_type == "markdown" else cell.source
            new = new if new.source.strip() else None
        if new is not None:
            cells.append(new)
    student = finished_copy(nb, cells, state, path)
    if any(EXERCISE_TAG in _tags(c) for c in cells):
        first_md = next((i for i, c in enumerate(cells) if c.cell_type == "markdown"), -1)
        note = nbformat.v4.new_markdown_cell(NOTE)
        if student.get("nbformat_minor", 0) >= 5:  # cell ids exist from nbformat 4.5 on
            note["id"] = "student-edition-note"
        else:
            note.pop("id", None)
        student.cells.insert(first_md + 1, note)
    return student


def count_exercises(nb) -> int:
    """How many ``{exercise}`` directives the notebook holds (as numbered in the HTML book)."""
    count = 0
    for cell in nb.cells:
        if cell.cell_type == "markdown":
            count += sum(1 for line in cell.source.splitlines()
                         if (m := _OPEN.match(line)) and m["name"] in ("exercise", "exercise-start"))
    return count


def leaks(teacher, student) -> list[str]:
    """Solution text of ``teacher`` that ``student`` shows, by the independent check of
    :func:`cnnbook.book.leakcheck.leaked_lines` (it shares no parser with this module).

    A solution line that the chapter also shows outside any solution (a standard line such as
    ``optimizer.zero_grad()`` in the chapter's own training loop) gives nothing away and does not
    count. Solution markers and directives count wherever they appear.
    """
    return leaked_lines(teacher, student)


def notebook_paths(book: str | Path, names: list[str] | None = None) -> list[Path]:
    """All notebooks of ``book`` in name order, after checking that ``names`` are among them.

    Raises
    ------
    FileNotFoundError
        If ``book`` holds no notebook, or a name in ``names`` is not one of them.
    """
    book = Path(book)
    paths = sorted(book.glob("*.ipynb"))
    if not paths:
        raise FileNotFoundError(f"student: no notebooks in {book}/ (run from the repository root, or pass --book)")
    unknown = {Path(n).stem for n in names or []} - {p.stem for p in paths}
    if unknown:
        raise FileNotFoundError(f"student: {sorted(unknown)} not found in {book}/; there are {[p.stem for p in paths]}")
    return paths


def copy_pages(book: str | Path, out: str | Path) -> None:
    """Copy the Markdown pages of ``book`` without solutions (the glossary the chapters link to)."""
    for page in sorted(Path(book).glob("*.md")):
        text = page.read_text(encoding="utf-8")
        if "{solution" not in text:
            (Path(out) / page.name).write_text(text, encoding="utf-8")


def write_student_edition(book: str | Path = "book", out: str | Path = "student",
                          names: list[str] | None = None) -> list[Path]:
    """Write the student edition of the book's notebooks into ``out``; return the paths written.

    Exercises are numbered across the notebooks of ``book`` in name order (the order of the
    table of contents), as in the HTML book, even when ``names`` picks only some of them. The
    Markdown pages of ``book`` without solutions (the glossary the chapters link to) are copied too.

    Raises
    ------
    FileNotFoundError
        If ``book`` holds no notebook, or a name in ``names`` is not one of them.
    RuntimeError
        If a solution line would reach a student notebook (nothing is written for it).
    """
    out = Path(out)
    paths = notebook_paths(book, names)
    wanted = {Path(n).stem for n in names} if names else {p.stem for p in paths}
    out.mkdir(parents=True, exist_ok=True)
    written, number = [], 1
    for path in paths:
        teacher = nbformat.read(path, as_version=4)
        if path.stem in wanted:
            student = make_student(teacher, path=str(path), first_exercise=number)
            found = leaks(teacher, student)
            if found:
                raise RuntimeError(f"student: {path}: solution text would leak: {found[:3]}")
            nbformat.validate(student)
            nbformat.write(student, out / path.name)
            written.append(out / path.name)
        number += count_exercises(teacher)
    copy_pages(book, out)
    return written


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m cnnbook.book.student", description=__doc__.splitlines()[0])
    parser.add_argument("notebooks", nargs="*", help="notebook names or stems (default: all in --book)")
    parser.add_argument("--book", default="book", help="folder of the teacher notebooks (default: book)")
    parser.add_argument("--out", help="output folder (default: student, or nbgrader/source with --nbgrader)")
    parser.add_argument("--nbgrader", action="store_true",
                        help="write nbgrader source assignments (one folder per chapter) instead")
    parser.add_argument("--sheets", action="store_true",
                        help="with --nbgrader: only the set-up cell and the exercises of each chapter")
    args = parser.parse_args(argv)
    try:
        if args.nbgrader:
            from cnnbook.book.grading import write_nbgrader_source
            written = write_nbgrader_source(args.book, args.out or "nbgrader/source", args.notebooks or None,
                                            sheets=args.sheets)
        else:
            written = write_student_edition(args.book, args.out or "student", args.notebooks or None)
    except (FileNotFoundError, ValueError, RuntimeError) as exc:
        print(exc, file=sys.stderr)
        return 1
    if args.nbgrader:
        for path in written:
            print(f"wrote {path}")
        return 0
    for path in written:
        nb = nbformat.read(path, as_version=4)
        exercises = sum(EXERCISE_TAG in _tags(c) for c in nb.cells)
        print(f"wrote {path} ({exercises} exercise cells to fill in)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
