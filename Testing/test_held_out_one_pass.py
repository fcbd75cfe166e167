"""Issue 18's bar, per learned method and dimension: on a held-out pair, the network's pass alone at least
halves the mean landmark TRE, without folding (ISTN's pass includes its own test-time refinement, the paper's).

The pairs are bundled (exact landmarks) and were never read by any training or validation: ``brain2d`` (ITK's
BrainT1Slice) and ``head3d`` (ITK's KmeansTest head, skull on, another person than the Colin27 and head CT
the 3D models trained on). The full held-out benchmark (other patients, CT, oblique grids, other deformation
families) is ``benchmarks/heldout.py``; its table states the same bar on every case.
"""

from __future__ import annotations

import numpy as np
import pytest

from learnreg.image import normalise
from learnreg.metrics import folding, tre
from learnreg.options import ONE_PASS
from learnreg.registration import create_registrar
from learnreg.sample_data import sample_pairs


#: (method, pair) -> why the bar is not reached yet, with the measured numbers; strict, so a model that
#: reaches it turns the case into a failure that asks for its entry to go
NOT_YET = {
    ("r2n2", "head3d"): "the CPU-trained 3D R2N2 takes head3d from 4.89 to 3.42 mm (0.70)",
    ("cnnregress", "head3d"): "the 3D CNNRegress (robust second stage, 0.5 % active points) takes head3d from 4.89 to "
                              "3.31 mm (0.68)",
    ("ddfnet", "head3d"): "the 3D ddfnet (robust recipe) takes head3d from 4.89 to 3.32 mm (0.68)",
}


def _case(method: str, pair: str):
    marks = [pytest.mark.xfail(strict=True, reason=NOT_YET[(method, pair)])] if (method, pair) in NOT_YET else []
    if not create_registrar(method).shipped_weights(3 if pair.endswith("3d") else 2).is_file():
        marks.append(pytest.mark.skip(reason=f"no shipped {method} weights for {pair}"))
    return pytest.param(method, pair, marks=marks, id=f"{method}-{pair}")


@pytest.mark.parametrize("method, pair", [_case(m, p) for m in ("r2n2", "istn", "cnnregress", "ddfnet")
                                          for p in ("brain2d", "head3d")])
def test_one_pass_at_least_halves_tre_on_a_held_out_pair(method, pair):
    fixed, moving, landmarks = sample_pairs()[pair].load()
    result = create_registrar(method, ONE_PASS).register(fixed, moving)
    before = tre(landmarks.fixed, landmarks.moving)["mean"]
    after = tre(landmarks.fixed, landmarks.moving, result.field)["mean"]
    assert folding(result.field)["percent_nonpositive_jacobian"] < 0.1
    assert after <= 0.5 * before, (before, after)


#: the most a pass may move an image registered to itself, on average over its foreground (mm; brain2d's pixels
#: are 1 mm). The 2D ddfnet trained without aligned pairs (``[pairs] identity_fraction``) moved it by 0.90 mm.
ALIGNED_DRIFT_MM = 0.75


@pytest.mark.parametrize("method", ("r2n2", "istn", "cnnregress", "ddfnet"))
def test_one_pass_leaves_an_aligned_pair_nearly_alone(method):
    if not create_registrar(method).shipped_weights(2).is_file():
        pytest.skip(f"no shipped 2D {method} weights")
    fixed = sample_pairs()["brain2d"].load()[0]
    field = create_registrar(method, ONE_PASS).register(fixed, fixed).field.to_axis_tensor()[0].numpy()
    foreground = normalise(fixed, "percentile").spatial_array() > 0.1
    assert float(np.linalg.norm(field, axis=0)[foreground].mean()) < ALIGNED_DRIFT_MM
