"""Training images drawn from random label maps (SynthMorph's idea) and their place in the training banks."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import labelled_volume

from learnreg.errors import InputError
from learnreg.training.image_bank import ImageBank, StructureDataSettings
from learnreg.training.label_synthesis import label_map_image, random_label_map
from learnreg.training.pairs import PairSettings


def test_random_label_maps_use_most_labels_and_differ_by_seed():
    first = random_label_map((48, 48), 12, np.random.default_rng(0))
    second = random_label_map((48, 48), 12, np.random.default_rng(1))
    assert first.shape == (48, 48) and first.min() >= 0 and first.max() <= 11
    assert len(np.unique(first)) >= 8
    assert (first != second).mean() > 0.5
    np.testing.assert_array_equal(first, random_label_map((48, 48), 12, np.random.default_rng(0)))
    volume = random_label_map((20, 20, 20), 6, np.random.default_rng(2))
    assert volume.shape == (20, 20, 20) and len(np.unique(volume)) >= 4


def test_label_map_images_are_piecewise_contrast_in_unit_range():
    rng = np.random.default_rng(3)
    label_map = random_label_map((64, 64), 8, rng)
    image = label_map_image(label_map, rng)
    assert image.dtype == np.float32 and image.min() == pytest.approx(0) and image.max() == pytest.approx(1)
    # intensity is explained by the label: within-label spread is small against the spread of label means
    means = np.array([image[label_map == v].mean() for v in np.unique(label_map)])
    within = np.mean([image[label_map == v].std() for v in np.unique(label_map)])
    assert means.std() > 2 * within
    # another draw on the same map gives another contrast (shape, not contrast)
    other = label_map_image(label_map, np.random.default_rng(4))
    assert abs(np.corrcoef(image.ravel(), other.ravel())[0, 1]) < 0.9


def test_synthesized_bank_has_structure_maps_from_its_labels():
    bank = ImageBank.synthesized(3, 3, 16, 4.0, labels=6, structure_labels=[[2], [3, 4]], seed=5)
    assert tuple(bank.images.shape) == (3, 3, 16, 16, 16) and bank.structures == 2
    assert bank.names == ["label-synthesis#0", "label-synthesis#1", "label-synthesis#2"]
    assert bank.spacing_mm.tolist() == [4.0] * 3
    maps = bank.images[:, 1:].float()
    assert set(maps.unique().tolist()) <= {0.0, 1.0} and 0.05 < float(maps.mean()) < 0.7
    assert float((maps[:, 0] * maps[:, 1]).sum()) == 0  # two structures never overlap


def test_training_bank_gains_synthesized_images_and_the_card_says_so(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    image, labels = labelled_volume(tmp_path)
    data = StructureDataSettings(images=(image.name,), validation_images=(image.name,),
                                 label_images=(labels.name,), validation_label_images=(labels.name,),
                                 structure_labels=((2,), (3,)), slice_step_mm=12.0, synthetic_count=5)
    data.validate()
    train, validation = data.build_banks(2, 32)
    plain_train, _ = StructureDataSettings(**{**data.__dict__, "synthetic_count": 0}).build_banks(2, 32)
    assert len(train) == len(plain_train) + 5 and len(validation) == len(plain_train)
    assert train.names[-5:] == [f"label-synthesis#{n}" for n in range(5)]
    assert train.images.shape[1] == 3  # intensities + two structures, like the real entries
    assert float(train.spacing_mm[-1]) == pytest.approx(float(plain_train.spacing_mm.median()))
    card = data.card_entry(train, validation, 4, 32, PairSettings())
    assert card["label_synthesis"] == {"images": 5, "labels": 12} and card["training_entries"] == len(train)
    with pytest.raises(InputError, match="synthetic_labels"):
        StructureDataSettings(**{**data.__dict__, "synthetic_labels": 1}).validate()
