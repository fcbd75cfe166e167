"""A trained ``ddfnet``: weights with their card, and where the shipped ones lie."""

from __future__ import annotations

from pathlib import Path

from learnreg.ddfnet.network import DDFNet, DDFNetConfig
from learnreg.model_files import MODELS_DIR, SavedNetwork

METHOD = "ddfnet"


def shipped_weights(ndim: int, output: str) -> Path:
    """Path of the shipped weights for a dimension and output."""
    return MODELS_DIR / f"ddfnet_{ndim}d_{output}.pt"


class DDFNetModel(SavedNetwork):
    """``ddfnet`` weights (the configuration says the output and the working grid)."""

    method = METHOD

    @property
    def config(self) -> DDFNetConfig:
        return self.network.config

    @classmethod
    def from_payload(cls, payload: dict, card: dict | None = None) -> "DDFNetModel":
        network = DDFNet(DDFNetConfig.from_dict(payload["network"]))
        network.load_state_dict(payload["state_dict"])
        return cls(network, card)

