"""Confusion matrix, IoU and mIoU against plain loop references."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from dastc import ConfusionMatrix, confusion_matrix, iou_from_confusion, mean_iou


def reference_confusion(
    pred: torch.Tensor, target: torch.Tensor, k: int, ignore: int
) -> list[list[int]]:
    cm = [[0] * k for _ in range(k)]
    for p, t in zip(pred.reshape(-1).tolist(), target.reshape(-1).tolist(), strict=False):
        if t == ignore:
            continue
        cm[t][p] += 1
    return cm


def reference_iou(cm: list[list[int]]) -> tuple[list[float], float]:
    k = len(cm)
    ious = []
    for c in range(k):
        tp = cm[c][c]
        fn = sum(cm[c]) - tp
        fp = sum(cm[r][c] for r in range(k)) - tp
        union = tp + fn + fp
        ious.append(tp / union if union > 0 else math.nan)
    valid = [v for v in ious if not math.isnan(v)]
    return ious, (sum(valid) / len(valid) if valid else math.nan)


def random_pair(seed: int, shape: tuple[int, ...], k: int, ignore_frac: float = 0.1):
    g = torch.Generator().manual_seed(seed)
    target = torch.randint(0, k, shape, generator=g)
    target[torch.rand(shape, generator=g) < ignore_frac] = 255
    pred = torch.randint(0, k, shape, generator=g)
    return pred, target


@pytest.mark.parametrize("shape", [(2, 3, 7, 9), (1, 5, 4)])
@pytest.mark.parametrize("seed", [0, 1])
def test_value_confusion_matches_loop(shape, seed):
    k = 5
    pred, target = random_pair(seed, shape, k)
    cm = confusion_matrix(pred, target, k)
    assert cm.dtype == torch.long and cm.shape == (k, k)
    assert cm.tolist() == reference_confusion(pred, target, k, 255)


def test_value_iou_matches_loop_with_absent_class():
    k = 6
    pred, target = random_pair(3, (2, 2, 8, 8), 4)  # classes 4 and 5 never occur
    pred[0, 0, 0, 0] = 4  # class 4 predicted once, never labelled: IoU 0, counted
    iou, miou = mean_iou(pred, target, k)
    ref_iou, ref_miou = reference_iou(reference_confusion(pred, target, k, 255))
    for got, want in zip(iou.tolist(), ref_iou, strict=False):
        assert (math.isnan(got) and math.isnan(want)) or got == pytest.approx(want)
    assert math.isnan(iou[5]) and iou[4] == 0.0
    assert float(miou) == pytest.approx(ref_miou)


def test_value_accumulator_equals_one_big_batch():
    k = 4
    batches = [random_pair(s, (2, 2, 6, 6), k) for s in range(4)]
    acc = ConfusionMatrix(k)
    for p, t in batches:
        acc.update(p, t)
    big_p = torch.cat([p for p, _ in batches])
    big_t = torch.cat([t for _, t in batches])
    assert torch.equal(acc.matrix, confusion_matrix(big_p, big_t, k))
    acc.reset()
    assert int(acc.matrix.sum()) == 0


def test_value_all_ignored_gives_nan_miou():
    target = torch.full((1, 4, 4), 255)
    pred = torch.zeros(1, 4, 4, dtype=torch.long)
    iou, miou = mean_iou(pred, target, 3)
    assert torch.isnan(iou).all() and torch.isnan(miou)


def test_state_dict_round_trip_and_refusal():
    k = 3
    acc = ConfusionMatrix(k)
    acc.update(*random_pair(0, (1, 5, 5), k))
    state = acc.state_dict()
    other = ConfusionMatrix(k)
    other.load_state_dict(state)
    assert torch.equal(other.matrix, acc.matrix)
    state["matrix"] += 1  # the saved copy is independent of the live matrix
    assert not torch.equal(state["matrix"], acc.matrix)
    with pytest.raises(ValueError, match="num_classes"):
        ConfusionMatrix(4).load_state_dict(acc.state_dict())


def test_bad_input():
    p, t = random_pair(0, (1, 4, 4), 3)
    with pytest.raises(ValueError, match="target"):
        confusion_matrix(p, t.clamp(max=3).masked_fill(t == 255, 7), 3)
    with pytest.raises(ValueError, match="pred"):
        confusion_matrix(p + 3, t, 3)
    with pytest.raises(TypeError, match="pred"):
        confusion_matrix(p.float(), t, 3)
    with pytest.raises(ValueError, match="pred"):
        confusion_matrix(p[:, :2], t, 3)
    with pytest.raises(ValueError, match="target"):
        confusion_matrix(p[0], t[0], 3)
    with pytest.raises(ValueError, match="ignore_index"):
        confusion_matrix(p, t, 3, ignore_index=1)
    with pytest.raises(ValueError, match="cm"):
        iou_from_confusion(torch.zeros(3, 4))


def _plain_checks(pred: torch.Tensor, target: torch.Tensor, k: int, ignore: int) -> str | None:
    """The message the plain checks give (labels first, then predictions), or None."""
    valid = target != ignore
    bad_t = sorted({v for v in target[valid].tolist() if not 0 <= v < k})
    if bad_t:
        return f"target: expected values in [0, {k}) or ignore_index={ignore}, got {bad_t[:8]}"
    bad_p = sorted({v for v in pred.reshape(-1).tolist() if not 0 <= v < k})
    if bad_p:
        return f"pred: expected class ids in [0, {k}), got {bad_p[:8]}"
    return None


@pytest.mark.parametrize("ignore", [255, -1, 5, 4])
@pytest.mark.parametrize(
    "bad",
    [
        "none", "label_k_pred_0", "label_k_pred_last", "label_minus_1", "label_minus_2",
        "label_huge", "label_minus_huge", "label_int64_max", "pred_k", "pred_minus_1",
        "pred_huge", "both", "all_ignored", "label_ignore_plus_1", "label_ignore_minus_1",
    ],
)  # fmt: skip
def test_value_checks_fused_into_the_count_refuse_what_the_plain_checks_refuse(
    bad: str, ignore: int
) -> None:
    """The checked count refuses exactly the inputs the plain checks refuse, with their
    message, and otherwise equals the loop; including values whose bins would collide
    with the ignored pixels' bin in a plain ``target * K + pred`` layout."""
    k = 4
    pred, target = random_pair(7, (2, 2, 5, 6), k)
    target = target.masked_fill(target == 255, ignore)
    big = 2**40
    edits = {
        "label_k_pred_0": [(target, (0, 0, 0, 0), k), (pred, (0, 0, 0, 0), 0)],
        "label_k_pred_last": [(target, (1, 1, 2, 3), k), (pred, (1, 1, 2, 3), k - 1)],
        "label_minus_1": [(target, (0, 1, 4, 5), -1), (pred, (0, 1, 4, 5), k - 1)],
        "label_minus_2": [(target, (1, 0, 0, 0), -2)],
        "label_huge": [(target, (1, 0, 3, 2), big)],
        "label_minus_huge": [(target, (0, 0, 1, 1), -big)],
        "label_int64_max": [(target, (0, 0, 2, 2), 2**63 - 1)],
        "pred_k": [(pred, (1, 1, 1, 1), k)],
        "pred_minus_1": [(pred, (0, 1, 0, 0), -1)],
        "pred_huge": [(pred, (0, 0, 0, 1), big)],
        "both": [(target, (0, 0, 0, 0), k + 3), (pred, (1, 1, 1, 1), -3)],
        "label_ignore_plus_1": [(target, (0, 0, 4, 4), ignore + 1)],
        # below the ignore index: counted without the clamp (the labels' maximum is
        # then the ignore index), so the bin range alone must refuse it
        "label_ignore_minus_1": [(target, (1, 1, 3, 3), ignore - 1)],
    }
    for tensor, at, value in edits.get(bad, []):
        tensor[at] = value
    if bad == "all_ignored":
        target.fill_(ignore)
    want = _plain_checks(pred, target, k, ignore)
    for call in (
        lambda: confusion_matrix(pred, target, k, ignore),
        lambda: ConfusionMatrix(k, ignore_index=ignore).update(pred, target),
    ):
        if want is None:
            call()
        else:
            with pytest.raises(ValueError) as err:
                call()
            assert str(err.value).startswith(want.split(", got")[0])
            assert want.split("got ")[1] in str(err.value)
    if want is None:
        assert confusion_matrix(pred, target, k, ignore).tolist() == reference_confusion(
            pred, target, k, ignore
        )


