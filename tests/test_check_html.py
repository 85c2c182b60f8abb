"""The pure logic of scripts/check_html.py (the browser run itself is `make check-html`)."""
import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
spec = importlib.util.spec_from_file_location("check_html", ROOT / "scripts" / "check_html.py")
ch = importlib.util.module_from_spec(spec)
sys.modules["check_html"] = ch  # dataclasses look their module up there
spec.loader.exec_module(ch)

ORIGIN = "http://127.0.0.1:8123/"


@pytest.mark.parametrize("url, local", [
    ("http://127.0.0.1:8123/book/02_principles.html", True),
    ("http://127.0.0.1:8123/vendor/mathjax/tex-mml-chtml.js?v=1", True),
    ("data:image/png;base64,iVBOR", True),
    ("blob:http://127.0.0.1:8123/3f2a", True),
    ("http://127.0.0.1:9999/book/index.html", False),
    ("http://localhost:8123/book/index.html", False),
    ("https://cdn.jsdelivr.net/npm/@jupyter-widgets/html-manager@1.0.15/dist/embed-amd.js", False),
    ("https://unpkg.com/thebe@0.8.2/lib/index.js", False),
])
def test_only_the_books_own_server_is_local(url, local):
    assert ch.is_local(url, ORIGIN) is local


def test_colab_url_follows_the_repository_settings():
    url = ch.colab_url("https://github.com/cnnbook/cnnbook", "main", "", "book/02_principles.ipynb")
    assert url == "https://colab.research.google.com/github/cnnbook/cnnbook/blob/main/book/02_principles.ipynb"
    assert ch.colab_url("https://github.com/o/r/", "dev", "docs/", "a.ipynb") == \
        "https://colab.research.google.com/github/o/r/blob/dev/docs/a.ipynb"
    assert ch.colab_url("https://github.com/o/r", "main", ".", "a.ipynb").endswith("/blob/main/a.ipynb")


def test_repository_of_the_books_config():
    repo = ch.read_repository(ROOT / "_config.yml")
    assert repo == {"url": "https://github.com/cnnbook/cnnbook", "branch": "main", "path_to_book": ""}


def test_repository_defaults(tmp_path):
    (tmp_path / "_config.yml").write_text("title: x\n")
    assert ch.read_repository(tmp_path / "_config.yml") == {"url": "", "branch": "master", "path_to_book": ""}


@pytest.mark.parametrize("levels, problems", [
    ([1, 2, 3, 2, 3, 3, 2], []),
    ([1, 2, 2, 3, 4, 2], []),
    ([], ["no heading"]),
    ([2, 3], ["first heading is h2, expected h1"]),
    ([1, 3], ["h1 followed by h3: a level is skipped"]),
    ([1, 2, 1], ["2 h1 headings, expected one"]),
    ([1, 2, 4, 2, 3, 5], ["h2 followed by h4: a level is skipped", "h3 followed by h5: a level is skipped"]),
])
def test_heading_problems(levels, problems):
    assert ch.heading_problems(levels) == problems


def test_contrast_ratio_matches_wcag_examples():
    assert ch.contrast_ratio((0, 0, 0), (255, 255, 255)) == pytest.approx(21.0)
    assert ch.contrast_ratio((255, 255, 255), (255, 255, 255)) == pytest.approx(1.0)
    assert ch.contrast_ratio((118, 118, 118), (255, 255, 255)) == pytest.approx(4.54, abs=0.01)  # WebAIM's #767676
    assert ch.contrast_ratio((0, 0, 0), (255, 255, 255)) == ch.contrast_ratio((255, 255, 255), (0, 0, 0))


def test_colors_parse_and_composite():
    assert ch.parse_color("rgb(18, 18, 18)") == (18.0, 18.0, 18.0, 1.0)
    assert ch.parse_color("rgba(255, 255, 255, 0.5)") == (255.0, 255.0, 255.0, 0.5)
    assert ch.composite((255, 255, 255, 0.5), (0, 0, 0, 1.0)) == (127.5, 127.5, 127.5, 1.0)
    with pytest.raises(ValueError, match=r"parse_color: expected 'rgb\(...\)' or 'rgba\(...\)', got '#fff'"):
        ch.parse_color("#fff")


