"""learnreg.slicer on real MRML (slicer-core): geometry, transform direction, TRE review, saved scenes.

A 2D single-slice pair (30 degree in-plane rotation, 1.1 x 1.4 mm pixels) and a 3D oblique, anisotropic
pair (2.4 x 3.0 x 3.6 mm voxels) are registered with ``run_registration`` in a headless scene. Slicer's own
resampling through the created transform node must reproduce the warped volume, TRE read from the table
node must equal TRE that SimpleITK computes from the transform Slicer exports, and the ``.mrb`` bundle must
bring every result node back.
"""

from __future__ import annotations

import numpy as np
import pytest
import SimpleITK as sitk

slicer = pytest.importorskip("slicer")
vtk = pytest.importorskip("vtk")

from learnreg.errors import InputError, RegistrationCancelled  # noqa: E402
from learnreg.field import DisplacementField  # noqa: E402
from learnreg.progress import CancelToken  # noqa: E402
from learnreg.slicer.markups import add_markups_node, landmarks_from_markups  # noqa: E402
from learnreg.slicer.render import SliceView  # noqa: E402
from learnreg.slicer.review import AFTER, BEFORE, LANDMARK  # noqa: E402
from learnreg.slicer.run import run_registration  # noqa: E402
from learnreg.slicer.scene import create_scene, load_scene, save_scene  # noqa: E402
from learnreg.slicer.tables import table_column  # noqa: E402
from learnreg.slicer.transforms import add_transform_node, field_from_transform_node  # noqa: E402
from learnreg.slicer.volumes import add_volume_node, ijk_to_ras, image_from_volume_node  # noqa: E402

FAST = {"iterations": "40,30,20"}


def _node_state(node) -> tuple:
    return np.array(slicer.util.arrayFromVolume(node)).copy(), ijk_to_ras(node), node.GetParentTransformNode()


@pytest.fixture(scope="module", params=["2d", "3d"])
def registered(request, pair2d, pair3d):
    """A pair registered in a fresh headless scene, with the nodes' states before the run."""
    pair, _ = pair2d if request.param == "2d" else pair3d
    scene = create_scene()
    fixed = add_volume_node(scene, pair.fixed, "fixed")
    moving = add_volume_node(scene, pair.moving, "moving")
    fixed_points = add_markups_node(scene, pair.fixed_landmarks, "fixed landmarks")
    moving_points = add_markups_node(scene, pair.moving_landmarks, "moving landmarks")
    states = {"fixed": _node_state(fixed), "moving": _node_state(moving)}
    out = run_registration(scene, fixed, moving, "bspline", FAST, device="cpu", fixed_landmarks=fixed_points,
                           moving_landmarks=moving_points)
    return {"case": request.param, "pair": pair, "scene": scene, "fixed": fixed, "moving": moving,
            "fixed_points": fixed_points, "out": out, "states": states}


def test_volume_node_round_trip_is_exact(colin_oblique, slice_oblique):
    scene = create_scene()
    for image in (colin_oblique, slice_oblique):
        node = add_volume_node(scene, image, "image")
        expected = np.diag([-1.0, -1.0, 1.0, 1.0]) @ image.grid.index_to_physical_matrix  # RAS = flip(LPS)
        assert np.abs(ijk_to_ras(node) - expected).max() < 1e-9
        back = image_from_volume_node(node)
        assert np.array_equal(back.array, image.array)
        assert np.abs(back.grid.index_to_physical_matrix - image.grid.index_to_physical_matrix).max() < 1e-9


def test_transform_node_holds_the_pull_field_as_from_parent(colin_oblique):
    grid = colin_oblique.grid
    points = grid.physical_points()
    field = DisplacementField(np.stack([np.sin(points[..., 0] / 20), np.cos(points[..., 1] / 15),
                                        np.sin(points[..., 2] / 25)], axis=-1) * 3.0, grid)
    scene = create_scene()
    node = add_transform_node(scene, field, "t")
    grid_transform = node.GetTransformFromParent()
    assert grid_transform.IsA("vtkOrientedGridTransform") and not grid_transform.GetInverseFlag()
    assert grid_transform.GetInterpolationModeAsString() == "Cubic"
    back = field_from_transform_node(node)
    assert np.abs(back.vectors - field.vectors).max() == 0.0
    # FromParent maps a fixed (world) point to its moving partner: exactly the field at voxel centres
    from_world = vtk.vtkGeneralTransform()
    node.GetTransformFromWorld(from_world)
    sample = grid.index_to_physical(np.array([[5, 6, 7], [20, 15, 10], [12, 30, 20]], float))
    flip = np.array([-1.0, -1.0, 1.0])
    mapped = np.array([from_world.TransformPoint(*(p * flip)) for p in sample]) * flip
    assert np.abs(mapped - field.transform_points(sample)).max() < 1e-9


