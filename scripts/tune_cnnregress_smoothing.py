#!/usr/bin/env python3
"""Choose the thin-plate-spline smoothing of trained CNNRegress weights on their recipe's validation pairs and
store it with them (weights and model card rewritten; the network's parameters are unchanged).

Training does this itself at its end; this script does the same for weights trained without it and can
re-check a model. It rebuilds exactly the validation pairs training used (same files, seed and count).

Usage: python scripts/tune_cnnregress_smoothing.py Resources/Models/cnnregress_2d.toml
"""

from __future__ import annotations

import sys

import torch

from learnreg.cnnregress.model import CNNRegressModel
from learnreg.cnnregress.training import SECTIONS, choose_smoothing, validation_setup
from learnreg.model_files import load_model_file
from learnreg.training.config import read_sections


def main(config_path: str) -> None:
    sections = read_sections(config_path, SECTIONS)
    weights = sections["output"].weights  # resolved against the recipe's folder
    payload, card = load_model_file(weights, "cnnregress")
    payload.setdefault("tps_smoothing", 0.0)
    model = CNNRegressModel.from_payload(payload, card)
    torch.set_num_threads(sections["training"].threads or torch.get_num_threads())
    _, _, pairs = validation_setup(sections["data"], model.config, sections["pairs"], sections["training"], "cpu")
    chosen, entry = choose_smoothing(model.network, pairs, sections["sampling"].validation_density)
    model.tps_smoothing = chosen
    kept = {k: v for k, v in card.items() if k not in ("format_version", "weights_file", "sha256", "method")}
    model.save(weights, {**kept, "tps_smoothing": entry})
    print(f"{weights}: tps_smoothing {chosen} ({entry['validation_field_error_by_smoothing']})")


if __name__ == "__main__":
    main(sys.argv[1])
