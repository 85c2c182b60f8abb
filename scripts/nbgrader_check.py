#!/usr/bin/env python
"""Check the nbgrader source folder with nbgrader itself: release without leaks, autograde right.

Run from the repository root (``make nbgrader-check``)::

    .venv/bin/python scripts/nbgrader_check.py [--venv ~/.cache/cnnbook-nbgrader-venv]

1. nbgrader 0.9.6 lives in its own virtual environment (``--venv``, created on the first run
   and reused: its pins conflict with nothing when kept apart); its ``bin`` goes first on PATH.
2. In a temporary course folder, ``python -m cnnbook.book.student --nbgrader`` writes every
   chapter as an assignment, and ``nbgrader generate_assignment`` (default settings) releases
   each; no solution line may reach a release (:mod:`cnnbook.book.leakcheck`).
3. Exercise sheets of every chapter (``--sheets``: set-up cell and exercises, so that
   autograding does not re-run the chapter's training) are released and submitted twice: the
   release as it is, and the teacher's source. ``nbgrader autograde`` (cell timeout 600 s)
   must give the release 0 points and the teacher's solutions every autograded point; the
   written answers wait for manual grading.

The kernel that nbgrader starts is this Python (``python3`` in a kernelspec on JUPYTER_PATH),
the one with cnnbook and torch. Exits with status 1 when anything fails.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from cnnbook.book.leakcheck import leaked_lines  # noqa: E402

NBGRADER = "nbgrader==0.9.6"
DEFAULT_VENV = Path.home() / ".cache" / "cnnbook-nbgrader-venv"
TIMEOUT = 600
SUBMISSIONS = {"release": "release/{a}/{a}.ipynb", "teacher": "source/{a}/{a}.ipynb"}

SCORES = r'''
import json, sys
from nbgrader.api import Gradebook
out = {}
with Gradebook("sqlite:///" + sys.argv[1]) as gb:
    for assignment in sys.argv[2:]:
        for student in ("release", "teacher"):
            sub = gb.find_submission(assignment, student)
            for nb in sub.notebooks:
                for g in nb.grades:
                    out.setdefault(student, []).append(
                        [assignment, g.name, g.auto_score, g.max_score, g.needs_manual_grade])
print(json.dumps(out))
'''


def nbgrader_venv(venv: Path) -> Path:
    """The venv's bin folder, with nbgrader installed (once)."""
    nbgrader = venv / "bin" / "nbgrader"
    if not nbgrader.exists():
        subprocess.run([sys.executable, "-m", "venv", "--clear", str(venv)], check=True)
        subprocess.run([str(venv / "bin" / "python"), "-m", "pip", "install", "--quiet", NBGRADER], check=True)
    return venv / "bin"


def kernel_here(folder: Path) -> Path:
    """A JUPYTER_PATH folder whose ``python3`` kernel is this Python."""
    spec = folder / "kernels" / "python3"
    spec.mkdir(parents=True)
    (spec / "kernel.json").write_text(json.dumps({
        "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": "Python 3 (cnnbook)", "language": "python"}))
    return folder


def nbgrader(bin_dir: Path, course: Path, env: dict, *args: str) -> None:
    command = [str(bin_dir / "nbgrader"), *args]
    print("+", " ".join(command[1:]), flush=True)
    result = subprocess.run(command, cwd=course, env=env, capture_output=True, text=True)
    if result.returncode:
        raise SystemExit(f"nbgrader_check: `nbgrader {' '.join(args)}` failed:\n{result.stdout}\n{result.stderr}")


def write_source(course: Path, sheets: bool) -> list[str]:
    command = [sys.executable, "-m", "cnnbook.book.student", "--nbgrader", "--book", str(ROOT / "book"),
               "--out", str(course / "source")] + (["--sheets"] if sheets else [])
    subprocess.run(command, check=True, capture_output=True, cwd=ROOT)
    return sorted(p.name for p in (course / "source").iterdir() if p.is_dir())


