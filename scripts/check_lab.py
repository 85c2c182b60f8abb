#!/usr/bin/env python
"""Check the live path: the notebooks in JupyterLab 4, driven in headless Chromium by Playwright.

Run from the repository root (``make check-lab``)::

    .venv/bin/python scripts/check_lab.py [--chromium /usr/bin/chromium]

1. Copies the chapters to a temporary folder (JupyterLab saves what it opens; the committed
   notebooks stay clean) and starts ``jupyter lab`` there on a free localhost port, token and
   password off (``--allow-root`` as root), the app exposed to the page's scripts.
2. Chapter 2: runs the cells up to the kernel explorer, types a new value into one of its
   *live-only* kernel entries (they have no link in the browser, only the kernel reacts) and
   waits until the picture the widget shows changes.
3. Chapter 1: "Restart Kernel and Run All Cells", then checks that every code cell ran and
   none has an error output.

The server is stopped at the end, whatever happens. Chromium is found or installed as
``scripts/check_html.py`` does. Exits with status 1 and the reasons when a check fails.
"""
from __future__ import annotations

import argparse
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from check_html import CHROMIUM, LAUNCH_ARGS, ensure_system  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
WIDGET_CHAPTER, WIDGET_CALL = "02_principles.ipynb", "W.kernel_explorer("
RUN_ALL_CHAPTER = "01_introduction.ipynb"
START_TIMEOUT, RUN_TIMEOUT = 180, 600   # seconds: a cold JupyterLab on a busy machine; a chapter


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_lab(folder: Path, port: int, log) -> subprocess.Popen:
    command = [sys.executable, "-m", "jupyter", "lab", "--no-browser", f"--port={port}", "--ip=127.0.0.1",
               "--IdentityProvider.token=", "--ServerApp.password=", f"--ServerApp.root_dir={folder}",
               "--LabApp.expose_app_in_browser=True", "--LabApp.news_url=", "--ServerApp.open_browser=False"]
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        command.append("--allow-root")
    env = dict(os.environ, JUPYTER_CONFIG_DIR=str(folder / ".jupyter-config"))
    return subprocess.Popen(command, cwd=folder, stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True)


def wait_for(url: str, timeout: float, server: subprocess.Popen) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise RuntimeError(f"jupyter lab exited with status {server.returncode}")
        try:
            with urllib.request.urlopen(url, timeout=5) as response:
                if response.status == 200:
                    return
        except OSError:
            time.sleep(1)
    raise RuntimeError(f"jupyter lab did not answer {url} within {timeout} s")


# The page's side, through the exposed app (window.jupyterapp): the current notebook panel.
JS_READY = """(name) => { const w = window.jupyterapp && window.jupyterapp.shell.currentWidget;
  return !!(w && w.context && w.context.path === name && w.sessionContext && w.sessionContext.session && w.sessionContext.session.kernel
            && w.content && w.content.widgets.length > 0 && w.sessionContext.kernelDisplayStatus === 'idle'); }"""
JS_FIND = """(text) => { const w = window.jupyterapp.shell.currentWidget;
  return w.content.widgets.findIndex(c => c.model.type === 'code' && c.model.sharedModel.getSource().includes(text)); }"""
JS_SELECT = """(i) => { window.jupyterapp.shell.currentWidget.content.activeCellIndex = i; }"""
JS_STATE = """() => { const w = window.jupyterapp.shell.currentWidget;
  const cells = w.content.widgets.filter(c => c.model.type === 'code');
  const errors = [];
  cells.forEach((c, i) => { for (const o of c.model.outputs.toJSON())
      if (o.output_type === 'error') errors.push(`cell ${i}: ${o.ename}: ${o.evalue}`); });
  return {busy: w.sessionContext.kernelDisplayStatus !== 'idle',
          unrun: cells.filter(c => c.model.executionCount === null).length, errors}; }"""


def open_notebook(page, origin: str, name: str) -> None:
    """Open ``name`` alone, in a workspace of its own (JupyterLab would restore the last layout)."""
    workspace = f"check-{name.split('.')[0]}-{time.monotonic_ns()}"
    page.goto(f"{origin}lab/workspaces/{workspace}/tree/{name}?reset", wait_until="domcontentloaded", timeout=120_000)
    page.wait_for_function(JS_READY, arg=name, timeout=START_TIMEOUT * 1000, polling=1000)


def wait_idle(page, timeout: float, every_cell: bool = False) -> dict:
    """Wait until the kernel is idle three polls in a row (and, with ``every_cell``, every code
    cell has run, or one failed), or time out."""
    deadline, idle = time.monotonic() + timeout, 0
    while time.monotonic() < deadline:
        state = page.evaluate(JS_STATE)
        done = not state["busy"] and (not every_cell or state["unrun"] == 0 or state["errors"])
        idle = idle + 1 if done else 0
        if idle >= 3:
            return state
        time.sleep(1)
    return page.evaluate(JS_STATE) | {"timed_out": True}


def pictures(page, cell_index: int) -> list[str]:
    return page.evaluate("""(i) => Array.from(window.jupyterapp.shell.currentWidget.content.widgets[i]
        .node.querySelectorAll('.jp-OutputArea img')).map(img => img.src)""", cell_index)


def live_entry(page, cell_index: int):
    """The first live-only input of the widget in cell ``cell_index`` (scrolled into view: JupyterLab 4
    renders only the cells near the viewport), or None."""
    page.evaluate("""async (i) => { const nb = window.jupyterapp.shell.currentWidget.content;
        nb.activeCellIndex = i; if (nb.scrollToItem) { await nb.scrollToItem(i, 'start'); } }""", cell_index)
    handle = page.evaluate_handle("""(i) => window.jupyterapp.shell.currentWidget.content.widgets[i]
        .node.querySelector('.cnnbook-live-only input')""", cell_index)
    return handle.as_element()


