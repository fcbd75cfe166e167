"""The training loop every learnreg network shares: optimiser, checkpoints that resume, logs, data parallelism.

A method supplies an *objective* (a module whose ``forward(batch)`` returns the loss and a dict of named
floats), a function that draws a batch on the CPU from a random generator, and a validation function;
:func:`train` runs Adam with AMSGrad, gradient-norm clipping and an optional cosine decay of the learning
rate, writes ``log.csv`` (one row per logged iteration), ``loss.png`` and ``checkpoint.pt`` into the output
folder, and keeps the parameters that scored best on validation. Batch ``i`` depends on the seed and ``i``
alone, so worker processes can draw batches ahead of a GPU (``data_workers``) without changing the run, and
a run cut short by ``max_minutes`` resumes where it stopped.

Data parallel: started under ``torchrun`` (``WORLD_SIZE`` > 1) every process trains on its own batches
and the objective is wrapped in :class:`~torch.nn.parallel.DistributedDataParallel` (gloo on CPU, NCCL on
GPUs), which averages the gradients; only rank 0 validates and writes files.
"""

from __future__ import annotations

import csv
import dataclasses
import os
import platform
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator, Optional

import numpy as np
import torch
import torch.distributed as dist

from learnreg.device import resolve_device
from learnreg.errors import InputError
from learnreg.model_files import STORAGE_PRECISIONS, atomic_write, read_card
from learnreg.progress import ProgressCallback


@dataclass
class TrainingSettings:
    """The ``[training]`` section.

    Attributes:
        steps: optimiser steps (iterations) in all.
        batch_size: pairs per iteration and process.
        learning_rate: Adam (AMSGrad) learning rate at the first iteration.
        final_learning_rate: learning rate at the last iteration, reached by a cosine decay (default: none,
            the learning rate stays constant). It depends only on the iteration, so a resumed run follows it.
        grad_clip: largest gradient norm.
        log_every, validate_every, checkpoint_every: iteration intervals.
        validation_pairs: fixed validation pairs drawn from the held-out images.
        device: ``auto``, ``cpu``, ``cuda`` or ``cuda:N`` (under torchrun each process takes its local GPU).
        seed: seed of the pair generator (each process and iteration derive their own).
        threads: CPU threads for torch (0 = torch's default).
        initial_weights_path: weights of this method to start from instead of random ones (fine-tuning, e.g. a
            shipped model on your own images); the ``[model]`` section must match their network. Used when
            the run starts, not when it resumes from its checkpoint.
        data_workers: processes that draw training batches ahead of the optimiser (each batch depends only on
            its iteration and the seed, so the batches are the same with any number of them). Default: none on
            the CPU, where the optimiser's threads use the cores; on a GPU, one per CPU core of this process
            but one, at most 8, so that drawing pairs on the CPU does not hold the GPU up.
        max_minutes: end this invocation after this many minutes of training (validation not counted; 0: no
            limit), as at its last step: validated, checkpointed, weights and card written; the same command
            again resumes it. The learning-rate schedule follows ``steps`` regardless.
    """

    steps: int = 2000
    batch_size: int = 8
    learning_rate: float = 1e-4
    final_learning_rate: Optional[float] = None
    grad_clip: float = 1.0
    log_every: int = 10
    validate_every: int = 100
    checkpoint_every: int = 100
    validation_pairs: int = 16
    device: str = "auto"
    seed: int = 0
    threads: int = 0
    initial_weights_path: str = ""
    data_workers: Optional[int] = None
    max_minutes: float = 0.0

    def validate(self) -> None:
        if (self.data_workers is not None and self.data_workers < 0) or self.max_minutes < 0:
            raise InputError("data_workers and max_minutes must be 0 or more")
        for name in ("steps", "batch_size", "log_every", "validate_every", "checkpoint_every", "validation_pairs"):
            if getattr(self, name) < 1:
                raise InputError(f"{name} must be at least 1")
        if self.learning_rate <= 0 or self.grad_clip <= 0:
            raise InputError("learning_rate and grad_clip must be positive")
        if self.final_learning_rate is not None and not 0 < self.final_learning_rate <= self.learning_rate:
            raise InputError("final_learning_rate must be positive and at most learning_rate")

    def learning_rate_at(self, iteration: int) -> float:
        """The learning rate of ``iteration`` (1 to ``steps``)."""
        if self.final_learning_rate is None or self.steps == 1:
            return self.learning_rate
        progress = (iteration - 1) / (self.steps - 1)
        low, high = self.final_learning_rate, self.learning_rate
        return float(low + 0.5 * (high - low) * (1 + np.cos(np.pi * progress)))