def test_resampling_through_the_transform_node_reproduces_the_warped_volume(registered):
    scene, out, pair = registered["scene"], registered["out"], registered["pair"]
    # a float copy: Slicer's resampling keeps the input voxel type and would round integer voxels
    moving_copy = add_volume_node(scene, pair.moving.with_array(pair.moving.array.astype(np.float32)), "copy")
    moving_copy.SetAndObserveTransformNodeID(out.transform.GetID())
    resampled = slicer.vtkSlicerVolumesLogic().ResampleVolumeToReferenceVolume(moving_copy, registered["fixed"])
    slicer_warped = slicer.util.arrayFromVolume(resampled)
    ours = slicer.util.arrayFromVolume(out.warped_volume)
    difference = np.abs(slicer_warped - ours).max()
    value_range = float(ours.max() - ours.min())
    print(f"{registered['case']}: Slicer resampling vs learnreg warped, max difference {difference:.2e} "
          f"({difference / value_range:.1e} of the range)")
    assert difference < 2e-4 * value_range
    assert np.abs(ijk_to_ras(resampled) - ijk_to_ras(registered["fixed"])).max() < 1e-9
    for node in (moving_copy, resampled):
        scene.RemoveNode(node)


def test_tre_table_equals_simpleitk_on_the_exported_transform(registered, tmp_path):
    out, pair = registered["out"], registered["pair"]
    out.transform.AddDefaultStorageNode()
    storage = out.transform.GetStorageNode()  # what Slicer uses to save the transform
    path = tmp_path / f"exported_{registered['case']}.h5"
    storage.SetFileName(str(path))
    assert storage.WriteData(out.transform)
    itk = sitk.ReadTransform(str(path))
    fixed_lps, moving_lps = pair.fixed_landmarks.points, pair.moving_landmarks.points
    itk_tre = {label: float(np.linalg.norm(np.array(itk.TransformPoint(tuple(y))) - x))
               for label, y, x in zip(pair.fixed_landmarks.labels, fixed_lps, moving_lps)}
    table = out.review.table
    labels, after = table_column(table, LANDMARK), table_column(table, AFTER)
    worst = max(abs(a - itk_tre[label]) for label, a in zip(labels, after))
    print(f"{registered['case']}: TRE table vs SimpleITK from the exported .h5, max difference {worst:.1e} mm; "
          f"mean TRE {out.review.before['mean']:.2f} -> {out.review.after['mean']:.2f} mm")
    assert worst < 1e-6
    assert after == sorted(after, reverse=True)  # worst landmark first
    assert out.review.after["mean"] < 0.3 * out.review.before["mean"]
    before = table_column(table, BEFORE)
    assert np.isclose(np.mean(before), out.review.before["mean"])


def test_inputs_are_unchanged_and_result_nodes_are_new(registered):
    for role in ("fixed", "moving"):
        array, matrix, parent = registered["states"][role]
        after = _node_state(registered[role])
        assert np.array_equal(array, after[0]) and np.array_equal(matrix, after[1]) and after[2] is parent
    out = registered["out"]
    assert out.warped_volume not in (registered["fixed"], registered["moving"])
    assert out.transform.GetAttribute("LearnReg.method") == "bspline"


