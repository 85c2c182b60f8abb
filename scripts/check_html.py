#!/usr/bin/env python
"""Check the built HTML book in a real browser: headless Chromium driven by Playwright.

Run after ``make book`` (``make check-html`` does both)::

    .venv/bin/python scripts/check_html.py [--html _build/html] [--screenshots _build/screenshots]

The book is served from ``--html`` on a localhost port; every request to anywhere else is
blocked and reported, so the check proves the book reads offline. For every page:

- no console errors and no uncaught exceptions; no failed requests, no HTTP errors;
- every image decoded (``naturalWidth > 0``) and described: figures need a caption and an
  alt text that is not a file name; widget images need an alt text or a title;
- math rendered: MathJax output for every math element, and no MathJax error;
- headings in order (one ``h1``, no level skipped);
- every static widget renders and responds: each of its controls (except those marked as
  needing a live kernel) changes what the widget shows;
- exercise solutions are collapsed when the page opens, and open on a click;
- the Colab button and the download button point at this page's notebook in the
  repository (``repository`` in ``_config.yml``), and the download works;
- in dark mode, code cells and text outputs keep a readable contrast (WCAG ratio >= 4.5
  for the text, >= 3 for each highlighted token).

It also checks that the search page finds the key terms, that links to anchors land on an
existing element, and saves a screenshot of each page in light and dark mode under
``--screenshots``. It exits with status 1 and a list of failures if anything is wrong.

Chromium comes from Debian (``/usr/bin/chromium``); when it is missing and the script runs
as root where ``apt-get`` exists, it installs the ``chromium`` package first, and a small
Chinese font (``fonts-wqy-microhei``) when there is none, for readable screenshots.
"""
from __future__ import annotations

import argparse
import functools
import http.server
import json
import os
import re
import shutil
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urljoin, urlsplit

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = "/usr/bin/chromium"
CJK_FONT_PACKAGE = "fonts-wqy-microhei"
LAUNCH_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
               "--disable-component-update", "--disable-sync", "--no-first-run"]
SEARCH_TERMS = ("pooling", "convolution", "overfitting", "卷积层")
MIN_TEXT_CONTRAST, MIN_TOKEN_CONTRAST = 4.5, 3.0
SKIP_DIRS = {"_static", "_sources", "_images", "_sphinx_design_static", "vendor", "_downloads", ".pytest_cache"}

# Console errors that are not the book's fault, each with the reason. Keep this list short.
KNOWN_CONSOLE_ERRORS = [
    # Chromium asks for /favicon.ico on its own when a page names no icon; the 404 is the
    # browser's request, not the page's, and readers never see it. (The cure is
    # `html: favicon:` in _config.yml, which needs an icon file in the repository.)
    (re.compile(r"Failed to load resource: the server responded with a status of 404"), re.compile(r"/favicon\.ico$")),
]


# --------------------------------------------------------------------------- pure helpers

def is_local(url: str, origin: str) -> bool:
    """Whether a request stays on the book's own server (or inside the page: data:, blob:)."""
    if url.startswith(("data:", "blob:", "about:")):
        return True
    parts, home = urlsplit(url), urlsplit(origin)
    return (parts.scheme, parts.hostname, parts.port) == (home.scheme, home.hostname, home.port)


def colab_url(repository_url: str, branch: str, path_to_book: str, source: str) -> str:
    """The Colab launch URL of notebook ``source`` (a path relative to the book's root)."""
    repo = repository_url.rstrip("/").split("github.com/")[-1]
    path = "/".join(p for p in (path_to_book.strip("/"), source) if p and p != ".")
    return f"https://colab.research.google.com/github/{repo}/blob/{branch}/{path}"


