#!/usr/bin/env python3
"""Write the human-readable model cards (Resources/Models/<name>.md) from the machine-readable ones.

For each ``<name>.card.json``: copies the training run's loss curve (``runs/<name>/loss.png``, when the run
folder is here) to ``<name>_loss.png``, an earlier stage's (``runs/<name>_stage<k>/loss.png``) to
``<name>_stage<k>_loss.png`` (and CNNRegress's training-displacement histograms, ``sampling.png``, to
``<name>_sampling.png``); adds the benchmark rows that apply to the model from
``benchmarks/results/<method>.json`` to the card's ``benchmark`` entry and, for the weights a method uses by
default, its rows of the held-out benchmark (``benchmarks/results/heldout.json``: images and deformation
families no training saw) to ``held_out``, each only when measured after the weights were trained (the weights
and their hash do not change); and writes ``<name>.md``. R2N2, ISTN and CNNRegress cards differ in their model,
loss and metric parts.

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


def _rows(method: str) -> tuple[list[dict], dict]:
    path = RESULTS / f"{method}.json"
    if not path.is_file():
        return [], {}
    content = json.loads(path.read_text())
    return content["rows"], content["environment"]


def measured_after_training(environment: dict, card: dict) -> bool:
    """Whether results measured in ``environment`` (their date) can be the card's weights': a run from before
    the weights were trained measured earlier ones."""
    return environment.get("date", "") >= card["training"].get("date", "")


def benchmark_summary(card: dict) -> dict:
    """Mean metrics per method over the benchmark's cases this model applies to (its dimension for R2N2, its
    transformation model for ISTN)."""
    model = card["model"]
    rows, environment = _rows(card["method"])
    if not measured_after_training(environment, card):
        return {}
    if card["method"] == "istn":
        keys = ("dice_mean", "assd_mean", "percent_nonpositive_jacobian", "seconds", "parameters")
        group = f"{model['transformation']} {model['ndim']}D"
        shown = {f"{group}: {m}" for m in ("identity", model["variant"], f"{model['variant']} refined",
                                           "structures direct", "sitk_bspline", "ants_syn")}
        rows = [r for r in rows if r["method"] in shown]
    elif card["method"] == "ddfnet":
        keys = ("tre_before_mean", "tre_mean", "dice_mean", "hd95_mean", "percent_nonpositive_jacobian", "seconds",
                "parameters")
        shown = ("identity", "shipped svf", "shipped svf refined", "bspline", "sitk_demons", "ants_syn")
        shipped = card["weights_file"] == f"ddfnet_{model['ndim']}d_svf.pt"  # the rows' "shipped svf"
        rows = [r for r in rows if r["method"] in shown and shipped
                and (r["case"] == "head3d") == (model["ndim"] == 3)]  # the 3D case: head3d
    elif card["method"] == "cnnregress":
        keys = ("tre_mean", "dice_mean", "assd_mean", "percent_nonpositive_jacobian", "seconds", "parameters")
        # the CNNRegress benchmark is 3D; its synthetic cases have landmarks (TRE) as well as labels
        rows = [r for r in rows if model["ndim"] == 3 and r["case"].startswith("kmeans-synthetic")]
    else:
        keys = ("tre_before_mean", "tre_mean", "tre_p95", "percent_nonpositive_jacobian", "seconds", "parameters")
        rows = [r for r in rows if ("3d" in r["case"]) == (model["ndim"] == 3)]  # 3D cases: head3d, kmeans3d-*
    if not rows:
        return {}
    # a metric some cases lack (Dice where a case has no labels) is averaged over the cases that have it
    def average(method: str, key: str) -> float:
        values = [r[key] for r in rows if r["method"] == method and key in r]
        return float(np.mean(values)) if values else float("nan")

    summary = {m: {k: average(m, k) for k in keys} for m in dict.fromkeys(r["method"] for r in rows)}
    return {"cases": sorted({r["case"] for r in rows}), "environment": environment, "methods": summary}


def r2n2_parts(card: dict) -> dict:
    model, t, best = card["model"], card["training"], card["validation"]["best"]
    return {
        "model": [f"- Network: channels {model['channels']}, {model['residual_units']} residual units per GR2U, "
                  f"FC({model['fc_hidden']}); {card['network_parameters']:,} network parameters.",
                  f"- Working grid {model['working_size']}^{model['ndim']} voxels covering the fixed image; "
                  f"{model['sequence_length']} steps per registration in training (the default at inference); each "
                  f"step adds one Gaussian ({7 if model['ndim'] == 2 else 12} transformation parameters)."],
        "loss": f"loss = mean over steps of masked MSE + {t['loss']['tv_weight']} x isotropic TV (+ "
                f"{t['loss']['field_weight']} x supervised field error + {t['loss'].get('step_target_weight', 0)} x "
                f"greedy step-target error, neither in the paper); recurrent-weight noise {model['recurrent_noise']}",
        "kept": "the lowest validation TRE",
        "validation": ["## Validation (held-out images; TRE = mean endpoint error over the foreground, mm)", "",
                       f"- Before registration {best['val_tre_before_mm']:.3f} mm, after {best['val_tre_mm']:.3f} "
                       f"mm; folding {best['val_folding_percent']:.3f} % of voxels."],
        "columns": [("TRE before", "tre_before_mean", 2), ("mean TRE", "tre_mean", 2), ("p95 TRE", "tre_p95", 2)],
        "use": "`learnreg register --method r2n2 ...`, or the R2Register module in Slicer; `-o weights=FILE` picks "
               "other weights. Limits: trained on T1 brain MRI with synthetic smooth deformations of up to "
               f"{100 * card['data']['pairs']['max_displacement']:.0f} % of the field of view; other anatomy, "
               "modalities or larger motion are outside what it has seen.",
    }


def istn_parts(card: dict) -> dict:
    model, t, best, d = card["model"], card["training"], card["validation"]["best"], card["data"]
    bspline = model["transformation"] == "bspline"
    transformation = (f"cubic B-spline, control points every {model['control_spacing']} working voxels, "
                      f"displacements <= {model['max_control_displacement']} (normalised)" if bspline else
                      f"affine T = M_t R S^-1 D S, translation <= {model['max_translation']}, rotation <= "
                      f"{model['max_rotation']:.3f} rad, log scale <= {model['max_log_scale']}, shear <= "
                      f"{model['max_shear']}")
    itn = f"ITN U-Net channels {model['itn_channels']}" if model["variant"].startswith("istn") else "no ITN"
    return {
        "model": [f"- Variant `{model['variant']}`; {itn}; STN channels {model['stn_channels']}, "
                  f"FC({model['fc_hidden']}); {card['network_parameters']:,} network parameters.",
                  f"- Transformation: {transformation}.",
                  f"- Working grid {model['working_size']}^{model['ndim']} voxels covering the fixed image; "
                  f"structures of interest: labels {d['structure_labels']} (k-means tissue classes: 2 grey, "
                  "3 white matter; scripts/make_tissue_labels.py)."],
        "loss": f"the {model['variant']} loss of the paper (all MSE) + {t['loss']['regulariser_weight']} x "
                "bending energy",
        "kept": "the best validation Dice after one pass",
        "validation": ["## Validation (held-out subject; Dice of the structures, thresholded at 0.5)", "",
                       f"- Before registration {best['val_dice_before']:.3f}, after one pass {best['val_dice']:.3f}; "
                       f"folding {best['val_folding_percent']:.3f} % of pixels."],
        "columns": [("Dice", "dice_mean", 3), ("ASSD (mm)", "assd_mean", 2)],
        "use": f"`learnreg register --method istn -o transformation={model['transformation']} -o "
               f"variant={model['variant']} ...`, or the ISTNRegister module in Slicer; `-o refine_steps=N` sets "
               f"the test-time refinement (default 50). Limits: trained on {trained_on(card)}; other anatomy or "
               "modalities are outside what it has seen (the held-out section above measures how far it carries).",
    }


IMAGE_NAMES = {"ch2bet.nii.gz": "one T1 brain (Colin27)", "cranium_ct.nii.gz": "a head CT (InVesalius)"}


def trained_on(card: dict) -> str:
    """What a model trained on, in words: its images, label synthesis and deformation families."""
    d, model = card["data"], card["model"]
    images = " and ".join(IMAGE_NAMES.get(name, name) for name in d["training_images"])
    synthesis = ", plus images drawn from random label maps" if d.get("label_synthesis") else ""
    families = d["pairs"].get("families", ["bspline"])
    return (f"{'2D slices' if model['ndim'] == 2 else 'sub-volumes'} of {images}{synthesis}, with synthetic "
            f"deformations ({', '.join(families)}), an affine part and intensity augmentation")


def cnnregress_parts(card: dict) -> dict:
    model, t, best = card["model"], card["training"], card["validation"]["best"]
    histograms = card["sampling_histograms"]
    edges = np.asarray(histograms["edges"])
    below = edges[1:] <= model["max_displacement"] + 1e-9

    def spread(name: str) -> str:
        counts = np.asarray(histograms[name], dtype=float)[below]
        share = counts / counts.sum()
        return f"bin shares {share.min():.3f}-{share.max():.3f} (uniform: {1 / below.sum():.3f})"

    return {
        "model": [f"- Patch {model['patch_size']}^{model['ndim']} (moving {model['patch_size'] + 2 * max(model['ncc_radii'])}"
                  f"^{model['ndim']}), NCC similarity maps at radii {model['ncc_radii']} (fixed, not trained); "
                  f"unpadded 3x3 convolutions {model['channels']} with one max pooling after {model['pool_after']}; "
                  f"FC {model['fc_hidden']} then tanh x tau = {model['max_displacement']} working voxels; "
                  f"{card['network_parameters']:,} network parameters.",
                  f"- Working grid {model['working_size']}^{model['ndim']} voxels covering the fixed image; "
                  "displacements predicted at the active points, thin-plate spline to a dense field, two iterations.",
                  f"- Training targets: {card['data']['targets']}; equalised active-point sampling "
                  f"({t['loss']['points_per_pair']} points per pair on average, {t['loss']['bins']} bins on (0, tau]): "
                  f"{spread('equalised')}; plain active-point sampling would give {spread('active points')}."],
        "loss": "mean squared error of the centre displacements (units of tau)",
        "kept": "the lowest validation field error after two iterations",
        "validation": ["## Validation (held-out images; mean end-point error of the dense field over the foreground, "
                       "working voxels)", "",
                       f"- Before registration {best['val_error_before']:.3f}; after one iteration "
                       f"{best['val_error_one_iteration']:.3f}, after two {best['val_field_error']:.3f}; at the "
                       f"active points {best['val_point_error']:.3f} (exact thin-plate spline).",
                       f"- Thin-plate-spline smoothing chosen on the same pairs: lambda = "
                       f"{card['tps_smoothing']['chosen']} (field error after two iterations by lambda: "
                       + ", ".join(f"{k}: {v:.3f}" for k, v in
                                   card["tps_smoothing"]["validation_field_error_by_smoothing"].items()) + ")."],
        "columns": [("mean TRE", "tre_mean", 2), ("Dice", "dice_mean", 3), ("ASSD (mm)", "assd_mean", 2)],
        "use": "`learnreg register --method cnnregress ...`, or the CNNRegress module in Slicer; "
               "`-o density_percent=P` (default 0: automatic, 2 % in 2D and 0.5 % in 3D) and `-o passes=N` set the "
               "active points and iterations. Limits: trained on a T1 brain (Colin27), a "
               "head CT and images drawn from random label maps, with synthetic deformations (the generator's "
               "exact fields as targets); inputs must be roughly aligned; other anatomy is outside what it has seen.",
        "figures": [f"![training displacements]({card['weights_file'][:-3]}_sampling.png)"],
    }


def ddfnet_parts(card: dict) -> dict:
    model, t, best = card["model"], card["training"], card["validation"]["best"]
    output = {"ddf": "a dense displacement field", "svf": f"a static velocity field, integrated by scaling and "
              f"squaring ({model['squarings']} squarings)", "affine": "an affine map (GlobalNet head)"}[model["output"]]
    loss = t["loss"]
    terms = [f"{loss['image_weight']} x {loss['image_loss']}" if loss["mode"] != "weak" else None,
             f"{loss['label_weight']} x (1 - soft Dice of one structure sampled per pair)"
             if loss["mode"] != "unsupervised" else None,
             f"{loss['regulariser_weight']} x {loss['regulariser']} energy of the field (working voxels)"]
    return {
        "model": [f"- Encoder-decoder (LocalNet / U-Net family), channels {model['channels']}, output: {output}; "
                  f"{card['network_parameters']:,} network parameters.",
                  f"- Working grid {model['working_size']}^{model['ndim']} voxels covering the fixed image; the field "
                  "is interpolated onto the full-resolution fixed grid."],
        "loss": f"DeepReg's {loss['mode']} training: " + " + ".join(x for x in terms if x),
        "kept": "the best validation " + ("1 - Dice" if loss["mode"] != "unsupervised" else "image loss"),
        "validation": ["## Validation (held-out subject, synthetic pairs; Dice of the structures, thresholded at 0.5)",
                       "", f"- Before registration {best['val_dice_before']:.3f}, after one pass "
                       f"{best['val_dice']:.3f}; mean field error "
                       f"{best.get('val_field_error_voxels', float('nan')):.2f} working voxels over the "
                       "whole working grid (the background included, where no image constrains the field); folding "
                       f"{best['val_folding_percent']:.3f} % of pixels."],
        "columns": [("TRE before", "tre_before_mean", 2), ("mean TRE", "tre_mean", 2)]
                   + ([("Dice", "dice_mean", 3), ("HD95 (mm)", "hd95_mean", 2)] if model["ndim"] == 2 else []),
        "use": f"`learnreg register --method ddfnet -o output={model['output']}"
               + ("" if card["weights_file"] == f"ddfnet_{model['ndim']}d_{model['output']}.pt"
                  else f" -o weights=Resources/Models/{card['weights_file']}") + " ...`, or any LearnReg module in "
               "Slicer and the web app (listed after the classical methods); refined by the shared B-spline optimiser "
               f"by default (`-o refine=none`: one pass). Limits: trained on {trained_on(card)}; other anatomy or "
               "modalities are outside what it has seen (the held-out section above measures how far it carries).",
    }


def stages(card: dict) -> list[dict]:
    """The cards of the runs that made these weights, first run first (a run that started from saved
    weights holds their card under ``training.initial_weights.card``)."""
    chain = [card]
    while "initial_weights" in chain[0]["training"]:
        chain.insert(0, chain[0]["training"]["initial_weights"]["card"])
    return chain


def trained_sha256(card: dict) -> str:
    """The SHA-256 of the weights as the card's run wrote them (before any rounding to float16)."""
    return card.get("storage", {}).get("float32_sha256", card["sha256"])


