"""The explorer notebook in a real JupyterLab, in a real (headless) Chromium.

Runs a copy of notebooks/06_explorer.ipynb in a temporary folder (the committed notebook is never
touched) on a server of its own, then uses the widgets as a person would: moves the clip browser's
layer slider, picks another clip and clicks a cell of the similarity map, and checks that the kernel
answered with new figures and new text, that the clip browser fits the page (at 1400 and 1280 px)
and that no cell and no widget reported an error.  Screenshots of each view go to
``$M2V_LAB_SCREENSHOTS`` (default: the test's temporary folder).

Needs Debian's ``chromium`` at /usr/bin/chromium and the ``playwright`` package (its own browser
downloads are never used); skipped without them.
"""

import json
import os
import re
import time
from pathlib import Path

import nbformat
import pytest

from lab_browser import CHROMIUM, CHROMIUM_FLAGS, LabServer

pytestmark = [pytest.mark.browser, pytest.mark.timeout(300)]

NOTEBOOK = Path(__file__).resolve().parent.parent / "notebooks" / "06_explorer.ipynb"
RUN_ALL_TIMEOUT_MS = 150_000
STEP_TIMEOUT_MS = 30_000


@pytest.fixture(scope="module")
def sync_playwright():
    if not os.path.exists(CHROMIUM):
        pytest.skip(f"no Chromium at {CHROMIUM} (Debian: apt-get install chromium)")
    playwright = pytest.importorskip("playwright.sync_api",
                                     reason="playwright is not installed (pip install playwright)")
    return playwright.sync_playwright


@pytest.fixture
def lab(tmp_path):
    nb = nbformat.read(NOTEBOOK, as_version=4)
    for cell in nb.cells:  # a clean page: every output on it comes from this run
        if cell.cell_type == "code":
            cell.outputs, cell.execution_count = [], None
    nbformat.write(nb, tmp_path / NOTEBOOK.name)
    env = {"HF_HUB_OFFLINE": "1", "M2V_LAB_MODEL": "tiny-music2vec", "TRANSFORMERS_VERBOSITY": "error"}
    with LabServer(tmp_path, env=env) as server:
        yield server


@pytest.fixture
def screenshots(tmp_path):
    folder = Path(os.environ.get("M2V_LAB_SCREENSHOTS") or tmp_path / "screens")
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def code_prompts(page) -> list[str]:
    return page.locator(".jp-CodeCell .jp-InputPrompt").all_inner_texts()


def wait_all_executed(page, n_cells: int):
    """Until every code cell shows an execution count and the kernel is idle."""
    page.wait_for_function(
        """n => {
            const prompts = [...document.querySelectorAll('.jp-CodeCell .jp-InputPrompt')].map(p => p.innerText.trim());
            const idle = /\\|\\s*Idle/.test(document.querySelector('#jp-main-statusbar')?.innerText || '');
            return idle && prompts.length === n && prompts.every(p => /^\\[\\d+\\]:$/.test(p));
        }""", arg=n_cells, timeout=RUN_ALL_TIMEOUT_MS)


def image_src(view, area: str = ".m2v-clip-plot") -> str:
    return view.locator(f"{area} img").first.get_attribute("src") or ""


def overflow(view) -> int:
    """How many pixels of the view's content stick out to its right (0 when everything fits)."""
    return view.evaluate("""el => {
        const right = el.getBoundingClientRect().right;
        const parts = [...el.querySelectorAll('*')].map(e => e.getBoundingClientRect().right);
        return Math.max(0, Math.ceil(Math.max(...parts) - right), el.scrollWidth - el.clientWidth);
    }""")


def wait_changed(page, read, before, what: str):
    deadline = time.monotonic() + STEP_TIMEOUT_MS / 1000
    while time.monotonic() < deadline:
        now = read()
        if now and now != before:
            return now
        page.wait_for_timeout(200)
    raise AssertionError(f"{what} did not change within {STEP_TIMEOUT_MS / 1000:.0f} s (still {str(before)[:80]!r})")


def wait_saved(page, path: Path) -> dict:
    """The notebook as JupyterLab saved it, once the save holds this run's execution counts."""
    deadline = time.monotonic() + STEP_TIMEOUT_MS / 1000
    while time.monotonic() < deadline:
        saved = json.loads(path.read_text())
        if all(c.get("execution_count") for c in saved["cells"] if c["cell_type"] == "code"):
            return saved
        page.wait_for_timeout(250)
    raise AssertionError(f"JupyterLab did not save {path.name} within {STEP_TIMEOUT_MS / 1000:.0f} s")