def test_scene_bundle_round_trip(registered, tmp_path):
    scene, out = registered["scene"], registered["out"]
    path = save_scene(scene, tmp_path / f"{registered['case']}.mrb")
    loaded = load_scene(path)

    def same_name(node):
        found = loaded.GetFirstNodeByName(node.GetName())
        assert found is not None, node.GetName()
        return found

    for volume in (registered["fixed"], registered["moving"], out.warped_volume):
        copy = same_name(volume)
        assert np.array_equal(slicer.util.arrayFromVolume(copy), slicer.util.arrayFromVolume(volume))
        assert np.abs(ijk_to_ras(copy) - ijk_to_ras(volume)).max() < 1e-6
    transform = same_name(out.transform)
    assert np.abs(field_from_transform_node(transform).vectors - out.result.field.vectors).max() < 1e-5
    display, original = transform.GetDisplayNode(), out.transform.GetDisplayNode()
    assert display.GetVisualizationMode() == display.VIS_MODE_GLYPH
    assert display.GetGlyphSpacingMm() == pytest.approx(original.GetGlyphSpacingMm())
    assert display.GetGlyphScalePercent() == pytest.approx(original.GetGlyphScalePercent())
    assert display.GetRegionNode().GetName() == registered["fixed"].GetName()
    assert transform.GetNumberOfDisplayNodes() == 2  # the grid, and the glyphs at the landmarks
    fixed_points = landmarks_from_markups(same_name(registered["fixed_points"]))
    assert np.abs(fixed_points.points - registered["pair"].fixed_landmarks.points).max() < 1e-4
    assert fixed_points.labels == registered["pair"].fixed_landmarks.labels
    table = same_name(out.review.table)
    # Slicer writes table columns as text with 6 significant digits
    assert table_column(table, AFTER) == pytest.approx(table_column(out.review.table, AFTER), rel=1e-5)
    assert table_column(table, LANDMARK) == table_column(out.review.table, LANDMARK)
    assert same_name(out.review.chart).GetNumberOfPlotSeriesNodes() == 2
    sequence = same_name(out.steps.displacement)
    assert sequence.GetNumberOfDataNodes() == len(out.result.steps) == 4  # affine + 3 levels
    for index in range(sequence.GetNumberOfDataNodes()):
        stored = slicer.util.arrayFromVolume(sequence.GetNthDataNode(index))
        expected = out.result.steps[index].displacement.magnitude()
        assert np.abs(stored - expected).max() < 1e-4
    browser = same_name(out.steps.browser)
    assert browser.GetNumberOfSynchronizedSequenceNodes(True) >= 2


def test_step_sequence_adds_up_to_the_result(registered):
    out = registered["out"]
    total = sum(step.displacement.vectors for step in out.result.steps)
    assert np.abs(total - out.result.field.vectors).max() < 1e-4
    last_warped = slicer.util.arrayFromVolume(out.steps.browser.GetProxyNode(out.steps.warped))
    assert np.abs(last_warped - slicer.util.arrayFromVolume(out.warped_volume)).max() < 1e-2


def test_slice_view_shows_volume_and_glyphs(registered):
    view = SliceView(registered["scene"], registered["fixed"], size=128)
    try:
        picture = view.grey(registered["out"].warped_volume)
        glyphs = view.glyph_polygons(registered["out"].transform.GetDisplayNode())
    finally:
        view.close()
    assert picture.shape == (128, 128) and picture.std() > 0.05
    assert len(glyphs) > 50


# ----------------------------------------------------------------- bad input
@pytest.fixture()
def small_scene(pair2d):
    pair, _ = pair2d
    scene = create_scene()
    fixed = add_volume_node(scene, pair.fixed, "fixed")
    moving = add_volume_node(scene, pair.moving, "moving")
    return scene, fixed, moving, pair


def _count(scene) -> int:
    return scene.GetNumberOfNodes()


def test_bad_inputs_give_clear_messages_and_add_nothing(small_scene):
    scene, fixed, moving, pair = small_scene
    empty = scene.AddNewNodeByClass("vtkMRMLScalarVolumeNode", "empty")
    labels = scene.AddNewNodeByClass("vtkMRMLLabelMapVolumeNode", "labels")
    slicer.util.updateVolumeFromArray(labels, (pair.fixed.array > 100).astype(np.uint8))
    landmarks_class = pair.fixed_landmarks.__class__
    few = add_markups_node(scene, landmarks_class(pair.fixed_landmarks.points[:3], pair.fixed_landmarks.labels[:3]),
                           "few")
    full = add_markups_node(scene, pair.moving_landmarks, "full")
    relabelled = add_markups_node(scene, landmarks_class(pair.moving_landmarks.points, (
        "other",) + pair.moving_landmarks.labels[1:]), "relabelled")
    all_fixed = add_markups_node(scene, pair.fixed_landmarks, "all fixed")
    cases = [
        ((fixed, fixed), {}, "same node"),
        ((fixed, empty), {}, "no image data"),
        ((labels, moving), {}, "label map"),
        ((fixed, moving), {"fixed_landmarks": few, "moving_landmarks": full}, "differ in number"),
        ((fixed, moving), {"fixed_landmarks": few}, "both fixed and moving landmarks"),
        ((fixed, moving), {"fixed_landmarks": all_fixed, "moving_landmarks": relabelled}, "some labels but not all"),
        ((fixed, moving), {"warped_volume": moving}, "is one of the inputs"),
    ]
    for (f, m), extra, message in cases:
        before = _count(scene)
        with pytest.raises(InputError, match=message):
            run_registration(scene, f, m, "bspline", FAST, **extra)
        assert _count(scene) == before, message