@pytest.mark.parametrize("alt, src, problem", [
    ("Loss curve falling from 2.3 to 0.4 over 5 epochs.", "/_images/a1b2.png", None),
    (None, "/_images/a1b2.png", "no alt text"),
    ("  ", "/_images/a1b2.png", "no alt text"),
    ("../_images/a1b2.png", "http://127.0.0.1:8123/_images/a1b2.png", "alt text is a file name"),
    ("a1b2.png", "http://127.0.0.1:8123/_images/a1b2.png", "alt text is a file name"),
])
def test_alt_text_must_describe(alt, src, problem):
    found = ch.alt_problem(alt, src)
    assert (found is None) if problem is None else found.startswith(problem)


def test_known_console_errors_are_only_the_favicon():
    favicon = "Failed to load resource: the server responded with a status of 404 (File not found)"
    assert ch.known_console_error(favicon, "http://127.0.0.1:8123/favicon.ico")
    assert not ch.known_console_error(favicon, "http://127.0.0.1:8123/vendor/npm/fa-solid.woff2")
    assert not ch.known_console_error("Identifier 'THEBE_JS_URL' has already been declared", "")
    assert not ch.known_console_error("Got invalid theme mode: . Resetting to auto.", "")


def test_redirect_target():
    assert ch.redirect_target('<meta http-equiv="Refresh" content="0; url=book/index.html" />') == "book/index.html"
    assert ch.redirect_target("<html><head><title>x</title></head></html>") is None


def test_pages_and_notebook_sources(tmp_path):
    for path in ["index.html", "search.html", "book/01_a.html", "book/glossary.html", "_static/x.html",
                 "_sources/book/01_a.ipynb", "_sources/book/glossary.md", "vendor/npm/y.html"]:
        (tmp_path / path).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / path).write_text("x")
    assert ch.content_pages(tmp_path) == ["book/01_a.html", "book/glossary.html", "index.html", "search.html"]
    assert ch.notebook_source(tmp_path, "book/01_a.html") == "book/01_a.ipynb"
    assert ch.notebook_source(tmp_path, "book/glossary.html") is None


def test_missing_system_packages():
    assert ch.missing_packages("/usr/bin/true", cjk_font=True) == []
    assert ch.missing_packages("/nonexistent/chromium", cjk_font=False) == ["chromium", "fonts-wqy-microhei"]


def test_ensure_system_installs_with_apt_as_root(monkeypatch):
    calls = []
    monkeypatch.setattr(ch.shutil, "which", lambda name: "/usr/bin/" + name)
    with pytest.raises(SystemExit, match=r"Chromium not found at /nonexistent/chromium\. Install Debian's package"):
        ch.ensure_system("/nonexistent/chromium", run=lambda cmd, **kw: calls.append(cmd), is_root=True, cjk_font=True)
    assert calls == [["apt-get", "update", "-qq"], ["apt-get", "install", "-y", "-qq", "--no-install-recommends", "chromium"]]


def test_ensure_system_without_root_only_reports(monkeypatch, capsys):
    def no_call(cmd, **kw):
        raise AssertionError(f"ran {cmd}")
    assert ch.ensure_system("/usr/bin/true", run=no_call, is_root=False, cjk_font=False) == "/usr/bin/true"
    assert "no Chinese font here" in capsys.readouterr().err


def test_report_lists_failures_by_page():
    report = ch.Report()
    report.fail("book/a.html", "console error: boom")
    report.fail("book/a.html", "image not decoded: x.png")
    report.fail("search.html", "the search finds no page for 'pooling'")
    assert report.text() == ("book/a.html:\n  - console error: boom\n  - image not decoded: x.png\n"
                             "search.html:\n  - the search finds no page for 'pooling'")


def test_script_refuses_a_missing_build(tmp_path):
    result = subprocess.run([sys.executable, str(ROOT / "scripts" / "check_html.py"),
                             "--html", str(tmp_path)], capture_output=True, text=True)
    assert result.returncode == 1 and "no built book in" in result.stderr
