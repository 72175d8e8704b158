"""The explorers in a real browser, as a student runs them: JupyterLab on 127.0.0.1, notebooks 00 and 02 at the
tiny size, Run All, then each explorer's dropdowns changed (the first change included: in JupyterLab 4.6 it used
to show a blank chart, see ``explore._new_figure``). Each new chart must arrive, be drawn (not blank, with text),
and the browser console must stay free of errors.

Needs Debian's ``chromium`` and the ``playwright`` package (never a browser download: playwright drives
``/usr/bin/chromium`` through ``executable_path``). ``make test-browser`` installs both and runs this file; a plain
``make test`` runs it when both are there and skips it, saying why, otherwise. Screenshots of the explorers go to
``$SOCIALALIGN_BROWSER_SHOTS`` (``make test-browser``: ``figures/``), else to the test's temporary folder.
"""

from __future__ import annotations

import base64
import io
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from urllib.parse import urlsplit

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = Path(os.environ.get("SOCIALALIGN_CHROMIUM", "/usr/bin/chromium"))
HOW = "`make test-browser` installs Debian's chromium + fonts-noto-cjk and playwright, then runs this test"
RUN_ALL_TIMEOUT_S = int(os.environ.get("SOCIALALIGN_BROWSER_TIMEOUT", 300))  # per notebook
CHANGE_TIMEOUT_S = 60  # one dropdown change → its new chart


# ---------------------------------------------------------------------------------------- is the chart drawn?


def chart_problems(png: bytes) -> list[str]:
    """What is wrong with a chart PNG, as a person would see it: ``[]`` when it is drawn.

    "blank": (almost) nothing but background. "no text": no glyphs, counted as small dark connected blobs. Axis
    spines and tick marks are dark too, but they join into a few long components; a title, tick labels and a
    legend make dozens of separate ones. This is how the JupyterLab 4.6 race showed: an empty image, or the
    bars without any text."""
    from PIL import Image
    from scipy import ndimage

    rgb = np.asarray(Image.open(io.BytesIO(png)).convert("RGB")).astype(int)
    problems = []
    if (rgb.min(axis=2) < 230).mean() < 0.02:
        problems.append("blank")
    labels, n = ndimage.label(rgb.max(axis=2) < 110)
    sizes = np.bincount(labels.ravel())[1:]
    glyphs = int(((sizes >= 3) & (sizes <= 400)).sum()) if n else 0
    if glyphs < 20:
        problems.append(f"no text ({glyphs} glyph-like marks)")
    return problems


def _png(fig) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100, bbox_inches="tight")
    return buf.getvalue()


def test_chart_check_tells_a_drawn_chart_from_a_blank_one_and_one_without_text(tmp_path, tiny_course):
    """The check the browser test relies on, on charts made here: the explorer's own chart passes; a blank
    figure and the same bars with every text removed (the two symptoms of the race) fail."""
    from matplotlib.figure import Figure

    from socialalign_lib.explore import distribution_bars, persona_view, persona_view_figure, topic_view

    data = tiny_course
    v = topic_view(data.world, data.world.topics[1].topic_id)
    bars = distribution_bars(
        {"true p(s|topic)": v["true_distribution"], "observed": v["empirical_distribution"]},
        f"#{v['hashtag']}# [{v['category']}]",
        pyplot=False,
    )
    assert chart_problems(_png(bars)) == []
    assert (
        chart_problems(
            _png(persona_view_figure(persona_view(data, data.world.users[2].user_id), pyplot=False))
        )
        == []
    )
    blank = Figure(figsize=(6, 2.2))
    assert "blank" in chart_problems(_png(blank))
    for ax in bars.axes:  # the same bars, every text gone
        ax.set_title("")
        ax.set_xlabel("")
        ax.set_yticklabels([])
        ax.set_xticklabels([])
        ax.get_legend().remove()
    assert chart_problems(_png(bars)) and chart_problems(_png(bars))[0].startswith("no text")


# ---------------------------------------------------------------------------------------------- the browser test


def _browser_or_skip():
    if not CHROMIUM.exists():
        pytest.skip(f"browser test skipped: no Chromium at {CHROMIUM} ({HOW})")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.skip(f"browser test skipped: the playwright package is not installed ({HOW})")
    return sync_playwright


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _notebook_copy(name: str, folder: Path, parameters: dict) -> Path:
    """``notebooks/name`` with ``parameters`` injected after its parameters cell (papermill's way, no run)."""
    import nbformat
    from papermill.iorw import load_notebook_node
    from papermill.parameterize import parameterize_notebook

    nb = load_notebook_node(str(ROOT / "notebooks" / name))
    nb = parameterize_notebook(nb, parameters, kernel_name="python3", language="python")
    out = folder / name
    nbformat.write(nb, out)
    return out