def heading_problems(levels: list[int]) -> list[str]:
    """What is wrong with a page's sequence of heading levels (1 for h1, ...)."""
    problems = []
    if not levels:
        return ["no heading"]
    if levels[0] != 1:
        problems.append(f"first heading is h{levels[0]}, expected h1")
    if levels.count(1) > 1:
        problems.append(f"{levels.count(1)} h1 headings, expected one")
    for before, after in zip(levels, levels[1:]):
        if after > before + 1:
            problems.append(f"h{before} followed by h{after}: a level is skipped")
    return problems


def parse_color(css: str) -> tuple[float, float, float, float]:
    """``rgb(r, g, b)`` / ``rgba(r, g, b, a)`` (as getComputedStyle gives them) -> (r, g, b, a)."""
    numbers = [float(n) for n in re.findall(r"[\d.]+", css)]
    if not css.startswith("rgb") or len(numbers) < 3:
        raise ValueError(f"parse_color: expected 'rgb(...)' or 'rgba(...)', got {css!r}")
    return (*numbers[:3], numbers[3] if len(numbers) > 3 else 1.0)


def composite(top: tuple, bottom: tuple) -> tuple[float, float, float, float]:
    """Colour ``top`` (with its alpha) painted over opaque ``bottom``."""
    alpha = top[3]
    return tuple(alpha * t + (1 - alpha) * b for t, b in zip(top[:3], bottom[:3])) + (1.0,)


def contrast_ratio(a: tuple, b: tuple) -> float:
    """WCAG 2 contrast ratio of two opaque colours given as (r, g, b[, a]) in 0..255."""
    def luminance(color):
        channels = []
        for c in color[:3]:
            c = c / 255
            channels.append(c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4)
        return 0.2126 * channels[0] + 0.7152 * channels[1] + 0.0722 * channels[2]
    high, low = sorted((luminance(a), luminance(b)), reverse=True)
    return (high + 0.05) / (low + 0.05)


def known_console_error(text: str, url: str) -> bool:
    return any(t.search(text) and u.search(url or "") for t, u in KNOWN_CONSOLE_ERRORS)


def alt_problem(alt: str | None, src: str) -> str | None:
    """None if ``alt`` describes an image; otherwise what is wrong with it."""
    if alt is None or not alt.strip():
        return "no alt text"
    name = src.rsplit("/", 1)[-1]
    if alt.strip() == name or re.search(r"\.(png|jpe?g|svg|gif)$", alt.strip(), re.I) or "_images/" in alt:
        return f"alt text is a file name ({alt!r}), not a description"
    return None


def redirect_target(text: str) -> str | None:
    """The URL of a ``<meta http-equiv="refresh">`` page, or None for a normal page."""
    match = re.search(r'<meta\s+http-equiv="refresh"\s+content="\d+;\s*url=([^"]+)"', text, re.I)
    return match[1].strip() if match else None


def content_pages(html: Path) -> list[str]:
    """The HTML pages of the build, relative to ``html``, in a stable order."""
    pages = []
    for path in sorted(html.rglob("*.html")):
        rel = path.relative_to(html)
        if not SKIP_DIRS.intersection(rel.parts[:-1]):
            pages.append(rel.as_posix())
    return pages


def notebook_source(html: Path, page: str) -> str | None:
    """``book/02_x.ipynb`` for page ``book/02_x.html`` when the build holds its notebook source."""
    source = page[:-len(".html")] + ".ipynb"
    return source if (html / "_sources" / source).is_file() else None


def read_repository(config: Path) -> dict:
    """``repository`` of _config.yml with Jupyter Book's defaults filled in."""
    import yaml

    data = yaml.safe_load(config.read_text(encoding="utf-8")) or {}
    repo = {"url": "", "branch": "master", "path_to_book": ""}
    repo.update({k: v for k, v in (data.get("repository") or {}).items() if v is not None})
    return repo


def has_cjk_font(run=subprocess.run) -> bool:
    """Whether fontconfig knows a Chinese font (without one, Chinese shows as boxes)."""
    if not shutil.which("fc-list"):
        return False
    result = run(["fc-list", ":lang=zh", "family"], capture_output=True, text=True)
    return bool(result.stdout.strip())


