"""The repository itself: notebooks committed clean, the book's table of contents complete."""
import json
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
