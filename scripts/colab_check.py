#!/usr/bin/env python
"""Run the book as a Colab or pip user would: a fresh environment, other versions than the pins.

Run from the repository root (``make colab-check``)::

    .venv/bin/python scripts/colab_check.py [--python python3.12] [--chapters 01 02] [--keep DIR]

1. Makes a fresh virtual environment with ``--python`` (Python 3.12, as on Colab).
2. Installs cnnbook exactly as the notebooks' first cell does on Colab (the same requirement,
   ``cnnbook[book] @ git+<repository>``), but from this clone (``file://``), with every
   dependency held at the *lower bound* that ``pyproject.toml`` declares: the oldest torch,
   torchvision, NumPy, ipywidgets... the package claims to work with. Only the kernel
   machinery (ipykernel, nbclient) is whatever pip picks.
3. Checks that the notebooks' install line names the repository of ``_config.yml``.
4. Runs, in that environment, every chapter's first code cell followed by all of the chapter's
   imports, then executes ``--chapters`` (default chapters 1 and 2) from top to bottom.

The kernel imports cnnbook from the environment, not from this folder, so a module that the
package forgets to ship fails here. Downloads are cached by pip (``~/.cache/pip``); the
environment itself is new on every run. Exits with status 1 when anything fails.
"""
from __future__ import annotations

import argparse
import ast
import json
import os
import re
import subprocess
import sys
import tempfile
import time
import tomllib
from pathlib import Path

from packaging.version import Version

ROOT = Path(__file__).resolve().parents[1]
BOOK = ROOT / "book"
DEFAULT_PYTHON = "/root/.pyenv/versions/3.12.1/bin/python3.12"
INSTALL = re.compile(r'"(?P<name>cnnbook(?:\[[\w,]+\])?) @ git\+(?P<url>[^"]+)"')
KERNEL_TOOLS = ["ipykernel", "nbclient"]


def lower_bounds(pyproject: Path = ROOT / "pyproject.toml", extras: tuple = ("book",)) -> dict[str, str]:
    """``{name: version}`` for every ``name>=version`` of the dependencies and the given extras.

    Raises
    ------
    ValueError
        If a requirement is not a plain ``name>=version`` (no upper bound, no marker).
    """
    project = tomllib.loads(pyproject.read_text(encoding="utf-8"))["project"]
    requirements = list(project["dependencies"])
    for extra in extras:
        requirements += project["optional-dependencies"][extra]
    bounds = {}
    for requirement in requirements:
        match = re.fullmatch(r"([A-Za-z0-9_.-]+)>=([\w.]+)", requirement.replace(" ", ""))
        if not match:
            raise ValueError(f"colab_check: {requirement!r} in pyproject.toml has no plain lower bound 'name>=version'")
        bounds[match[1].lower()] = match[2]
    return bounds


def first_code_cell(path: Path) -> str:
    cells = json.loads(path.read_text(encoding="utf-8"))["cells"]
    return "".join(next(c for c in cells if c["cell_type"] == "code")["source"])


def colab_requirement(source: str) -> tuple[str, str]:
    """The requirement name (``cnnbook[book]``) and repository URL in a first cell's install line."""
    match = INSTALL.search(source)
    if not match:
        raise ValueError('colab_check: no "cnnbook[...] @ git+URL" install line in the first code cell')
    return match["name"], match["url"]


def repository_url(config: Path = ROOT / "_config.yml") -> str:
    match = re.search(r"^repository:\s*\n(?:[ \t]+.*\n)*?[ \t]+url:[ \t]*(\S+)", config.read_text(encoding="utf-8"), re.M)
    if not match:
        raise ValueError(f"colab_check: no repository.url in {config}")
    return match[1]


def import_lines(path: Path) -> list[str]:
    """Every top-level import of the notebook's code cells, and the ``os.environ`` settings
    made before them (``KERAS_BACKEND`` must be set before ``import keras``), in order.

    Cells tagged ``raises-exception`` are left out: they show an error on purpose (chapter 4
    runs the seed's Keras snippets as written, imports of names Keras 3 no longer has included).
    """
    lines = []
    for cell in json.loads(path.read_text(encoding="utf-8"))["cells"]:
        if cell["cell_type"] != "code" or "raises-exception" in cell.get("metadata", {}).get("tags", []):
            continue
        source = "".join(cell["source"])
        try:
            tree = ast.parse("\n".join(line for line in source.splitlines() if not line.lstrip().startswith(("%", "!"))))
        except SyntaxError:
            continue
        for node in tree.body:
            if isinstance(node, (ast.Import, ast.ImportFrom)) or "os.environ" in ast.unparse(node).split("=")[0]:
                lines.append(ast.unparse(node))
    return lines


def clone_files(target: Path) -> Path:
    """Copy the files git knows (tracked, or new and not ignored) to ``target``: what a clone
    would hold, without building inside this folder."""
    listed = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=ROOT,
                            check=True, capture_output=True, text=True).stdout
    for name in filter(None, listed.split("\0")):
        if (ROOT / name).is_file():
            (target / name).parent.mkdir(parents=True, exist_ok=True)
            (target / name).write_bytes((ROOT / name).read_bytes())
    return target


def run(command: list[str], **kwargs) -> None:
    print("+", " ".join(command), flush=True)
    subprocess.run(command, check=True, **kwargs)