def test_non_linear_parent_transform_must_be_hardened(small_scene):
    scene, fixed, moving, pair = small_scene
    field = DisplacementField(np.ones((*pair.moving.grid.shape, 3)), pair.moving.grid)
    moving.SetAndObserveTransformNodeID(add_transform_node(scene, field, "warp").GetID())
    with pytest.raises(InputError, match="harden"):
        run_registration(scene, fixed, moving, "affine")


def test_linear_parent_transform_is_accounted_for_and_named(small_scene):
    scene, fixed, moving, pair = small_scene
    shift = scene.AddNewNodeByClass("vtkMRMLLinearTransformNode", "shift")
    matrix = np.eye(4)
    matrix[:3, 3] = [4.0, -3.0, 0.0]  # RAS mm, in the slice plane
    slicer.util.updateTransformMatrixFromArray(shift, matrix)
    moving.SetAndObserveTransformNodeID(shift.GetID())
    shown = image_from_volume_node(moving)
    expected = np.asarray(pair.moving.grid.origin) + np.array([-4.0, 3.0, 0.0])  # RAS shift in LPS
    assert np.abs(np.asarray(shown.grid.origin) - expected).max() < 1e-9
    out = run_registration(scene, fixed, moving, "affine", {"iterations": "10,10"}, device="cpu")
    assert any("'shift'" in note and "linear transform" in note for note in out.notes)
    assert moving.GetParentTransformNode() is shift  # untouched


@pytest.mark.parametrize("method", ["bspline", "r2n2"])
def test_cancel_leaves_the_scene_as_it_was(small_scene, method, tmp_path):
    scene, fixed, moving, _ = small_scene
    options = {}
    if method == "r2n2":  # a small untrained model whose steps change nothing: all steps run until cancelled
        from learnreg.r2n2.model import R2N2Model
        from learnreg.r2n2.network import NetworkConfig

        R2N2Model.create(NetworkConfig(2, (8, 8, 16), 1, 16), 16, 6).save(tmp_path / "m.pt", {})
        options = {"weights": str(tmp_path / "m.pt"), "tolerance": 0}
    before = _count(scene)
    token = CancelToken()
    messages = []

    def cancel_midway(fraction, message):
        messages.append(message)
        if fraction > 0.3 or "step 2/" in message:
            token.cancel()

    with pytest.raises(RegistrationCancelled):
        run_registration(scene, fixed, moving, method, options, progress=cancel_midway, cancel=token)
    assert _count(scene) == before
    if method == "r2n2":  # cancelled between steps, after some were reported
        assert any("r2n2: step 2/" in m for m in messages)


def test_failure_while_building_nodes_removes_them(small_scene, monkeypatch):
    scene, fixed, moving, _ = small_scene
    before = _count(scene)

    def broken(*args, **kwargs):
        raise RuntimeError("disk full")

    monkeypatch.setattr("learnreg.slicer.run.add_step_sequences", broken)
    with pytest.raises(RuntimeError):
        run_registration(scene, fixed, moving, "affine", {"iterations": "5,5"}, device="cpu")
    assert _count(scene) == before