def _get(url: str, timeout: float = 5) -> int:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as r:  # noqa: S310 - 127.0.0.1 only
            return r.status
    except urllib.error.HTTPError as exc:
        return exc.code
    except OSError:  # not listening yet (URLError is an OSError)
        return 0


@contextmanager
def jupyter_lab(root: Path, work: Path) -> Iterator[tuple[str, str]]:
    """JupyterLab from this environment on 127.0.0.1, a free port and a fresh token; its settings, workspaces and
    runtime files in ``work`` (nothing of the user's). The kernels get this checkout on ``PYTHONPATH`` and no
    ``SOCIALALIGN_HEADLESS`` (with it the explorers would show their static figure). Always shut down: the REST
    shutdown (which stops the kernels), then SIGTERM, then SIGKILL, each bounded."""
    import psutil

    port, token = _free_port(), secrets.token_hex(16)
    env = {k: v for k, v in os.environ.items() if k not in ("SOCIALALIGN_HEADLESS", "MPLBACKEND")}
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), *filter(None, [os.environ.get("PYTHONPATH")])])
    for var in (
        "JUPYTER_CONFIG_DIR",
        "JUPYTER_DATA_DIR",
        "JUPYTER_RUNTIME_DIR",
        "JUPYTERLAB_SETTINGS_DIR",
        "JUPYTERLAB_WORKSPACES_DIR",
    ):
        (work / var.lower()).mkdir(parents=True, exist_ok=True)
        env[var] = str(work / var.lower())
    env.setdefault("HF_HUB_OFFLINE", "1")
    # no "get notified about Jupyter news?" toast over the explorers (and no news fetch)
    notification = work / "jupyterlab_settings_dir" / "@jupyterlab" / "apputils-extension"
    notification.mkdir(parents=True, exist_ok=True)
    (notification / "notification.jupyterlab-settings").write_text(
        '{"fetchNews": "false", "checkForUpdates": false}'
    )
    log = (work / "jupyter.log").open("w")
    cmd = [
        sys.executable,
        "-m",
        "jupyterlab",
        "--no-browser",
        "--ip=127.0.0.1",
        f"--port={port}",
        "--ServerApp.port_retries=0",
        f"--IdentityProvider.token={token}",
        f"--ServerApp.root_dir={root}",
        "--LabApp.expose_app_in_browser=True",
        "--LabApp.news_url=None",
        "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
        "--LabApp.extension_manager=readonly",
        "--allow-root",
    ]
    proc = subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    children: set[psutil.Process] = set()
    try:
        deadline = time.monotonic() + 90
        while _get(f"{base}/api/status?token={token}", 2) != 200:
            if proc.poll() is not None:
                raise RuntimeError(
                    f"JupyterLab exited ({proc.returncode}): {(work / 'jupyter.log').read_text()[-2000:]}"
                )
            if time.monotonic() > deadline:
                raise TimeoutError(
                    f"JupyterLab did not answer on {base} within 90 s; log: {work / 'jupyter.log'}"
                )
            time.sleep(0.5)
        yield base, token
    finally:
        with suppress(psutil.NoSuchProcess):
            children = set(psutil.Process(proc.pid).children(recursive=True))  # the kernels
        try:
            req = urllib.request.Request(f"{base}/api/shutdown?token={token}", method="POST")
            urllib.request.urlopen(req, timeout=10).close()  # noqa: S310 - 127.0.0.1 only
        except (OSError, urllib.error.URLError):
            pass
        for sig, wait in ((None, 20), (signal.SIGTERM, 10), (signal.SIGKILL, 5)):
            if sig is not None and proc.poll() is None:
                os.killpg(proc.pid, sig)
            try:
                proc.wait(timeout=wait)
                break
            except subprocess.TimeoutExpired:
                continue
        _, alive = psutil.wait_procs(list(children), timeout=10)
        for p in alive:  # a kernel the server failed to stop (they run in their own process group)
            p.kill()
        log.close()