def missing_packages(chromium: str, cjk_font: bool) -> list[str]:
    """Debian packages the check needs here: the browser, and a font for the Chinese terms."""
    return ([] if Path(chromium).is_file() else ["chromium"]) + ([] if cjk_font else [CJK_FONT_PACKAGE])


def ensure_system(chromium: str = CHROMIUM, run=subprocess.run, is_root=None, cjk_font=None) -> str:
    """Return the Chromium executable, installing what is missing with apt-get (as root).

    Installs Debian's ``chromium`` when ``chromium`` is missing and a small Chinese font
    (``fonts-wqy-microhei``) when fontconfig has none, so the screenshots show the book's
    Chinese terms rather than boxes. Without root or apt, a missing font is only reported.

    Raises
    ------
    SystemExit
        If Chromium is missing and cannot be installed here; the message says how.
    """
    cjk_font = has_cjk_font(run) if cjk_font is None else cjk_font
    packages = missing_packages(chromium, cjk_font)
    is_root = (os.geteuid() == 0) if is_root is None else is_root
    if packages and is_root and shutil.which("apt-get"):
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        run(["apt-get", "update", "-qq"], check=True, env=env)
        run(["apt-get", "install", "-y", "-qq", "--no-install-recommends", *packages], check=True, env=env)
    elif CJK_FONT_PACKAGE in packages:
        print(f"check_html: no Chinese font here; screenshots will show boxes for the Chinese terms "
              f"(apt-get install {CJK_FONT_PACKAGE})", file=sys.stderr)
    if not Path(chromium).is_file():
        raise SystemExit(f"check_html: Chromium not found at {chromium}. Install Debian's package "
                         "(as root: apt-get install chromium) or pass --chromium PATH.")
    return chromium


@dataclass
class Report:
    """Failures by page, plus notes that are not failures."""

    failures: dict = field(default_factory=dict)
    notes: list = field(default_factory=list)

    def fail(self, page: str, message: str) -> None:
        self.failures.setdefault(page, []).append(message)

    def text(self) -> str:
        lines = []
        for page, messages in self.failures.items():
            lines.append(f"{page}:")
            lines += [f"  - {m}" for m in messages]
        return "\n".join(lines)


# --------------------------------------------------------------------------- the server

def serve(directory: Path):
    """Serve ``directory`` on 127.0.0.1 (a free port) from a daemon thread; return the server."""
    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args):
            pass

    handler = functools.partial(Quiet, directory=str(directory))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


# --------------------------------------------------------------------------- in the page (JavaScript)

JS_SETTLE = """async () => {
  const wait = (ms) => new Promise(r => setTimeout(r, ms));
  if (window.MathJax && MathJax.startup && MathJax.startup.promise) { await MathJax.startup.promise; }
  const views = document.querySelectorAll('script[type="application/vnd.jupyter.widget-view+json"]').length;
  for (let i = 0; i < 60 && document.querySelectorAll('.widget-subarea > .jupyter-widgets').length < views; i++) { await wait(250); }
  for (let y = 0; y < document.body.scrollHeight; y += window.innerHeight) { window.scrollTo(0, y); await wait(30); }
  window.scrollTo(0, 0);
  await Promise.all(Array.from(document.images).map(img => img.decode().catch(() => null)));
  return views;
}"""

# Whether any part of an admonition other than its title shows: sphinx-togglebutton collapses
# a dropdown by clipping its height (overflow hidden), so clipped content does not count.
JS_SHOWN_CONTENT = """function shownContent(s) {
  const r = s.getBoundingClientRect();
  return Array.from(s.children).filter(c => !c.classList.contains('admonition-title')).some(c => {
    if (c.checkVisibility && !c.checkVisibility()) return false;
    const q = c.getBoundingClientRect();
    return Math.min(r.bottom, q.bottom) - Math.max(r.top, q.top) > 4;
  });
}"""