def make_environment(python: str, venv: Path, requirement: str, bounds: dict[str, str]) -> Path:
    """A fresh venv with ``requirement`` installed, its dependencies held at ``bounds``; its python."""
    run([python, "-m", "venv", str(venv)])
    py = venv / "bin" / "python"
    constraints = venv / "lower-bounds.txt"
    constraints.write_text("".join(f"{name}=={version}\n" for name, version in bounds.items()))
    run([str(py), "-m", "pip", "install", "--quiet", "--upgrade", "pip"])
    run([str(py), "-m", "pip", "install", "--quiet", "-c", str(constraints), requirement, *KERNEL_TOOLS])
    return py


def installed_versions(py: Path, names) -> dict[str, str]:
    code = ("import importlib.metadata as m, json, sys; "
            "print(json.dumps({n: m.version(n) for n in sys.argv[1:]}))")
    out = subprocess.run([str(py), "-c", code, *names], check=True, capture_output=True, text=True).stdout
    return json.loads(out)


EXECUTE = r'''
import json, sys, time
import nbformat
from nbclient import NotebookClient
path, mode, cwd = sys.argv[1:4]
nb = nbformat.read(path, as_version=4)
if mode != "all":
    nb.cells = [nbformat.v4.new_code_cell(source) for source in json.loads(mode)]
start = time.perf_counter()
NotebookClient(nb, timeout=1200, kernel_name="python3", allow_errors=True,
               resources={"metadata": {"path": cwd}}).execute()
errors = [(i, o.get("ename"), o.get("evalue")) for i, c in enumerate(nb.cells) if c.cell_type == "code"
          for o in c.outputs if o.output_type == "error"]
where = [o.get("text", "") for c in nb.cells if c.cell_type == "code" for o in c.outputs
         if o.output_type == "stream" and "CNNBOOK_FROM" in o.get("text", "")]
print(json.dumps({"errors": errors, "seconds": round(time.perf_counter() - start, 1), "where": where}))
'''


def execute(py: Path, notebook: Path, cells: list[str] | None, env: dict) -> dict:
    """Run ``notebook`` (or only ``cells`` in its folder) in ``py``'s kernel; errors and seconds."""
    mode = "all" if cells is None else json.dumps(cells)
    out = subprocess.run([str(py), "-c", EXECUTE, str(notebook), mode, str(notebook.parent)],
                         check=True, capture_output=True, text=True, env=env).stdout
    return json.loads(out.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="scripts/colab_check.py", description=__doc__.splitlines()[0])
    parser.add_argument("--python", default=DEFAULT_PYTHON if Path(DEFAULT_PYTHON).exists() else "python3.12")
    parser.add_argument("--chapters", nargs="*", default=["01", "02"], help="chapters executed in full")
    parser.add_argument("--keep", type=Path, help="build the environment here and keep it (default: a temporary folder)")
    args = parser.parse_args(argv)
    chapters = sorted(BOOK.glob("[0-9][0-9]_*.ipynb"))
    failures, started = [], time.perf_counter()

    names, url = zip(*(colab_requirement(first_code_cell(p)) for p in chapters))
    if len(set(names)) != 1 or len(set(url)) != 1:
        failures.append(f"the chapters install different things: {sorted(set(names))} {sorted(set(url))}")
    if url[0] != repository_url():
        failures.append(f"the first cells install from {url[0]} but _config.yml's repository.url is {repository_url()}")
    bounds = lower_bounds()

    with tempfile.TemporaryDirectory(prefix="cnnbook-colab-") as tmp:
        source = clone_files(Path(tmp) / "cnnbook")
        requirement = f"{names[0]} @ {source.as_uri()}"
        venv = args.keep or Path(tmp) / "venv"
        py = make_environment(args.python, venv, requirement, bounds)
        versions = installed_versions(py, bounds)
        wrong = {n: (versions[n], v) for n, v in bounds.items() if Version(Version(versions[n]).base_version) != Version(v)}
        if wrong:
            failures.append(f"not the lower bounds (installed, wanted): {wrong}")
        print(f"installed in {time.perf_counter() - started:.0f} s:",
              ", ".join(f"{n} {v}" for n, v in sorted(versions.items())), flush=True)
        env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
        env["PATH"] = f"{venv / 'bin'}{os.pathsep}{env.get('PATH', '')}"
        where = "import cnnbook, sys; print('CNNBOOK_FROM', cnnbook.__file__, sys.version.split()[0])"
        for path in chapters:
            result = execute(py, path, [first_code_cell(path), "\n".join(import_lines(path)), where], env)
            print(f"{path.stem}: first cell and imports, {result['seconds']} s, {result['where']}", flush=True)
            if result["errors"]:
                failures.append(f"{path.name}: first cell or imports: {result['errors']}")
            elif str(ROOT / "cnnbook") in " ".join(result["where"]):
                failures.append(f"{path.name}: the kernel imported cnnbook from the clone, not the environment")
        for path in (p for p in chapters if p.name[:2] in args.chapters):
            result = execute(py, path, None, env)
            print(f"{path.stem}: executed in {result['seconds']} s, errors: {result['errors']}", flush=True)
            if result["errors"]:
                failures.append(f"{path.name}: {result['errors']}")
    print(f"colab_check: {time.perf_counter() - started:.0f} s in all")
    for failure in failures:
        print("FAIL:", failure, file=sys.stderr)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
