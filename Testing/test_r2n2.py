"""R2N2: network outputs, weights files, the step reporting and stopping rule, training (single process,
resume, time limit, data workers, stored banks, two-process DDP), and the shipped weights on held-out pairs."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from conftest import tiny_training_sections
from learnreg.errors import InputError
from learnreg.image import Grid, Image, load_image
from learnreg.landmarks import read_landmarks
from learnreg.metrics import folding, tre
from learnreg.model_files import card_path
from learnreg.options import ONE_PASS
from learnreg.r2n2.gaussian import gaussian_displacement
from learnreg.r2n2.model import R2N2Model, shipped_weights
from learnreg.r2n2.network import NetworkConfig, R2N2Network
from learnreg.registration import create_registrar
from learnreg.sample_data import sample_pairs
from learnreg.warp import axis_coordinate_tensor
from learnreg.working import working_grid

ROOT = Path(__file__).resolve().parents[1]
TINY = NetworkConfig(ndim=2, channels=(8, 8, 16), residual_units=1, fc_hidden=32, recurrent_noise=0.05)


def tiny_model_file(folder: Path, *, ndim: int = 2, weight: float = 0.0, seed: int = 0) -> Path:
    """An untrained small model whose every Gaussian has normalised weight ``weight`` (head bias)."""
    torch.manual_seed(seed)
    model = R2N2Model.create(NetworkConfig(ndim, TINY.channels, 1, 32, 0.05), 16, 5)
    with torch.no_grad():
        model.network.parameters_net.head.bias[ndim:2 * ndim] = float(np.arctanh(weight))
    path = folder / f"tiny{ndim}d.pt"
    model.save(path, {"title": "test model"})
    return path


@pytest.mark.parametrize("ndim,size", [(2, 24), (3, 16)])
def test_network_outputs_are_bounded(ndim, size):
    network = R2N2Network(NetworkConfig(ndim, (8, 8, 16), 1, 32, 0.1)).train()
    torch.manual_seed(1)
    with torch.no_grad():
        network.parameters_net.head.weight.normal_(0, 5.0)  # push the bounded outputs towards their limits
    images = torch.randn(2, 1, *[size] * ndim)
    state = network.start()
    for _ in range(3):
        g, state = network(images, images.flip(2), state)
    assert g.position.shape == (2, ndim) and g.position.abs().max() <= 1
    assert 0 < g.widths.min() and g.widths.max() <= 0.25 + 1e-5
    assert g.weight.abs().max() <= 1
    assert g.angles.shape == (2, 1 if ndim == 2 else 3) and 0 <= g.angles.min() and g.angles.max() <= np.pi
    assert len(state) == 3 and state[2].shape[1] == 16


def test_recurrent_noise_only_in_training():
    network = R2N2Network(TINY)
    images = torch.randn(1, 1, 16, 16)
    outputs = []
    for mode in (True, True, False, False):
        network.train(mode)
        torch.manual_seed(len(outputs))
        with torch.no_grad():
            g, _ = network(images, images, network.start())
            g, _ = network(images, images, _)
        outputs.append(g.position)
    assert not torch.allclose(outputs[0], outputs[1])  # different noise draws
    assert torch.equal(outputs[2], outputs[3])  # evaluation is deterministic


def test_working_grid_covers_the_fixed_image_with_square_voxels(colin_oblique):
    work = working_grid(colin_oblique.grid, 32)
    assert work.size == (32, 32, 32) and len(set(work.spacing)) == 1
    assert np.allclose(work.centre, colin_oblique.grid.centre, atol=1e-6)
    assert np.allclose(work.direction, colin_oblique.grid.direction)
    full = np.asarray(colin_oblique.grid.size) * np.asarray(colin_oblique.grid.spacing)
    assert work.spacing[0] * 32 == pytest.approx(full.max())


def test_weights_round_trip_and_bad_files(tmp_path):
    path = tiny_model_file(tmp_path, weight=0.3)
    loaded = R2N2Model.load(path)
    card = json.loads(card_path(path).read_text())
    assert card["method"] == "r2n2" and card["format_version"] == 1 and len(card["sha256"]) == 64
    for a, b in zip(loaded.network.state_dict().values(), R2N2Model.load(path).network.state_dict().values()):
        assert torch.equal(a, b)

    with pytest.raises(InputError, match="does not exist"):
        R2N2Model.load(tmp_path / "missing.pt")
    corrupt = tmp_path / "corrupt.pt"
    corrupt.write_bytes(path.read_bytes()[:-10] + b"0123456789")
    card_path(corrupt).write_text(card_path(path).read_text())
    with pytest.raises(InputError, match=r"corrupt\.pt is corrupt or was replaced"):
        R2N2Model.load(corrupt)
    old = dict(card, format_version=0)
    card_path(corrupt).write_text(json.dumps(old))
    with pytest.raises(InputError, match="format version 0"):
        R2N2Model.load(corrupt)
    card_path(corrupt).unlink()
    with pytest.raises(InputError, match="model card .*corrupt.card.json is missing"):
        R2N2Model.load(corrupt)
    card_path(corrupt).write_text(json.dumps(dict(card, method="istn")))
    with pytest.raises(InputError, match="is a 'istn' model"):
        R2N2Model.load(corrupt)


def _pair(name: str = "brain2d"):
    pair = sample_pairs()[name]
    return load_image(pair.fixed), load_image(pair.moving), pair


def test_steps_add_up_to_the_field_and_are_the_reported_gaussians(tmp_path):
    fixed, moving, _ = _pair()
    weights = tiny_model_file(tmp_path, weight=0.02)
    result = create_registrar("r2n2", {**ONE_PASS, "weights": str(weights), "steps": 5, "tolerance": 0}).register(
        fixed, moving)
    assert 1 <= len(result.steps) <= 5
    assert result.parameter_count == 7 * len(result.steps)
    total = sum(s.displacement.vectors for s in result.steps)
    assert np.abs(total - result.field.vectors).max() < 1e-5
    coords = axis_coordinate_tensor(fixed.grid, dtype=torch.float64)
    origin = np.asarray(fixed.grid.origin)
    for step in result.steps:
        p = step.parameters
        u = gaussian_displacement(coords, *(torch.tensor([p[k]], dtype=torch.float64) for k in
                                            ("centre_mm", "widths_mm", "angles_rad", "weight_mm")))
        expected = step.displacement.to_axis_tensor(dtype=torch.float64)[0]
        assert (u[0] - expected).abs().max() < 1e-4
        assert np.allclose(step.centre, origin + fixed.grid.direction_matrix[:, :2] @ p["centre_mm"], atol=1e-4)
        assert step.extent_mm == pytest.approx(2 * max(p["widths_mm"]))
        assert np.abs(p["weight_mm"]).max() > 0
    losses = [s.loss for s in result.steps]
    assert losses[-1] == min(losses) <= result.loss_history[0]  # the result ends at its best step


def test_stopping_rule(tmp_path):
    fixed, moving, _ = _pair()
    # Gaussians of zero weight change nothing: no step improves the loss by the tolerance
    still = tiny_model_file(tmp_path, weight=0.0)
    messages = []
    stopped = create_registrar("r2n2", {**ONE_PASS, "weights": str(still), "steps": 5, "tolerance": 1e-3, "patience": 2}).register(
        fixed, moving, progress=lambda fraction, message: messages.append(message))
    assert stopped.steps == [] and np.abs(stopped.field.vectors).max() == 0 and stopped.parameter_count == 0
    assert sum("step " in m for m in messages) == 2  # patience: two steps without improvement, then stop
    assert any("kept 0 steps" in m for m in messages)
    full = create_registrar("r2n2", {**ONE_PASS, "weights": str(still), "steps": 5, "tolerance": 0}).register(
        fixed, moving)
    assert len(full.steps) == 5  # tolerance 0: zero improvement is not worse, so all steps run
    capped = create_registrar("r2n2", {**ONE_PASS, "weights": str(still), "steps": 3, "tolerance": 0}).register(
        fixed, moving)
    assert len(capped.steps) == 3 and capped.parameter_count == 21


def test_stopping_keeps_the_sequence_up_to_its_best_step(tmp_path, monkeypatch):
    """Steps that cost loss but lead to a better one are kept; those after the best step are dropped."""
    import learnreg.r2n2.registrar as registrar

    fixed, moving, _ = _pair()
    losses = iter([0.9, 0.95, 0.7, 0.72, 0.71, 0.75, 0.6])  # relative to the initial loss
    real_mse = registrar.MSE

    class ScriptedLoss(real_mse):
        initial = None

        def forward(self, *args):
            value = super().forward(*args)
            if ScriptedLoss.initial is None:
                ScriptedLoss.initial = value
                return value
            return ScriptedLoss.initial * next(losses)

    monkeypatch.setattr(registrar, "MSE", ScriptedLoss)
    weights = tiny_model_file(tmp_path, weight=0.02)
    result = create_registrar("r2n2", {**ONE_PASS, "weights": str(weights), "steps": 7, "tolerance": 0.01, "patience": 3}).register(
        fixed, moving)
    assert [s.index for s in result.steps] == [0, 1, 2]  # 0.9, 0.95, 0.7; then three without improving
    assert result.steps[-1].loss == pytest.approx(0.7 * ScriptedLoss.initial)
    total = sum(s.displacement.vectors for s in result.steps)
    assert np.abs(total - result.field.vectors).max() < 1e-5


def test_modules_offer_r2n2_only_with_its_weights(tmp_path, monkeypatch):
    from learnreg.slicer.module_logic import module_methods

    monkeypatch.setattr("learnreg.r2n2.registrar.shipped_weights", lambda ndim: tmp_path / f"r2n2_{ndim}d.pt")
    assert module_methods("r2n2")[0] == "bspline"
    tiny_model_file(tmp_path).rename(tmp_path / "r2n2_2d.pt")
    assert module_methods("r2n2")[0] == "r2n2"


def test_bad_inputs(tmp_path, colin_oblique):
    fixed, moving, _ = _pair()
    weights3d = tiny_model_file(tmp_path, ndim=3)
    with pytest.raises(InputError, match="for 3D images but the images are 2D"):
        create_registrar("r2n2", {"weights": str(weights3d)}).register(fixed, moving)
    with pytest.raises(InputError, match="does not exist"):
        create_registrar("r2n2", {"weights": str(tmp_path / "none.pt")}).register(fixed, moving)
    with pytest.raises(InputError, match="tolerance"):
        create_registrar("r2n2", {"tolerance": 2})
    messages = []
    big = Image(np.zeros((1, 400, 400), np.float32) + np.arange(400, dtype=np.float32), Grid.make((400, 400, 1)))
    create_registrar("r2n2", {"weights": str(tiny_model_file(tmp_path)), "steps": 1}).register(
        big, big, progress=lambda f, m: messages.append(m))
    assert any("sees the images on 16^2 voxels of 25.00 mm" in m for m in messages)


# ----------------------------------------------------------------- training
def _tiny_config(tmp_path: Path, steps: int = 4) -> Path:
    data = ROOT / "learnreg" / "data"
    config = tmp_path / "tiny.toml"
    config.write_text(f"""
