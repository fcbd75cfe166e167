#!/usr/bin/env python3
"""ANTs SyN through antspyx, run in the peers' own environment (scripts/setup_peers.sh: antspyx pins numpy and
scipy versions that learnreg's environment must not get).

Usage: .venv-peers/bin/python benchmarks/ants_worker.py FIXED MOVING FIELD_OUT
Registers MOVING to FIXED (deformable SyN only: the benchmark's pairs are affinely aligned, as in the
CNNRegress paper), writes the pull displacement field on the fixed grid (ITK/LPS mm, what SyN's forward warp
file holds) to FIELD_OUT and prints the registration's own wall time in seconds as JSON.
"""

import json
import shutil
import sys
import time

import ants
import numpy as np

fixed, moving = ants.image_read(sys.argv[1]), ants.image_read(sys.argv[2])
start = time.perf_counter()
result = ants.registration(fixed, moving, type_of_transform="SyNOnly", reg_iterations=(100, 70, 50),
                           syn_metric="CC", syn_sampling=2, verbose=False)
seconds = time.perf_counter() - start
warps = [t for t in result["fwdtransforms"] if t.endswith(".nii.gz")]
linear = [t for t in result["fwdtransforms"] if t.endswith(".mat")]
if len(warps) != 1:
    sys.exit(f"expected one forward warp, got {result['fwdtransforms']}")
for path in linear:  # SyNOnly writes an identity initial transform; anything else would change the field
    parameters = ants.read_transform(path).parameters
    if not np.allclose(parameters, np.eye(fixed.dimension).ravel().tolist() + [0.0] * fixed.dimension, atol=1e-6):
        sys.exit(f"{path} is not the identity: {parameters}")
shutil.copyfile(warps[0], sys.argv[3])
print(json.dumps({"seconds": seconds}))
