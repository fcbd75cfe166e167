"""What the three LearnReg Slicer modules share below the GUI: module description, method choices,
presets, the required packages, the logic that registers in a scene, sample data, and the self-test.

Nothing here imports torch at import time, so a module loads in Slicer before PyTorch is installed; the
panel then offers to install it (see :mod:`learnreg.slicer.panel`).
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import importlib.util
import re
from pathlib import Path
from typing import Callable, Optional

#: classical methods every module offers (as baseline, and until its own network is installed)
CLASSICAL_METHODS = ("bspline", "affine", "ddf")
#: learned methods every module offers once their weights are installed, after its own network (DeepReg's
#: registration network has no module of its own)
SHARED_NETWORKS = ("ddfnet",)

#: presets: name -> method options (the empty preset is each method's defaults)
PRESETS = {
    "Default": {},
    "Fast": {"iterations": "50,30,10", "refine": "none"},  # learned methods: one pass
    # learned methods: refined from the affine start as well, the more similar result kept (bspline's Accurate
    # iterations made their refinement worse on head3d: 0.38 against 0.32 mm from the affine start)
    "Accurate": {"iterations": "200,150,100", "refine_from": "both"},
    # the B-spline baseline of the R2N2 paper (AirLab): 3 levels, MSE, isotropic TV, no affine start
    "R2N2 paper baseline": {"levels": "4,2,1", "iterations": "200,200,200", "image_loss": "mse", "regulariser": "tv",
                            "regulariser_weight": "0.1", "initialise": "none", "final_control_spacing_voxels": "15"},
}

#: the oldest torch learnreg runs on (as in pyproject.toml), as a pip requirement
TORCH_REQUIREMENT = ">=2.2"
_TORCH_MINIMUM = (2, 2)


def describe_module(parent, title: str, summary: str, paper: str) -> None:
    """Fill in a module's title, category, help and acknowledgement (``parent`` is the module's parent)."""
    parent.title = title
    parent.categories = ["Registration.LearnReg"]
    parent.dependencies = []
    parent.contributors = ["LearnReg developers"]
    parent.helpText = (
        f"{summary}<br><br>Choose the fixed and moving volumes and a method, then Apply. The result is a new "
        "warped volume on the fixed grid and a grid transform (resampling direction: put the moving volume "
        "under it to align it), drawn as displacement arrows. With fixed and moving landmarks, the table lists "
        "the target registration error per landmark, worst first. Methods that work in steps can be scrubbed "
        "with the step slider. The same runs from the command line: <tt>learnreg register</tt>.")
    parent.acknowledgementText = f"Method: {paper}. Sample data: Colin27 (BSD-3), ITK example images (Apache-2.0)."


# ----------------------------------------------------------------- required packages
def _version_tuple(text: str) -> tuple:
    return tuple(int(part) for part in re.findall(r"\d+", text.split("+")[0])[:2])


def missing_requirements() -> list[str]:
    """What must be installed into Slicer's Python before a registration can run, as pip requirements
    (``torch>=2.2`` also when an older torch is installed). Finds packages without importing them."""
    missing = []
    if importlib.util.find_spec("torch") is None:
        missing.append(f"torch{TORCH_REQUIREMENT}")
    else:
        try:
            version = importlib.metadata.version("torch")
        except importlib.metadata.PackageNotFoundError:  # a torch without metadata: trust it
            version = ".".join(map(str, _TORCH_MINIMUM))
        if _version_tuple(version) < _TORCH_MINIMUM:
            missing.append(f"torch{TORCH_REQUIREMENT}")
    if importlib.util.find_spec("scipy") is None:
        missing.append("scipy")
    return missing


def requirement_message(missing: list[str]) -> str:
    """One line telling the user what is missing and what the Install button does about it."""
    parts = []
    if any(r.startswith("torch") for r in missing):
        installed = None if importlib.util.find_spec("torch") is None else importlib.metadata.version("torch")
        parts.append(f"PyTorch {TORCH_REQUIREMENT} (installed: {installed})" if installed else
                     f"PyTorch {TORCH_REQUIREMENT}")
    parts += [r for r in missing if not r.startswith("torch")]
    return f"LearnReg needs {' and '.join(parts)} in Slicer's Python."


# ----------------------------------------------------------------- methods and options
def module_methods(network_method: Optional[str]) -> list[str]:
    """Methods a module offers: its own network first when installed with its weights, then the classical ones,
    then the shared networks that are installed. Imports the registrars (and so torch): call it off the GUI
    thread."""
    from learnreg.registration import available_methods

    installed = available_methods()

    def ready(name: str) -> bool:
        return name in installed and installed[name].ready()

    own = [network_method] if ready(network_method) else []
    return own + [m for m in CLASSICAL_METHODS if m in installed] + [m for m in SHARED_NETWORKS if ready(m)]


def supported_options(method: str, values: dict) -> dict:
    """The items of ``values`` that are options of ``method`` (the rest are for other methods)."""
    import dataclasses

    from learnreg.methods import find_method

    names = {f.name for f in dataclasses.fields(find_method(method).options)}
    return {k: v for k, v in values.items() if k in names}


def preset_options(method: str, preset: str) -> dict:
    """Options of ``preset`` that ``method`` understands."""
    return supported_options(method, PRESETS.get(preset, {}))


def parse_option_text(text: str) -> dict:
    """``"iterations=50,30,10; image_loss=ncc"`` (``;`` or new lines between) -> dict, with clear errors."""
    from learnreg.options import options_from_pairs

    return options_from_pairs(text.replace("\n", ";").split(";"))


def method_options(method: str, preset: str = "Default", panel_options: Optional[dict] = None,
                   option_text: str = "") -> dict:
    """The options a panel run passes to ``method``: the preset's, then the module's own controls
    (``panel_options``; those the method does not have are ignored), then the free text, each overriding
    the last."""
    return {**preset_options(method, preset), **supported_options(method, panel_options or {}),
            **parse_option_text(option_text)}


class RegistrationLogic:
    """The GUI-free logic of a LearnReg module.

    A module's Logic class mixes this in beside ``ScriptedLoadableModuleLogic`` and sets ``network_method``.
    A panel run is :meth:`read_inputs` (GUI thread), :meth:`registration_work` (a worker thread) and
    :meth:`add_result` (GUI thread); :meth:`process` does all three in one call (scripts, the self-test).
    """

    network_method: Optional[str] = None

    def methods(self) -> list[str]:
        return module_methods(self.network_method)

    def prepare(self) -> list[str]:
        """What a panel does in the background when it opens: import the registrars (and torch), warm torch
        up for the first run (:func:`learnreg.registration.warm_up`), and return :meth:`methods`."""
        from learnreg.registration import warm_up

        methods = self.methods()
        warm_up()
        return methods

    def default_method(self) -> str:
        return self.methods()[0]

    @staticmethod
    def read_inputs(fixed, moving, **nodes):
        """:func:`learnreg.slicer.inputs.read_inputs`: read and check the input and output nodes."""
        from learnreg.slicer.inputs import read_inputs

        return read_inputs(fixed, moving, **nodes)

    @staticmethod
    def check_options(method: str, options: dict) -> None:
        """Refuse an unknown method or a bad option value now (an ``InputError`` naming it), before a run
        starts. Fast once the method list is loaded: building a registrar loads no weights."""
        from learnreg.registration import create_registrar

        create_registrar(method, options)

    @staticmethod
    def registration_work(inputs, method: str, options: dict, device: str = "auto") -> Callable:
        """The registration as a job for a worker thread: ``work(progress, cancel) -> RegistrationResult``.
        It touches no scene node; creating the registrar (importing torch, checking the options) happens
        in the job."""
        def work(progress, cancel):
            from learnreg.registration import create_registrar

            progress(0.0, f"{method}: loading")
            registrar = create_registrar(method, options)
            return registrar.register(inputs.fixed, inputs.moving, device=device, progress=progress, cancel=cancel)
        return work

    @staticmethod
    def add_result(scene, inputs, result, **kwargs):
        """:func:`learnreg.slicer.run.add_registration_to_scene`."""
        from learnreg.slicer.run import add_registration_to_scene

        return add_registration_to_scene(scene, inputs, result, **kwargs)

    def process(self, scene, fixed, moving, method: str, preset: str = "Default", option_text: str = "",
                device: str = "auto", warped_volume=None, transform=None, fixed_landmarks=None,
                moving_landmarks=None, progress: Optional[Callable] = None, cancel=None,
                panel_options: Optional[dict] = None, fixed_labels=None, moving_labels=None):
        """Register ``moving`` to ``fixed`` in ``scene`` in one call (options as :func:`method_options`);
        ``fixed_labels`` and ``moving_labels`` (both or neither) add the structure review table."""
        from learnreg.slicer.run import run_registration

        return run_registration(scene, fixed, moving, method, method_options(method, preset, panel_options, option_text),
                                progress, cancel, device=device, fixed_landmarks=fixed_landmarks,
                                moving_landmarks=moving_landmarks, warped_volume=warped_volume, transform=transform,
                                fixed_labels=fixed_labels, moving_labels=moving_labels)


# ----------------------------------------------------------------- sample data
SAMPLE_DATA_CATEGORY = "LearnReg"


def _sha256(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def sample_data_sources() -> list[dict]:
    """The bundled pairs as Sample Data sources (the keyword arguments of Slicer's
    ``SampleDataLogic.registerCustomSampleDataSource``): local ``file://`` URIs with their SHA-256, the
    file names in Slicer's download cache, node names and file types (volumes, label maps, landmarks)."""
    from learnreg.sample_data import sample_pairs

    sources = []
    for name, pair in sample_pairs().items():
        files = [(pair.fixed, "fixed", "VolumeFile"), (pair.moving, "moving", "VolumeFile")]
        files += [(path, role, "VolumeFile") for path, role in ((pair.fixed_labels, "fixed labels"),
                                                                (pair.moving_labels, "moving labels")) if path]
        files += [(path, role, "MarkupsFile") for path, role in ((pair.fixed_landmarks, "fixed landmarks"),
                                                                 (pair.moving_landmarks, "moving landmarks")) if path]
        sources.append({
            "category": SAMPLE_DATA_CATEGORY,
            "sampleName": f"LearnReg {name}",
            "uris": [Path(path).resolve().as_uri() for path, _, _ in files],
            "fileNames": [f"LearnReg-{name}-{Path(path).name}" for path, _, _ in files],
            "nodeNames": [f"{name} {role}" for _, role, _ in files],
            "checksums": [f"SHA256:{_sha256(path)}" for path, _, _ in files],
            "loadFileTypes": [kind for _, _, kind in files],
            "loadFileProperties": {},
            "thumbnailFileName": str(pair.thumbnail) if pair.thumbnail else None,
        })
    return sources


