"""Bootstrap intervals: reproducible with the seed, around the point estimate, and the
vectorised statistics equal to scikit-learn's on each resample."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import f1_score, precision_score, recall_score, roc_auc_score

from chest_xray.evaluation.bootstrap import (
    auc,
    binary_statistics,
    intervals,
    multiclass_statistics,
    resample_counts,
)
from chest_xray.evaluation.metrics import binary_metrics, evaluation_report, roc_auc
from chest_xray.evaluation.multiclass import multiclass_metrics
from chest_xray.params import BootstrapParams, EvaluationParams


def _binary_example(n: int = 300, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    y = (rng.random(n) < 0.6).astype(int)
    prob = np.clip(0.5 + 0.3 * (y - 0.5) + rng.normal(0, 0.25, n), 0, 1)
    return y, np.round(prob, 2)  # rounded: ties, which the AUC must count as one half


def _multiclass_example(n: int = 240, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    y = rng.choice(3, size=n, p=[0.3, 0.45, 0.25])
    logits = rng.normal(0, 1, (n, 3))
    logits[np.arange(n), y] += 1.2
    prob = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    return y, prob


def _run(statistics: dict, n: int, seed: int = 0, resamples: int = 1000) -> dict:
    return intervals(statistics, n, resamples=resamples, seed=seed, level=0.95)


def test_the_same_seed_gives_the_same_intervals_and_another_seed_others() -> None:
    y, prob = _binary_example()
    first = _run(binary_statistics(y, prob, 0.5), len(y), seed=3)
    again = _run(binary_statistics(y, prob, 0.5), len(y), seed=3)
    other = _run(binary_statistics(y, prob, 0.5), len(y), seed=4)
    assert first == again
    assert first["metrics"] != other["metrics"]
    assert first["resamples"] == 1000 and first["seed"] == 3 and first["level"] == 0.95


def test_binary_intervals_contain_the_point_estimates() -> None:
    y, prob = _binary_example()
    point = binary_metrics(y, prob, 0.5)
    found = _run(binary_statistics(y, prob, 0.5), len(y))["metrics"]
    estimates = {**point, "auc": roc_auc(y, prob)}
    for name in ("accuracy", "sensitivity", "specificity", "balanced_accuracy", "auc"):
        low, high = found[name]["low"], found[name]["high"]
        assert low < estimates[name] < high, name
        assert high - low < 0.2, name  # 300 images: a few points either side
        assert found[name]["undefined_resamples"] == 0


def test_multiclass_intervals_contain_the_point_estimates() -> None:
    y, prob = _multiclass_example()
    point = multiclass_metrics(y, prob, ["A", "B", "C"])
    found = _run(multiclass_statistics(y, prob), len(y))["metrics"]
    for name in ("accuracy", "balanced_accuracy", "macro_precision", "macro_f1", "macro_auc"):
        assert found[name]["low"] < point[name] < found[name]["high"], name


def test_each_resample_matches_scikit_learn() -> None:
    """The weighted statistics on a resample = scikit-learn on the images it drew."""
    y, prob = _binary_example(n=80, seed=1)
    y3, prob3 = _multiclass_example(n=90, seed=1)
    counts = next(resample_counts(80, 5, seed=9))
    counts3 = next(resample_counts(90, 5, seed=9))
    binary = {name: s(counts) for name, s in binary_statistics(y, prob, 0.5).items()}
    multi = {name: s(counts3) for name, s in multiclass_statistics(y3, prob3).items()}
    for b in range(5):
        drawn = np.repeat(np.arange(80), counts[b])
        yb, pb = y[drawn], prob[drawn]
        assert binary["auc"][b] == pytest.approx(roc_auc_score(yb, pb))
        assert binary["sensitivity"][b] == pytest.approx(recall_score(yb, pb >= 0.5))
        drawn3 = np.repeat(np.arange(90), counts3[b])
        yb3, pred3 = y3[drawn3], prob3[drawn3].argmax(axis=1)
        assert multi["macro_f1"][b] == pytest.approx(f1_score(yb3, pred3, average="macro"))
        assert multi["macro_precision"][b] == pytest.approx(
            precision_score(yb3, pred3, average="macro", zero_division=0)
        )
        assert multi["macro_auc"][b] == pytest.approx(
            roc_auc_score(yb3, prob3[drawn3], multi_class="ovr", average="macro")
        )


def test_resamples_that_lack_a_class_are_counted_and_left_out() -> None:
    """Two positive images among 30: some resamples draw neither, and have no sensitivity."""
    y = np.array([1, 1] + [0] * 28)
    prob = np.linspace(0.9, 0.0, 30)
    found = _run(binary_statistics(y, prob, 0.5), len(y))["metrics"]
    # P(no positive drawn) = (28/30)^30, about 12.6%: around 126 of 1,000 resamples.
    assert 80 < found["sensitivity"]["undefined_resamples"] < 180
    assert found["auc"]["undefined_resamples"] == found["sensitivity"]["undefined_resamples"]
    assert found["accuracy"]["undefined_resamples"] == 0
    assert found["sensitivity"]["low"] == found["sensitivity"]["high"] == 1.0


def test_a_statistic_never_defined_has_no_interval() -> None:
    y = np.zeros(10, dtype=int)
    found = _run({"auc": auc(y == 1, np.linspace(0, 1, 10))}, 10)["metrics"]
    assert found["auc"] == {"low": None, "high": None, "undefined_resamples": 1000}


def test_chunks_give_the_same_resamples_as_one_draw() -> None:
    """Reproducible whatever the chunking: 2,500 resamples are drawn 1,000 at a time."""
    chunks = list(resample_counts(7, 2500, seed=5))
    assert [len(chunk) for chunk in chunks] == [1000, 1000, 500]
    assert all((chunk.sum(axis=1) == 7).all() for chunk in chunks)


def test_the_report_carries_the_intervals_with_its_parameters() -> None:
    y, prob = _binary_example()
    params = EvaluationParams(bootstrap=BootstrapParams(resamples=2000, seed=1, level=0.9))
    report = evaluation_report(y, prob, y, prob, params)
    ci = report["test"]["confidence_intervals"]
    assert (ci["resamples"], ci["seed"], ci["level"]) == (2000, 1, 0.9)
    assert set(ci["metrics"]) >= {"accuracy", "sensitivity", "specificity", "auc"}
    assert set(ci["at_validation_threshold"]) == {
        "accuracy",
        "sensitivity",
        "specificity",
        "balanced_accuracy",
    }


@pytest.mark.parametrize(
    ("field", "value"), [("resamples", 999), ("level", 1.0), ("level", 0.4), ("resamples", 10**6)]
)
def test_bootstrap_parameters_are_validated(field: str, value: float) -> None:
    with pytest.raises(ValueError, match=field):
        BootstrapParams(**{field: value})