[data]
images = ["{data / 'colin27_t1_3mm.nii.gz'}"]
validation_images = ["{data / 'rat_lung_slice1.nii.gz'}"]
slice_step_mm = 15
[model]
working_size = 16
channels = [8, 8, 16]
residual_units = 1
fc_hidden = 32
sequence_length = 3
""" + tiny_training_sections(steps))
    return config


def _config_without_its_images(config: Path, folder: Path) -> Path:
    """``config`` copied into a new ``folder`` with its image paths pointing where no image is (as on a GPU
    machine given the stored banks instead)."""
    folder.mkdir()
    moved = folder / config.name
    moved.write_text(config.read_text().replace(str(ROOT / "learnreg" / "data"), "missing"))
    return moved


def _cli(*args, cwd=None, launcher=()):
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    return subprocess.run([sys.executable, *launcher, "-m", "learnreg.cli", *args], capture_output=True, text=True,
                          cwd=cwd, env=env, timeout=300)


@pytest.mark.parametrize("ndim", [2, 3])
def test_greedy_step_target_is_the_largest_foreground_residual(ndim):
    """A strong residual bump outside the foreground is ignored; the weaker one inside is the target, with
    its box-averaged residual (a constant residual patch of 5 voxels averages to itself)."""
    from learnreg.r2n2.training import greedy_step_target

    grid = Grid.make((12,) * ndim + (1,) * (3 - ndim), (2.0,) * 3)
    coordinates = axis_coordinate_tensor(grid)
    residual = torch.zeros(1, ndim, *[12] * ndim)
    foreground = torch.zeros(1, 1, *[12] * ndim)
    foreground[(0, 0) + (slice(0, 8),) * ndim] = 1
    inside = (slice(2, 7),) * ndim  # centre voxel 4 on every axis
    outside = (slice(9, 12),) * ndim
    residual[(0, 0) + inside] = 1.5
    residual[(0, 1) + inside] = -0.5
    residual[(0, 0) + outside] = 9.0
    centre, weight = greedy_step_target(residual, foreground, coordinates)
    assert torch.allclose(centre, torch.full((1, ndim), 8.0))  # voxel 4 at 2 mm
    assert torch.allclose(weight[0, :2], torch.tensor([1.5, -0.5]))


def test_training_writes_log_curve_weights_and_resumes(tmp_path):
    """Also: the supervised terms run, and the cosine learning-rate decay goes on where it was on resume."""
    from learnreg.r2n2.training import train_r2n2
    from learnreg.training.trainer import TrainingSettings

    config = _tiny_config(tmp_path)
    config.write_text(config.read_text().replace("[training]\n", "[loss]\nfield_weight = 10.0\nstep_target_weight = 1.0\n"
                                                 "[training]\nlearning_rate = 1e-3\nfinal_learning_rate = 1e-4\n"))
    card = train_r2n2(config, steps=2)
    run = tmp_path / "run"
    assert (run / "checkpoint.pt").is_file() and (run / "loss.png").stat().st_size > 1000
    rows = (run / "log.csv").read_text().splitlines()
    assert rows[0].startswith("iteration") and len(rows) == 3
    first = torch.load(run / "checkpoint.pt", weights_only=True)
    assert first["iteration"] == 2
    card = train_r2n2(config)  # resumes at iteration 3
    second = torch.load(run / "checkpoint.pt", weights_only=True)
    assert second["iteration"] == 4 and [r["iteration"] for r in second["rows"]] == [1, 2, 3, 4]
    first_run, resumed = (TrainingSettings(steps=n, learning_rate=1e-3, final_learning_rate=1e-4) for n in (2, 4))
    expected = [first_run.learning_rate_at(1), first_run.learning_rate_at(2), *map(resumed.learning_rate_at, (3, 4))]
    assert [r["learning_rate"] for r in second["rows"]] == pytest.approx(expected)
    assert expected[0] == 1e-3 and expected[1] == expected[3] == pytest.approx(1e-4) and 1e-4 < expected[2] < 1e-3
    assert all(r["final_centre_miss"] >= 0 and r["final_field_error"] >= 0 for r in second["rows"])
    assert card["training"]["iterations"] == 4 and card["validation"]["best"]["iteration"] in (2, 4)
    model = R2N2Model.load(tmp_path / "out" / "model.pt")
    assert model.working_size == 16 and model.sequence_length == 3


def test_training_time_limit_ends_the_run_whole_and_resumes(tmp_path):
    """``max_minutes``: the run ends after its first iteration as at its last (validated, checkpointed,
    weights and card written), and the same command again goes on to ``steps``."""
    from learnreg.r2n2.training import train_r2n2

    config = _tiny_config(tmp_path, steps=5)
    card = train_r2n2(config, overrides=["training.max_minutes=1e-9"])
    run = tmp_path / "run"
    assert card["training"]["iterations"] == 1 and card["validation"]["best"]["iteration"] == 1
    assert torch.load(run / "checkpoint.pt", weights_only=True)["iteration"] == 1
    R2N2Model.load(tmp_path / "out" / "model.pt")
    card = train_r2n2(config)
    assert card["training"]["iterations"] == 5
    assert [r["iteration"] for r in torch.load(run / "checkpoint.pt", weights_only=True)["rows"]] == [1, 2, 3, 4, 5]


def test_data_workers_draw_the_same_batches_and_train_the_same_weights(tmp_path):
    """Each batch depends on its iteration alone: two worker processes give the batches drawn in this
    process, in order, and the same trained weights."""
    from learnreg.r2n2.training import train_r2n2
    from learnreg.training.image_bank import ImageBank
    from learnreg.training.pairs import PairSettings, random_pairs, training_grid
    from learnreg.training.trainer import IterationBatches, batch_stream

    grid = training_grid(2, 16)
    bank = ImageBank.synthesized(3, 2, 16, 2.0)
    batches = IterationBatches(lambda rng: random_pairs(bank, 2, grid, PairSettings(), rng), seed=0, rank=0)
    here, workers = (list(batch_stream(batches, range(3, 7), n)) for n in (0, 2))
    assert len(here) == len(workers) == 4
    for a, b in zip(here, workers):
        assert torch.equal(a.fixed, b.fixed) and torch.equal(a.moving, b.moving)
        assert torch.equal(a.true_field, b.true_field)
    assert not torch.equal(here[0].fixed, here[1].fixed)

    config = _tiny_config(tmp_path, steps=2)
    weights = []
    for n in (0, 2):
        train_r2n2(config, resume=False, overrides=[f"training.data_workers={n}", f"output.folder=run{n}",
                                                    f"output.weights_path=out{n}/model.pt"])
        weights.append(R2N2Model.load(tmp_path / f"out{n}" / "model.pt").network.state_dict())
    for name, value in weights[0].items():
        assert torch.equal(value, weights[1][name]), name


def test_stored_bank_is_rebuilt_when_its_files_change_and_used_where_they_are_absent(tmp_path):
    from learnreg.training.image_bank import ImageBank, stored_bank

    image = tmp_path / "images" / "a.nii.gz"
    image.parent.mkdir()
    image.write_bytes(b"first")
    builds = []

    def build():
        builds.append(1)
        return ImageBank.synthesized(2, 2, 16, 2.0, seed=len(builds))

    folder, description = tmp_path / "banks", {"images": ["a.nii.gz"], "working_size": 16}
    first = stored_bank(folder, description, [str(image)], build)
    again = stored_bank(folder, description, [str(image)], build)
    assert len(builds) == 1 and torch.equal(first.images, again.images) and again.names == first.names
    image.write_bytes(b"second")  # same name, other content: built again
    changed = stored_bank(folder, description, [str(image)], build)
    assert len(builds) == 2 and not torch.equal(changed.images, first.images)
    image.unlink()  # where the images are not, the stored bank serves
    assert torch.equal(stored_bank(folder, description, [str(image)], build).images, changed.images)
    assert len(builds) == 2
    with pytest.raises(InputError, match=r"neither the images a.nii.gz nor a bank built from them .* bring the bank"):
        stored_bank(folder, {**description, "working_size": 32}, [str(image)], build)


def test_training_from_a_stored_bank_without_its_images(tmp_path):
    """A run whose images are not there (a GPU machine given the bank folder) trains the same weights from the
    banks an earlier run stored."""
    from learnreg.r2n2.training import train_r2n2

    config = _tiny_config(tmp_path, steps=2)
    train_r2n2(config, overrides=["data.bank_folder=banks"])
    assert len(list((tmp_path / "banks").glob("bank-*.pt.gz"))) == 2  # training and validation
    elsewhere = tmp_path / "elsewhere"
    moved = _config_without_its_images(config, elsewhere)
    train_r2n2(moved, overrides=[f"data.bank_folder={tmp_path / 'banks'}"])
    trained, retrained = (R2N2Model.load(folder / "out" / "model.pt").network.state_dict()
                          for folder in (tmp_path, elsewhere))
    for name, value in trained.items():
        assert torch.equal(value, retrained[name]), name


def test_device_training_script_runs_from_stored_banks_without_images_or_simpleitk(tmp_path):
    """scripts/device_train.py: ``prepare`` stores the banks here; ``run``, where neither the images nor
    SimpleITK are (as on a lent GPU machine), trains from them within its minutes and copies the run into $OUT."""
    config = _tiny_config(tmp_path, steps=50)
    runs, out = tmp_path / "runs", tmp_path / "out"
    out.mkdir()
    script = ROOT / "scripts" / "device_train.py"
    done = subprocess.run([sys.executable, str(script), "prepare", "r2n2", str(config), "--runs", str(runs)],
                          capture_output=True, text=True, cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "banks stored in" in done.stdout and "MiB of its 64 MiB" in done.stdout
    device = tmp_path / "device"
    moved = _config_without_its_images(config, device)
    no_simpleitk = ("import runpy, sys; sys.modules['SimpleITK'] = None; sys.argv = sys.argv[1:]; "
                    "runpy.run_path(sys.argv[0], run_name='__main__')")
    done = subprocess.run([sys.executable, "-c", no_simpleitk, str(script), "run", "r2n2", str(moved), "--runs",
                           str(runs), "--minutes", "1e-9"], capture_output=True, text=True, cwd=device,
                          env={**os.environ, "OUT": str(out), "OMP_NUM_THREADS": "1"})
    assert done.returncode == 0, done.stderr[-2000:]
    assert "1 of 50 iterations" in done.stdout
    assert sorted(p.name for p in out.iterdir()) == ["checkpoint.pt", "log.csv", "loss.png", "model.card.json",
                                                     "model.pt"]
    assert R2N2Model.load(out / "model.pt").working_size == 16


def test_training_starts_from_initial_weights(tmp_path):
    """Fine-tuning: the run starts from the given weights (not the seed's), its card names them and holds
    theirs, and weights of another network are refused naming what differs."""
    from learnreg.r2n2.training import train_r2n2

    config = _tiny_config(tmp_path)
    train_r2n2(config, steps=1)
    start = R2N2Model.load(tmp_path / "out" / "model.pt")
    with torch.no_grad():  # a start that the seed's random initialisation does not give
        for p in start.network.parameters():
            p.mul_(0.5)
    start_card = start.save(tmp_path / "start.pt", {})
    tuned = config.with_name("tuned.toml")
    tuned.write_text(config.read_text().replace("[training]\n", "[training]\ninitial_weights_path = \"start.pt\"\n")
                     .replace('folder = "run"', 'folder = "tuned_run"'))
    card = train_r2n2(tuned, steps=1, overrides=["training.learning_rate=1e-12"])
    assert card["training"]["initial_weights"] == {"file": "start.pt", "sha256": start_card["sha256"], "card": start_card}
    tuned_network = R2N2Model.load(tmp_path / "out" / "model.pt").network
    for name, p in tuned_network.state_dict().items():
        assert torch.allclose(p, start.network.state_dict()[name], atol=1e-6), name
    with pytest.raises(InputError, match=r"another network \(fc_hidden differ.*set \[model\] as in their model card"):
        train_r2n2(tuned, steps=1, overrides=["model.fc_hidden=64", "output.folder=other_run"])


def test_training_command_line_and_config_errors(tmp_path):
    done = _cli("train", "r2n2", "--config", str(_tiny_config(tmp_path)), "--steps", "1", "--quiet", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "weights written: model.pt" in done.stdout
    bad = tmp_path / "bad.toml"
    bad.write_text(_tiny_config(tmp_path).read_text().replace("working_size = 16", "working_size = 20"))
    done = _cli("train", "r2n2", "--config", str(bad), cwd=tmp_path)
    assert done.returncode == 2 and "working_size must be a multiple of 8" in done.stderr
    bad.write_text("[modle]\n")
    done = _cli("train", "r2n2", "--config", str(bad), cwd=tmp_path)
    assert done.returncode == 2 and "unknown section(s) modle" in done.stderr
    done = _cli("train", "r2n2", "--config", str(tmp_path / "none.toml"), cwd=tmp_path)
    assert done.returncode == 2 and "none.toml does not exist" in done.stderr


def test_data_parallel_training_with_two_cpu_processes(tmp_path):
    launcher = ("-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2")
    done = _cli("train", "r2n2", "--config", str(_tiny_config(tmp_path)), "--steps", "2", "--quiet",
                cwd=tmp_path, launcher=launcher)
    assert done.returncode == 0, done.stderr[-2000:]
    card = json.loads((tmp_path / "out" / "model.card.json").read_text())
    assert card["training"]["processes"] == 2 and card["training"]["hardware"].startswith("2 x CPU")
    assert done.stdout.count("weights written") == 1  # only rank 0 writes
    R2N2Model.load(tmp_path / "out" / "model.pt")


# ----------------------------------------------------------------- shipped weights
def needs_shipped_weights(ndim: int):
    return pytest.mark.skipif(not shipped_weights(ndim).is_file(),
                              reason=f"no shipped {ndim}D R2N2 weights in Resources/Models yet (train them: see "
                                     f"Resources/Models/r2n2_{ndim}d.toml)")


@pytest.mark.parametrize("ndim", [pytest.param(n, marks=needs_shipped_weights(n)) for n in (2, 3)])
def test_shipped_weights_are_checked_against_their_cards(ndim):
    model = R2N2Model.load(shipped_weights(ndim))
    assert model.ndim == ndim
    assert model.card["training"]["iterations"] >= 1000
    assert model.card["validation"]["best"]["val_tre_mm"] < model.card["validation"]["best"]["val_tre_before_mm"]


def _held_out_tre(result, pair) -> tuple[float, float]:
    fixed_points, moving_points = read_landmarks(pair.fixed_landmarks), read_landmarks(pair.moving_landmarks)
    return (tre(fixed_points.points, moving_points.points)["mean"],
            tre(fixed_points.points, moving_points.points, result.field)["mean"])


@needs_shipped_weights(3)
def test_shipped_3d_weights_register_the_held_out_volume():
    """What the shipped 3D weights do on head3d today (4.89 -> 3.42 mm, no folding), with a margin: a
    retrained model must not fall below it unnoticed."""
    fixed, moving, pair = _pair("head3d")
    result = create_registrar("r2n2", ONE_PASS).register(fixed, moving)
    before, after = _held_out_tre(result, pair)
    assert after <= 0.75 * before, (before, after)
    assert folding(result.field)["percent_nonpositive_jacobian"] < 0.1