def _wait_js(page, expression: str, arg, timeout_s: float, what: str):
    from playwright.sync_api import TimeoutError as PlaywrightTimeout

    try:
        return page.wait_for_function(expression, arg=arg, timeout=timeout_s * 1000, polling=250).json_value()
    except PlaywrightTimeout:
        pytest.fail(f"timed out after {timeout_s:.0f} s waiting for {what}")


# The notebook panel of a path, found in JupyterLab's main area (``expose_app_in_browser`` makes ``jupyterapp``).
_PANEL = "[...window.jupyterapp.shell.widgets('main')].find(w => w.context && w.context.path === name)"

_OPENED = """(name) => {
  const w = window.jupyterapp && PANEL;
  const k = w && w.sessionContext.session && w.sessionContext.session.kernel;
  if (!k || k.connectionStatus !== 'connected' || k.status !== 'idle') return false;
  window.jupyterapp.shell.activateById(w.id);
  return window.jupyterapp.shell.currentWidget === w;
}""".replace("PANEL", _PANEL)

_RUN_FINISHED = """(name) => {
  const w = PANEL;
  const cells = w.content.widgets.filter(c => c.model.type === 'code');
  const errors = [];
  for (const c of cells) for (const o of c.model.outputs.toJSON())
    if (o.output_type === 'error') errors.push(`${o.ename}: ${o.evalue}`);
  if (errors.length) return {errors};
  const done = cells.every(c => c.model.executionCount !== null && c.promptNode.textContent.indexOf('*') < 0);
  return done && w.sessionContext.session.kernel.status === 'idle' ? {errors, cells: cells.length} : false;
}""".replace("PANEL", _PANEL)


def _run_all(page, base: str, token: str, name: str) -> None:
    """Open ``name`` in a fresh workspace (``?reset``: nothing restored beside it) and Run All, as the Run menu
    does; fail on a cell error or when it does not finish in ``RUN_ALL_TIMEOUT_S``."""
    page.goto(f"{base}/lab/tree/{name}?reset&token={token}")
    _wait_js(page, _OPENED, name, 120, f"{name} to open with an idle kernel")
    page.evaluate("() => window.jupyterapp.shell.collapseLeft()")  # the file browser off the screenshots
    page.evaluate("() => window.jupyterapp.commands.execute('notebook:run-all-cells')")
    time.sleep(1.0)  # let the first cell go busy before polling for the end
    result = _wait_js(page, _RUN_FINISHED, name, RUN_ALL_TIMEOUT_S, f"Run All of {name}")
    assert not result["errors"], f"{name}: cells raised {result['errors']}"


def _shut_down_kernel(page, name: str) -> None:
    """Stop the notebook's kernel before the next notebook (2 cores, and its memory back)."""
    page.evaluate(f"(name) => {_PANEL}.sessionContext.shutdown()", name)


def _explorer_cell(page, source: str):
    cell = page.locator(".jp-CodeCell").filter(has_text=source)
    assert cell.count() == 1, f"no single cell with {source!r}"
    cell.scroll_into_view_if_needed()
    return cell


_CHART_ARRIVED = """([out, before, needle]) => {
  const img = out.querySelector('img');
  if (!img || !img.complete || img.naturalWidth === 0 || img.src === before) return false;
  const text = out.innerText;
  return needle === null || text.indexOf(needle) >= 0 ? {src: img.src, text} : false;
}"""


def _change_and_check(page, select, output, option_index: int, needle: str | None, what: str) -> dict:
    """Pick ``option_index`` in ``select``; wait until ``output`` shows a new, loaded chart and (when given) the
    ``needle`` text; return its PNG problems (must be none) and text."""
    before = output.locator("img").first.get_attribute("src") if output.locator("img").count() else ""
    select.select_option(index=option_index)
    handle = output.element_handle()
    got = _wait_js(
        page, _CHART_ARRIVED, [handle, before, needle], CHANGE_TIMEOUT_S, f"the new chart of {what}"
    )
    head, _, data = got["src"].partition(",")
    assert head == "data:image/png;base64", f"{what}: the chart is not an inline PNG ({head})"
    problems = chart_problems(base64.b64decode(data))
    assert not problems, f"{what}: the chart arrived but is {problems}"
    return got


def _shots_dir(tmp_path: Path) -> Path:
    out = Path(os.environ.get("SOCIALALIGN_BROWSER_SHOTS") or tmp_path / "shots")
    out.mkdir(parents=True, exist_ok=True)
    return out