JS_INSPECT = """() => {
""" + JS_SHOWN_CONTENT + """
  const article = document.querySelector('article.bd-article') || document.body;
  const visible = (el) => el.checkVisibility ? el.checkVisibility() : el.offsetParent !== null;
  const images = Array.from(document.images).map(img => ({
    src: img.currentSrc || img.src, alt: img.getAttribute('alt'), title: img.getAttribute('title'),
    complete: img.complete, width: img.naturalWidth, widget: !!img.closest('.jupyter-widgets'),
    output: !!img.closest('.cell_output'), figure: !!img.closest('figure'),
    caption: !!(img.closest('figure') && img.closest('figure').querySelector('figcaption')),
    shown: visible(img)}));
  const headings = Array.from(article.querySelectorAll('h1, h2, h3, h4, h5, h6'))
    .filter(h => !h.closest('.jupyter-widgets, .cell_output'))
    .map(h => [Number(h.tagName[1]), h.textContent.trim().slice(0, 60)]);
  const math = article.querySelectorAll('.math').length;
  const mathjax = article.querySelectorAll('mjx-container').length;
  const mathErrors = Array.from(article.querySelectorAll('mjx-merror')).map(e => e.textContent.slice(0, 80));
  const views = document.querySelectorAll('script[type="application/vnd.jupyter.widget-view+json"]').length;
  const widgets = document.querySelectorAll('.widget-subarea > .jupyter-widgets').length;
  const colab = Array.from(document.querySelectorAll('a[href*="colab.research.google.com"]')).map(a => a.href);
  const download = Array.from(document.querySelectorAll('a.btn-download-source-button')).map(a => a.href);
  const ids = Array.from(document.querySelectorAll('[id]')).map(e => e.id);
  const links = Array.from(document.querySelectorAll('a[href*="#"]')).map(a => a.href);
  const solutions = Array.from(document.querySelectorAll('.solution')).map(shownContent);
  return {images, headings, math, mathjax, mathErrors, views, widgets, colab, download, ids, links, solutions,
          theme: document.documentElement.dataset.theme};
}"""

# Each control of a widget root, with a way to move it and to move it back. Controls in a
# container whose first child says "Live only", or with the class cnnbook-live-only, act
# only with a running kernel and are skipped.
JS_CONTROLS = """(root) => {
  const live = (el) => {
    for (let a = el; a && a !== root; a = a.parentElement) {
      if (a.classList.contains('cnnbook-live-only')) return true;
      const first = a.firstElementChild;
      if (first && first !== el && !first.contains(el) && /^Live only/i.test(first.textContent.trim())) return true;
    }
    return false;
  };
  const found = [];
  root.querySelectorAll('.widget-toggle-buttons, .widget-dropdown, .widget-slider, .widget-radio-box, .widget-play, .lm-TabBar, .widget-checkbox, .widget-text, .widget-inttext, .widget-floattext')
    .forEach((el, i) => {
      const kind = ['widget-toggle-buttons', 'widget-dropdown', 'widget-slider', 'widget-radio-box', 'widget-play', 'lm-TabBar', 'widget-checkbox']
        .find(k => el.classList.contains(k)) || 'text';
      const label = (el.querySelector('.widget-label') || {}).textContent || kind;
      el.setAttribute('data-check-html', String(i));
      found.push({index: i, kind, label: label.trim().slice(0, 40), live: live(el)});
    });
  return found;
}"""

JS_SIGNATURE = """(root) => {
  const visible = (el) => el.checkVisibility ? el.checkVisibility() : el.offsetParent !== null;
  const controls = '.widget-toggle-buttons, .widget-dropdown, .widget-slider, .widget-radio-box, .widget-play, .lm-TabBar, .widget-checkbox, .widget-readout, .widget-label';
  const imgs = Array.from(root.querySelectorAll('img')).filter(visible).map(i => i.src);
  const texts = Array.from(root.querySelectorAll('.widget-html-content, .widget-output, pre'))
    .filter(e => visible(e) && !e.closest(controls)).map(e => e.innerText);
  return JSON.stringify([imgs, texts]);
}"""

