"""CNNRegress: the NCC similarity layer against a direct computation, the equalised sampler's output
distribution, the thin-plate spline (exact at its points, smooth between), patches, training from a
configuration, the registrar, its scene nodes, and the shipped weights on a held-out pair."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from conftest import tiny_training_sections
from learnreg.cnnregress.model import CNNRegressModel, compose, unit_grid
from learnreg.cnnregress.network import CNNRegressConfig, CNNRegressNetwork
from learnreg.cnnregress.sampling import (MAX_POINTS, MIN_POINTS, PatchCutter, active_points,
                                          equalised_probabilities, importance, point_count, sample_points)
from learnreg.cnnregress.similarity import NCCSimilarity
from learnreg.cnnregress.tps import ThinPlateSpline, dense_field, grid_positions
from learnreg.cnnregress.training import gather_vectors
from learnreg.errors import InputError
from learnreg.image import Image, load_image
from learnreg.options import ONE_PASS
from learnreg.registration import create_registrar
from learnreg.sample_data import sample_image
from learnreg.warp import Warper

ROOT = Path(__file__).resolve().parents[1]


# ----------------------------------------------------------------- similarity layer
@pytest.mark.parametrize("ndim", [2, 3])
def test_ncc_maps_match_a_direct_computation(ndim):
    """Each map value is Pearson's correlation of the fixed centre neighbourhood with the moving neighbourhood of
    that position, computed here voxel by voxel with numpy."""
    torch.manual_seed(0)
    patch, radii = 7, (1, 2, 3)
    layer = NCCSimilarity(ndim, radii, patch)
    fixed = torch.randn(2, 1, *[patch] * ndim)
    moving = torch.randn(2, 1, *[patch + 2 * max(radii)] * ndim)
    maps = layer(fixed, moving)
    assert maps.shape == (2, len(radii), *[patch] * ndim)
    c, margin = patch // 2, max(radii)
    rng = np.random.default_rng(1)
    for b in range(2):
        for channel, r in enumerate(radii):
            kernel = fixed[b, 0][(slice(c - r, c + r + 1),) * ndim].numpy().ravel()
            for v in rng.integers(0, patch, size=(6, ndim)):
                window = tuple(slice(x + margin - r, x + margin + r + 1) for x in v)
                expected = np.corrcoef(kernel, moving[b, 0][window].numpy().ravel())[0, 1]
                assert maps[b, channel][tuple(v)].item() == pytest.approx(expected, abs=1e-4)


def test_ncc_finds_the_shift_and_is_zero_on_flat_patches():
    """The moving patch is the fixed one shifted: every map peaks (value 1) at the shift; a flat moving patch
    gives 0, not a division by zero."""
    torch.manual_seed(1)
    image = torch.randn(1, 1, 40, 40)
    patch, margin, shift = 9, 3, (2, -1)  # (rows, columns)
    fixed = image[:, :, 10:19, 10:19]
    moving = image[:, :, 10 - margin + shift[0]:19 + margin + shift[0], 10 - margin + shift[1]:19 + margin + shift[1]]
    maps = NCCSimilarity(2, (1, 2, 3), patch)(fixed, moving)
    for channel in range(3):
        peak = divmod(int(maps[0, channel].argmax()), patch)
        assert peak == (4 - shift[0], 4 - shift[1])
        assert maps[0, channel].max().item() == pytest.approx(1.0, abs=1e-4)
    flat = NCCSimilarity(2, (1, 2), patch)(fixed, torch.full((1, 1, patch + 4, patch + 4), 0.7))
    assert torch.all(flat == 0)


# ----------------------------------------------------------------- sampling
def test_equalised_sampling_is_uniform_below_tau_and_plain_sampling_is_not():
    """Real image, smooth displacement lengths growing across it: the equalised draw fills the 8 bins on (0, tau]
    equally (each within 2 percentage points of 12.5 %) and never passes tau; importance-only sampling does not."""
    fixed = load_image(sample_image("brain_t1_slice"))
    image = torch.from_numpy(np.asarray(fixed.array, dtype=np.float32)[0])
    image = (image / image.max())[None, None]
    height, width = image.shape[2:]
    length = torch.linspace(0, 1, width).pow(3).expand(height, width)[None] * 6.0  # mostly small, like real fields
    tau, bins = 4.0, 8
    probabilities = equalised_probabilities(image, length, tau, bins)
    assert probabilities.sum().item() == pytest.approx(1.0, abs=1e-5)
    generator = torch.Generator().manual_seed(0)
    images, positions = sample_points(probabilities, 20000, generator)
    drawn = length[0][positions[:, 1], positions[:, 0]]
    assert torch.all(images == 0) and drawn.max() <= tau and drawn.min() > 0
    fractions = np.histogram(drawn.numpy(), bins=bins, range=(0, tau))[0] / len(drawn)
    assert np.all(np.abs(fractions - 1 / bins) < 0.02), fractions
    plain = importance(image) / importance(image).sum()
    _, positions = sample_points(plain, 20000, generator)
    plain_drawn = length[0][positions[:, 1], positions[:, 0]]
    plain_fractions = np.histogram(plain_drawn.numpy(), bins=bins, range=(0, tau))[0] / len(plain_drawn)
    assert plain_fractions[0] > 0.3 and (plain_drawn > tau).any()


def test_active_points_favour_edges_are_repeatable_and_their_count_is_clamped():
    fixed = load_image(sample_image("brain_t1_slice"))
    image = torch.from_numpy(np.asarray(fixed.array, dtype=np.float32)[0] / float(np.max(fixed.array)))[None, None]
    points = active_points(image, 300)
    assert points.shape == (300, 2) and len({tuple(p) for p in points.tolist()}) == 300
    assert torch.equal(points, active_points(image, 300))
    weights = importance(image)[0]
    assert weights[points[:, 1], points[:, 0]].mean() > 2 * weights.mean()
    assert point_count(0.009, 128 * 128) == (147, "")
    count, note = point_count(0.0001, 64 * 64)
    assert count == MIN_POINTS and "too few for a well-posed thin-plate spline" in note
    count, note = point_count(0.5, 128 ** 3)
    assert count == MAX_POINTS and "time and memory" in note


def test_patches_are_centred_and_padding_is_the_trained_one():
    image = torch.rand(2, 1, 12, 10)
    cutter = PatchCutter(patch_size=5, margin=2)
    prepared = cutter.prepare(image)
    images = torch.tensor([0, 1, 1])
    positions = torch.tensor([[0, 0], [9, 11], [4, 6]])  # (i, j): column, row
    fixed, moving = cutter.pairs(prepared, prepared, images, positions)
    assert fixed.shape == (3, 1, 5, 5) and moving.shape == (3, 1, 9, 9)
    for n, (b, (i, j)) in enumerate(zip(images, positions)):
        assert fixed[n, 0, 2, 2] == prepared[b, 0, j + cutter.half, i + cutter.half]
        assert moving[n, 0, 4, 4] == fixed[n, 0, 2, 2]
    mean, std = image[0].mean(), image[0].std()
    assert fixed[0, 0, 0, 0].item() == pytest.approx(float((0 - mean) / std), abs=1e-5)  # outside: intensity 0
    field = torch.randn(2, 2, 12, 10)
    vectors = gather_vectors(field, images, positions)
    assert torch.equal(vectors[1], field[1, :, 11, 9])


# ----------------------------------------------------------------- thin-plate spline
@pytest.mark.parametrize("ndim", [2, 3])
def test_tps_is_exact_at_its_points_reproduces_affine_fields_and_is_smooth_between(ndim):
    rng = np.random.default_rng(3)
    spatial = (24,) * ndim
    count = 60 if ndim == 2 else 400  # about 6 voxels apart in 2D, 3 in 3D
    points = torch.from_numpy(rng.uniform(0, 23, size=(count, ndim))).float()
    values = torch.from_numpy(rng.normal(size=(count, ndim))).float()
    spline = ThinPlateSpline.fit(points, values)
    assert torch.allclose(spline(points), values, atol=1e-4)  # exact at the control points
    matrix, offset = rng.normal(size=(ndim, ndim)) * 0.05, rng.normal(size=ndim)
    affine = torch.from_numpy(points.numpy() @ matrix.T + offset).float()
    grid = grid_positions(spatial)
    field = dense_field(points, affine, spatial)
    expected = (grid.numpy() @ matrix.T + offset).T.reshape(ndim, *spatial)
    assert np.allclose(field[0].numpy(), expected, atol=1e-3)  # affine fields are reproduced everywhere
    smooth = torch.sin(points / 6.0)  # a smooth field sampled at the points, checked between them
    inner = (grid > 4).all(1) & (grid < 19).all(1)
    error = (ThinPlateSpline.fit(points, smooth)(grid[inner]) - torch.sin(grid[inner] / 6.0)).abs()
    assert error.max() < 0.1 and error.mean() < 0.02
    strided = dense_field(points, smooth, spatial, stride=2)
    difference = (strided - dense_field(points, smooth, spatial)).abs()  # linear steps of 2 voxels between
    assert difference.max() < 0.06 and difference.mean() < 0.01  # (3D's kernel r has a kink at each point)


@pytest.mark.parametrize("ndim", [2, 3])
def test_tps_refuses_ill_posed_point_sets_and_smoothing_trades_exactness(ndim):
    """Too few points or points on a line are refused; more smoothing moves the spline monotonically away from
    noisy values towards their affine fit, never beyond it (the kernel signs keep the system definite)."""
    with pytest.raises(ValueError, match=f"at least {ndim + 2} points"):
        ThinPlateSpline.fit(torch.zeros(ndim + 1, ndim), torch.zeros(ndim + 1, ndim))
    line = torch.arange(10.0)[:, None] * torch.arange(1.0, ndim + 1)
    with pytest.raises(ValueError, match="line or plane"):
        ThinPlateSpline.fit(line, torch.zeros(10, ndim))
    rng = np.random.default_rng(4)
    points = torch.from_numpy(rng.uniform(0, 20, size=(60, ndim))).float()
    noisy = torch.from_numpy(rng.normal(size=(60, ndim))).float()
    residuals = [float((ThinPlateSpline.fit(points, noisy, smoothing=value)(points) - noisy).abs().mean())
                 for value in (0.0, 0.01, 0.1, 1.0, 100.0)]
    assert residuals[0] < 1e-3 and all(a < b for a, b in zip(residuals, residuals[1:]))
    assert residuals[-1] < noisy.abs().mean()


def test_composition_of_pull_fields():
    """Translating by a then by b composes to a + b; a zero increment leaves the field."""
    config = CNNRegressConfig(ndim=2, working_size=16, patch_size=7, ncc_radii=(1,), channels=(4,), pool_after=1,
                              fc_hidden=(4, 4), max_displacement=2.0)
    warper = Warper(unit_grid(config), unit_grid(config))
    a = torch.zeros(1, 2, 16, 16)
    a[:, 0] = 1.5
    b = torch.zeros(1, 2, 16, 16)
    b[:, 1] = -2.0
    assert torch.allclose(compose(a, b, warper), a + b)
    assert torch.allclose(compose(a, torch.zeros_like(a), warper), a)


# ----------------------------------------------------------------- network
def test_network_shapes_bounds_and_configuration_errors():
    config = CNNRegressConfig(ndim=3, working_size=32, patch_size=11, ncc_radii=(1, 2), channels=(4, 8),
                              pool_after=1, fc_hidden=(8, 8), max_displacement=2.5)
    assert config.input_size == 15 and config.feature_size() == 2
    network = CNNRegressNetwork(config)
    out = network(torch.randn(5, 1, 11, 11, 11), torch.randn(5, 1, 15, 15, 15) * 100)
    assert out.shape == (5, 3) and out.abs().max() <= 2.5
    assert list(network.similarity.parameters()) == []  # the NCC layer has nothing to train
    with pytest.raises(InputError, match="too small"):
        CNNRegressConfig(ndim=2, patch_size=7, ncc_radii=(1, 2), channels=(4, 4, 4), pool_after=1).validate()
    with pytest.raises(InputError, match="ncc_radii"):
        CNNRegressConfig(ndim=2, patch_size=7, ncc_radii=(4,)).validate()


# ----------------------------------------------------------------- training, registrar, scene
def _tiny_training_config(folder: Path) -> Path:
    config = folder / "cnnregress.toml"
    image = sample_image("brain_t1_slice")
    config.write_text(f"""
