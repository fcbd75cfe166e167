"""ddfnet (DeepReg's registration network): outputs, label sampling, each training mode on a tiny run, and the
registrar on trained weights."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from conftest import fit_objective, tiny_structure_data_section, tiny_training_sections

from learnreg.ddfnet.model import DDFNetModel, shipped_weights
from learnreg.ddfnet.network import DDFNet, DDFNetConfig
from learnreg.ddfnet.registrar import affine_matrix_lps
from learnreg.ddfnet.training import DDFNetObjective, LossSettings, sample_one_structure
from learnreg.errors import InputError
from learnreg.field import jacobian_determinant
from learnreg.image import Grid, Image, load_image
from learnreg.metrics import folding, tre
from learnreg.options import ONE_PASS
from learnreg.registration import create_registrar
from learnreg.sample_data import sample_image, sample_pairs
from learnreg.training.pairs import PairBatch, training_grid
from learnreg.velocity import exponentiate
from learnreg.warp import Warper
from learnreg.working import field_on_fixed_grid, working_grid


def tiny_config(**changes) -> DDFNetConfig:
    return DDFNetConfig(**{"ndim": 2, "working_size": 16, "channels": (4, 8, 8), "output": "ddf", **changes})


def _tiny_batch() -> PairBatch:
    """Two 16 x 16 pairs: a bright square moved by two voxels, with two structures (square, background)."""
    fixed = torch.zeros(2, 1, 16, 16)
    fixed[:, :, 5:11, 5:11] = 1.0
    moving = torch.roll(fixed, shifts=(2, -1), dims=(2, 3))

    def structures(image):
        return torch.cat([image, (image < 0.5).float()], dim=1)

    return PairBatch(fixed, moving, None, torch.ones(2), structures(fixed), structures(moving))


@pytest.mark.parametrize("output", ["ddf", "svf", "affine"])
def test_every_output_starts_near_the_identity_and_keeps_the_convention(output):
    torch.manual_seed(0)
    network = DDFNet(tiny_config(output=output))
    batch = _tiny_batch()
    result = network(batch.fixed, batch.moving)
    assert result.field.shape == (2, 2, 16, 16) and result.field.abs().max() < 1e-2
    assert (result.velocity is not None) == (output == "svf")
    assert (result.linear is not None) == (output == "affine")
    assert network.parameter_count < 1_000_000
    assert DDFNet(DDFNetConfig(ndim=3, working_size=64)).parameter_count < 1_000_000  # the 3D default


def test_weights_fine_tune_on_a_finer_working_grid_but_not_into_another_network(tmp_path):
    """A network trained on a coarse working grid starts a training on a finer one (its parameters keep their
    shapes: only ``working_size`` differs); weights of other layers are refused, naming what differs."""
    torch.manual_seed(0)
    coarse = DDFNet(tiny_config(output="svf"))
    DDFNetModel(coarse).save(tmp_path / "coarse.pt", {})
    finer = DDFNet(tiny_config(output="svf", working_size=32))
    DDFNetModel.copy_into(tmp_path / "coarse.pt", finer)
    for name, p in coarse.state_dict().items():
        assert torch.equal(p, finer.state_dict()[name]), name
    assert finer(torch.zeros(1, 1, 32, 32), torch.zeros(1, 1, 32, 32)).field.shape == (1, 2, 32, 32)
    with pytest.raises(InputError, match=r"another network \(channels, working_size differ"):
        DDFNetModel.copy_into(tmp_path / "coarse.pt", DDFNet(tiny_config(output="svf", working_size=32,
                                                                          channels=(4, 8, 16))))


def test_the_affine_output_is_affine_and_its_matrix_maps_fixed_to_moving_points():
    network = DDFNet(tiny_config(output="affine"))
    with torch.no_grad():
        network.regress.bias.copy_(torch.tensor([0.05, -0.02, 0.03, -0.04, 1.5, -0.5]))
    batch = _tiny_batch()
    result = network(batch.fixed, batch.moving)
    second = result.field[0, :, :, 2:] - 2 * result.field[0, :, :, 1:-1] + result.field[0, :, :, :-2]
    assert second.abs().max() < 1e-5  # linear in the position
    fixed = Grid.make((40, 30, 1), (1.5, 2.0, 1.0), origin=(10.0, -5.0, 3.0))
    work = working_grid(fixed, 16)
    matrix = affine_matrix_lps(result, fixed, work)
    field_mm = field_on_fixed_grid(result.field[:1].detach(), work, fixed)[0]  # (2, j, i), mm along the axes
    i, j = 20, 12
    point = np.asarray(fixed.index_to_physical([[i, j, 0]]))[0]
    mapped = matrix[:3, :3] @ point + matrix[:3, 3]
    assert np.allclose(mapped[:2] - point[:2], field_mm[:, j, i].numpy(), atol=1e-3)


def test_the_velocity_output_does_not_fold_where_the_same_field_as_a_displacement_does():
    network = DDFNet(tiny_config(output="svf", working_size=32))
    with torch.no_grad():
        network.head.bias.zero_()
    raw = torch.zeros(1, 2, 32, 32)
    x = torch.arange(32.0)
    raw[0, 0] = 4.0 * torch.sin(2 * np.pi * x / 12.0).view(1, 32)  # du/dx down to -2.1 as a displacement
    assert (jacobian_determinant(raw, (1.0, 1.0)) <= 0).any()
    assert (jacobian_determinant(exponentiate(raw, network.voxel_warper, 7), (1.0, 1.0)) > 0).all()


def test_one_structure_is_sampled_per_pair_and_the_same_for_fixed_and_moving():
    batch = _tiny_batch()
    batch = PairBatch(*(torch.cat([t, t, t]) if t is not None else None
                        for t in (batch.fixed, batch.moving, None, batch.mm_per_unit, batch.fixed_structures,
                                  batch.moving_structures)))
    seen = set()
    for seed in range(20):
        one = sample_one_structure(batch, np.random.default_rng(seed))
        assert one.fixed_structures.shape == (6, 1, 16, 16) and one.moving_structures.shape == (6, 1, 16, 16)
        for b in range(6):
            channel = int(torch.argmin((batch.fixed_structures[b] - one.fixed_structures[b]).abs().flatten(1).sum(1)))
            assert torch.equal(one.moving_structures[b, 0], batch.moving_structures[b, channel])
            seen.add(channel)
    assert seen == {0, 1}  # both labels get drawn


@pytest.mark.parametrize("mode", ["unsupervised", "weak", "combined"])
def test_each_training_mode_lowers_its_loss_on_a_tiny_pair(mode):
    torch.manual_seed(0)
    network = DDFNet(tiny_config(output="svf"))
    objective = DDFNetObjective(network, training_grid(2, 16), LossSettings(mode=mode, image_loss="mse",
                                                                            regulariser_weight=0.01))
    batch = sample_one_structure(_tiny_batch(), np.random.default_rng(0))
    losses, stats = fit_objective(objective, batch, 60)
    assert np.isfinite(losses).all() and losses[-1] < 0.8 * losses[0]
    assert ("image_loss" in stats) == (mode != "weak") and ("label_loss" in stats) == (mode != "unsupervised")


def _tiny_training_config(tmp_path, pairing: str = "synthetic") -> str:
    config = tmp_path / "ddfnet.toml"
    config.write_text(tiny_structure_data_section(tmp_path, 12.0) + f"""