def check_releases(course: Path, assignments: list[str], bin_dir: Path, env: dict) -> list[str]:
    import nbformat

    failures = []
    nbgrader(bin_dir, course, env, "generate_assignment", "*", "--force")    # every assignment at once
    for a in assignments:
        release = nbformat.read(course / "release" / a / f"{a}.ipynb", as_version=4)
        teacher = nbformat.read(ROOT / "book" / f"{a}.ipynb", as_version=4)
        if found := leaked_lines(teacher, release):
            failures.append(f"{a}: the release shows solution text: {found[:3]}")
    return failures


def check_autograde(course: Path, assignments: list[str], bin_dir: Path, env: dict) -> list[str]:
    for student, pattern in SUBMISSIONS.items():
        for a in assignments:
            target = course / "submitted" / student / a / f"{a}.ipynb"
            target.parent.mkdir(parents=True, exist_ok=True)
            nb = json.loads((course / pattern.format(a=a)).read_text(encoding="utf-8"))
            if student == "teacher":   # the model answers live in the HTML book; any text will do here
                for cell in nb["cells"]:
                    if cell["cell_type"] == "markdown" and cell.get("metadata", {}).get("nbgrader", {}).get("solution"):
                        cell["source"] = "A written answer, for the teacher to grade."
            target.write_text(json.dumps(nb), encoding="utf-8")
    nbgrader(bin_dir, course, env, "autograde", "*", "--force", f"--ExecutePreprocessor.timeout={TIMEOUT}")
    out = subprocess.run([str(bin_dir / "python"), "-c", SCORES, str(course / "gradebook.db"), *assignments],
                         check=True, capture_output=True, text=True, cwd=course, env=env).stdout
    scores, failures = json.loads(out), []
    for student in SUBMISSIONS:
        auto = [g for g in scores[student] if "-written" not in g[1]]
        written = [g for g in scores[student] if "-written" in g[1]]
        got, best = sum(g[2] or 0 for g in auto), sum(g[3] for g in auto)
        manual = sum(bool(g[4]) for g in written)
        print(f"{student}: {got:g} of {best:g} autograded points (code); "
              f"{manual} of {len(written)} written answers wait for manual grading")
        if student == "release" and (got != 0 or any(g[2] for g in written)):
            failures.append(f"the unmodified release scores: {[g[:3] for g in scores[student] if g[2]]}")
        if student == "teacher" and (got != best or manual != len(written)):
            failures.append(f"the teacher's solutions: {[g for g in scores[student] if g[2] != g[3] and not g[4]]}")
    if not any("-written" not in g[1] for g in scores["teacher"]):
        failures.append("no autograded cell at all")
    return failures


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="scripts/nbgrader_check.py", description=__doc__.splitlines()[0])
    parser.add_argument("--venv", type=Path, default=Path(os.environ.get("CNNBOOK_NBGRADER_VENV", DEFAULT_VENV)))
    args = parser.parse_args(argv)
    started = time.perf_counter()
    bin_dir = nbgrader_venv(args.venv)
    failures = []
    with tempfile.TemporaryDirectory(prefix="cnnbook-nbgrader-") as tmp:
        env = dict(os.environ, PATH=f"{bin_dir}{os.pathsep}{os.environ['PATH']}",
                   JUPYTER_PATH=str(kernel_here(Path(tmp) / "jupyter")))
        env.pop("VIRTUAL_ENV", None)
        chapters, sheets = Path(tmp) / "chapters", Path(tmp) / "sheets"
        assignments = write_source(chapters, sheets=False)
        failures += check_releases(chapters, assignments, bin_dir, env)
        print(f"released {len(assignments)} chapters in {time.perf_counter() - started:.0f} s", flush=True)
        assignments = write_source(sheets, sheets=True)
        failures += check_releases(sheets, assignments, bin_dir, env)
        failures += check_autograde(sheets, assignments, bin_dir, env)
    print(f"nbgrader_check: {time.perf_counter() - started:.0f} s in all")
    for failure in failures:
        print("FAIL:", failure, file=sys.stderr)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