def check_live_widget(page, origin: str, shots: Path) -> list[str]:
    open_notebook(page, origin, WIDGET_CHAPTER)
    index = page.evaluate(JS_FIND, WIDGET_CALL)
    if index < 0:
        return [f"{WIDGET_CHAPTER}: no cell calls {WIDGET_CALL}"]
    page.evaluate(JS_SELECT, index)
    page.evaluate("() => window.jupyterapp.commands.execute('notebook:run-all-above')")
    wait_idle(page, RUN_TIMEOUT)
    page.evaluate(JS_SELECT, index)
    page.evaluate("() => window.jupyterapp.commands.execute('notebook:run-cell')")
    state = wait_idle(page, RUN_TIMEOUT)
    if state["errors"]:
        return [f"{WIDGET_CHAPTER}: errors before the widget: {state['errors']}"]
    deadline = time.monotonic() + 120
    while (entry := live_entry(page, index)) is None and time.monotonic() < deadline:
        time.sleep(1)
    if entry is None:
        page.screenshot(path=str(shots / "no-live-entry.png"))
        return [f"{WIDGET_CHAPTER}: the kernel explorer shows no live-only entry (screenshot: {shots})"]
    before = pictures(page, index)
    entry.fill("7")
    entry.press("Enter")
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and pictures(page, index) == before:
        time.sleep(0.5)
    if pictures(page, index) == before:
        return [f"{WIDGET_CHAPTER}: typing into a live-only kernel entry did not change the picture"]
    print(f"  {WIDGET_CHAPTER}: a live-only entry redrew the picture through the kernel", flush=True)
    return []


def check_restart_run_all(page, origin: str, shots: Path) -> list[str]:
    open_notebook(page, origin, RUN_ALL_CHAPTER)
    page.evaluate("() => { window.jupyterapp.commands.execute('notebook:restart-run-all'); }")
    page.locator(".jp-Dialog .jp-mod-accept").click(timeout=60_000)   # "Restart" in the confirmation
    state = wait_idle(page, RUN_TIMEOUT, every_cell=True)
    problems = [f"{RUN_ALL_CHAPTER}: {e}" for e in state["errors"]]
    if state["unrun"] or state.get("timed_out"):
        problems.append(f"{RUN_ALL_CHAPTER}: {state['unrun']} code cells did not run "
                        f"{'(timed out)' if state.get('timed_out') else ''}")
    if not problems:
        print(f"  {RUN_ALL_CHAPTER}: Restart Kernel and Run All, no error", flush=True)
    return problems


CHECKS = {"widget": check_live_widget, "run-all": check_restart_run_all}


def run_checks(chromium: str, shots: Path, port: int, names=tuple(CHECKS)) -> list[str]:
    from playwright.sync_api import sync_playwright

    origin = f"http://127.0.0.1:{port}/"
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, args=LAUNCH_ARGS)
        try:
            problems = []
            for check in (CHECKS[name] for name in names):
                page = browser.new_page(viewport={"width": 1400, "height": 1000})
                for attempt in (1, 2):    # a cold JupyterLab sometimes misses its first load
                    try:
                        problems += check(page, origin, shots)
                        break
                    except Exception as exc:   # noqa: BLE001 - reported, then retried once
                        if attempt == 2:
                            problems.append(f"{check.__name__}: {type(exc).__name__}: {exc}")
                        page.screenshot(path=str(shots / f"{check.__name__}-{attempt}.png"))
                        page.close()
                        page = browser.new_page(viewport={"width": 1400, "height": 1000})
                page.close()
            return problems
        finally:
            browser.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="scripts/check_lab.py", description=__doc__.splitlines()[0])
    parser.add_argument("--chromium", default=CHROMIUM)
    parser.add_argument("--screenshots", type=Path, default=ROOT / "_build" / "lab-screenshots",
                        help="where a failed attempt leaves its screenshot")
    parser.add_argument("--checks", nargs="*", choices=list(CHECKS), default=list(CHECKS))
    args = parser.parse_args(argv)
    args.screenshots.mkdir(parents=True, exist_ok=True)
    chromium, started = ensure_system(args.chromium), time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="cnnbook-lab-") as tmp:
        folder = Path(tmp)
        for path in list((ROOT / "book").glob("*.ipynb")) + list((ROOT / "book").glob("*.md")):
            shutil.copy(path, folder / path.name)
        port = free_port()
        with open(folder / "jupyter.log", "w") as log:
            server = start_lab(folder, port, log)
            try:
                wait_for(f"http://127.0.0.1:{port}/api/status", START_TIMEOUT, server)
                print(f"check_lab: JupyterLab up on port {port} in {time.perf_counter() - started:.0f} s", flush=True)
                problems = run_checks(chromium, args.screenshots, port, args.checks)
            except Exception as exc:   # noqa: BLE001 - the server's log says why
                problems = [f"{type(exc).__name__}: {exc}"]
            finally:
                os.killpg(server.pid, 15)
                try:
                    server.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    os.killpg(server.pid, 9)
        if problems:
            print((folder / "jupyter.log").read_text()[-3000:], file=sys.stderr)
    elapsed = time.perf_counter() - started
    for problem in problems:
        print("FAIL:", problem, file=sys.stderr)
    print(f"check_lab: {'failed' if problems else 'passed'} in {elapsed:.0f} s")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