def stage_lines(card: dict, name: str) -> list[str]:
    """One line per earlier run of a model trained in stages, with their loss curves, and the total time."""
    chain = stages(card)
    if len(chain) == 1:
        return []
    lines = [f"- Trained in {len(chain)} stages, each starting from the previous one's weights (the lines above "
             "are the last stage's):"]
    for number, stage in enumerate(chain, 1):
        t, best = stage["training"], stage["validation"]["best"]
        key = next(k for k in best if k.startswith("val_") and not k.endswith(("before_mm", "before")))
        lines.append(f"  - stage {number}: {t['iterations']} iterations, lr {t['learning_rate']}, pairs "
                     f"{stage['data']['pairs']}, loss {t['loss']}; {t['wall_time_s'] / 60:.1f} min; best {key} "
                     f"{best[key]:.3f} on its own validation pairs (iteration {best['iteration']}); weights SHA-256 `{trained_sha256(stage)[:12]}`")
    total = sum(stage["training"]["wall_time_s"] for stage in chain) / 60
    lines.append(f"- Total training time {total:.1f} min. Loss curves of the earlier stages: "
                 + ", ".join(f"![stage {n}]({name}_stage{n}_loss.png)" for n in range(1, len(chain))
                             if (MODELS / f"{name}_stage{n}_loss.png").is_file()))
    return lines