[model]
ndim = 2
working_size = 16
channels = [4, 8, 8]
output = "svf"

[pairs]
pairing = "{pairing}"

[loss]
mode = "combined"
""" + tiny_training_sections(3))
    return str(config)


@pytest.mark.parametrize("pairing", ["synthetic", "unpaired"])
def test_training_writes_weights_that_the_registrar_runs(tmp_path, monkeypatch, pairing):
    from learnreg.ddfnet.training import train_ddfnet

    card = train_ddfnet(_tiny_training_config(tmp_path, pairing), overrides=["loss.mode=weak"])
    assert card["training"]["iterations"] == 3 and card["model"]["output"] == "svf"
    best = card["validation"]["best"]
    assert {"val_dice", "val_dice_before", "val_image_loss", "val_folding_percent"} <= set(best)
    assert ("val_field_error_voxels" in best) == (pairing == "synthetic")
    weights = tmp_path / "out" / "model.pt"
    assert DDFNetModel.load(weights).config.working_size == 16

    fixed = load_image(sample_image("brain_t1_slice"))
    moving = Image(np.roll(np.asarray(fixed.array), 3, axis=-1), fixed.grid)
    result = create_registrar("ddfnet", {**ONE_PASS, "weights": str(weights)}).register(fixed, moving)
    assert result.field.grid == fixed.grid and result.steps[0].parameters["stage"] == "one pass"
    with pytest.raises(InputError, match="output="):
        create_registrar("ddfnet", {"output": "bspline"})
    monkeypatch.setattr("learnreg.ddfnet.model.MODELS_DIR", tmp_path / "none")
    with pytest.raises(InputError, match="no shipped 2D ddfnet weights for output=svf"):
        create_registrar("ddfnet", {}).register(fixed, moving)


def test_the_network_warps_as_the_warper_does():
    """The training grid's 1-unit voxels are the network's output unit: a known field warps identically."""
    grid = training_grid(2, 16)
    field = torch.zeros(1, 2, 16, 16)
    field[:, 0] = 2.0
    image = torch.arange(256.0).view(1, 1, 16, 16)
    warped = Warper(grid, grid)(image, field)
    assert torch.allclose(warped[0, 0, 5, 3], image[0, 0, 5, 5])


def test_every_module_offers_ddfnet_after_the_classical_methods_once_its_weights_are_installed(tmp_path, monkeypatch):
    from learnreg.slicer.module_logic import module_methods

    monkeypatch.setattr("learnreg.ddfnet.registrar.shipped_weights", lambda ndim, output: tmp_path / f"{ndim}.pt")
    assert "ddfnet" not in module_methods("istn")
    (tmp_path / "2.pt").write_bytes(b"weights")
    for module in ("r2n2", "istn", "cnnregress"):
        methods = module_methods(module)
        assert methods[-1] == "ddfnet" and methods.index("bspline") < methods.index("ddfnet")


def shipped(ndim: int):
    return pytest.mark.skipif(not shipped_weights(ndim, "svf").is_file(), reason=f"no shipped {ndim}D ddfnet "
                              f"weights (Resources/Models/README.md: their recipes)")


@pytest.mark.parametrize("ndim", [pytest.param(n, marks=shipped(n)) for n in (2, 3)])
def test_shipped_weights_are_checked_against_their_card(ndim):
    model = DDFNetModel.load(shipped_weights(ndim, "svf"))
    assert model.config.output == "svf" and model.ndim == ndim and model.card["training"]["iterations"] >= 1000
    best = model.card["validation"]["best"]
    assert best["val_dice"] > best["val_dice_before"] and best["val_folding_percent"] < 0.1


@shipped(2)
def test_refinement_lowers_tre_below_the_one_pass_on_a_held_out_pair():
    """brain2d (ITK's BrainT1Slice) was never in training or validation; the one pass's own bar (halving) is
    Testing/test_held_out_one_pass.py's."""
    fixed, moving, landmarks = sample_pairs()["brain2d"].load()
    one_pass = create_registrar("ddfnet", ONE_PASS).register(fixed, moving)
    after = tre(landmarks.fixed, landmarks.moving, one_pass.field)["mean"]
    assert folding(one_pass.field)["percent_nonpositive_jacobian"] == 0
    refined = create_registrar("ddfnet").register(fixed, moving)
    assert tre(landmarks.fixed, landmarks.moving, refined.field)["mean"] < after


@shipped(3)
def test_the_shipped_3d_model_registers_the_held_out_volume():
    """What the shipped 3D model does on head3d today (robust recipe: 4.89 -> 3.32 mm in one pass, no folding;
    0.33 mm refined), with a margin: a retrained model must not fall below it unnoticed."""
    fixed, moving, landmarks = sample_pairs()["head3d"].load()
    one_pass = create_registrar("ddfnet", ONE_PASS).register(fixed, moving)
    before = tre(landmarks.fixed, landmarks.moving)["mean"]
    after = tre(landmarks.fixed, landmarks.moving, one_pass.field)["mean"]
    assert after <= 0.7 * before and folding(one_pass.field)["percent_nonpositive_jacobian"] == 0
    refined = create_registrar("ddfnet").register(fixed, moving)
    assert tre(landmarks.fixed, landmarks.moving, refined.field)["mean"] < 0.5 * after


@pytest.mark.parametrize("output", ["ddf", "affine"])
def test_the_shipped_2d_ddf_and_affine_models_register_the_held_out_pair(output):
    if not shipped_weights(2, output).is_file():
        pytest.skip(f"no shipped 2D ddfnet weights for output={output}")
    fixed, moving, landmarks = sample_pairs()["brain2d"].load()
    result = create_registrar("ddfnet", {**ONE_PASS, "output": output}).register(fixed, moving)
    before = tre(landmarks.fixed, landmarks.moving)["mean"]
    after = tre(landmarks.fixed, landmarks.moving, result.field)["mean"]
    assert after < (0.5 if output == "ddf" else 0.9) * before, (before, after)
    assert (result.affine_lps is not None) == (output == "affine")
    if output == "affine":  # the scene's linear transform maps the fixed landmarks as the field does
        mapped = landmarks.fixed @ result.affine_lps[:3, :3].T + result.affine_lps[:3, 3]
        assert np.allclose(mapped, result.field.transform_points(landmarks.fixed), atol=0.05)
