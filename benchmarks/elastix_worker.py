#!/usr/bin/env python3
"""elastix (itk-elastix) B-spline registration, run in the peers' own environment (scripts/setup_peers.sh).

Usage: .venv-peers/bin/python benchmarks/elastix_worker.py FIXED MOVING FIELD_OUT default|tuned [--log]
Registers MOVING to FIXED with an affine stage then a B-spline stage, writes the pull displacement field on the
fixed grid (ITK/LPS mm, transformix's deformation field) to FIELD_OUT, and prints the registration's own wall
time in seconds as JSON (without starting the process, importing ITK and writing the field).
- ``default``: elastix's default affine and B-spline parameter maps (4 resolutions, 256 iterations each,
  2048 random samples, final grid spacing 10 mm, mutual information with a bending-energy penalty);
- ``tuned``: the B-spline map with learnreg's final control spacing (8 voxels), 3 resolutions and 200
  iterations with 4096 samples.
"""

import json
import sys
import time

import itk

fixed = itk.imread(sys.argv[1], itk.F)
moving = itk.imread(sys.argv[2], itk.F)
kind = sys.argv[4] if len(sys.argv) > 4 else "default"
if kind not in ("default", "tuned"):
    sys.exit(f"unknown parameter set {kind}: use default or tuned")
parameters = itk.ParameterObject.New()
parameters.AddParameterMap(parameters.GetDefaultParameterMap("affine"))
bspline = parameters.GetDefaultParameterMap("bspline")
if kind == "tuned":
    del bspline["FinalGridSpacingInPhysicalUnits"]
    bspline["FinalGridSpacingInVoxels"] = ["8"]
    bspline["NumberOfResolutions"] = ["3"]
    bspline["GridSpacingSchedule"] = ["4", "2", "1"]
    bspline["MaximumNumberOfIterations"] = ["200"]
    bspline["NumberOfSpatialSamples"] = ["4096"]
parameters.AddParameterMap(bspline)
start = time.perf_counter()
_, transform = itk.elastix_registration_method(fixed, moving, parameter_object=parameters, log_to_console=("--log" in sys.argv))
seconds = time.perf_counter() - start
field = itk.transformix_deformation_field(moving, transform)  # on the fixed grid, in the resampling direction
itk.imwrite(field, sys.argv[3])
print(json.dumps({"seconds": seconds}))
