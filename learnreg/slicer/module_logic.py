"""What the three LearnReg Slicer modules share below the GUI: method choices, presets, the logic that runs
a registration in a scene, sample data, missing dependencies, and the self-test body.

Nothing here imports torch at import time, so a module loads in Slicer even before PyTorch is
installed; the panel then offers to install it (see :mod:`learnreg.slicer.panel`).
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Callable, Optional

#: classical methods every module offers (as baseline, and until its own network is installed)
CLASSICAL_METHODS = ("bspline", "affine", "ddf")

#: presets: name -> method options (the empty preset is each method's defaults)
PRESETS = {
    "Default": {},
    "Fast": {"iterations": "50,30,10"},
    "Accurate": {"iterations": "200,150,100"},
    # the B-spline baseline of the R2N2 paper (AirLab): 3 levels, MSE, isotropic TV, no affine start
    "R2N2 paper baseline": {"levels": "4,2,1", "iterations": "200,200,200", "image_loss": "mse", "regulariser": "tv",
                            "regulariser_weight": "0.1", "initialise": "none", "final_control_spacing_voxels": "15"},
}

#: Python packages learnreg needs that Slicer does not ship: import name -> pip requirement
REQUIREMENTS = {"torch": "torch", "scipy": "scipy"}


def missing_requirements() -> list[str]:
    """pip requirements of the packages that cannot be imported here."""
    return [req for name, req in REQUIREMENTS.items() if importlib.util.find_spec(name) is None]


def module_methods(network_method: Optional[str]) -> list[str]:
    """Methods a module offers: its own network first when installed with its weights, then the classical ones."""
    from learnreg.registration import available_methods

    installed = available_methods()
    own = [network_method] if network_method in installed and installed[network_method].ready() else []
    return own + [m for m in CLASSICAL_METHODS if m in installed]


def supported_options(method: str, values: dict) -> dict:
    """The items of ``values`` that are options of ``method`` (the rest are for other methods)."""
    import dataclasses

    from learnreg.registration import available_methods

    names = {f.name for f in dataclasses.fields(available_methods()[method].Options)}
    return {k: v for k, v in values.items() if k in names}


def preset_options(method: str, preset: str) -> dict:
    """Options of ``preset`` that ``method`` understands."""
    return supported_options(method, PRESETS.get(preset, {}))


def parse_option_text(text: str) -> dict:
    """``"iterations=50,30,10; image_loss=ncc"`` (``;`` or new lines between) -> dict, with clear errors."""
    from learnreg.registration import options_from_pairs

    return options_from_pairs(text.replace("\n", ";").split(";"))


class RegistrationLogic:
    """The GUI-free logic of a LearnReg module: a thin adapter over :func:`learnreg.slicer.run.run_registration`.

    A module's Logic class mixes this in beside ``ScriptedLoadableModuleLogic`` and sets ``network_method``.
    """

    network_method: Optional[str] = None
    #: the network's options for the self-test (ignored by the classical methods)
    self_test_options: dict = {}

    def methods(self) -> list[str]:
        return module_methods(self.network_method)

    def default_method(self) -> str:
        return self.methods()[0]

    def process(self, scene, fixed, moving, method: str, preset: str = "Default", option_text: str = "",
                device: str = "auto", warped_volume=None, transform=None, fixed_landmarks=None,
                moving_landmarks=None, progress: Optional[Callable] = None, cancel=None,
                panel_options: Optional[dict] = None, fixed_labels=None, moving_labels=None):
        """Register ``moving`` to ``fixed`` in ``scene``.

        Options: the preset's, then ``panel_options`` (the module's own controls, e.g. R2N2's steps and
        tolerance; those the method does not have are ignored), then ``option_text``, each overriding the last.
        ``fixed_labels`` and ``moving_labels`` (both or neither) add the structure review table.
        """
        from learnreg.slicer.run import run_registration

        options = {**preset_options(method, preset), **supported_options(method, panel_options or {}),
                   **parse_option_text(option_text)}
        return run_registration(scene, fixed, moving, method, options, progress, cancel, device=device,
                                fixed_landmarks=fixed_landmarks, moving_landmarks=moving_landmarks,
                                warped_volume=warped_volume, transform=transform, fixed_labels=fixed_labels,
                                moving_labels=moving_labels)


# ----------------------------------------------------------------- sample data
def sample_data_sources() -> list[dict]:
    """The bundled pairs as Sample Data entries: name, files (volumes first, then landmarks) and node names."""
    from learnreg.sample_data import sample_pairs

    sources = []
    for name, pair in sample_pairs().items():
        files = [pair.fixed, pair.moving] + [p for p in (pair.fixed_landmarks, pair.moving_landmarks) if p]
        node_names = [f"{name} fixed", f"{name} moving", f"{name} fixed landmarks", f"{name} moving landmarks"]
        sources.append({"name": f"LearnReg {name}", "files": [str(f) for f in files],
                        "node_names": node_names[: len(files)]})
    return sources


def register_sample_data(icon: Path) -> None:
    """Add the bundled pairs to Slicer's Sample Data module (category LearnReg); they load from disk."""
    import SampleData
    import slicer

    def loader(files, node_names):
        def load(source=None):
            nodes = [slicer.util.loadVolume(f, {"name": n}) for f, n in zip(files[:2], node_names[:2])]
            nodes += [slicer.util.loadMarkups(f) for f in files[2:]]
            for node, node_name in zip(nodes[2:], node_names[2:]):
                node.SetName(node_name)
            return nodes
        return load

    for source in sample_data_sources():
        SampleData.SampleDataLogic.registerCustomSampleDataSource(
            category="LearnReg", sampleName=source["name"], thumbnailFileName=str(icon),
            uris=None, fileNames=None, nodeNames=source["node_names"],
            customDownloader=loader(source["files"], source["node_names"]))