JS_DARK_CONTRAST = """() => {
  const opaque = (el) => {
    for (let a = el; a; a = a.parentElement) {
      const c = getComputedStyle(a).backgroundColor;
      if (c && c !== 'transparent' && !/rgba\\(.*,\\s*0\\)$/.test(c)) return c;
    }
    return getComputedStyle(document.body).backgroundColor;
  };
  const blocks = Array.from(document.querySelectorAll('article .highlight pre, article .cell_output pre')).slice(0, 40);
  return blocks.map(pre => {
    const tokens = Array.from(pre.querySelectorAll('span')).filter(s => s.textContent.trim()).slice(0, 400)
      .map(s => [getComputedStyle(s).color, opaque(s), s.textContent.trim().slice(0, 20)]);
    return {kind: pre.closest('.cell_output') ? 'output' : 'code', text: getComputedStyle(pre).color,
            background: opaque(pre), tokens, sample: pre.textContent.trim().slice(0, 40)};
  });
}"""


# --------------------------------------------------------------------------- the checks

class Checker:
    """Visits the pages of one build and records what is wrong with them."""

    def __init__(self, browser, origin: str, html: Path, repository: dict, shots: Path | None):
        self.browser, self.origin, self.html = browser, origin.rstrip("/") + "/", html
        self.repository, self.shots = repository, shots
        self.report = Report()
        self.ids: dict[str, set] = {}
        self.links: dict[str, list] = {}
        self.summary = ""

    # -- plumbing
    def new_page(self, page_name: str, dark: bool = False):
        context = self.browser.new_context(viewport={"width": 1280, "height": 900}, color_scheme="dark" if dark else "light")
        if dark:
            context.add_init_script("localStorage.setItem('mode', 'dark'); localStorage.setItem('theme', 'dark');")
        context.route("**/*", lambda route: self._route(route, page_name))
        page = context.new_page()
        page.on("console", lambda msg: self._console(page_name, msg))
        page.on("pageerror", lambda exc: self.report.fail(page_name, f"uncaught exception: {exc}"))
        page.on("requestfailed", lambda req: self._request_failed(page_name, req))
        page.on("response", lambda resp: resp.status >= 400 and self.report.fail(
            page_name, f"HTTP {resp.status} for {resp.url}"))
        return context, page

    def _route(self, route, page_name):
        url = route.request.url
        if is_local(url, self.origin):
            return route.continue_()
        self.report.fail(page_name, f"request outside the book blocked: {url[:150]}")
        return route.abort("blockedbyclient")

    def _console(self, page_name, msg):
        if msg.type == "error" and not known_console_error(msg.text, msg.location.get("url", "")):
            where = msg.location.get("url", "").replace(self.origin, "")
            self.report.fail(page_name, f"console error: {msg.text[:300]}" + (f" ({where})" if where else ""))

    def _request_failed(self, page_name, request):
        if is_local(request.url, self.origin):  # blocked outside requests are reported by _route
            self.report.fail(page_name, f"request failed: {request.url} ({request.failure})")

    # -- one page
    def check_page(self, page_name: str) -> None:
        self.summary = ""
        target = redirect_target((self.html / page_name).read_text(encoding="utf-8", errors="replace"))
        if target is not None:
            return self.check_redirect(page_name, target)
        context, page = self.new_page(page_name)
        try:
            page.goto(self.origin + page_name, wait_until="load", timeout=60_000)
            page.evaluate(JS_SETTLE)
            info = page.evaluate(JS_INSPECT)
            self.ids[page.url.split("#")[0]] = set(info["ids"])
            self.links[page_name] = info["links"]
            if self.shots is not None and page_name.startswith("book/"):  # before any control moves
                page.screenshot(path=str(self.shots / (Path(page_name).stem + ".png")), full_page=True)
            if page_name.startswith("book/"):
                self._check_content(page_name, info)
                self._check_buttons(page, page_name, info)
                moved = self._check_widgets(page, page_name, info)
                self._check_solutions(page, page_name, info)
                self.summary = (f"{len(info['images'])} images, {info['math']} math, {info['widgets']} widgets "
                                f"({moved} controls moved), {len(info['solutions'])} solutions")
        finally:
            context.close()

    def check_redirect(self, page_name: str, target: str) -> None:
        """A page that only redirects (the build's root index.html) must land on a real page."""
        want = urljoin(self.origin + page_name, target)
        if not (self.html / urlsplit(want).path.lstrip("/")).is_file():
            self.report.fail(page_name, f"redirects to {target}, which is not in the build")
            return
        context, page = self.new_page(page_name)
        try:
            page.goto(self.origin + page_name, wait_until="load", timeout=60_000)
            page.wait_for_url(want, timeout=30_000)
        except Exception as exc:  # a timeout here is the failure to report
            self.report.fail(page_name, f"did not redirect to {target}: {type(exc).__name__}")
        finally:
            context.close()

    def _check_content(self, name, info):
        for img in info["images"]:
            src = img["src"][:90]
            if not img["complete"] or img["width"] == 0:
                if img["shown"] or not img["widget"]:
                    self.report.fail(name, f"image not decoded: {src}")
            if img["widget"]:
                if not (img["alt"] or "").strip() and not (img["title"] or "").strip():
                    self.report.fail(name, "widget image without alt text or title (give the ipywidgets.Image a "
                                           "tooltip= or set its alt)")
                continue
            problem = alt_problem(img["alt"], img["src"])
            if problem:
                self.report.fail(name, f"image {src}: {problem}")
            if img["output"] and not img["caption"]:
                self.report.fail(name, f"figure without caption: {src} (set mystnb.figure.caption in the cell metadata)")
        for problem in heading_problems([level for level, _ in info["headings"]]):
            self.report.fail(name, f"headings: {problem}")
        if info["math"] and info["mathjax"] < info["math"]:
            self.report.fail(name, f"math not rendered: {info['mathjax']} MathJax elements for {info['math']} math elements")
        for error in info["mathErrors"]:
            self.report.fail(name, f"MathJax error: {error}")
        if info["views"] != info["widgets"]:
            self.report.fail(name, f"{info['widgets']} of {info['views']} widgets rendered")

    def _check_buttons(self, page, name, info):
        source = notebook_source(self.html, name)
        if source is None:
            return
        r = self.repository
        expected = colab_url(r["url"], r["branch"], r["path_to_book"], source)
        if info["colab"] != [expected]:
            self.report.fail(name, f"Colab button points at {info['colab']}, expected [{expected!r}]")
        if not (ROOT / r["path_to_book"].strip("/") / source).is_file() and (ROOT / "_config.yml").is_file():
            self.report.fail(name, f"the Colab button opens {source}, which is not in the repository")
        want = urljoin(self.origin, "_sources/" + source)
        if info["download"] != [want]:
            self.report.fail(name, f"download button points at {info['download']}, expected [{want!r}]")
            return
        response = page.request.get(want)
        try:
            notebook = json.loads(response.body())
            assert response.ok and notebook["nbformat"] == 4 and notebook["cells"]
        except Exception as exc:  # any problem with the file is the failure reported
            self.report.fail(name, f"download {want} did not give a notebook (HTTP {response.status}, {exc!r})")

    def _check_widgets(self, page, name, info):
        roots, moved = page.locator(".widget-subarea > .jupyter-widgets"), 0
        for w in range(roots.count()):
            root = roots.nth(w)
            root.scroll_into_view_if_needed()
            controls = root.evaluate(JS_CONTROLS)
            static = [c for c in controls if not c["live"]]
            if controls and not static:  # (no controls at all: a display such as a progress bar)
                self.report.fail(name, f"widget {w + 1}: no control that works without a kernel")
            for control in static:
                moved += 1
                if not self._control_responds(root, control):
                    self.report.fail(name, f"widget {w + 1}: moving {control['kind']} {control['label']!r} "
                                           "does not change what is shown")
        return moved

    def _control_responds(self, root, control) -> bool:
        before = root.evaluate(JS_SIGNATURE)
        element = root.locator(f"[data-check-html='{control['index']}']")
        undo = self._move(element, control["kind"])
        if undo is None:
            return False
        for _ in range(20):
            if root.evaluate(JS_SIGNATURE) != before:
                undo()
                return True
            time.sleep(0.1)
        undo()
        return False

    @staticmethod
    def _move(element, kind):
        """Move one control to another setting; return a function that moves it back (None: cannot)."""
        if kind == "widget-toggle-buttons":
            buttons = element.locator("button")
            active = [i for i in range(buttons.count()) if "mod-active" in (buttons.nth(i).get_attribute("class") or "")]
            other = next((i for i in range(buttons.count()) if i not in active), None)
            if other is None:
                return None
            buttons.nth(other).click()
            return lambda: active and buttons.nth(active[0]).click()
        if kind == "widget-dropdown":
            select = element.locator("select")
            values = select.locator("option").evaluate_all("os => os.map(o => o.value)")
            current = select.input_value()
            other = next((v for v in values if v != current), None)
            if other is None:
                return None
            select.select_option(other)
            return lambda: select.select_option(current)
        if kind == "widget-slider":
            handle = element.locator("[role=slider]").first
            at_max = handle.get_attribute("aria-valuenow") == handle.get_attribute("aria-valuemax")
            key, back = ("ArrowLeft", "ArrowRight") if at_max else ("ArrowRight", "ArrowLeft")
            handle.focus()
            handle.press(key)
            return lambda: handle.press(back)
        if kind in ("widget-radio-box", "lm-TabBar"):
            options = element.locator("input" if kind == "widget-radio-box" else ".lm-TabBar-tab")
            if options.count() < 2:
                return None
            options.nth(1).click()
            return lambda: options.nth(0).click()
        if kind == "widget-play":
            button = element.locator("button").first
            button.click()
            return lambda: element.locator("button").nth(1).click()
        if kind == "widget-checkbox":
            box = element.locator("input")
            box.click()
            return lambda: box.click()
        return None

    def _check_solutions(self, page, name, info):
        for i, shown in enumerate(info["solutions"]):
            if shown:
                self.report.fail(name, f"solution {i + 1} is shown when the page opens; it must be collapsed")
        solutions = page.locator(".solution.dropdown")
        if solutions.count():
            solution = solutions.first
            # The toggle button, not the title: the title's link to the exercise navigates instead,
            # and sphinx-togglebutton 0.4.5 then throws "button is not defined".
            button = solution.locator("button.toggle-button")
            (button if button.count() else solution.locator(".admonition-title")).first.click()
            time.sleep(0.5)
            if not solution.evaluate("s => { " + JS_SHOWN_CONTENT + "; return shownContent(s); }"):
                self.report.fail(name, "a solution does not open when its title is clicked")

    # -- dark mode
    def check_dark(self, page_name: str) -> None:
        context, page = self.new_page(page_name + " (dark mode)", dark=True)
        try:
            page.goto(self.origin + page_name, wait_until="load", timeout=60_000)
            page.evaluate(JS_SETTLE)
            theme = page.evaluate("() => document.documentElement.dataset.theme")
            if theme != "dark":
                self.report.fail(page_name, f"dark mode did not apply (data-theme={theme!r})")
            for block in page.evaluate(JS_DARK_CONTRAST):
                self._contrast(page_name, block)
            if self.shots is not None:
                page.screenshot(path=str(self.shots / (Path(page_name).stem + "-dark.png")), full_page=True)
        finally:
            context.close()

    def _contrast(self, name, block):
        background = parse_color(block["background"])
        ratio = contrast_ratio(composite(parse_color(block["text"]), background), background)
        if ratio < MIN_TEXT_CONTRAST:
            self.report.fail(name, f"dark mode: {block['kind']} text contrast {ratio:.2f} < {MIN_TEXT_CONTRAST} "
                                   f"in {block['sample']!r}")
        worst = None
        for color, bg, text in block["tokens"]:
            bg = parse_color(bg)
            r = contrast_ratio(composite(parse_color(color), bg), bg)
            if worst is None or r < worst[0]:
                worst = (r, text, color)
        if worst and worst[0] < MIN_TOKEN_CONTRAST:
            self.report.fail(name, f"dark mode: token {worst[1]!r} ({worst[2]}) has contrast {worst[0]:.2f} "
                                   f"< {MIN_TOKEN_CONTRAST} in {block['sample']!r}")

    # -- whole book
    def check_search(self, terms=SEARCH_TERMS) -> None:
        for term in terms:
            name = f"search.html?q={term}"
            context, page = self.new_page(name)
            try:
                page.goto(self.origin + name, wait_until="load", timeout=60_000)
                try:
                    page.wait_for_selector("#search-results .search-summary", timeout=30_000)
                except Exception:
                    self.report.fail(name, "the search did not finish")
                    continue
                hits = page.locator("#search-results ul.search li").count()
                if hits == 0:
                    self.report.fail(name, f"the search finds no page for {term!r}")
            finally:
                context.close()

    def check_anchors(self) -> None:
        for page_name, links in self.links.items():
            for link in links:
                base, _, fragment = link.partition("#")
                if fragment and base in self.ids and fragment not in self.ids[base]:
                    self.report.fail(page_name, f"link to a missing anchor: {link.replace(self.origin, '')}")


