"""The web app clicked through as a user would, in Debian's chromium driven by Playwright: ``learnreg web``
runs as its own process, and every check reads what the page shows (or downloads).

Screenshots of each test go to ``test_output/screenshots/`` (``LEARNREG_SCREENSHOTS`` changes it); the
README's pictures of the web app are taken from there. Without chromium these tests are skipped, unless
``LEARNREG_REQUIRE_BROWSER`` is set (``scripts/test.sh`` sets it and installs chromium).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from learnreg.cli import main
from learnreg.sample_data import sample_pairs

ROOT = Path(__file__).resolve().parents[1]
SCREENSHOTS = Path(os.environ.get("LEARNREG_SCREENSHOTS", ROOT / "test_output" / "screenshots"))
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
STARTUP_SECONDS = 120
RUN_SECONDS = 180

if CHROMIUM is None:
    if os.environ.get("LEARNREG_REQUIRE_BROWSER"):
        raise RuntimeError("the browser tests need Debian's chromium: run 'bash scripts/setup_browser.sh'")
    pytest.skip("Debian's chromium is not installed (bash scripts/setup_browser.sh)", allow_module_level=True)
sync_playwright = pytest.importorskip("playwright.sync_api").sync_playwright


@pytest.fixture(scope="module")
def app_url(tmp_path_factory):
    """``learnreg web`` on a free port, serving a data folder, until the module's tests end."""
    data = tmp_path_factory.mktemp("web-data")
    server = subprocess.Popen([sys.executable, "-m", "learnreg.cli", "web", "--port", "0", "--data", str(data),
                               "--max-upload-mb", "50"], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                              text=True, cwd=ROOT)
    deadline = time.monotonic() + STARTUP_SECONDS
    url = None
    while url is None and time.monotonic() < deadline:
        line = server.stdout.readline()
        if not line and server.poll() is not None:
            raise RuntimeError(f"learnreg web exited with code {server.returncode}")
        if line.startswith("LearnReg web app on "):
            url = line.split()[4]
    assert url, "learnreg web did not start"
    yield url
    server.terminate()
    server.wait(30)


@pytest.fixture(scope="module")
def browser():
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        yield chromium
        chromium.close()


@pytest.fixture()
def page(browser, app_url):
    context = browser.new_context(viewport={"width": 1400, "height": 950}, accept_downloads=True)
    page = context.new_page()
    page.goto(app_url)
    page.wait_for_selector("#run", timeout=STARTUP_SECONDS * 1000)
    wait_status(page, "Loaded", "Done", "Opened", "Cancelled", "Error", "Step")
    yield page
    context.close()


def shot(page, name: str) -> Path:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / name
    page.wait_for_timeout(600)  # buttons fade to their new colour; views stream their last frame
    page.screenshot(path=str(path))
    return path


def status(page) -> str:
    return page.inner_text("#status")


def wait_status(page, *starts: str, timeout: float = RUN_SECONDS) -> str:
    page.wait_for_function("starts => starts.some(s => document.querySelector('#status').innerText.startsWith(s))",
                           arg=list(starts), timeout=timeout * 1000)
    return status(page)


def choose(page, select_id: str, text: str) -> None:
    """Open a Vuetify select and click the item that shows ``text``."""
    page.click(f"#{select_id}", force=True)
    page.locator(".v-overlay-container .v-list-item", has_text=text).first.click()
    page.wait_for_timeout(300)


def load_pair(page, name: str) -> None:
    """Choose a bundled pair (cleared first when it is already chosen, so that it loads afresh)."""
    if f"{name} (bundled)" in page.inner_text(".v-select:has(#pair)"):
        page.locator(".v-select:has(#pair) .v-field__clearable .v-icon").click()
        page.wait_for_timeout(300)
    choose(page, "pair", f"{name} (bundled)")
    wait_status(page, f"Loaded {name} ")


def run(page, method: str, preset: str = "Default") -> str:
    choose(page, "method", f"{method}:")
    choose(page, "preset", preset)
    click_run(page)
    return wait_status(page, "Done", "Error")


