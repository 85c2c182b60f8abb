"""The nbgrader source folder: solution cells, locked autograded test cells, manual written answers.

The real round trip (nbgrader generate_assignment and autograde) is scripts/nbgrader_check.py
(`make nbgrader-check`); these tests pin the metadata it relies on, fast.
"""
import json

import nbformat
import pytest

from cnnbook.book import grading, leakcheck
from cnnbook.book import student as st
from test_student import CHAPTERS, near_miss_region, teacher_notebook


def graded(nb):
    return [(c.cell_type, c.metadata["nbgrader"]) for c in nb.cells if "nbgrader" in c.metadata]


def test_exercise_cell_becomes_answer_then_locked_test():
    source = grading.make_nbgrader(teacher_notebook(), path="book/01_a.ipynb")
    cells = [c for c in source.cells if "nbgrader" in c.metadata]
    answer, test = cells[0], cells[1]
    assert answer.source.splitlines()[-1].strip() == st.END and "secret_value = x + 1" in answer.source
    assert answer.metadata["nbgrader"] == {"grade": False, "grade_id": "01_a-ex1-1-answer", "locked": False,
                                           "schema_version": 3, "solution": True, "task": False}
    assert test.source == 'assert add_one(1) == 2, "add_one(1) should be 2"\nadd_one(1)'
    assert test.metadata["nbgrader"] == {"grade": True, "grade_id": "01_a-ex1-1-test", "locked": True,
                                         "points": 1, "schema_version": 3, "solution": False, "task": False}


def test_written_answer_is_a_manual_cell_without_the_solution():
    source = grading.make_nbgrader(teacher_notebook(), path="book/01_a.ipynb")
    written = [c for c in source.cells if c.cell_type == "markdown" and "nbgrader" in c.metadata]
    assert [c.source for c in written] == ["YOUR ANSWER HERE"]
    assert written[0].metadata["nbgrader"]["grade"] and written[0].metadata["nbgrader"]["solution"]
    assert written[0].metadata["nbgrader"]["grade_id"] == "01_a-ex2-written1"
    text = "\n".join(c.source for c in source.cells)
    for secret in ("hidden reasoning", "secret explanation", "extra plotting cell", "hidden_tagged_cell", "{solution"):
        assert secret not in text, secret
    assert len({g["grade_id"] for _, g in graded(source)}) == len(graded(source)), "grade ids are unique"


def test_a_region_with_nothing_after_it_is_graded_by_hand():
    teacher = teacher_notebook()
    teacher.cells[9].source = "### BEGIN SOLUTION\nanswer = x + 2  # the hidden arithmetic\n### END SOLUTION"
    last = [c for c in grading.make_nbgrader(teacher).cells if "nbgrader" in c.metadata][-1]
    assert last.metadata["nbgrader"]["grade"] and last.metadata["nbgrader"]["solution"]


def test_near_miss_markers_stop_the_nbgrader_source_too():
    teacher = teacher_notebook()
    teacher.cells[9].source = near_miss_region("## BEGIN SOLUTION")
    with pytest.raises(ValueError, match=r"cell 9, line 2: '## BEGIN SOLUTION' looks like a solution marker"):
        grading.make_nbgrader(teacher, path="t.ipynb")


def test_exercise_sheet_keeps_setup_and_exercises():
    teacher = teacher_notebook()
    sheet = grading.exercises_only(grading.make_nbgrader(teacher))
    assert sheet.cells[0].source == "import math" and sheet.cells[1].source.startswith("## Exercises")


def test_command_line_writes_one_assignment_per_chapter(tmp_path):
    book = tmp_path / "book"
    book.mkdir()
    for name in ("01_a.ipynb", "02_b.ipynb"):
        nbformat.write(teacher_notebook(), book / name)
    assert st.main(["--nbgrader", "--book", str(book), "--out", str(tmp_path / "source")]) == 0
    written = sorted(p.relative_to(tmp_path) for p in (tmp_path / "source").rglob("*.ipynb"))
    assert [str(p) for p in written] == ["source/01_a/01_a.ipynb", "source/02_b/02_b.ipynb"]
    second = nbformat.read(tmp_path / "source" / "02_b" / "02_b.ipynb", as_version=4)
    assert "### Exercise 3: Add one" in "\n".join(c.source for c in second.cells)


@pytest.mark.parametrize("path", CHAPTERS, ids=lambda p: p.stem)
def test_chapter_nbgrader_source(path):
    """Every code exercise has a locked test cell; the source minus its marked regions leaks nothing."""
    teacher = nbformat.read(path, as_version=4)
    source = grading.make_nbgrader(teacher, path=str(path))
    nbformat.validate(source)
    tests = [g for kind, g in graded(source) if kind == "code" and g["grade"] and g["locked"]]
    regions = sum(st.BEGIN in c.source for c in teacher.cells if c.cell_type == "code")
    assert len(tests) == regions or regions == 0
    released = json.loads(json.dumps(source))
    for cell in released["cells"]:
        cell["source"] = st.strip_solution_code(cell["source"]) if cell["cell_type"] == "code" else cell["source"]
    assert leakcheck.leaked_lines(teacher, released) == []