def held_out_summary(card: dict, name: str) -> dict:
    """Per held-out case of the model's dimension, TRE (mm) before, after the network's pass, as returned by
    one pass (after the similarity check, with the start it chose), refined, and our ``bspline``'s; only for
    the weights the method runs by default (``{}`` otherwise, or without results)."""
    from learnreg.registration import create_registrar

    ndim, method = card["model"]["ndim"], card["method"]
    if create_registrar(method).shipped_weights(ndim).name != f"{name}.pt":
        return {}
    rows, environment = _rows("heldout")
    if not rows or not measured_after_training(environment, card):
        return {}
    by = {(r["case"], r["method"]): r for r in rows}
    cases = {}
    for case in dict.fromkeys(r["case"] for r in rows):
        one, refined, classical = (by.get((case, m)) for m in (f"{method} (one pass)", f"{method} (refined)",
                                                               "bspline"))
        if one is None or refined is None or f"{ndim}d-" not in case:
            continue
        cases[case] = {"tre_before": one["tre_before_mean"], "network_one_pass": one["network_tre_mean"],
                       "returned_one_pass": one["tre_mean"], "start": one["start"], "refined": refined["tre_mean"],
                       "refined_seconds": refined["seconds"], "bspline": classical["tre_mean"],
                       "bspline_seconds": classical["seconds"]}
    return {"cases": cases, "environment": environment} if cases else {}


