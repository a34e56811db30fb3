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


# DAFormer's id_to_trainid of ``convert_to_train_id`` in ``tools/convert_datasets/synthia.py``
# (lhoyer/DAFormer; the same file ships in HRDA, MIC and DA-STC's image_udass), copied
# from the public code: SYNTHIA-RAND-CITYSCAPES ids -> the 19 Cityscapes train ids.
DAFORMER_SYNTHIA_ID_TO_TRAINID = {
    3: 0, 4: 1, 2: 2, 21: 3, 5: 4, 7: 5, 15: 6, 9: 7, 6: 8,
    16: 9,  # not present in synthia
    1: 10, 10: 11, 17: 12, 8: 13,
    18: 14,  # not present in synthia
    19: 15,
    20: 16,  # not present in synthia
    12: 17, 11: 18,
}  # fmt: skip


def daformer_synthia_convert(label: np.ndarray) -> np.ndarray:
    """Port of ``convert_to_train_id`` of DAFormer's ``tools/convert_datasets/synthia.py``
    after its ``cv2.imread(file, cv2.IMREAD_UNCHANGED)[:, :, -1]`` (OpenCV's BGR order:
    the last channel is the PNG's first, channel 0): start from 255, write each mapped id.
    ``label`` is that channel, any integer dtype (the file is 16-bit)."""
    label_copy = 255 * np.ones(label.shape, dtype=np.uint8)
    for k, v in DAFORMER_SYNTHIA_ID_TO_TRAINID.items():
        label_copy[label == k] = v
    return label_copy


def _synthia_16_of_19(train19: np.ndarray) -> np.ndarray:
    """The 19 Cityscapes train ids renumbered to the 16 SYNTHIA classes (by name,
    written out here: terrain 9, truck 14, train 16 dropped), 255 elsewhere."""
    keep = [0, 1, 2, 3, 4, 5, 6, 7, 8, 10, 11, 12, 13, 15, 17, 18]
    lut = np.full(256, 255, np.int64)
    lut[keep] = np.arange(16)
    return lut[train19]


@pytest.mark.parametrize("case", ["every-id-0-22", "random-16-bit", "above-22-only", "all-void"])
def test_value_synthia_against_daformer_conversion(case: str):
    rng = np.random.default_rng(9)
    label = {
        "every-id-0-22": np.arange(23 * 4).reshape(4, 23) % 23,
        "random-16-bit": rng.integers(0, 65536, (6, 40)),
        "above-22-only": rng.integers(23, 65536, (6, 40)),
        "all-void": np.zeros((6, 40), np.int64),
    }[case].astype(np.uint16)
    want = daformer_synthia_convert(label).astype(np.int64)
    assert np.array_equal(lm.SYNTHIA_MAP.apply(label), want)
    assert torch.equal(lm.SYNTHIA_MAP.apply(torch.from_numpy(label.astype(np.int32))),
                       torch.from_numpy(want))  # fmt: skip
    assert np.array_equal(lm.SYNTHIA_16_MAP.apply(label), _synthia_16_of_19(want))
    assert lm.SYNTHIA_MAP.unknown_ids(label) == sorted({int(v) for v in label.ravel() if v > 22})


def test_value_synthia_maps():
    assert lm.SYNTHIA_MAP.num_raw_ids == 23 and lm.SYNTHIA_MAP.class_names == lm.CITYSCAPES_CLASSES
    assert lm.SYNTHIA_MAP.as_dict() == {
        r: DAFORMER_SYNTHIA_ID_TO_TRAINID.get(r, 255) for r in range(23)
    }
    assert lm.SYNTHIA_16_MAP.class_names == lm.SYNTHIA_16_CLASSES
    # SYNTHIA's README: 16 terrain, 18 truck, 20 train exist as ids; the 16-class map drops them
    for raw, name in ((16, "terrain"), (18, "truck"), (20, "train")):
        assert lm.CITYSCAPES_CLASSES[lm.SYNTHIA_MAP.table[raw]] == name
        assert lm.SYNTHIA_16_MAP.table[raw] == 255
    assert lm.get_train_id_map("synthia-16") is lm.SYNTHIA_16_MAP


def test_value_synthia_scoring_classes():
    """MEAN_EXCLUDES / EXTRA_MEANS leave out exactly the classes whose indices the
    public SYNTHIA -> Cityscapes evaluations drop from the 19 IoUs (YanchaoYang/FDA
    ``evaluation_multi.py``: ``mIoUs[[0, 1, 2, 3, 4, 5, 6, 7, 8, 10, 11, 12, 13, 15,
    17, 18]]`` for mIoU16, ``mIoUs[[0, 1, 2, 6, 7, 8, 10, 11, 12, 13, 15, 17, 18]]``
    for mIoU13)."""
    names = lm.CITYSCAPES_CLASSES
    kept16 = [i for i, c in enumerate(names) if c not in lm.MEAN_EXCLUDES["synthia"]]
    kept13 = [i for i, c in enumerate(names) if c not in lm.EXTRA_MEANS["synthia"]["13"]]
    assert kept16 == [0, 1, 2, 3, 4, 5, 6, 7, 8, 10, 11, 12, 13, 15, 17, 18]
    assert kept13 == [0, 1, 2, 6, 7, 8, 10, 11, 12, 13, 15, 17, 18]
    assert tuple(names[i] for i in kept16) == lm.SYNTHIA_16_CLASSES
    assert tuple(names[i] for i in kept13) == lm.SYNTHIA_13_CLASSES