[data]
images = ["{image}"]
validation_images = ["{image}"]

[model]
ndim = 2
working_size = 32
patch_size = 9
ncc_radii = [1, 2]
channels = [4, 8]
pool_after = 1
fc_hidden = [8, 8]
max_displacement = 2.0

[pairs]
max_displacement = 0.06

[sampling]
points_per_pair = 16
validation_density = 0.05
""" + tiny_training_sections(3))
    return config


def test_training_writes_weights_that_the_registrar_runs(tmp_path, monkeypatch):
    from learnreg.cnnregress.training import train_cnnregress

    card = train_cnnregress(_tiny_training_config(tmp_path))
    assert card["training"]["iterations"] == 3 and card["model"]["patch_size"] == 9
    assert {"val_field_error", "val_error_before", "val_error_one_iteration", "val_point_error"} <= set(
        card["validation"]["best"])
    histograms = card["sampling_histograms"]
    assert sum(histograms["equalised"]) == sum(histograms["active points"]) > 0
    assert (tmp_path / "run" / "sampling.png").is_file() and (tmp_path / "run" / "loss.png").is_file()
    weights = tmp_path / "out" / "model.pt"
    assert CNNRegressModel.load(weights).config.working_size == 32

    fixed = load_image(sample_image("brain_t1_slice"))
    moving = Image(np.roll(np.asarray(fixed.array), 3, axis=-1), fixed.grid)
    messages = []
    result = create_registrar("cnnregress", {**ONE_PASS, "weights": str(weights), "density_percent": 0.01}).register(
        fixed, moving, progress=lambda fraction, message: messages.append(message))
    assert any("too few for a well-posed thin-plate spline" in m for m in messages)
    assert result.field.grid == fixed.grid and len(result.steps) == 2 and len(result.loss_history) == 3
    assert np.allclose(sum(s.displacement.vectors for s in result.steps), result.field.vectors, atol=1e-4)
    step = result.steps[0]
    assert step.points.shape == (MIN_POINTS, 3) and step.point_displacements.shape == (MIN_POINTS, 3)
    assert fixed.grid.contains(step.points).all() and np.all(step.point_displacements[:, 2] == 0)
    assert {"network", "thin_plate_spline"} <= set(result.timings)

    with pytest.raises(InputError, match="passes="):
        create_registrar("cnnregress", {"passes": 0})
    with pytest.raises(InputError, match="density_percent="):
        create_registrar("cnnregress", {"density_percent": 80})
    automatic = create_registrar("cnnregress").options  # density_percent=0: chosen per dimension
    assert (automatic.density_for(2), automatic.density_for(3)) == (2.0, 0.5)
    assert create_registrar("cnnregress", {"density_percent": 3}).options.density_for(2) == 3
    monkeypatch.setattr("learnreg.cnnregress.model.MODELS_DIR", tmp_path / "none")
    with pytest.raises(InputError, match="no shipped 2D CNNRegress weights"):
        create_registrar("cnnregress").register(fixed, moving)
    volume = load_image(sample_image("colin27_t1_3mm"))
    with pytest.raises(InputError, match="are for 2D images"):
        create_registrar("cnnregress", {"weights": str(weights)}).register(volume, volume)


def test_scene_gets_active_points_and_prediction_arrows(tmp_path):
    """A point list at the active points (RAS) with each prediction in its description, and one arrow model per
    pass, drawn in slice views too."""
    pytest.importorskip("slicer")
    from learnreg.cnnregress.training import train_cnnregress
    from learnreg.slicer.run import run_registration
    from learnreg.slicer.scene import create_scene
    from learnreg.slicer.volumes import add_volume_node

    train_cnnregress(_tiny_training_config(tmp_path), steps=1)
    fixed = load_image(sample_image("brain_t1_slice"))
    moving = Image(np.roll(np.asarray(fixed.array), 2, axis=-2), fixed.grid)
    scene = create_scene()
    fixed_node, moving_node = add_volume_node(scene, fixed, "fixed"), add_volume_node(scene, moving, "moving")
    out = run_registration(scene, fixed_node, moving_node, "cnnregress",
                           {"weights": str(tmp_path / "out/model.pt"), "density_percent": 5, **ONE_PASS}, device="cpu")
    nodes = out.active_points
    step = out.result.steps[0]
    count = len(step.points)
    assert nodes.points.GetNumberOfControlPoints() == count
    assert abs(count - 0.05 * 32 * 32 * 181 / 217) <= 2  # 5 % of the working voxels the 181 x 217 image covers
    position = [0.0, 0.0, 0.0]
    nodes.points.GetNthControlPointPosition(0, position)
    assert np.allclose(position, step.points[0] * [-1, -1, 1], atol=1e-4)  # LPS -> RAS
    assert nodes.points.GetNthControlPointDescription(0).startswith("iteration 1: (")
    assert [a.GetName().split(" (")[0] for a in nodes.arrows] == [f"cnnregress predictions, iteration {k}" for k in (1, 2)]
    assert all(a.GetPolyData().GetNumberOfPoints() > count for a in nodes.arrows)
    assert nodes.arrows[0].GetDisplayNode().GetVisibility2D()


# ----------------------------------------------------------------- shipped weights
SHIPPED = sorted((ROOT / "Resources" / "Models").glob("cnnregress_*.pt"))


def trained_iterations(card: dict) -> int:
    """Training iterations behind a card's weights, over every stage it was fine-tuned from."""
    training = card["training"]
    earlier = training.get("initial_weights")
    return training["iterations"] + (trained_iterations(earlier["card"]) if earlier else 0)


