#!/usr/bin/env python3
"""ANTs SyN through antspyx, run in the peers' own environment (scripts/setup_peers.sh: antspyx pins numpy and
scipy versions that learnreg's environment must not get).

Usage: .venv-peers/bin/python benchmarks/ants_worker.py FIXED MOVING FIELD_OUT [SyNOnly|SyN]
Registers MOVING to FIXED and writes the pull displacement field on the fixed grid (ITK/LPS mm) to FIELD_OUT,
then prints the registration's own wall time in seconds as JSON.
- ``SyNOnly`` (default): deformable SyN only, for pairs that are affinely aligned (as in the CNNRegress paper);
  the field is SyN's forward warp file, and the worker checks that the initial transform is the identity.
- ``SyN``: an affine stage, then SyN; the field is the two composed by antsApplyTransforms.
Both use the CC metric and 100/70/50 SyN iterations.
"""

import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

import ants
import numpy as np

fixed, moving = ants.image_read(sys.argv[1]), ants.image_read(sys.argv[2])
kind = sys.argv[4] if len(sys.argv) > 4 else "SyNOnly"
if kind not in ("SyNOnly", "SyN"):
    sys.exit(f"unknown transform type {kind}: use SyNOnly or SyN")
start = time.perf_counter()
result = ants.registration(fixed, moving, type_of_transform=kind, reg_iterations=(100, 70, 50),
                           syn_metric="CC", syn_sampling=2, verbose=False)
seconds = time.perf_counter() - start
transforms = result["fwdtransforms"]
warps = [t for t in transforms if t.endswith(".nii.gz")]
linear = [t for t in transforms if t.endswith(".mat")]
if len(warps) != 1:
    sys.exit(f"expected one forward warp, got {transforms}")
if kind == "SyNOnly":
    for path in linear:  # SyNOnly writes an identity initial transform; anything else would change the field
        parameters = ants.read_transform(path).parameters
        if not np.allclose(parameters, np.eye(fixed.dimension).ravel().tolist() + [0.0] * fixed.dimension, atol=1e-6):
            sys.exit(f"{path} is not the identity: {parameters}")
    shutil.copyfile(warps[0], sys.argv[3])
else:
    with tempfile.TemporaryDirectory() as folder:
        composed = ants.apply_transforms(fixed, moving, transforms, compose=str(Path(folder) / "all"))
        shutil.copyfile(composed, sys.argv[3])
print(json.dumps({"seconds": seconds}))
