"""The student edition: solutions out, everything else in, and the notebooks still run.

A small synthetic teacher notebook exercises every rule; the book's own notebooks are then
checked for leaks, for an unchanged body, and for exercise sections that run in a fresh
kernel, each unanswered exercise stopping with NotImplementedError or "not written yet".
"""
import copy
import json
import re
from pathlib import Path

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook, new_output

from cnnbook.book import leakcheck
from cnnbook.book import student as st

ROOT = Path(__file__).resolve().parents[1]
BOOK = ROOT / "book"
CHAPTERS = sorted(BOOK.glob("*.ipynb"))

EXERCISE_MD = """## Exercises

```{exercise} Add one
:label: ex-test-add-one

Write `add_one(x)` that returns `x + 1`.
```

```{solution-start} ex-test-add-one
:class: dropdown
```"""

SOLUTION_CODE = """def add_one(x):
    ### BEGIN SOLUTION
    secret_value = x + 1
    return secret_value
    ### END SOLUTION

assert add_one(1) == 2, "add_one(1) should be 2"
add_one(1)"""


def teacher_notebook():
    nb = new_notebook(metadata={"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}})
    ran = new_code_cell("x = 40\nx", execution_count=1, outputs=[new_output("execute_result", {"text/plain": "40"}, execution_count=1)])
    tagged = new_code_cell("hidden_tagged_cell = 'a tagged worked answer'")
    tagged.metadata["tags"] = ["solution"]
    nb.cells = [
        new_markdown_cell("# A chapter\n\nSome prose."),
        new_code_cell("import math"),
        ran,
        new_markdown_cell(EXERCISE_MD),
        new_code_cell(SOLUTION_CODE),
        new_code_cell("print('worked solution: an extra plotting cell')"),
        new_markdown_cell("The trick is the secret explanation text.\n\n```{solution-end}\n```\n\nText after the block."),
        new_markdown_cell("````{exercise} Why\n:label: ex-test-why\n\nWhy is it so?\n```python\nhint = 1\n```\n````\n\n"
                          "```{solution} ex-test-why\n:class: dropdown\n\nBecause of the hidden reasoning.\n```"),
        tagged,
        new_code_cell("answer = None\n### BEGIN SOLUTION\nanswer = x + 2  # the hidden arithmetic\n### END SOLUTION\n"
                      "assert answer == 42, answer"),
    ]
    nb.metadata["widgets"] = {"application/vnd.jupyter.widget-state+json": {"state": {}}}
    return nb


def sources(nb):
    return "\n".join(cell.source for cell in nb.cells)


# --------------------------------------------------------------------------- the rules, one by one

def test_solution_region_becomes_placeholder_at_its_indentation():
    assert st.strip_solution_code(SOLUTION_CODE).splitlines()[:3] == [
        "def add_one(x):", "    # YOUR CODE HERE", "    raise NotImplementedError()"]
    assert "assert add_one(1) == 2" in st.strip_solution_code(SOLUTION_CODE)


@pytest.mark.parametrize("source, message", [
    ("### BEGIN SOLUTION\nx = 1", r"student: c\.ipynb, cell 3: '### BEGIN SOLUTION' without '### END SOLUTION'"),
    ("x = 1\n### END SOLUTION", r"student: c\.ipynb, cell 3, line 2: '### END SOLUTION' without '### BEGIN SOLUTION'"),
    ("### BEGIN SOLUTION\n### BEGIN SOLUTION\n### END SOLUTION", r"line 2: '### BEGIN SOLUTION' inside another"),
])
def test_unbalanced_markers_are_an_error(source, message):
    with pytest.raises(ValueError, match=message):
        st.strip_solution_code(source, where="c.ipynb, cell 3")


def test_unclosed_solution_block_is_an_error():
    nb = teacher_notebook()
    nb.cells = nb.cells[:5]
    with pytest.raises(ValueError, match=r"student: t\.ipynb: a \{solution-start\} block is never closed"):
        st.make_student(nb, path="t.ipynb")


def test_student_edition_of_the_synthetic_notebook():
    teacher = teacher_notebook()
    before = json.dumps(teacher, sort_keys=True)
    student = st.make_student(teacher, path="t.ipynb")
    assert json.dumps(teacher, sort_keys=True) == before, "the teacher notebook is left unchanged"
    text = sources(student)
    for secret in ("secret_value", "extra plotting cell", "secret explanation", "hidden reasoning",
                   "hidden_tagged_cell", "hidden arithmetic", "{solution", "BEGIN SOLUTION", ":label:"):
        assert secret not in text, secret
    assert st.leaks(teacher, student) == []
    assert "### Exercise 1: Add one\n\nWrite `add_one(x)` that returns `x + 1`." in text
    assert "### Exercise 2: Why\n\nWhy is it so?\n```python\nhint = 1\n```" in text
    assert "Text after the block." in text and "Some prose." in text
    exercise_cells = [c for c in student.cells if "exercise" in c.metadata.get("tags", [])]
    assert [c.source.splitlines()[-1] for c in exercise_cells] == ["add_one(1)", "assert answer == 42, answer"]
    assert all(c.outputs == [] and c.execution_count is None for c in student.cells if c.cell_type == "code")
    assert "widgets" not in student.metadata
    assert student.cells[1].source.startswith("> **Student edition.**")
    nbformat.validate(student)


def test_independent_check_lists_what_must_not_leak():
    secret, public = leakcheck.secret_and_public_lines(teacher_notebook())
    assert "secret_value = x + 1" in secret and "print('worked solution: an extra plotting cell')" in secret
    assert "The trick is the secret explanation text." in secret and "Because of the hidden reasoning." in secret
    assert "hidden_tagged_cell = 'a tagged worked answer'" in secret
    assert "Text after the block." in public and "assert add_one(1) == 2, \"add_one(1) should be 2\"" in public
    assert not set(secret) & public


NEAR_MISSES = ["## BEGIN SOLUTION", "###BEGIN SOLUTION", "### begin solution", "# BEGIN SOLUTION",
               "### BEGIN SOLUTIONS", "#### BEGIN_SOLUTION", "### BEGIN SOLUTION here"]


def near_miss_region(marker):
    """A solution region whose markers both miss the same way (the old converter let it through)."""
    end = marker.replace("BEGIN", "END").replace("begin", "end")
    return f"answer = None\n{marker}\nanswer = x + 2  # the hidden arithmetic\n{end}\nassert answer == 42"


@pytest.mark.parametrize("marker", NEAR_MISSES)
def test_near_miss_marker_stops_the_build_naming_the_cell(marker):
    teacher = teacher_notebook()
    teacher.cells[9].source = near_miss_region(marker)
    with pytest.raises(ValueError, match=rf"student: t\.ipynb, cell 9, line 2: '{re.escape(marker)}' looks like a "
                                         rf"solution marker but is not one; write exactly '### BEGIN SOLUTION'"):
        st.make_student(teacher, path="t.ipynb")


def test_near_miss_end_marker_and_markdown_are_refused_too():
    teacher = teacher_notebook()
    teacher.cells[0].source += "\n## end solution"
    with pytest.raises(ValueError, match=r"cell 0, line 4: '## end solution' .* write exactly '### END SOLUTION'"):
        st.make_student(teacher, path="t.ipynb")


@pytest.mark.parametrize("marker", NEAR_MISSES)
def test_independent_check_catches_a_near_miss_leak(marker):
    """Had the converter let a near-miss region through, the check would still see the secret."""
    teacher = teacher_notebook()
    teacher.cells[9].source = near_miss_region(marker)
    student = copy.deepcopy(teacher)          # a converter that ignored the near miss
    assert "answer = x + 2  # the hidden arithmetic" in st.leaks(teacher, student)


def test_independent_check_shares_no_code_with_the_converter():
    source = Path(leakcheck.__file__).read_text(encoding="utf-8")
    assert "student" not in re.findall(r"^(?:from|import) (\S+)", source, re.M).__str__()


def test_leak_detector_catches_a_copied_solution():
    teacher = teacher_notebook()
    student = st.make_student(teacher)
    student.cells.append(new_code_cell("    secret_value = x + 1"))
    assert st.leaks(teacher, student) == ["secret_value = x + 1"]


def test_exercises_are_numbered_across_notebooks(tmp_path):
    book, out = tmp_path / "book", tmp_path / "student"
    book.mkdir()
    for name in ("01_a.ipynb", "02_b.ipynb"):
        nbformat.write(teacher_notebook(), book / name)
    written = st.write_student_edition(book, out, names=["02_b"])
    assert written == [out / "02_b.ipynb"]
    assert "### Exercise 3: Add one" in sources(nbformat.read(written[0], as_version=4))
    assert st.count_exercises(teacher_notebook()) == 2


def test_markdown_pages_without_solutions_are_copied(tmp_path):
    book = tmp_path / "book"
    book.mkdir()
    nbformat.write(teacher_notebook(), book / "01_a.ipynb")
    (book / "glossary.md").write_text("# Glossary\n\n### Pooling layer (池化层)\n")
    (book / "answers.md").write_text("```{solution} ex-test-why\nBecause.\n```\n")
    st.write_student_edition(book, tmp_path / "out")
    assert (tmp_path / "out" / "glossary.md").read_text() == "# Glossary\n\n### Pooling layer (池化层)\n"
    assert not (tmp_path / "out" / "answers.md").exists()


def test_a_line_the_chapter_shows_anyway_is_no_leak():
    teacher = teacher_notebook()
    teacher.cells.insert(2, new_code_cell("secret_value = x + 1   # the chapter shows this line itself"))
    student = st.make_student(teacher)
    assert st.leaks(teacher, student) == []
    secret, public = leakcheck.secret_and_public_lines(teacher)
    assert "secret_value = x + 1   # the chapter shows this line itself" in public


def test_writer_refuses_to_leak(tmp_path, monkeypatch):
    book = tmp_path / "book"
    book.mkdir()
    nbformat.write(teacher_notebook(), book / "01_a.ipynb")
    monkeypatch.setattr(st, "make_student", lambda nb, **kw: nb)           # a stripping bug
    with pytest.raises(RuntimeError, match=r"01_a\.ipynb: solution text would leak: \['secret_value = x \+ 1'"):
        st.write_student_edition(book, tmp_path / "out")
    assert not (tmp_path / "out" / "01_a.ipynb").exists()


def test_command_line(tmp_path, capsys):
    book = tmp_path / "book"
    book.mkdir()
    nbformat.write(teacher_notebook(), book / "01_a.ipynb")
    assert st.main(["--book", str(book), "--out", str(tmp_path / "s")]) == 0
    assert "01_a.ipynb (2 exercise cells to fill in)" in capsys.readouterr().out
    assert st.main(["--book", str(book), "--out", str(tmp_path / "s"), "09_none"]) == 1
    assert "['09_none'] not found in" in capsys.readouterr().err
    assert st.main(["--book", str(tmp_path / "empty"), "--out", str(tmp_path / "s")]) == 1
    assert "no notebooks in" in capsys.readouterr().err


# --------------------------------------------------------------------------- running student notebooks

def execute(nb, cwd):
    from nbclient import NotebookClient

    NotebookClient(nb, timeout=300, kernel_name="python3", allow_errors=True,
                   resources={"metadata": {"path": str(cwd)}}).execute()
    return nb


def errors(nb):
    """(cell index, error name, error value) of each code cell that raised."""
    return [(i, o.ename, o.evalue) for i, c in enumerate(nb.cells) if c.cell_type == "code"
            for o in c.outputs if o.output_type == "error"]


def unanswered(error):
    """An exercise left as the placeholder stops with one of these, and nothing else."""
    _, name, value = error
    return name == "NotImplementedError" or (name == "AssertionError" and "not written yet" in value)


def test_synthetic_student_notebook_runs_to_its_first_exercise(tmp_path):
    nb = execute(st.make_student(teacher_notebook()), tmp_path)
    first = next(i for i, c in enumerate(nb.cells) if "exercise" in c.metadata.get("tags", []))
    assert [e for e in errors(nb) if e[0] < first] == []
    assert [e[1] for e in errors(nb)] == ["NotImplementedError", "NotImplementedError"]


def exercise_section(nb):
    """Index of the first cell of the exercises: the '## Exercises' heading, else the first exercise."""
    for i, cell in enumerate(nb.cells):
        if cell.cell_type == "markdown" and any(line.strip().lower() == "## exercises" for line in cell.source.splitlines()):
            return i
    return next((i for i, c in enumerate(nb.cells) if c.cell_type == "markdown" and "### Exercise " in c.source), None)


@pytest.mark.parametrize("path", CHAPTERS, ids=lambda p: p.stem)
def test_chapter_student_edition_has_no_solutions(path):
    teacher = nbformat.read(path, as_version=4)
    student = st.make_student(teacher, path=str(path))
    assert st.leaks(teacher, student) == []
    nbformat.validate(student)


@pytest.mark.parametrize("path", CHAPTERS, ids=lambda p: p.stem)
def test_chapter_student_edition_runs(path, tmp_path):
    """The body before the exercises is the teacher's, cell for cell (nbval runs it there);
    the exercises section then runs in a fresh kernel after the set-up cell, and each
    unanswered exercise stops only with NotImplementedError or its checker's "not written yet".
    """
    teacher = nbformat.read(path, as_version=4)
    student = st.make_student(teacher, path=str(path))
    start = exercise_section(student)
    if start is None or not any("exercise" in c.metadata.get("tags", []) for c in student.cells):
        pytest.skip(f"{path.stem} has no exercises yet")
    body = [c for c in student.cells[:start] if not c.source.startswith("> **Student edition.**")]
    assert [(c.cell_type, c.source) for c in body] == [(c.cell_type, c.source) for c in teacher.cells[:len(body)]]
    setup = next(c for c in student.cells if c.cell_type == "code")
    run = nbformat.v4.new_notebook(metadata=student.metadata, cells=[setup] + student.cells[start:])
    found = errors(execute(run, BOOK))
    assert all(unanswered(e) for e in found), found
    exercise_cells = [i for i, c in enumerate(run.cells) if "exercise" in c.metadata.get("tags", [])]
    assert {e[0] for e in found} >= set(exercise_cells), "an unanswered exercise must not pass silently"


@pytest.mark.parametrize("path", CHAPTERS, ids=lambda p: p.stem)
def test_chapter_exercises_are_well_formed(path):
    """4 to 8 exercises after the summary, each with a collapsed solution; solutions check themselves."""
    nb = nbformat.read(path, as_version=4)
    start = next((i for i, c in enumerate(nb.cells) if c.cell_type == "markdown"
                  and c.source.lstrip().startswith("## Exercises")), None)
    if start is None:
        pytest.skip(f"{path.stem} has no exercises yet")
    summary = [i for i, c in enumerate(nb.cells) if c.cell_type == "markdown"
               and any(line.strip() == "## Summary" for line in c.source.splitlines())]
    assert summary and summary[-1] < start, "the exercises come after the chapter's summary"
    text = "\n".join(c.source for c in nb.cells[start:] if c.cell_type == "markdown")
    labels = re.findall(r"^```\{exercise\}.*\n:label: (\S+)", text, re.M)
    assert 4 <= len(labels) <= 8, f"{len(labels)} exercises"
    for label in labels:
        solution = re.search(rf"^```\{{(solution|solution-start)\}} {re.escape(label)}\n:class: dropdown$", text, re.M)
        assert solution, f"{label}: no collapsed solution"
    for cell in nb.cells[start:]:
        if cell.cell_type == "code" and st.BEGIN in cell.source:
            assert "check_" in cell.source or "assert " in cell.source, f"solution cell checks nothing:\n{cell.source}"
