"""nbgrader source notebooks: the chapters as assignments a teacher can release and autograde.

``python -m cnnbook.book.student --nbgrader --out nbgrader/source`` (``make nbgrader``) writes
one assignment folder per chapter, ``nbgrader/source/<chapter>/<chapter>.ipynb``. Compared with
the student edition (:mod:`cnnbook.book.student`), each code exercise is kept with its solution
between nbgrader's markers, in two cells:

- the *answer* cell: the code up to ``### END SOLUTION``, an nbgrader solution cell (nbgrader's
  ``generate_assignment`` turns each region into ``raise NotImplementedError()``);
- the *test* cell: the rest (the checker call, ``assert feedback, feedback``, prints), locked
  and autograded, worth one point.

Each written answer (a ``{solution}`` directive) becomes a manually graded Markdown cell worth
one point that reads "YOUR ANSWER HERE", without the solution text. Everything else is as in the
student edition: other solution cells and text are dropped, exercises become plain headings.
"""
from __future__ import annotations

import copy
import re
from pathlib import Path

import nbformat

from cnnbook.book import student as st

ANSWER_TEXT = "YOUR ANSWER HERE"
SCHEMA_VERSION = 3


def _nbgrader(grade_id: str, *, solution: bool, grade: bool, locked: bool, points: float = 0) -> dict:
    meta = {"grade": grade, "grade_id": grade_id, "locked": locked, "schema_version": SCHEMA_VERSION,
            "solution": solution, "task": False}
    if grade:
        meta["points"] = points
    return meta


def split_exercise(source: str) -> tuple[str, str]:
    """The answer: the code up to the last ``### END SOLUTION`` line and the rest of the block it
    sits in (indented lines); the test: the code after that, from the first unindented line.

    >>> split_exercise("def f():\\n    ### BEGIN SOLUTION\\n    return 1\\n    ### END SOLUTION\\n\\nassert f() == 1")
    ('def f():\\n    ### BEGIN SOLUTION\\n    return 1\\n    ### END SOLUTION', 'assert f() == 1')
    >>> split_exercise("def f():\\n    ### BEGIN SOLUTION\\n    y = 1\\n    ### END SOLUTION\\n    return y\\n\\nassert f() == 1")
    ('def f():\\n    ### BEGIN SOLUTION\\n    y = 1\\n    ### END SOLUTION\\n    return y', 'assert f() == 1')
    """
    lines = source.splitlines()
    cut = max(i for i, line in enumerate(lines) if line.strip() == st.END) + 1
    while cut < len(lines) and (not lines[cut].strip() or lines[cut][0] in " \t"):
        cut += 1   # still inside the function or block that holds the answer
    return "\n".join(lines[:cut]).rstrip("\n"), "\n".join(lines[cut:]).strip("\n")


def _written_answers(source: str, in_solution: bool) -> int:
    """How many ``{solution}`` directives (written answers) a Markdown cell holds outside solution blocks."""
    count = 0
    for line in source.splitlines():
        match = st._OPEN.match(line)
        if match and match["name"] in ("solution-start", "solution-end"):
            in_solution = match["name"] == "solution-start"
        elif match and match["name"] == "solution" and not in_solution:
            count += 1
    return count


def _code_cells(cell, stem: str, number: int, part: int) -> list:
    """An exercise code cell as an answer cell and a locked, autograded test cell."""
    answer, test = split_exercise(cell.source)
    first = copy.deepcopy(cell)
    first.source, first.outputs, first.execution_count = answer, [], None
    first.metadata.pop("execution", None)
    grade_id = f"{stem}-ex{number}-{part}"
    if not test:   # nothing checks it: the teacher grades the code by hand
        first.metadata["nbgrader"] = _nbgrader(grade_id, solution=True, grade=True, locked=False, points=1)
        return [first]
    first.metadata["nbgrader"] = _nbgrader(f"{grade_id}-answer", solution=True, grade=False, locked=False)
    second = nbformat.v4.new_code_cell(test)
    second.metadata["nbgrader"] = _nbgrader(f"{grade_id}-test", solution=False, grade=True, locked=True, points=1)
    return [first, second]


def make_nbgrader(nb, path: str = "<notebook>", first_exercise: int = 1):
    """Return the nbgrader source version of teacher notebook ``nb`` (``nb`` is unchanged).

    Raises
    ------
    ValueError
        As :func:`cnnbook.book.student.make_student` (unbalanced or near-miss markers,
        unclosed solution blocks).
    """
    stem = re.sub(r"\W", "-", Path(path).stem)
    state = st._State(path=path, exercise_number=first_exercise - 1)
    cells, parts = [], 0
    for index, cell in enumerate(nb.cells):
        st.check_markers(cell.source, where=f"{path}, cell {index}")
        tagged = st.SOLUTION_TAG in st._tags(cell)
        if cell.cell_type == "code" and st.BEGIN in cell.source and not tagged:
            parts += 1
            cells += _code_cells(cell, stem, state.exercise_number, parts)
        elif cell.cell_type == "code":
            new = st._student_code_cell(cell, state, index)
            cells += [new] if new is not None else []
        elif not tagged:
            answers = _written_answers(cell.source, state.in_solution) if cell.cell_type == "markdown" else 0
            new = copy.deepcopy(cell)
            if cell.cell_type == "markdown":
                new.source = st.convert_markdown(cell.source, state)
            cells += [new] if new.source.strip() else []
            for k in range(answers):
                answer = nbformat.v4.new_markdown_cell(ANSWER_TEXT)
                answer.metadata["nbgrader"] = _nbgrader(f"{stem}-ex{state.exercise_number}-written{k + 1}",
                                                        solution=True, grade=True, locked=False, points=1)
                cells.append(answer)
    return st.finished_copy(nb, cells, state, path)


def exercises_only(nb):
    """The set-up cell (the first code cell) and the exercises section: an exercise sheet that
    nbgrader autogrades in seconds instead of re-running the whole chapter."""
    start = next((i for i, c in enumerate(nb.cells) if c.cell_type == "markdown"
                  and c.source.lstrip().startswith("## Exercises")), len(nb.cells))
    setup = next(c for c in nb.cells if c.cell_type == "code")
    sheet = copy.deepcopy(nb)
    sheet.cells = [copy.deepcopy(setup)] + copy.deepcopy(nb.cells[start:])
    return sheet


def write_nbgrader_source(book: str | Path = "book", out: str | Path = "nbgrader/source",
                          names: list[str] | None = None, sheets: bool = False) -> list[Path]:
    """Write one nbgrader assignment per chapter, ``out/<stem>/<stem>.ipynb``; return the paths.

    Exercises are numbered across the book as in :func:`cnnbook.book.student.write_student_edition`;
    the Markdown pages without solutions (the glossary) are copied into each assignment. With
    ``sheets=True`` each assignment holds only the set-up cell and the exercises (:func:`exercises_only`).
    """
    book, out = Path(book), Path(out)
    written, number = [], 1
    for path in st.notebook_paths(book, names):
        teacher = nbformat.read(path, as_version=4)
        if names is None or path.stem in {Path(n).stem for n in names}:
            folder = out / path.stem
            folder.mkdir(parents=True, exist_ok=True)
            source = make_nbgrader(teacher, path=str(path), first_exercise=number)
            source = exercises_only(source) if sheets else source
            nbformat.validate(source)
            nbformat.write(source, folder / path.name)
            st.copy_pages(book, folder)
            written.append(folder / path.name)
        number += st.count_exercises(teacher)
    return written