def held_out_lines(card: dict) -> list[str]:
    held = card.get("held_out")
    if not held:
        return []
    lines = ["## Held-out images and deformations (`benchmarks/results/heldout.md`)", "",
             "Images of patients no recipe can read (pyradiomics' test images, `learnreg/training/held_out.py`): "
             "MR and CT, oblique and anisotropic grids in 3D, dense, local and breathing deformations (which of "
             "them this model's training drew: Data above); mean TRE in mm.", "",
             "| case | before | network's pass | one pass as returned (start) | refined (s) | `bspline` (s) |",
             "|---|---|---|---|---|---|"]
    for case, r in held["cases"].items():
        lines.append(f"| {case} | {r['tre_before']:.2f} | {r['network_one_pass']:.2f} "
                     f"({r['network_one_pass'] / r['tre_before']:.2f} x) | {r['returned_one_pass']:.2f} ({r['start']}) "
                     f"| {r['refined']:.2f} ({r['refined_seconds']:.2f}) | {r['bspline']:.2f} "
                     f"({r['bspline_seconds']:.2f}) |")
    return lines + ["", f"Measured {held['environment'].get('date', '')} on {held['environment'].get('cpu_threads')} "
                        "CPU threads.", ""]


def data_lines(card: dict) -> list[str]:
    """The card's data part: images, validation, pairs, label synthesis, sources and licences."""
    d = card["data"]
    sources = ["Debian `mricron-data` (Colin27, INIA19; BSD-3-Clause)",
               "`insighttoolkit5-examples` (Apache-2.0)"]
    if any("cranium_ct" in image for image in d["training_images"]):
        sources.append("`invesalius-examples` (a head CT; GPL-2)")
    synthesis = d.get("label_synthesis")
    return [f"- Training: {', '.join(d['training_images'])} -> {d['training_entries']} "
            f"{'slices' if card['model']['ndim'] == 2 else 'volumes and sub-volumes'}"
            + (f", of them {synthesis['images']} images drawn from random label maps of {synthesis['labels']} "
               "labels (`learnreg/training/label_synthesis.py`)" if synthesis else "") + ".",
            f"- Validation (held out): {', '.join(d['validation_images'])} -> {d['validation_pairs']} fixed pairs.",
            f"- Pairs: {d['pairs']} (fractions of the working grid's extent).",
            f"- Sources and licences: {', '.join(sources)}; `scripts/get_training_data.sh` unpacks them."]