def test_cli_scene_bundle_holds_the_result(pair2d, tmp_path):
    from learnreg.cli import main

    _, paths = pair2d
    out = tmp_path / "out"
    assert main(["register", "--fixed", str(paths["fixed"]), "--moving", str(paths["moving"]), "--out", str(out),
                 "--quiet", "-o", "iterations=20,20,10", "--fixed-landmarks", str(paths["fixed_landmarks"]),
                 "--moving-landmarks", str(paths["moving_landmarks"])]) == 0
    scene = load_scene(out / "scene.mrb")
    counts = {c: scene.GetNumberOfNodesByClass(c) for c in (
        "vtkMRMLScalarVolumeNode", "vtkMRMLGridTransformNode", "vtkMRMLMarkupsFiducialNode", "vtkMRMLTableNode",
        "vtkMRMLPlotChartNode", "vtkMRMLSequenceBrowserNode")}
    assert counts["vtkMRMLScalarVolumeNode"] >= 3  # fixed, moving, warped (+ sequence proxies)
    assert counts["vtkMRMLGridTransformNode"] == 1
    assert counts["vtkMRMLMarkupsFiducialNode"] == 3  # fixed, moving, mapped landmarks
    assert counts["vtkMRMLTableNode"] == 2 and counts["vtkMRMLPlotChartNode"] == 1
    assert counts["vtkMRMLSequenceBrowserNode"] == 1
    transform = scene.GetFirstNodeByClass("vtkMRMLGridTransformNode")
    saved = DisplacementField.from_sitk_image(
        sitk.DisplacementFieldTransform(sitk.ReadTransform(str(out / "transform.h5"))).GetDisplacementField())
    assert np.abs(field_from_transform_node(transform).vectors - saved.vectors).max() < 1e-5


def test_point_lists_read_in_any_coordinate_system(pair2d, tmp_path):
    """A .mrk.json saved in LPS or RAS, loaded by Slicer's own markups reader, gives the same LPS landmarks."""
    from learnreg.landmarks import write_landmarks

    pair, _ = pair2d
    scene = create_scene()
    for system in ("LPS", "RAS"):
        path = tmp_path / f"points_{system}.mrk.json"
        write_landmarks(pair.fixed_landmarks, path, system)
        node = scene.AddNewNodeByClass("vtkMRMLMarkupsFiducialNode", system)
        storage = scene.AddNewNodeByClass("vtkMRMLMarkupsJsonStorageNode")
        storage.SetFileName(str(path))
        node.SetAndObserveStorageNodeID(storage.GetID())
        assert storage.ReadData(node)
        read = landmarks_from_markups(node)
        assert read.labels == pair.fixed_landmarks.labels
        assert np.abs(read.points - pair.fixed_landmarks.points).max() < 1e-6


def test_local_steps_become_overlays_and_regions(slice_oblique):
    """Steps with a centre and extent (R2N2's local Gaussians) give a region box per step besides the overlay."""
    from learnreg.registration import RegistrationResult, StepRecord
    from learnreg.slicer.steps import add_step_sequences

    grid = slice_oblique.grid
    points = grid.physical_points()
    steps, total = [], np.zeros((*grid.shape, 3))
    for index, (centre_index, sigma) in enumerate([((40, 50, 0), 12.0), ((90, 70, 0), 8.0), ((60, 120, 0), 15.0)]):
        centre = grid.index_to_physical(np.array(centre_index, float))
        weight = np.exp(-np.sum((points - centre) ** 2, axis=-1) / (2 * sigma ** 2))
        vectors = weight[..., None] * (grid.direction_matrix @ np.array([2.0, -1.0, 0.0]))
        total += vectors
        steps.append(StepRecord(index, 0.0, {"sigma_mm": sigma}, DisplacementField(vectors, grid), tuple(centre), sigma))
    field = DisplacementField(total, grid)
    result = RegistrationResult("gaussians", field, slice_oblique, 3 * 5, {"total": 0.0}, "cpu", steps)
    scene = create_scene()
    sequences = add_step_sequences(scene, result, slice_oblique, "gaussians")
    assert sequences.region is not None and sequences.region.GetNumberOfDataNodes() == 3
    for index, step in enumerate(steps):
        box = sequences.region.GetNthDataNode(index)
        assert np.allclose(np.array(box.GetCenter()) * [-1, -1, 1], step.centre, atol=1e-6)
        assert box.GetSize()[0] == pytest.approx(2 * step.extent_mm)
        overlay = slicer.util.arrayFromVolume(sequences.displacement.GetNthDataNode(index))
        assert overlay.max() == pytest.approx(np.sqrt(5.0), rel=1e-3)  # |(2, -1)| at the Gaussian's centre
    sequences.browser.SetSelectedItemNumber(1)
    assert sequences.browser.GetProxyNode(sequences.region) is not None
