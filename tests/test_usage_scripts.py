"""The helpers of the Colab, JupyterLab and nbgrader checks (the checks themselves are make targets)."""
import importlib.util
import json
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def script(name):
    spec = importlib.util.spec_from_file_location(name, ROOT / "scripts" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def notebook(tmp_path, *sources):
    path = tmp_path / "n.ipynb"
    path.write_text(json.dumps({"cells": [{"cell_type": "code", "source": s, "metadata": {}} for s in sources]}))
    return path


def test_import_lines_keep_the_environment_settings_before_the_imports(tmp_path):
    check = script("colab_check")
    path = notebook(tmp_path, "import os\nos.environ['KERAS_BACKEND'] = 'torch'\nimport keras\nx = 1",
                    "%matplotlib inline\nfrom sklearn.metrics import f1_score\n", "def f(:\n  pass")
    assert check.import_lines(path) == ["import os", "os.environ['KERAS_BACKEND'] = 'torch'", "import keras",
                                        "from sklearn.metrics import f1_score"]


def test_import_lines_skip_cells_that_raise_on_purpose(tmp_path):
    check = script("colab_check")
    path = notebook(tmp_path, "import numpy", "from keras.preprocessing.image import ImageDataGenerator")
    cells = json.loads(path.read_text())
    cells["cells"][1]["metadata"] = {"tags": ["raises-exception"]}
    path.write_text(json.dumps(cells))
    assert check.import_lines(path) == ["import numpy"]


def test_colab_requirement_is_found_or_refused():
    check = script("colab_check")
    cell = 'subprocess.run([sys.executable, "-m", "pip", "install", "cnnbook[book] @ git+https://example.org/a/b"])'
    assert check.colab_requirement(cell) == ("cnnbook[book]", "https://example.org/a/b")
    with pytest.raises(ValueError, match=r'colab_check: no "cnnbook\[\.\.\.\] @ git\+URL" install line'):
        check.colab_requirement("pip install cnnbook")


def test_lower_bounds_refuse_what_they_cannot_install(tmp_path):
    check = script("colab_check")
    pyproject = tmp_path / "pyproject.toml"
    pyproject.write_text('[project]\ndependencies = ["numpy>=1.26", "torch<3"]\n[project.optional-dependencies]\nbook = []\n')
    with pytest.raises(ValueError, match=r"colab_check: 'torch<3' in pyproject.toml has no plain lower bound"):
        check.lower_bounds(pyproject)


def test_lab_check_finds_a_free_port():
    port = script("check_lab").free_port()
    assert 1024 < port < 65536
