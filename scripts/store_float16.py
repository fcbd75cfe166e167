#!/usr/bin/env python3
"""Store shipped weights in float16 where that leaves their one pass unchanged on the held-out cases.

For each float32 weights file in ``Resources/Models`` (or those named): the network's one pass (``refine=none``)
on the held-out cases of its dimension (``benchmarks/heldout.py``), with the weights as stored and rounded to
float16. When no mean TRE moves by more than ``--tolerance`` mm (0.01) and no voxel's displacement by more
than ``--field-tolerance`` mm (0.2, a fifth of the finest held-out voxel) the file is rewritten in float16 (half
its size; networks always run in float32) and its card gains a ``storage`` entry: the date, the float32 file's
SHA-256 and the largest TRE change and field difference measured. Otherwise the file stays as it is and the
script says why (ISTN's 2D models refine the whole STN at test time, which amplifies the rounding).

Why: the weights are most of the extension's size (64 MB before this script, of which float32 tensors 50 MB),
and the device machines that train the networks take a working tree of at most 64 MiB.

Usage: python scripts/store_float16.py [--tolerance MM] [NAME ...]   (after scripts/get_benchmark_data.sh)
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))

from heldout import build_cases  # noqa: E402
from learnreg.cnnregress.model import CNNRegressModel  # noqa: E402
from learnreg.ddfnet.model import DDFNetModel  # noqa: E402
from learnreg.istn.model import ISTNModel  # noqa: E402
from learnreg.metrics import tre  # noqa: E402
from learnreg.model_files import MODELS_DIR, read_card  # noqa: E402
from learnreg.r2n2.model import R2N2Model  # noqa: E402
from learnreg.registration import create_registrar  # noqa: E402

MODEL_CLASSES = {"r2n2": R2N2Model, "istn": ISTNModel, "cnnregress": CNNRegressModel, "ddfnet": DDFNetModel}
#: card entries that saving writes anew
WRITTEN_BY_SAVE = ("format_version", "weights_file", "sha256", "weights_precision", "method")


def pass_options(card: dict) -> dict:
    """The registrar options that select this card's network, one pass only."""
    options = {"refine": "none"}
    if card["method"] == "istn":
        options.update(transformation=card["model"]["transformation"], variant=card["model"]["variant"])
    if card["method"] == "ddfnet":
        options["output"] = card["model"]["output"]
    return options


def compare(weights: Path, rounded: Path, card: dict, cases) -> tuple[float, float]:
    """Largest change of the one pass's mean TRE and largest field difference (mm) over ``cases``."""
    tre_change, field_difference = 0.0, 0.0
    for case in cases:
        passes = [create_registrar(card["method"], {**pass_options(card), "weights": str(w)})
                  .register(case.fixed, case.moving, device="cpu").one_pass for w in (weights, rounded)]
        tres = [tre(case.fixed_points, case.moving_points, p)["mean"] for p in passes]
        tre_change = max(tre_change, abs(tres[1] - tres[0]))
        field_difference = max(field_difference,
                               float(np.linalg.norm(passes[1].vectors - passes[0].vectors, axis=-1).max()))
        print(f"  {case.name}: TRE {tres[0]:.4f} -> {tres[1]:.4f} mm", flush=True)
    return tre_change, field_difference


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("names", nargs="*", help="weights file names (default: every float32 file)")
    parser.add_argument("--tolerance", type=float, default=0.01, help="largest TRE change allowed, mm")
    parser.add_argument("--field-tolerance", type=float, default=0.2, help="largest field difference allowed, mm")
    args = parser.parse_args()
    torch.set_num_threads(2)
    cases = build_cases(False)
    paths = [MODELS_DIR / n for n in args.names] if args.names else sorted(MODELS_DIR.glob("*.pt"))
    for path in paths:
        card = read_card(path)
        if card.get("weights_precision", "float32") != "float32":
            continue
        print(f"{path.name} ({path.stat().st_size / 1e6:.1f} MB)", flush=True)
        model = MODEL_CLASSES[card["method"]].load(path)
        kept = {k: v for k, v in card.items() if k not in WRITTEN_BY_SAVE}
        ndim = model.network.config.ndim
        with tempfile.TemporaryDirectory() as folder:
            rounded = Path(folder) / path.name
            model.save(rounded, kept, precision="float16")
            tre_change, field_difference = compare(path, rounded, card, [c for c in cases if c.fixed.ndim == ndim])
        if tre_change > args.tolerance or field_difference > args.field_tolerance:
            print(f"  kept in float32: the one pass's TRE moves by {tre_change:.4f} mm (field by up to "
                  f"{field_difference:.3f} mm) when rounded", flush=True)
            continue
        storage = {"precision": "float16", "date": time.strftime("%Y-%m-%d", time.gmtime()),
                   "float32_sha256": card["sha256"], "held_out_one_pass_tre_change_mm": round(tre_change, 4),
                   "held_out_one_pass_field_difference_mm": round(field_difference, 4)}
        model.save(path, {**kept, "storage": storage}, precision="float16")
        print(f"  stored in float16 ({path.stat().st_size / 1e6:.1f} MB): TRE change {tre_change:.4f} mm", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