def run(html: Path, shots: Path | None, chromium: str, config: Path, pages=None, dark=True, search=True) -> Report:
    from playwright.sync_api import sync_playwright

    server = serve(html)
    origin = f"http://127.0.0.1:{server.server_address[1]}/"
    if shots is not None:
        shots.mkdir(parents=True, exist_ok=True)
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=chromium, args=LAUNCH_ARGS)
            checker = Checker(browser, origin, html, read_repository(config), shots)
            for page_name in pages or content_pages(html):
                started = time.perf_counter()
                checker.check_page(page_name)
                if dark and page_name.startswith("book/"):
                    checker.check_dark(page_name)
                print(f"  {page_name}: {time.perf_counter() - started:.1f} s  {checker.summary}", flush=True)
            if search:
                checker.check_search()
            checker.check_anchors()
            browser.close()
    finally:
        server.shutdown()
    return checker.report


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--html", type=Path, default=ROOT / "_build" / "html")
    parser.add_argument("--screenshots", type=Path, default=ROOT / "_build" / "screenshots")
    parser.add_argument("--config", type=Path, default=ROOT / "_config.yml")
    parser.add_argument("--chromium", default=CHROMIUM)
    parser.add_argument("--pages", nargs="*", help="only these pages (paths relative to --html)")
    parser.add_argument("--no-dark", action="store_true", help="skip the dark-mode pass")
    args = parser.parse_args(argv)
    if not (args.html / "book").is_dir():
        print(f"check_html: no built book in {args.html}; run `make book` first", file=sys.stderr)
        return 1
    chromium = ensure_system(args.chromium)
    started = time.perf_counter()
    print(f"check_html: checking {args.html} in {chromium}")
    report = run(args.html, args.screenshots, chromium, args.config, pages=args.pages, dark=not args.no_dark)
    elapsed = time.perf_counter() - started
    if report.failures:
        count = sum(len(v) for v in report.failures.values())
        print(f"check_html: {count} failures in {elapsed:.0f} s\n{report.text()}", file=sys.stderr)
        return 1
    print(f"check_html: all pages pass ({elapsed:.0f} s); screenshots in {args.screenshots}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