def storage_note(storage: dict | None) -> str:
    """A sentence on weights rounded to float16 after training (``scripts/store_float16.py``), or nothing."""
    if not storage:
        return ""
    return (f" Rounded from the trained float32 weights (SHA-256 `{storage['float32_sha256'][:12]}`) on "
            f"{storage['date']}: on the held-out cases the one pass's mean TRE moved by at most "
            f"{storage['held_out_one_pass_tre_change_mm']:.4f} mm and no voxel's displacement by more than "
            f"{storage['held_out_one_pass_field_difference_mm']:.3f} mm; benchmarks run before the rounding measured the "
            "float32 weights.")


def markdown(card: dict, name: str, has_curve: bool) -> str:
    parts = {"istn": istn_parts, "cnnregress": cnnregress_parts, "ddfnet": ddfnet_parts}.get(card["method"],
                                                                                           r2n2_parts)(card)
    t, best = card["training"], card["validation"]["best"]
    lines = [f"# Model card: {card['title']} (`{card['weights_file']}`)", "",
             f"Method `{card['method']}`; weights format version {card['format_version']}; "
             f"SHA-256 `{card['sha256']}` (checked on every load); stored in {card.get('weights_precision', 'float32')}, "
             "run in float32." + storage_note(card.get("storage")), "",
             "## Model", "", *parts["model"], "",
             "## Data", "", *data_lines(card), "",
             "## Training", "",
             f"- {t['iterations']} iterations x batch {t['batch_size']} x {t['processes']} process(es); Adam (AMSGrad) "
             f"lr {t['learning_rate']}" + (f" (cosine decay to {t['final_learning_rate']})" if t.get("final_learning_rate")
                                          else "") + f", gradient clip {t['grad_clip']}; {parts['loss']}.",
             f"- Wall time {t['wall_time_s'] / 60:.1f} min on {t['hardware']} (torch {t['torch']}).",
             *([f"- Recipe `{name}.toml`; its header notes how these weights were made where the run departed "
                "from it."] if (MODELS / f"{name}.toml").is_file() else []),
             f"- Kept: {parts['kept']}, iteration {best['iteration']}.", *stage_lines(card, name), "",
             *parts["validation"], ""]
    if has_curve:
        lines += [f"![loss curve]({name}_loss.png)", ""]
    lines += [*parts.get("figures", []), ""] if parts.get("figures") else []
    bench = card.get("benchmark")
    if bench:
        columns = parts["columns"] + [("det J <= 0 (%)", "percent_nonpositive_jacobian", 3), ("seconds", "seconds", 2),
                                      ("parameters", "parameters", 0)]
        lines += [f"## Held-out benchmark ({len(bench['cases'])} cases: {', '.join(bench['cases'])})", "",
                  "| method | " + " | ".join(c[0] for c in columns) + " |", "|---|" + "---|" * len(columns)]
        for m, s in bench["methods"].items():
            lines.append(f"| {m} | " + " | ".join(f"{s[key]:.{digits}f}" for _, key, digits in columns) + " |")
        lines += ["", f"From `benchmarks/results/{card['method']}.md` ({bench['environment']}).", ""]
    lines += held_out_lines(card)
    lines += ["## Use", "", parts["use"], ""]
    return "\n".join(lines)