def register_sample_data() -> None:
    """Add the bundled pairs to Slicer's Sample Data module (category LearnReg). Each of the three modules
    calls this once the application has started; Sample Data keeps one entry per pair because the three
    calls give identical sources."""
    import SampleData

    for source in sample_data_sources():
        SampleData.SampleDataLogic.registerCustomSampleDataSource(**source)


def add_sample_pair(scene, name: str):
    """A bundled pair as nodes of ``scene`` (volumes, and point lists where it has landmarks) named
    ``<name> fixed`` and ``<name> moving``; returns the :class:`~learnreg.slicer.inputs.SceneInputs` with
    the nodes."""
    from learnreg.sample_data import sample_pairs
    from learnreg.slicer.inputs import SceneInputs
    from learnreg.slicer.run import add_input_nodes

    inputs = SceneInputs.from_images(*sample_pairs()[name].load(), (f"{name} fixed", f"{name} moving"))
    add_input_nodes(scene, inputs)
    return inputs


# ----------------------------------------------------------------- self-test
class RegistrationSelfTest:
    """The self-test of a LearnReg module, mixed in first into its Test class
    (``class R2RegisterTest(RegistrationSelfTest, ScriptedLoadableModuleTest)``), which sets ``logic_class``."""

    logic_class: type = RegistrationLogic

    def setUp(self):
        import slicer

        slicer.mrmlScene.Clear()

    def runTest(self):
        self.setUp()
        self.test_register_bundled_pair()

    def test_register_bundled_pair(self):
        import slicer

        self.delayDisplay("Registering the bundled brain2d pair")
        run_self_test(slicer.mrmlScene, self.logic_class(), self.delayDisplay)
        self.delayDisplay("Test passed")