# ----------------------------------------------------------------- self-test
def run_self_test(scene, logic: RegistrationLogic, log: Callable[[str], None] = print, pair: str = "brain2d") -> dict:
    """Load a bundled pair into ``scene``, register it with the module's default method and check the
    result: new warped and transform nodes, TRE reduced by more than 40 %, inputs unchanged. The self-test
    checks that registration runs end to end in the scene; each method's accuracy bar is its own tests' and
    benchmark's business. Returns the TRE summaries. Raises ``AssertionError`` on failure."""
    import numpy as np

    from learnreg.image import load_image
    from learnreg.landmarks import pair_landmarks, read_landmarks
    from learnreg.sample_data import sample_pairs
    from learnreg.slicer.headless import add_pair_nodes
    from learnreg.slicer.volumes import image_from_volume_node

    sample = sample_pairs()[pair]
    fixed_image, moving_image = load_image(sample.fixed), load_image(sample.moving)
    landmarks = pair_landmarks(read_landmarks(sample.fixed_landmarks), read_landmarks(sample.moving_landmarks),
                               fixed_image, moving_image)
    nodes = add_pair_nodes(scene, fixed_image, moving_image, (f"{pair} fixed", f"{pair} moving"), landmarks)
    moving = nodes.moving
    moving_before = image_from_volume_node(moving).array.copy()
    method = logic.default_method()
    log(f"Registering {pair} with {method}")
    result = logic.process(scene, nodes.fixed, moving, method, preset="Fast", fixed_landmarks=nodes.fixed_landmarks,
                           moving_landmarks=nodes.moving_landmarks, panel_options=logic.self_test_options)
    assert result.warped_volume is not None and result.warped_volume is not moving
    assert result.transform.GetTransformFromParent().IsA("vtkOrientedGridTransform")
    assert np.array_equal(image_from_volume_node(moving).array, moving_before), "the moving volume was changed"
    before, after = result.review.before["mean"], result.review.after["mean"]
    log(f"Mean TRE {before:.2f} -> {after:.2f} mm")
    assert after < 0.6 * before, f"TRE went from {before:.2f} to only {after:.2f} mm"
    return {"before": result.review.before, "after": result.review.after}
