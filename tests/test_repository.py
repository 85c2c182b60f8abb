"""The repository itself: notebooks committed clean, the book's table of contents complete."""
import ast
import json
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "book").glob("*.ipynb"))
CHAPTERS = ["01_introduction", "02_principles", "03_building_steps",
            "04_techniques_and_tuning", "05_image_classification", "06_summary_and_outlook"]


def test_all_six_chapters_exist():
    assert [p.stem for p in NOTEBOOKS] == CHAPTERS


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_committed_without_outputs(path):
    nb = json.loads(path.read_text(encoding="utf-8"))
    dirty = [i for i, c in enumerate(nb["cells"]) if c["cell_type"] == "code"
             and (c.get("outputs") or c.get("execution_count") is not None)]
    assert not dirty, f"{path.name}: cells {dirty} hold outputs or execution counts; clear them"
    assert "widgets" not in nb.get("metadata", {}), f"{path.name}: saved widget state in metadata"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_first_code_cell_is_the_colab_setup(path):
    nb = json.loads(path.read_text(encoding="utf-8"))
    first = next(c for c in nb["cells"] if c["cell_type"] == "code")
    src = "".join(first["source"])
    assert '"google.colab" in sys.modules' in src and "seed_everything" in src and "pick_device" in src
    others = "".join("".join(c["source"]) for c in nb["cells"] if c["cell_type"] == "code" and c is not first)
    assert "pip install" not in others, f"{path.name}: pip install outside the Colab set-up cell"


def test_toc_lists_every_chapter():
    toc = (ROOT / "_toc.yml").read_text(encoding="utf-8")
    for name in CHAPTERS:
        assert f"book/{name}" in toc


# --------------------------------------------------------------------------- Colab and pip users

def colab_check():
    import importlib.util

    spec = importlib.util.spec_from_file_location("colab_check", ROOT / "scripts" / "colab_check.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_colab_cell_installs_the_book_extra_from_the_configured_repository(path):
    check = colab_check()
    name, url = check.colab_requirement(check.first_code_cell(path))
    assert name == "cnnbook[book]"
    assert url == check.repository_url(), "the Colab cell and _config.yml must name the same repository"


# How a module a notebook imports is installed: the standard library, or a distribution.
DISTRIBUTIONS = {"numpy": "numpy", "matplotlib": "matplotlib", "PIL": "pillow", "ipywidgets": "ipywidgets",
                 "tqdm": "tqdm", "threadpoolctl": "threadpoolctl", "torch": "torch", "torchvision": "torchvision",
                 "sklearn": "scikit-learn", "keras": "keras", "cnnbook": "cnnbook", "IPython": "ipywidgets"}


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_every_notebook_import_is_declared(path):
    """What a notebook imports comes with `pip install "cnnbook[book]"` (the Colab cell)."""
    import sys

    check = colab_check()
    declared = set(check.lower_bounds()) | {"cnnbook"}
    for line in check.import_lines(path):
        node = ast.parse(line).body[0]
        if not isinstance(node, (ast.Import, ast.ImportFrom)):
            continue                                   # an os.environ setting made before an import
        names = [a.name for a in node.names] if isinstance(node, ast.Import) else [node.module or ""]
        for top in {name.split(".")[0] for name in names} - set(sys.stdlib_module_names):
            assert top in DISTRIBUTIONS, f"{path.name}: `{line}`: which distribution provides {top}? declare it"
            assert DISTRIBUTIONS[top] in declared, f"{path.name}: `{line}` needs {DISTRIBUTIONS[top]} in pyproject.toml"


def test_lower_bounds_are_plain():
    bounds = colab_check().lower_bounds()
    assert {"numpy", "torch", "torchvision", "ipywidgets", "scikit-learn", "keras"} <= set(bounds)


def test_jupyterlab_is_pinned_and_make_lab_opens_the_student_edition():
    assert re.search(r"^jupyterlab==4\.", (ROOT / "requirements.txt").read_text(), re.M)
    makefile = (ROOT / "Makefile").read_text()
    assert re.search(r"^lab: student\n\t\$\(VENV\)/bin/jupyter lab student/$", makefile, re.M)
    ci = (ROOT / ".ci" / "run").read_text()
    for target in ("check-lab", "colab-check", "nbgrader-check"):
        assert f"make {target}" in ci