def main() -> None:
    for card_file in sorted(MODELS.glob("*.card.json")):
        name = card_file.name[: -len(".card.json")]
        card = json.loads(card_file.read_text())
        curves = {f"{name}_loss.png": ROOT / "runs" / name / "loss.png",
                  **{f"{name}_stage{n}_loss.png": ROOT / "runs" / f"{name}_stage{n}" / "loss.png"
                     for n in range(1, len(stages(card)))}}
        for target, curve in curves.items():
            if curve.is_file():
                shutil.copyfile(curve, MODELS / target)
        sampling = ROOT / "runs" / name / "sampling.png"
        if sampling.is_file():
            shutil.copyfile(sampling, MODELS / f"{name}_sampling.png")
        before = json.dumps(card, indent=2) + "\n"
        for key, entry in (("benchmark", benchmark_summary(card)), ("held_out", held_out_summary(card, name))):
            card.pop(key, None)
            card.update({key: entry} if entry else {})
        if json.dumps(card, indent=2) + "\n" != before:
            card_file.write_text(json.dumps(card, indent=2) + "\n")
        (MODELS / f"{name}.md").write_text(markdown(card, name, (MODELS / f"{name}_loss.png").is_file()))
        print(f"wrote {name}.md")


if __name__ == "__main__":
    main()