def run_self_test(scene, logic: RegistrationLogic, log: Callable[[str], None] = print, pair: str = "brain2d") -> dict:
    """Load a bundled pair into ``scene``, register it with the module's default method and check the
    result: new warped and transform nodes, TRE reduced by more than 40 %, inputs unchanged. The self-test
    checks that registration runs end to end in the scene; each method's accuracy bar is its own tests' and
    benchmark's business. Returns the TRE summaries. Raises ``AssertionError`` on failure."""
    import numpy as np

    from learnreg.slicer.volumes import image_from_volume_node

    nodes = add_sample_pair(scene, pair)
    moving = nodes.moving_node
    moving_before = image_from_volume_node(moving).array.copy()
    method = logic.default_method()
    log(f"Registering {pair} with {method}")
    result = logic.process(scene, nodes.fixed_node, moving, method, preset="Fast",
                           fixed_landmarks=nodes.fixed_landmarks_node, moving_landmarks=nodes.moving_landmarks_node)
    assert result.warped_volume is not None and result.warped_volume is not moving
    assert result.transform.GetTransformFromParent().IsA("vtkOrientedGridTransform")
    assert np.array_equal(image_from_volume_node(moving).array, moving_before), "the moving volume was changed"
    before, after = result.review.before["mean"], result.review.after["mean"]
    log(f"Mean TRE {before:.2f} -> {after:.2f} mm")
    assert after < 0.6 * before, f"TRE went from {before:.2f} to only {after:.2f} mm"
    return {"before": result.review.before, "after": result.review.after}
