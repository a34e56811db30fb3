"""Label maps of the real benchmarks, against tables written out independently here."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from protocol_tables import (
    CS_13,
    CS_16,
    CS_19,
    CS_SYNTHIA_11,
    CS_SYNTHIA_12,
    CS_VIPER,
    SYNTHIA_SEQ_11,
    SYNTHIA_SEQ_12,
    VIPER_15,
)

from dastc.data import labelmaps as lm

CASES = [
    (lm.VIPER_MAP, VIPER_15, 32, 15),
    (lm.SYNTHIA_SEQ_MAP, SYNTHIA_SEQ_12, 23, 12),
    (lm.SYNTHIA_SEQ_11_MAP, SYNTHIA_SEQ_11, 23, 11),
    (lm.CITYSCAPES_MAP, CS_19, 34, 19),
    (lm.GTA5_MAP, CS_19, 34, 19),
    (lm.CITYSCAPES_16_MAP, CS_16, 34, 16),
    (lm.CITYSCAPES_13_MAP, CS_13, 34, 13),
    (lm.CITYSCAPES_VIPER_MAP, CS_VIPER, 34, 15),
    (lm.CITYSCAPES_SYNTHIA_SEQ_MAP, CS_SYNTHIA_12, 34, 12),
    (lm.CITYSCAPES_SYNTHIA_SEQ_11_MAP, CS_SYNTHIA_11, 34, 11),
]
IDS = [c[0].name for c in CASES]


@pytest.mark.parametrize(("m", "ref", "n_raw", "k"), CASES, ids=IDS)
def test_value_table_against_reference(m: lm.TrainIdMap, ref: dict[int, int], n_raw: int, k: int):
    assert m.num_raw_ids == n_raw
    assert m.num_classes == k == len(m.class_names)
    for raw in range(n_raw):
        assert m.table[raw] == ref.get(raw, 255), raw
    assert m.as_dict() == {r: ref.get(r, 255) for r in range(n_raw)}


@pytest.mark.parametrize(("m", "ref", "n_raw", "k"), CASES, ids=IDS)
def test_value_apply_pixelwise(m: lm.TrainIdMap, ref: dict[int, int], n_raw: int, k: int):
    rng = np.random.default_rng(0)
    raw = rng.integers(0, n_raw, size=(5, 7, 9))
    out = m.apply(raw)
    assert out.dtype == np.int64 and out.shape == raw.shape
    for idx in np.ndindex(raw.shape):
        assert out[idx] == ref.get(int(raw[idx]), 255)
    out_t = m.apply(torch.from_numpy(raw).to(torch.int32))
    assert out_t.dtype == torch.long
    assert torch.equal(out_t, torch.from_numpy(out))
    assert torch.equal(m.torch_table(), torch.from_numpy(m.table.copy()))


def test_value_class_names():
    assert lm.VIPER_CLASSES[9] == "person" and lm.VIPER_CLASSES[10] == "car"
    assert lm.SYNTHIA_SEQ_CLASSES[3] == "fence" and "fence" not in lm.SYNTHIA_SEQ_11_CLASSES
    assert lm.SYNTHIA_16_CLASSES == (
        "road", "sidewalk", "building", "wall", "fence", "pole", "traffic light",
        "traffic sign", "vegetation", "sky", "person", "rider", "car", "bus",
        "motorcycle", "bicycle",
    )  # fmt: skip
    assert len(lm.SYNTHIA_13_CLASSES) == 13 and "pole" not in lm.SYNTHIA_13_CLASSES
    # The Cityscapes-side VIPER and SYNTHIA-Seq maps share the source's class list.
    assert lm.CITYSCAPES_VIPER_MAP.class_names == lm.VIPER_MAP.class_names
    assert lm.CITYSCAPES_SYNTHIA_SEQ_MAP.class_names == lm.SYNTHIA_SEQ_MAP.class_names


CITYSCAPESSCRIPTS = Path(__file__).parent / "data" / "cityscapesscripts_labels.json"


def _cityscapesscripts_labels() -> list[tuple[str, int, int]]:
    """``(name, id, trainId)`` of every label of cityscapesScripts' ``helpers/labels.py``,
    kept as test data (its source and version are in the file), so that the comparison
    runs without the package; where the package is installed, the data must equal it."""
    doc = json.loads(CITYSCAPESSCRIPTS.read_text())
    rows = [(name, i, train) for name, i, train, _, _ in doc["labels"]]
    try:
        import cityscapesscripts.helpers.labels as labels_mod
    except ImportError:
        return rows
    assert rows == [(lb.name, lb.id, lb.trainId) for lb in labels_mod.labels]
    return rows


def test_value_against_cityscapesscripts():
    rows = _cityscapesscripts_labels()
    assert len(rows) == 35
    for name, label_id, train_id in rows:
        if 0 <= label_id < 34:
            expected = train_id if 0 <= train_id < 19 else 255
            assert lm.CITYSCAPES_MAP.table[label_id] == expected, name
            if expected != 255:
                assert lm.CITYSCAPES_CLASSES[expected] == name


def test_unknown_ids_raise_with_where():
    raw = np.array([[3, 40], [2, 99]])
    assert lm.VIPER_MAP.unknown_ids(raw) == [40, 99]
    with pytest.raises(ValueError, match=r"some/file\.png.*\[40, 99\]"):
        lm.VIPER_MAP.apply(raw, where="some/file.png")
    with pytest.raises(ValueError, match=r"labels.*-1"):
        lm.CITYSCAPES_MAP.apply(torch.tensor([-1, 7]), where="labels")


def test_bad_input_dtype():
    with pytest.raises(TypeError, match="raw"):
        lm.VIPER_MAP.apply(np.zeros((2, 2), np.float32))
    with pytest.raises(TypeError, match="lab"):
        lm.VIPER_MAP.apply(torch.zeros(2, 2), where="lab")


def test_bad_construction():
    with pytest.raises(ValueError, match="have no raw id"):
        lm.TrainIdMap("x", ("a", "b"), ((1, 0),), 4)
    with pytest.raises(ValueError, match="raw ids in"):
        lm.TrainIdMap("x", ("a",), ((9, 0),), 4)
    with pytest.raises(ValueError, match="listed twice"):
        lm.TrainIdMap("x", ("a",), ((1, 0), (1, 0)), 4)


def test_registry():
    assert lm.get_train_id_map("synthia_seq-11") is lm.SYNTHIA_SEQ_11_MAP
    assert set(lm.TRAIN_ID_MAPS) >= {"viper", "cityscapes", "gta5", "cityscapes-viper"}
    with pytest.raises(ValueError, match="name"):
        lm.get_train_id_map("nope")


def _daformer_gta_convert(label: np.ndarray) -> np.ndarray:
    """Port of the train-id conversion in ``convert_to_train_id`` of DAFormer's
    ``tools/convert_datasets/gta.py`` (lhoyer/DAFormer): start from 255, write the
    19 mapped Cityscapes labelIds; every other value of the uint8 label stays 255."""
    id_to_trainid = {7: 0, 8: 1, 11: 2, 12: 3, 13: 4, 17: 5, 19: 6, 20: 7, 21: 8, 22: 9,
                     23: 10, 24: 11, 25: 12, 26: 13, 27: 14, 28: 15, 31: 16, 32: 17,
                     33: 18}  # fmt: skip
    label_copy = 255 * np.ones(label.shape, dtype=np.uint8)
    for k, v in id_to_trainid.items():
        label_copy[label == k] = v
    return label_copy


@pytest.mark.parametrize("case", ["random-0-255", "all-above-33", "all-255", "every-id-once"])
def test_value_gta5_unknown_ids_read_as_ignore_like_daformer(case: str):
    rng = np.random.default_rng(5)
    label = {
        "random-0-255": rng.integers(0, 256, (6, 40)),
        "all-above-33": rng.integers(34, 256, (6, 40)),
        "all-255": np.full((6, 40), 255),
        "every-id-once": np.arange(256).reshape(8, 32),
    }[case].astype(np.uint8)
    want = _daformer_gta_convert(label).astype(np.int64)
    assert np.array_equal(lm.GTA5_MAP.apply(label), want)
    got_t = lm.GTA5_MAP.apply(torch.from_numpy(label))
    assert torch.equal(got_t, torch.from_numpy(want))
    # the ids are still reported, and the other maps still refuse them
    assert lm.GTA5_MAP.unknown_ids(label) == sorted({int(v) for v in label.ravel() if v > 33})
    if label.max() > 33:
        with pytest.raises(ValueError, match="unknown ids"):
            lm.CITYSCAPES_MAP.apply(label)


def test_bad_unknown_policy():
    with pytest.raises(ValueError, match="unknown"):
        lm.TrainIdMap("toy", ("a",), ((0, 0),), 2, unknown="clamp")  # type: ignore[arg-type]
