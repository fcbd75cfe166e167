"""Choosing the torch device and checking that a registration fits its memory before it runs."""

from __future__ import annotations

from typing import TYPE_CHECKING

from learnreg.errors import InputError, ResourceError

if TYPE_CHECKING:  # torch is imported when a device is chosen, so that `learnreg --help` starts at once
    import torch

DEVICE_CHOICES = ("auto", "cpu", "cuda")


def resolve_device(name: str = "auto") -> torch.device:
    """``auto`` picks the GPU when torch sees one, else the CPU; ``cuda`` without a GPU is an error."""
    import torch

    name = (name or "auto").lower()
    if name not in DEVICE_CHOICES and not name.startswith("cuda:"):
        raise InputError(f"unknown device {name!r}; use auto, cpu or cuda")
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ResourceError("device cuda was asked for, but torch sees no GPU here; use --device cpu (or auto)")
    return torch.device(name)


def available_memory_bytes(device: torch.device) -> int:
    """Free memory on the device: GPU free memory, or the system's available memory for the CPU."""
    if device.type == "cuda":
        import torch

        free, _total = torch.cuda.mem_get_info(device)
        return int(free)
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 8 * 1024 ** 3


def check_memory(required_bytes: int, device: torch.device, what: str, shape) -> None:
    """Raise :class:`ResourceError` when ``required_bytes`` exceeds 80 % of what the device has free."""
    free = available_memory_bytes(device)
    if required_bytes > 0.8 * free:
        gib = 1024 ** 3
        raise ResourceError(
            f"{what} of a {'x'.join(str(n) for n in shape)} volume needs about {required_bytes / gib:.1f} GiB on "
            f"{device.type}, but only {free / gib:.1f} GiB is free; downsample the images (e.g. to 2 mm spacing) "
            "or crop them to the region of interest"
        )