def test_explorer_notebook_runs_and_answers_in_jupyterlab(sync_playwright, lab, screenshots):
    started = time.monotonic()
    committed = NOTEBOOK.read_bytes()
    n_code = sum(cell.cell_type == "code" for cell in nbformat.read(NOTEBOOK, as_version=4).cells)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_FLAGS)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1600})
            console_errors = []
            page.on("pageerror", lambda exc: console_errors.append(str(exc)))
            page.goto(lab.page_url(NOTEBOOK.name))
            page.wait_for_selector(".jp-Notebook .jp-CodeCell", timeout=60_000)
            # the kernel is up and idle before anything runs
            page.get_by_text(re.compile(r"Python 3.*\|\s*Idle")).first.wait_for(timeout=60_000)
            assert set(code_prompts(page)) == {"[ ]:"}

            page.locator(".lm-MenuBar-itemLabel", has_text=re.compile(r"^Run$")).click()
            page.locator(".lm-Menu-itemLabel", has_text=re.compile(r"^Run All Cells$")).click()
            wait_all_executed(page, n_code)
            prompts = [int(p[1:-2]) for p in code_prompts(page)]
            assert prompts == sorted(prompts) and len(set(prompts)) == n_code, prompts
            ran_at = time.monotonic()

            assert page.locator(".jp-OutputArea-output[data-mime-type='application/vnd.jupyter.error']").count() == 0
            assert page.get_by_text("Error displaying widget").count() == 0
            for view in (".m2v-layer-picker", ".m2v-clip-browser", ".m2v-similarity-explorer", ".m2v-probe-explorer",
                         ".m2v-explorer"):
                page.locator(view).first.wait_for(state="visible", timeout=STEP_TIMEOUT_MS)
            page.locator(".m2v-probe-plot img").first.wait_for(timeout=STEP_TIMEOUT_MS)
            assert page.locator(".m2v-error:visible").count() == 0

            clips = page.locator(".m2v-clip-browser").first
            clips.scroll_into_view_if_needed()
            readout = clips.locator(".m2v-layer-readout")
            info = clips.locator(".m2v-clip-info")
            # the notebook's own cell moved this browser to the diminished chords at block_6
            assert readout.inner_text() == "block 6"
            clips.screenshot(path=str(screenshots / "clip_browser.png"))

            # move the layer slider one step with the keyboard, as a person would
            before_image, before_layer = image_src(clips), readout.inner_text()
            clips.locator(".m2v-layer-control .noUi-handle").focus()
            page.keyboard.press("ArrowLeft")
            assert wait_changed(page, readout.inner_text, before_layer, "the layer readout") == "block 5"
            after_layer_image = wait_changed(page, lambda: image_src(clips), before_image, "the clip figure")

            # select another clip in the list
            before_info = info.inner_text()
            listbox = clips.locator(".m2v-clip-select select")
            options = listbox.locator("option").all_inner_texts()
            assert len(options) >= 2
            listbox.select_option(label=options[1])
            new_info = wait_changed(page, info.inner_text, before_info, "the clip description")
            assert options[1] in new_info
            wait_changed(page, lambda: image_src(clips), after_layer_image, "the clip figure")
            assert page.locator(".m2v-error:visible").count() == 0
            # a few filters (the notebook set a hidden one, chord_quality: it shows), slider beside the panel
            shown = clips.locator(".m2v-clip-filters select").count()
            assert 2 <= shown <= 5 and clips.locator(".m2v-clip-more").is_visible()
            assert overflow(clips) == 0 and readout.is_visible()

            # click a cell of the similarity map: its row is layer A, its column layer B
            similarity = page.locator(".m2v-similarity-explorer").first
            similarity.scroll_into_view_if_needed()
            cells = similarity.locator(".m2v-similarity-cell")
            n_layers = round(cells.count() ** 0.5)
            assert n_layers ** 2 == cells.count() and n_layers > 2
            a_readout = similarity.locator(".m2v-layer-readout").first
            before_map = image_src(similarity, ".m2v-similarity-projections")
            before_a = a_readout.inner_text()
            cells.nth((n_layers - 1 - 2) * n_layers + 2).click()  # rows run top-down from the last layer
            assert wait_changed(page, a_readout.inner_text, before_a, "layer A's readout") == "block 2"
            wait_changed(page, lambda: image_src(similarity, ".m2v-similarity-projections"), before_map,
                         "the projections")
            assert "A block_2 × B block_2" in similarity.locator(".m2v-similarity-caption").inner_text()

            # the probing view names the clips the label is probed over, and why others are not offered
            probing = page.locator(".m2v-probe-explorer").first
            assert "notes" in probing.locator(".m2v-probe-scope select").input_value()
            assert "not offered" in probing.locator(".m2v-probe-note").inner_text()
            assert page.locator(".m2v-error:visible").count() == 0
            interacted_at = time.monotonic()

            clips.scroll_into_view_if_needed()
            clips.screenshot(path=str(screenshots / "clip_browser_after_interaction.png"))
            views = (("layer_picker", ".m2v-layer-picker"), ("similarity_explorer", ".m2v-similarity-explorer"),
                     ("probe_explorer", ".m2v-probe-explorer"), ("explore_tabs", ".m2v-explorer"))
            for name, selector in views:
                view = page.locator(selector).first
                view.scroll_into_view_if_needed()
                view.screenshot(path=str(screenshots / f"{name}.png"))

            # a laptop screen: the clip browser still fits, its figure shrinks, the slider stays in view
            page.set_viewport_size({"width": 1280, "height": 1000})
            clips.scroll_into_view_if_needed()
            page.wait_for_timeout(500)
            assert overflow(clips) == 0 and readout.is_visible()
            clips.screenshot(path=str(screenshots / "clip_browser_1280.png"))

            # the saved copy holds no error output (Run All would also have stopped at one)
            page.keyboard.press("Control+s")
            saved = wait_saved(page, lab.root / NOTEBOOK.name)
            errors = [o for c in saved["cells"] for o in c.get("outputs", []) if o["output_type"] == "error"]
            assert errors == []
            assert console_errors == []
        finally:
            browser.close()
    timings = (f"open and run all {ran_at - started:.0f} s, interaction {interacted_at - ran_at:.0f} s, "
               f"total {time.monotonic() - started:.0f} s")
    print(f"\nbrowser test: {timings}; screenshots in {screenshots}")
    assert NOTEBOOK.read_bytes() == committed
