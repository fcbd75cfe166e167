#!/usr/bin/env python3
"""Time from Run to result in the web app (Debian's chromium, Playwright) against the command line, on the
bundled pairs with landmarks.

- command line: ``learnreg register`` as a new process, from start to exit (Python, torch and the
  registrar's imports included, as a user waits for them), and the registration's own wall time from its
  report;
- web app: ``learnreg web`` already serving and the page open; from the click on Run until the page shows
  the result (status "Done", the TRE table filled), first run and later runs (the first includes what the
  server imports and warms up on demand).

Writes benchmarks/results/web.json and web.md. Usage: python benchmarks/web_vs_cli.py [--repeats N]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402

from learnreg.image import read_image_grid  # noqa: E402
from learnreg.sample_data import sample_pairs  # noqa: E402

PAIRS = ("brain3d", "head3d", "brain2d")


def time_cli(name: str, method: str) -> dict:
    pair = sample_pairs()[name]
    with tempfile.TemporaryDirectory() as folder:
        start = time.perf_counter()
        subprocess.run([sys.executable, "-m", "learnreg.cli", "register", "--fixed", str(pair.fixed), "--moving",
                        str(pair.moving), "--fixed-landmarks", str(pair.fixed_landmarks), "--moving-landmarks",
                        str(pair.moving_landmarks), "--method", method, "--out", f"{folder}/out", "--quiet"],
                       check=True, capture_output=True)
        process = time.perf_counter() - start
        report = json.loads(Path(folder, "out", "report.json").read_text())
    return {"process_s": process, "report_wall_s": report["timings_s"]["wall"],
            "tre_after_mm": report["tre_mm"]["after"]["mean"]}


def start_server() -> tuple[subprocess.Popen, str]:
    server = subprocess.Popen([sys.executable, "-m", "learnreg.cli", "web", "--port", "0"], stdout=subprocess.PIPE,
                              stderr=subprocess.DEVNULL, text=True, cwd=ROOT)
    while True:
        line = server.stdout.readline()
        if not line:
            raise RuntimeError("learnreg web did not start")
        if line.startswith("LearnReg web app on "):
            return server, line.split()[4]


def status(page) -> str:
    return page.inner_text("#status")


def choose(page, select_id: str, text: str) -> None:
    page.click(f"#{select_id}", force=True)
    page.locator(".v-overlay-container .v-list-item", has_text=text).first.click()
    page.wait_for_timeout(300)


def time_browser_run(page, name: str, method: str) -> dict:
    if f"{name} (bundled)" in page.inner_text(".v-select:has(#pair)"):
        page.locator(".v-select:has(#pair) .v-field__clearable .v-icon").click()
        page.wait_for_timeout(300)
    choose(page, "pair", f"{name} (bundled)")
    page.wait_for_function(f"document.querySelector('#status').innerText.startsWith('Loaded {name} ')")
    choose(page, "method", f"{method}:")
    old = status(page)
    start = time.perf_counter()
    page.click("#run")
    page.wait_for_function("old => { const s = document.querySelector('#status').innerText; "
                           "return s !== old && s.startsWith('Done') && document.querySelector('[data-table] tbody tr'); }",
                           arg=old, timeout=600_000)
    seconds = time.perf_counter() - start
    text = status(page)
    return {"run_to_result_s": seconds, "tre_after_mm": float(text.split(" -> ")[1].split()[0])}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--method", default="bspline")
    args = parser.parse_args()
    from playwright.sync_api import sync_playwright

    results = {"machine": f"{platform.machine()}, {os.cpu_count()} cores", "method": args.method,
               "repeats": args.repeats, "pairs": {}}
    server, url = start_server()
    try:
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=shutil.which("chromium"), args=["--no-sandbox"])
            page = browser.new_page(viewport={"width": 1400, "height": 950})
            page.goto(url)
            page.wait_for_selector("#run")
            page.wait_for_function("document.querySelector('#status').innerText.startsWith('Loaded')")
            for name in PAIRS:
                runs = [time_browser_run(page, name, args.method) for _ in range(args.repeats)]
                cli = [time_cli(name, args.method) for _ in range(args.repeats)]
                results["pairs"][name] = {
                    "voxels": int(np.prod(read_image_grid(sample_pairs()[name].fixed).size)),
                    "browser_first_s": runs[0]["run_to_result_s"],
                    "browser_median_s": statistics.median(r["run_to_result_s"] for r in runs[1:] or runs),
                    "browser_tre_mm": runs[-1]["tre_after_mm"],
                    "cli_process_median_s": statistics.median(c["process_s"] for c in cli),
                    "cli_registration_median_s": statistics.median(c["report_wall_s"] for c in cli),
                    "cli_tre_mm": cli[-1]["tre_after_mm"],
                }
                print(name, results["pairs"][name], flush=True)
            browser.close()
    finally:
        server.terminate()
        server.wait(30)

    out = HERE / "results"
    (out / "web.json").write_text(json.dumps(results, indent=2))
    lines = [f"# Run to result: web app against the command line ({args.method}, {results['machine']})", "",
             "Browser: `learnreg web` serving, page open, from the click on Run until the page shows the result "
             "(status and TRE table). Command line: `learnreg register` as a new process, start to exit "
             "(imports included), and the registration's own wall time from report.json. "
             f"Medians of {args.repeats} runs (browser: of the runs after the first).", "",
             "| pair | voxels | browser, first run (s) | browser (s) | command line, process (s) | "
             "command line, registration (s) | TRE browser / command line (mm) |",
             "|---|---|---|---|---|---|---|"]
    for name, r in results["pairs"].items():
        lines.append(f"| {name} | {r['voxels']:,} | {r['browser_first_s']:.2f} | {r['browser_median_s']:.2f} | "
                     f"{r['cli_process_median_s']:.2f} | {r['cli_registration_median_s']:.2f} | "
                     f"{r['browser_tre_mm']:.2f} / {r['cli_tre_mm']:.2f} |")
    (out / "web.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
