#!/usr/bin/env python3
"""Write the human-readable model cards (Resources/Models/<name>.md) from the machine-readable ones.

For each ``<name>.card.json``: copies the training run's loss curve (``runs/<name>/loss.png``, when the run
folder is here) to ``<name>_loss.png``, adds the held-out benchmark rows of that model's dimension from
``benchmarks/results/<method>.json`` to the card's ``benchmark`` entry (the weights and their hash do not
change), and writes ``<name>.md``.

Usage: python scripts/model_cards.py
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
MODELS = ROOT / "Resources" / "Models"
RESULTS = ROOT / "benchmarks" / "results"


def benchmark_summary(method: str, ndim: int) -> dict:
    """Mean metrics per method over the benchmark's cases of dimension ``ndim``."""
    path = RESULTS / f"{method}.json"
    if not path.is_file():
        return {}
    rows = [r for r in json.loads(path.read_text())["rows"] if r["case"].startswith("kmeans3d") == (ndim == 3)]
    summary = {}
    for m in dict.fromkeys(r["method"] for r in rows):
        sel = [r for r in rows if r["method"] == m]
        summary[m] = {k: float(np.mean([r[k] for r in sel])) for k in
                      ("tre_before_mean", "tre_mean", "tre_p95", "percent_nonpositive_jacobian", "seconds",
                       "parameters")}
    return {"cases": sorted({r["case"] for r in rows}), "environment": json.loads(path.read_text())["environment"],
            "methods": summary}


def markdown(card: dict, name: str, has_curve: bool) -> str:
    t, d, v = card["training"], card["data"], card["validation"]
    best, model = v["best"], card["model"]
    lines = [f"# Model card: {card['title']} (`{card['weights_file']}`)", "",
             f"Method `{card['method']}`; weights format version {card['format_version']}; "
             f"SHA-256 `{card['sha256']}` (checked on every load).", "",
             "## Model", "",
             f"- Network: channels {model['channels']}, {model['residual_units']} residual units per GR2U, "
             f"FC({model['fc_hidden']}); {card['network_parameters']:,} network parameters.",
             f"- Working grid {model['working_size']}^{model['ndim']} voxels covering the fixed image; "
             f"{model['sequence_length']} steps per registration in training (the default at inference); each step "
             f"adds one Gaussian ({7 if model['ndim'] == 2 else 12} transformation parameters).", "",
             "## Data", "",
             f"- Training: {', '.join(d['training_images'])} -> {d['training_entries']} "
             f"{'slices' if model['ndim'] == 2 else 'volumes and sub-volumes'}.",
             f"- Validation (held out): {', '.join(d['validation_images'])} -> {d['validation_pairs']} fixed pairs.",
             f"- Pairs: {d['pairs']} (fractions of the working grid's extent).",
             "- Sources and licences: Debian `mricron-data` (Colin27, INIA19; BSD-3-Clause) and "
             "`insighttoolkit5-examples` (Apache-2.0); `scripts/get_training_data.sh` unpacks them.", "",
             "## Training", "",
             f"- {t['iterations']} iterations x batch {t['batch_size']} x {t['processes']} process(es); Adam (AMSGrad) "
             f"lr {t['learning_rate']}, gradient clip {t['grad_clip']}; loss = mean over steps of masked MSE + "
             f"{t['loss']['tv_weight']} x isotropic TV; recurrent-weight noise {model['recurrent_noise']}.",
             f"- Wall time {t['wall_time_s'] / 60:.1f} min on {t['hardware']} (torch {t['torch']}).",
             f"- Kept: the iteration with the lowest validation TRE, iteration {best['iteration']}.", "",
             "## Validation (held-out images; TRE = mean endpoint error over the foreground, mm)", "",
             f"- Before registration {best['val_tre_before_mm']:.3f} mm, after {best['val_tre_mm']:.3f} mm; "
             f"folding {best['val_folding_percent']:.3f} % of voxels.", ""]
    if has_curve:
        lines += [f"![loss curve]({name}_loss.png)", ""]
    bench = card.get("benchmark")
    if bench:
        lines += [f"## Held-out benchmark ({len(bench['cases'])} cases: {', '.join(bench['cases'])})", "",
                  "| method | TRE before | mean TRE | p95 TRE | det J <= 0 (%) | seconds | parameters |",
                  "|---|---|---|---|---|---|---|"]
        for m, s in bench["methods"].items():
            lines.append(f"| {m} | {s['tre_before_mean']:.2f} | {s['tre_mean']:.2f} | {s['tre_p95']:.2f} | "
                         f"{s['percent_nonpositive_jacobian']:.3f} | {s['seconds']:.2f} | {s['parameters']:.0f} |")
        lines += ["", f"From `benchmarks/results/{card['method']}.md` ({bench['environment']}).", ""]
    lines += ["## Use", "", "`learnreg register --method r2n2 ...`, or the R2Register module in Slicer; "
              "`-o weights=FILE` picks other weights. Limits: trained on T1 brain MRI with synthetic smooth "
              "deformations of up to 6 % of the field of view; other anatomy, modalities or larger motion are "
              "outside what it has seen.", ""]
    return "\n".join(lines)


def main() -> None:
    for card_file in sorted(MODELS.glob("*.card.json")):
        name = card_file.name[: -len(".card.json")]
        card = json.loads(card_file.read_text())
        curve = ROOT / "runs" / name / "loss.png"
        if curve.is_file():
            shutil.copyfile(curve, MODELS / f"{name}_loss.png")
        summary = benchmark_summary(card["method"], card["model"]["ndim"])
        if summary:
            card["benchmark"] = summary
            card_file.write_text(json.dumps(card, indent=2) + "\n")
        (MODELS / f"{name}.md").write_text(markdown(card, name, (MODELS / f"{name}_loss.png").is_file()))
        print(f"wrote {name}.md")


if __name__ == "__main__":
    main()