def _allow_only_loopback(context, blocked: list[str]) -> None:
    def route(r):
        if urlsplit(r.request.url).hostname in ("127.0.0.1", "localhost"):
            r.continue_()
        else:
            blocked.append(r.request.url)
            r.abort()

    context.route("**/*", route)


@pytest.mark.slow
@pytest.mark.browser
def test_explorers_render_every_dropdown_change_in_jupyterlab(tmp_path):
    sync_playwright = _browser_or_skip()
    from socialalign_lib.world import generate_world

    world = generate_world(size="tiny", seed=0)
    nbdir = tmp_path / "nb"
    nbdir.mkdir()
    figures = tmp_path / "figures"
    _notebook_copy("00_tour.ipynb", nbdir, {"size": "tiny", "figures_dir": str(figures)})
    _notebook_copy(
        "02_build_dataset.ipynb",
        nbdir,
        {"size": "tiny", "figures_dir": str(figures), "out_dir": str(tmp_path / "generated")},
    )
    shots = _shots_dir(tmp_path)
    errors: list[str] = []
    blocked: list[str] = []
    with jupyter_lab(nbdir, tmp_path / "jupyter") as (base, token), sync_playwright() as pw:
        browser = pw.chromium.launch(
            executable_path=str(CHROMIUM),
            headless=True,
            args=["--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu"],
        )
        try:
            context = browser.new_context(viewport={"width": 1400, "height": 1000})
            _allow_only_loopback(context, blocked)
            page = context.new_page()
            page.on(
                "console",
                lambda m: errors.append(f"console {m.type}: {m.text}") if m.type == "error" else None,
            )
            page.on("pageerror", lambda e: errors.append(f"page error: {e}"))

            # 00: world explorer, tab "topics" (a chart per topic) and tab "users" (text only)
            _run_all(page, base, token, "00_tour.ipynb")
            cell = _explorer_cell(page, "world_explorer(world")
            panel = cell.locator(".jp-Cell-outputArea .widget-tab .widget-vbox").first
            select, output = panel.locator("select").first, panel.locator(".widget-output").first
            labels = select.locator("option").all_inner_texts()
            for step, index in enumerate((2, 4)):  # the first change after Run All, then another one
                topic = world.topic(labels[index].split()[0])
                got = _change_and_check(
                    page, select, output, index, topic.news, f"world explorer change {step + 1}"
                )
                assert f"{topic.news}" in got["text"]
                if step == 0:
                    cell.locator(".jp-Cell-outputArea").screenshot(
                        path=str(shots / "explorer_world_browser.png")
                    )
            cell.locator(".lm-TabBar-tab").nth(1).click()
            users = cell.locator(".jp-Cell-outputArea .widget-tab .widget-vbox").nth(1)
            user_select = users.locator("select").first
            user_select.select_option(index=3)
            name = world.users[3].screen_name
            users.locator(".widget-output").filter(has_text=name).wait_for(timeout=CHANGE_TIMEOUT_S * 1000)

            _shut_down_kernel(page, "00_tour.ipynb")

            # 02: persona explorer, user then news dropdown
            _run_all(page, base, token, "02_build_dataset.ipynb")
            cell = _explorer_cell(page, "persona_explorer(data")
            box = cell.locator(".jp-Cell-outputArea .widget-vbox").first
            user_select, topic_select = box.locator("select").nth(0), box.locator("select").nth(1)
            output = box.locator(".widget-output").first
            user_labels = user_select.locator("option").all_inner_texts()
            user = world.user(user_labels[5].split()[0])
            got = _change_and_check(page, user_select, output, 5, None, "persona explorer change 1 (user)")
            replied = {
                world.topic(r.topic_id).news for r in world.responses if r.post.user_id == user.user_id
            }
            assert any(news in got["text"] for news in replied), (
                "persona explorer: not the news of the new user"
            )
            cell.locator(".jp-Cell-outputArea").screenshot(path=str(shots / "explorer_persona_browser.png"))
            topic_labels = topic_select.locator("option").all_inner_texts()
            index = next(
                i for i, lab in enumerate(topic_labels) if world.topic(lab.split()[0]).news not in got["text"]
            )
            news = world.topic(topic_labels[index].split()[0]).news
            _change_and_check(page, topic_select, output, index, news, "persona explorer change 2 (news)")
            page.wait_for_timeout(500)  # late console messages of the last render
        finally:
            browser.close()
    assert not errors, "browser console errors:\n" + "\n".join(errors)
    assert not blocked, f"requests left 127.0.0.1 (blocked): {blocked}"