def test_value_matches_torchmetrics():
    tm = pytest.importorskip("torchmetrics.classification")
    k = 5
    pred, target = random_pair(7, (3, 2, 9, 11), k)
    metric = tm.MulticlassJaccardIndex(num_classes=k, ignore_index=255, average="none")
    ref = metric(pred, target)
    iou, miou = mean_iou(pred, target, k)
    assert torch.allclose(iou.float(), ref.float(), atol=1e-6)
    macro = tm.MulticlassJaccardIndex(num_classes=k, ignore_index=255, average="macro")
    assert float(miou) == pytest.approx(float(macro(pred, target)), abs=1e-6)


# --- the published SYNTHIA-Seq → Cityscapes-Seq scoring -------------------------------
def _advent_fast_hist(a: np.ndarray, b: np.ndarray, n: int) -> np.ndarray:
    """Port of ``fast_hist`` in ADVENT's ``advent/utils/func.py`` (valeoai/ADVENT), which
    TPS and DA-VSN import: ``a`` the labels, ``b`` the predictions."""
    k = (a >= 0) & (a < n)
    return np.bincount(n * a[k].astype(int) + b[k], minlength=n**2).reshape(n, n)


def _advent_per_class_iu(hist: np.ndarray) -> np.ndarray:
    """Port of ``per_class_iu`` in ADVENT's ``advent/utils/func.py``."""
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.diag(hist) / (hist.sum(1) + hist.sum(0) - np.diag(hist))