def click_run(page) -> None:
    """Click Run and wait until the page has taken it (the status changes)."""
    old = status(page)
    page.click("#run")
    page.wait_for_function("old => document.querySelector('#status').innerText !== old", arg=old)


def wait_error(page, naming: str) -> str:
    """The error line the page shows once it names ``naming``."""
    page.wait_for_function("naming => document.querySelector('#error').innerText.includes(naming)", arg=naming,
                           timeout=RUN_SECONDS * 1000)
    assert page.locator("#error").is_visible()
    return page.inner_text("#error").strip()


def table_rows(page, name: str) -> list[list[str]]:
    rows = page.locator(f'[data-table="{name}"] tbody tr')
    return [[cell.strip() for cell in rows.nth(i).locator("td").all_inner_texts()] for i in range(rows.count())]


def views_png(page) -> bytes:
    return page.locator(".layout-grid-container").first.screenshot()


def test_bspline_on_the_bundled_2d_pair_shows_the_report_s_tre(page):
    load_pair(page, "brain2d")
    shot(page, "01-loaded.png")
    assert run(page, "bspline").startswith("Done: bspline")
    shot(page, "02-bspline-result.png")
    rows = table_rows(page, "bspline TRE per landmark")
    with page.expect_download() as download:
        page.click("#download-report-json")
    report = json.loads(Path(download.value.path()).read_text())
    tre = report["tre_mm"]
    shown = {row[0]: (float(row[2]), float(row[3])) for row in rows}
    expected = {label: (b, a) for label, b, a in zip(tre["labels"], tre["before"]["per_landmark"],
                                                     tre["after"]["per_landmark"])}
    assert shown.keys() == expected.keys() and len(rows) == 20
    assert np.allclose([shown[k] for k in expected], [expected[k] for k in expected], atol=5e-4)
    after = [float(row[3]) for row in rows]
    assert after == sorted(after, reverse=True)  # worst first
    assert page.locator("#chart").is_visible()
    for name in ("transform.h5", "warped.nii.gz", "scene.mrb"):
        with page.expect_download() as download:
            page.click(f"#download-{name.replace('.', '-')}")
        assert download.value.suggested_filename == name and Path(download.value.path()).stat().st_size > 1000


def test_scrubbing_r2n2_s_steps_changes_the_overlay(page):
    load_pair(page, "brain2d")
    assert run(page, "r2n2").startswith("Done: r2n2")
    shot(page, "03-r2n2-result.png")
    before = views_png(page)
    thumb = page.locator("#step .v-slider-thumb, .v-slider-thumb").last
    thumb.focus()
    page.keyboard.press("Home")
    wait_status(page, "Step 1 of")
    page.wait_for_timeout(1500)
    assert "step displacement" in page.inner_text(".v-select:has(#foreground)")
    first = views_png(page)
    for _ in range(3):
        page.keyboard.press("ArrowRight")
    wait_status(page, "Step 4 of")
    page.wait_for_timeout(1500)
    fourth = views_png(page)
    shot(page, "04-r2n2-steps.png")
    assert first != before and fourth != first


@pytest.mark.parametrize("method", ["istn", "cnnregress", "ddfnet"])
def test_each_learned_method_runs_from_the_page(page, method):
    load_pair(page, "brain2d")
    done = run(page, method)
    assert done.startswith(f"Done: {method}")
    before, after = (float(x) for x in done.split("mean TRE ")[1].removesuffix(" mm").split(" -> "))
    assert after < 0.5 * before
    shot(page, f"05-{method}.png")


def test_a_3d_pair_with_label_maps_shows_dice_and_hd95_per_label(page):
    load_pair(page, "brain3d")
    assert run(page, "bspline", preset="Fast").startswith("Done: bspline")
    shot(page, "06-brain3d-structures.png")
    rows = table_rows(page, "bspline structures")
    header = [h.strip() for h in page.locator('[data-table="bspline structures"] thead th').all_inner_texts()]
    dice = [i for i, h in enumerate(header) if h.startswith("Dice ")]  # before, then after each stage
    assert header[dice[0]] == "Dice before" and len(dice) >= 2 and "HD95 before (mm)" in header
    assert len(rows) == 3  # the k-means tissue labels
    assert all(float(row[dice[-1]]) > float(row[dice[0]]) for row in rows)