@dataclass
class OutputSettings:
    """The ``[output]`` section: the run folder (log, checkpoint, loss curve), where the trained weights
    and their model card go (default ``<folder>/model.pt``), and the precision their floating-point tensors
    are stored in (``float16`` halves the file; networks always load and run in float32)."""

    folder: str = "runs/train"
    weights_path: str = ""
    weights_precision: str = "float32"

    def validate(self) -> None:
        if self.weights_precision not in STORAGE_PRECISIONS:
            raise InputError(f"weights_precision {self.weights_precision!r} is not one of "
                             f"{', '.join(STORAGE_PRECISIONS)}")

    @property
    def weights(self) -> Path:
        return Path(self.weights_path) if self.weights_path else Path(self.folder) / "model.pt"


@dataclass
class DistributedContext:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def distributed_context() -> DistributedContext:
    """This process's place under torchrun (a single process otherwise)."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    return DistributedContext(int(os.environ.get("RANK", "0")), world, int(os.environ.get("LOCAL_RANK", "0")))


def training_device(settings: TrainingSettings, context: DistributedContext) -> torch.device:
    device = resolve_device(settings.device)
    if device.type == "cuda" and context.world_size > 1:
        device = torch.device("cuda", context.local_rank)
        torch.cuda.set_device(device)
    return device


@dataclass
class TrainingRecord:
    """What a finished run reports: iterations, wall time, the log rows and the best validation row."""

    iterations: int
    wall_time_s: float
    rows: list[dict] = field(default_factory=list)
    best: dict = field(default_factory=dict)
    best_state: dict = field(default_factory=dict)


def _write_log(rows: list[dict], folder: Path) -> None:
    keys = sorted({k for r in rows for k in r}, key=lambda k: (k != "iteration", k))
    with open(folder / "log.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, keys)
        writer.writeheader()
        writer.writerows(rows)


def plot_loss_curve(rows: list[dict], path: Path, validation_key: str, title: str) -> None:
    """Training loss and the validation metric against iteration, as a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    train = [(r["iteration"], r["loss"]) for r in rows if "loss" in r]
    val = [(r["iteration"], r[validation_key]) for r in rows if validation_key in r]
    fig, ax = plt.subplots(figsize=(6.4, 3.6), dpi=100)
    if train:
        it, loss = np.array(train).T
        ax.plot(it, loss, color="0.6", lw=0.8, label="training loss")
        if len(loss) >= 10:
            k = max(3, len(loss) // 20)
            ax.plot(it[k - 1:], np.convolve(loss, np.ones(k) / k, mode="valid"), color="k", lw=1.5,
                    label=f"training loss (mean of {k} logs)")
    ax.set_xlabel("iteration")
    ax.set_ylabel("loss")
    handles, labels = ax.get_legend_handles_labels()
    top = ax
    if val:
        twin = ax.twinx()
        it, metric = np.array(val).T
        twin.plot(it, metric, "o-", color="tab:red", ms=3, label=f"validation {validation_key}")
        twin.set_ylabel(validation_key, color="tab:red")
        twin_handles, twin_labels = twin.get_legend_handles_labels()
        handles, labels, top = handles + twin_handles, labels + twin_labels, twin
    top.legend(handles, labels, loc="best", fontsize=8, framealpha=0.9)  # one legend for both axes, drawn on top
    ax.set_title(title, fontsize=10)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def data_worker_count(settings: TrainingSettings, device: torch.device, context: DistributedContext) -> int:
    """How many processes draw batches: ``settings.data_workers``, or its default (see
    :class:`TrainingSettings`)."""
    if settings.data_workers is not None:
        return settings.data_workers
    if device.type != "cuda":
        return 0
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return max(0, min(8, cores // context.world_size - 1))


def iteration_generator(seed: int, rank: int, iteration: int) -> np.random.Generator:
    """The random generator that draws the batch of ``iteration`` (1-based) in process ``rank``."""
    return np.random.default_rng([seed, rank, iteration])


class IterationBatches(torch.utils.data.Dataset):
    """Item ``i`` is the batch of iteration ``i``: ``draw(iteration_generator(seed, rank, i))``, on the CPU."""

    def __init__(self, draw: Callable[[np.random.Generator], object], seed: int, rank: int) -> None:
        self.draw, self.seed, self.rank = draw, seed, rank

    def __getitem__(self, iteration: int):
        return self.draw(iteration_generator(self.seed, self.rank, iteration))


def batch_stream(batches: IterationBatches, iterations: range, workers: int) -> Iterator:
    """The batches of ``iterations`` in order, drawn here (``workers`` 0) or by that many worker processes
    that keep two batches each ready ahead of the optimiser."""
    if not workers:
        return map(batches.__getitem__, iterations)
    # a generator of its own: the loader's seeding of its workers leaves torch's global one (dropout, noise) alone
    return iter(torch.utils.data.DataLoader(batches, batch_size=None, sampler=iterations, num_workers=workers,
                                            prefetch_factor=2, generator=torch.Generator()))


def _cpu_copy(module: torch.nn.Module) -> dict:
    """A snapshot of ``module``'s parameters and buffers on the CPU."""
    return {k: v.detach().cpu().clone() for k, v in module.state_dict().items()}


def train(objective: torch.nn.Module, draw_batch: Callable[[np.random.Generator], object],
          validate: Callable[[], dict], settings: TrainingSettings, output: OutputSettings, *,
          validation_key: str, title: str, device: torch.device, context: DistributedContext,
          progress: Optional[ProgressCallback] = None, resume: bool = True) -> TrainingRecord:
    """Run the training loop (see the module docstring); lower ``validation_key`` is better.

    ``draw_batch(rng)`` returns a batch for ``objective`` on the CPU, with a ``to(device)`` method; it may run in
    worker processes (``settings.data_workers``), so it must draw its randomness from ``rng`` alone.
    ``validate()`` (rank 0, no gradients, evaluation mode) returns named floats including ``validation_key``.
    With ``resume`` and a checkpoint in the output folder, training continues from it (same iteration,
    optimiser state, log, best parameters).
    """
    folder = Path(output.folder)
    folder.mkdir(parents=True, exist_ok=True)
    objective.to(device)
    optimiser = torch.optim.Adam(objective.parameters(), lr=settings.learning_rate, amsgrad=True, fused=True)
    checkpoint_path = folder / "checkpoint.pt"
    start, elapsed, rows, best = 0, 0.0, [], {}
    best_state = _cpu_copy(objective)
    if resume and checkpoint_path.is_file():
        saved = torch.load(checkpoint_path, map_location="cpu", weights_only=True)
        objective.load_state_dict(saved["model"])
        optimiser.load_state_dict(saved["optimiser"])
        start, elapsed, rows, best, best_state = (saved["iteration"], saved["wall_time_s"], saved["rows"],
                                                  saved["best"], saved["best_state"])
    model = objective
    if context.world_size > 1:
        model = torch.nn.parallel.DistributedDataParallel(
            objective, device_ids=[device.index] if device.type == "cuda" else None)

    def save_checkpoint(iteration: int) -> None:
        checkpoint = {"model": objective.state_dict(), "optimiser": optimiser.state_dict(), "iteration": iteration,
                      "wall_time_s": elapsed, "rows": rows, "best": best, "best_state": best_state}
        atomic_write(checkpoint_path, lambda tmp: torch.save(checkpoint, tmp))
        _write_log(rows, folder)
        plot_loss_curve(rows, folder / "loss.png", validation_key, title)

    iterations = range(start + 1, settings.steps + 1)
    batches = batch_stream(IterationBatches(draw_batch, settings.seed, context.rank), iterations,
                           data_worker_count(settings, device, context))
    elapsed_before, iteration = elapsed, start
    t_last = time.perf_counter()
    for iteration, batch in zip(iterations, batches):
        for group in optimiser.param_groups:
            group["lr"] = settings.learning_rate_at(iteration)
        model.train()
        loss, stats = model(batch.to(device))
        optimiser.zero_grad(set_to_none=True)
        loss.backward()
        grad_norm = torch.nn.utils.clip_grad_norm_(objective.parameters(), settings.grad_clip)
        optimiser.step()
        now = time.perf_counter()
        elapsed += now - t_last
        t_last = now
        last = iteration == settings.steps or _out_of_time(settings, elapsed - elapsed_before, device, context)
        if not context.is_main:
            if last:
                break
            continue
        row = None
        if iteration % settings.log_every == 0 or last:
            row = {"iteration": iteration, "loss": float(loss.detach()), "grad_norm": float(grad_norm),
                   "learning_rate": optimiser.param_groups[0]["lr"],
                   "wall_time_s": round(elapsed, 2), **{k: float(v) for k, v in stats.items()}}
        if iteration % settings.validate_every == 0 or last:
            objective.eval()
            with torch.no_grad():
                scores = validate()
            row = {**(row or {"iteration": iteration, "wall_time_s": round(elapsed, 2)}), **scores}
            if not best or scores[validation_key] < best[validation_key]:
                best = {"iteration": iteration, **scores}
                best_state = _cpu_copy(objective)
            t_last = time.perf_counter()  # validation time is not training time
        if row is not None:
            rows.append(row)
        if progress is not None:
            message = f"iteration {iteration}/{settings.steps}, loss {float(loss.detach()):.4f}"
            if best:
                message += f", best {validation_key} {best[validation_key]:.3f}"
            progress(iteration / settings.steps, message)
        if iteration % settings.checkpoint_every == 0 or last:
            save_checkpoint(iteration)
        if last:
            break
    if context.world_size > 1:
        dist.barrier()
    return TrainingRecord(iteration, elapsed, rows, best, best_state)


def _out_of_time(settings: TrainingSettings, trained_s: float, device: torch.device,
                 context: DistributedContext) -> bool:
    """Whether ``settings.max_minutes`` has passed; under torchrun, whether it has for any process (they
    stop together)."""
    if not settings.max_minutes:
        return False
    out = trained_s >= 60 * settings.max_minutes
    if context.world_size > 1:
        flag = torch.tensor([float(out)], device=device)
        dist.all_reduce(flag, op=dist.ReduceOp.MAX)
        out = bool(flag.item())
    return out


def method_trainer(sections: dict[str, type], body: Callable[..., Optional[dict]]):
    """A method's training entry point, ``train(config_path, *, progress, resume, steps, overrides)``.

    It reads the configuration's ``sections`` (``overrides``, ``SECTION.KEY=VALUE``, replace the file's
    values and ``steps`` its ``[training] steps``), sets ``[training] threads``, sets up torchrun's process
    group around ``body(*sections, context, device, progress, resume)`` (the built sections in the order of
    ``sections``, which must include ``training``) and returns what ``body`` returns on rank 0: the model card
    of the saved weights.
    """

    def train_method(config_path, *, progress: Optional[ProgressCallback] = None, resume: bool = True,
                     steps: Optional[int] = None, overrides=()) -> Optional[dict]:
        return _run_configured(config_path, sections, body, progress, resume, steps, overrides)

    return train_method


def _run_configured(config_path, sections, body, progress, resume, steps, overrides) -> Optional[dict]:
    from learnreg.training.config import read_sections

    built = read_sections(config_path, sections, overrides)
    if steps is not None:
        built["training"] = dataclasses.replace(built["training"], steps=steps)
    training = built["training"]
    if training.threads:
        torch.set_num_threads(training.threads)
    context = distributed_context()
    device = training_device(training, context)
    if context.world_size > 1:
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    try:
        return body(*built.values(), context, device, progress, resume)
    finally:
        if context.world_size > 1:
            dist.destroy_process_group()


def hardware_description(device: torch.device, world_size: int) -> str:
    """What trained: ``"2 x NVIDIA H100 ..."`` or ``"CPU (x86_64, 1 torch threads)"``."""
    if device.type == "cuda":
        what = torch.cuda.get_device_name(device)
    else:
        what = f"CPU ({platform.processor() or platform.machine()}, {torch.get_num_threads()} torch threads)"
    return f"{world_size} x {what}" if world_size > 1 else what


def training_card(training: TrainingSettings, loss_settings, record: TrainingRecord, bank_seconds: float,
                  device: torch.device, context: DistributedContext, validation_key: str) -> dict:
    """The model card's ``training`` and ``validation`` parts for a finished run. A run that started from
    saved weights records their file name, SHA-256 and their own card (so a card holds every stage)."""
    started_from = {}
    if training.initial_weights_path:  # their hash was checked against this card when they were loaded
        card = read_card(training.initial_weights_path)
        started_from = {"initial_weights": {"file": Path(training.initial_weights_path).name,
                                            "sha256": card["sha256"], "card": card}}
    return {
        "training": {**dataclasses.asdict(training), **started_from, "loss": dataclasses.asdict(loss_settings),
                     "iterations": record.iterations, "wall_time_s": round(record.wall_time_s, 1),
                     "bank_build_s": round(bank_seconds, 1),
                     "hardware": hardware_description(device, context.world_size),
                     "processes": context.world_size, "torch": torch.__version__,
                     "date": time.strftime("%Y-%m-%d", time.gmtime())},
        "validation": {"best": record.best,
                       "final": next((r for r in reversed(record.rows) if validation_key in r), {})},
    }