@pytest.mark.skipif(not SHIPPED, reason="no shipped CNNRegress weights in Resources/Models")
@pytest.mark.parametrize("weights", SHIPPED, ids=lambda p: p.stem)
def test_shipped_weights_halve_tre_on_a_held_out_pair(weights):
    """Every shipped model loads against its card and at least halves the mean TRE of the bundled pair of its
    dimension (brain2d: ITK's BrainT1Slice, never in training; brain3d: Colin27 at 3 mm under a synthetic
    deformation the model never saw)."""
    from learnreg.landmarks import match_pairs, read_landmarks
    from learnreg.metrics import tre
    from learnreg.sample_data import sample_pairs

    model = CNNRegressModel.load(weights)
    card = json.loads(weights.with_suffix(".card.json").read_text())
    assert trained_iterations(card) >= 1000 and card["model"]["ndim"] == model.config.ndim
    pair = sample_pairs()[f"brain{model.config.ndim}d"]
    fixed, moving = load_image(pair.fixed), load_image(pair.moving)
    fixed_points, moving_points, _ = match_pairs(read_landmarks(pair.fixed_landmarks),
                                                 read_landmarks(pair.moving_landmarks))
    result = create_registrar("cnnregress", {**ONE_PASS, "weights": str(weights)}).register(
        fixed, moving)
    assert tre(fixed_points, moving_points, result.field)["mean"] < 0.5 * tre(fixed_points, moving_points)["mean"]
