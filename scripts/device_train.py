#!/usr/bin/env python3
"""Train a recipe on a lent GPU machine within its time, and bring the run back.

The device machines (a session's `run` tool) take the working tree and at most 64 MiB in all, have PyTorch but
neither SimpleITK nor the training images, and give a session about 15 minutes; whatever a command writes
under ``$OUT`` comes back (files of at most 16 MB). So a run there is prepared here:

1. ``python scripts/device_train.py prepare METHOD RECIPE`` (here, where the images are): one training step
   with ``[data] bank_folder = runs/banks``, which builds the recipe's training and validation banks and
   stores them there (its weights go to ``runs/device/prepare``, never over a shipped file); prints the size
   the run will carry against the 64 MiB.
2. On the device machine, carrying ``runs/banks``:
   ``PYTHONPATH=. python3 scripts/device_train.py run METHOD RECIPE --minutes 8``
   trains from the stored banks (``device = auto`` takes the GPU, ``data_workers`` draw batches on its CPU
   cores) until the recipe's steps or the minutes are done, whichever first, writing the run into
   ``runs/device/<recipe>`` and copying weights, card, log, loss curve and, when small enough, the checkpoint
   into ``$OUT``. The same command again, with the checkpoint put back into ``runs/device/<recipe>``,
   resumes the run.

Both take ``--set SECTION.KEY=VALUE`` overrides (``training.batch_size=32``, ``model.working_size=64``, ...);
give ``prepare`` the ``[data]`` and ``[model]`` ones that ``run`` gets, since the banks depend on them.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from learnreg.errors import InputError  # noqa: E402
from learnreg.methods import find_method  # noqa: E402

#: what a device run takes with it, in all (the device tool's limit)
DEVICE_TREE_LIMIT = 64 * 2**20
#: the largest file that comes back from ``$OUT``
LARGEST_RETURNED_FILE = 16 * 10**6
#: what a run copies into ``$OUT``
RETURNED = ("model.pt", "model.card.json", "log.csv", "loss.png", "checkpoint.pt")


def tree_bytes() -> int:
    """Bytes of the files a device run takes: tracked and untracked files git does not ignore."""
    listed = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=ROOT,
                            capture_output=True, check=True).stdout.decode().split("\0")
    return sum((ROOT / name).stat().st_size for name in listed if name and (ROOT / name).is_file())


def folder_bytes(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())


def train(method: str, recipe: Path, runs: Path, run_folder: Path, overrides: list[str], **options) -> dict:
    """One training of ``recipe`` into ``run_folder`` with the banks in ``runs/banks``."""
    settings = [f"data.bank_folder={runs / 'banks'}", f"output.folder={run_folder}",
                f"output.weights_path={run_folder / 'model.pt'}", *overrides]
    return find_method(method).trainer_function()(recipe, overrides=settings, **options)


def prepare(args) -> int:
    train(args.method, args.recipe, args.runs, args.runs / "device" / "prepare", args.set, steps=1, resume=False)
    banks, tree = folder_bytes(args.runs / "banks"), tree_bytes()
    print(f"banks stored in {args.runs / 'banks'}: {banks / 2**20:.1f} MiB; a device run carrying them "
          f"takes {(tree + banks) / 2**20:.1f} MiB of its {DEVICE_TREE_LIMIT / 2**20:.0f} MiB")
    if tree + banks > DEVICE_TREE_LIMIT:
        print("too large for a device run: keep only this recipe's banks in the folder, or use a smaller working "
              "size or fewer crops", file=sys.stderr)
        return 2
    return 0


def run(args) -> int:
    run_folder = args.runs / "device" / args.recipe.stem
    card = train(args.method, args.recipe, args.runs, run_folder, [f"training.max_minutes={args.minutes}", *args.set])
    print(f"{card['training']['iterations']} of {card['training']['steps']} iterations in "
          f"{card['training']['wall_time_s'] / 60:.1f} min on {card['training']['hardware']}; best validation "
          f"{card['validation']['best']}")
    out = os.environ.get("OUT")
    if out:
        for name in RETURNED:
            source = run_folder / name
            if source.is_file() and source.stat().st_size <= LARGEST_RETURNED_FILE:
                shutil.copy2(source, Path(out) / name)
            elif source.is_file():
                print(f"{name} ({source.stat().st_size / 1e6:.0f} MB) is too large to come back", file=sys.stderr)
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    for name, help_text in (("prepare", "build and store the recipe's banks (here, where the images are)"),
                            ("run", "train from the stored banks within --minutes (on the device machine)")):
        command = commands.add_parser(name, help=help_text)
        command.add_argument("method")
        command.add_argument("recipe", type=Path)
        command.add_argument("--set", action="append", default=[], metavar="SECTION.KEY=VALUE")
        command.add_argument("--runs", type=Path, default=ROOT / "runs",
                             help="folder of the banks (banks/) and runs (device/); default: runs/ here")
        if name == "run":
            command.add_argument("--minutes", type=float, required=True, help="training time at most")
    args = parser.parse_args()
    try:
        return prepare(args) if args.command == "prepare" else run(args)
    except InputError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