def test_cancelling_a_3d_run_leaves_the_scene_as_it_was(page):
    load_pair(page, "head3d")
    shot(page, "07-head3d-loaded.png")
    background = page.inner_text(".v-select:has(#background)")
    page.fill("#options", "iterations=400,400,400")
    choose(page, "method", "bspline:")
    click_run(page)
    page.wait_for_function("document.querySelector('#run').innerText.includes('CANCEL')")
    page.wait_for_function("!document.querySelector('#status').innerText.includes('starting')", timeout=60000)
    page.click("#run")
    assert wait_status(page, "Cancelled").startswith("Cancelled")
    assert page.inner_text(".v-select:has(#background)") == background
    assert "head3d moving" in page.inner_text(".v-select:has(#foreground)")
    assert not page.locator("#summary").is_visible()
    shot(page, "08-cancelled.png")
    page.fill("#options", "")


def test_a_broken_upload_shows_the_command_line_s_message_and_the_app_keeps_serving(page, tmp_path, capsys):
    broken = tmp_path / "broken.nii.gz"
    broken.write_bytes(sample_pairs()["brain2d"].fixed.read_bytes()[:3000])
    assert main(["register", "--fixed", str(broken), "--moving", str(sample_pairs()["brain2d"].moving),
                 "--out", str(tmp_path / "out"), "--quiet", "--no-scene"]) == 2
    cli = capsys.readouterr().err.strip().removeprefix("learnreg: error: ")
    page.click("#files-panel button")
    page.set_input_files("#upload", str(broken))
    assert wait_error(page, "broken.nii.gz") == cli.replace("fixed image", "uploaded image").replace(
        str(broken), "broken.nii.gz")
    shot(page, "09-upload-error.png")
    load_pair(page, "ratlung2d")  # still serving
    assert not page.locator("#error").is_visible()


def test_a_file_over_the_upload_limit_is_refused_before_it_is_sent(page, tmp_path):
    big = tmp_path / "big.nii.gz"
    with open(big, "wb") as file:
        file.truncate(51 * 2**20)  # the server runs with --max-upload-mb 50
    page.click("#files-panel button")
    page.set_input_files("#upload", str(big))
    assert wait_error(page, "big.nii.gz") == ("big.nii.gz is 51 MB, over the upload limit of 50 MB; start the app "
                                                 "with a larger --max-upload-mb, or put the file in the --data folder")


def test_a_scene_written_by_the_command_line_opens_with_its_tables_and_steps(page, tmp_path):
    pair = sample_pairs()["brain2d"]
    assert main(["register", "--fixed", str(pair.fixed), "--moving", str(pair.moving), "--method", "r2n2",
                 "--fixed-landmarks", str(pair.fixed_landmarks), "--moving-landmarks", str(pair.moving_landmarks),
                 "--out", str(tmp_path / "out"), "--quiet"]) == 0
    report = json.loads((tmp_path / "out" / "report.json").read_text())
    page.click("#files-panel button")
    old = status(page)
    page.set_input_files("#upload", str(tmp_path / "out" / "scene.mrb"))
    page.wait_for_function("old => document.querySelector('#status').innerText !== old", arg=old)
    assert wait_status(page, "Opened", "Error").startswith("Opened scene.mrb"), page.inner_text("#error")
    rows = table_rows(page, "r2n2 TRE per landmark")
    after = dict(zip(report["tre_mm"]["labels"], report["tre_mm"]["after"]["per_landmark"]))
    assert {row[0]: float(row[-1]) for row in rows} == pytest.approx(after, abs=2e-3)
    assert page.locator(".v-slider-thumb").last.is_visible()
    shot(page, "10-opened-scene.png")