def _tps_synthia_miou(labels: list[np.ndarray], preds: list[np.ndarray]) -> float:
    """Port of the scoring in ``eval_video_single`` of TPS
    ``tps/domain_adaptation/eval_video_UDA.py`` (xing0047/TPS) for SynthiaSeq: a 12-class
    histogram summed over images, per-class IoU, fence (index 3) dropped, ``nanmean``."""
    hist = np.zeros((12, 12))
    for label, output in zip(labels, preds, strict=True):
        hist += _advent_fast_hist(label.flatten(), output.flatten(), 12)
    iou = _advent_per_class_iu(hist)
    iou = np.concatenate((iou[:3], iou[4:]))
    return float(np.nanmean(iou))


def _synthia_cases() -> dict[str, tuple[list[np.ndarray], list[np.ndarray]]]:
    rng = np.random.default_rng(7)
    shape = (3, 24, 40)

    def labels(p_ignore: float = 0.1) -> np.ndarray:
        y = rng.integers(0, 12, shape)
        y[rng.random(shape) < p_ignore] = 255
        return y

    y = labels()
    noisy = np.where(rng.random(shape) < 0.6, np.where(y == 255, 0, y), rng.integers(0, 12, shape))
    only_in_labels = labels()
    pred_no_5 = np.where(only_in_labels == 5, 0, rng.integers(0, 12, shape))
    pred_no_5 = np.where(pred_no_5 == 5, 6, pred_no_5)
    only_in_preds = np.where(labels() == 7, 8, labels())
    fence_everywhere = np.full(shape, 3)
    fence_everywhere[:, :2] = rng.integers(0, 12, (3, 2, 40))
    # fence at 8% of the pixels, never predicted (the case where ignoring fence pixels
    # instead of dropping fence from the mean changes every class's IoU)
    road = np.zeros(shape, dtype=np.int64)
    road[:, 12:] = 2
    road[rng.random(shape) < 0.08] = 3
    fence_free = np.where(road == 3, 0, road)
    return {
        "random": ([y], [noisy]),
        "class-only-in-labels": ([only_in_labels], [pred_no_5]),
        "class-only-in-predictions": ([only_in_preds], [rng.integers(0, 12, shape)]),
        "fence-everywhere": ([fence_everywhere], [rng.integers(0, 12, shape)]),
        "fence-free-predictions": ([road], [fence_free]),
        "two-batches": ([y, labels()], [noisy, rng.integers(0, 12, shape)]),
    }


@pytest.mark.parametrize("case", list(_synthia_cases()))
def test_value_synthia_seq_scoring_matches_tps(case: str) -> None:
    from dastc.data import MEAN_EXCLUDES, SYNTHIA_SEQ_CLASSES

    labels, preds = _synthia_cases()[case]
    exclude = [SYNTHIA_SEQ_CLASSES.index(c) for c in MEAN_EXCLUDES["cityscapes-synthia"]]
    assert exclude == [3]
    cm = ConfusionMatrix(12)
    for y, p in zip(labels, preds, strict=True):
        cm.update(torch.from_numpy(p), torch.from_numpy(y))
    iou, miou = cm.compute(exclude=exclude)
    want = _tps_synthia_miou(labels, preds)
    assert float(miou) == pytest.approx(want, abs=1e-6)
    assert torch.allclose(
        iou, torch.from_numpy(_advent_per_class_iu(cm.matrix.numpy())), equal_nan=True
    )
    if case == "fence-free-predictions":  # ignoring fence pixels is another protocol
        ignored = torch.from_numpy(np.where(labels[0] == 3, 255, labels[0]))
        _, miou_ignoring = mean_iou(torch.from_numpy(preds[0]), ignored, 12, exclude=exclude)
        assert abs(float(miou_ignoring) - want) > 0.01


def test_bad_exclude() -> None:
    with pytest.raises(ValueError, match="exclude"):
        iou_from_confusion(torch.eye(3), exclude=[3])
