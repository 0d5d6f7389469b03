"""scripts/threshold_rules.py: each rule applied again to a screening record's predictions."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from tests.scripts import ROOT, load_script

SCRIPT = ROOT / "scripts" / "threshold_rules.py"

# Validation: the three NORMAL images score 0.1-0.3, the PNEUMONIA ones 0.2, 0.4 and 0.9,
# so Youden picks 0.4 (sensitivity 2/3, specificity 1) and equal error 0.3 (both 2/3);
# dev test: the NORMAL image at 0.45 is called PNEUMONIA at either, and not at 0.5.
VALIDATION = {"y_true": [0, 0, 0, 1, 1, 1], "probability": [0.1, 0.2, 0.3, 0.2, 0.4, 0.9]}
TEST = {"y_true": [0, 0, 1, 1], "probability": [0.1, 0.45, 0.6, 0.9]}


@pytest.fixture(scope="module")
def script():
    return load_script(SCRIPT)


def _record(config: str, seed: int) -> dict:
    return {
        "config": config,
        "seed": seed,
        "predictions": {"validation": VALIDATION, "test": TEST},
    }


def test_a_rule_picks_its_threshold_on_validation_and_scores_the_dev_test(script) -> None:
    record = _record("c", 42)

    youden = script.apply_rule(record, "youden")
    equal_error = script.apply_rule(record, "equal_error")
    fixed = script.apply_rule(record, 0.5)

    assert youden == {"threshold": pytest.approx(0.4), "accuracy": 0.75, "specificity": 0.5}
    assert equal_error == {"threshold": pytest.approx(0.3), "accuracy": 0.75, "specificity": 0.5}
    assert fixed == {"threshold": 0.5, "accuracy": 1.0, "specificity": 1.0}


def test_the_table_has_every_rule_for_configs_with_three_seeds_only(
    script, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for config, seeds in (("three", (42, 7, 13)), ("two", (42, 7))):
        for seed in seeds:
            path = tmp_path / f"{config}-seed{seed}.json"
            path.write_text(json.dumps(_record(config, seed)))
    (tmp_path / "old-seed1.json").write_text(json.dumps({"config": "old", "seed": 1}))
    monkeypatch.setattr(script, "RECORDS", tmp_path)

    rows = script.rule_table([])

    assert [(r["config"], r["rule"]) for r in rows] == [
        ("three", "youden"),
        ("three", "equal_error"),
        ("three", "accuracy"),
        ("three", "fixed 0.5"),
    ]
    assert rows[0]["threshold"] == "0.400 +- 0.000" and rows[0]["dev test acc"] == "0.750 +- 0.000"
    assert rows[3]["threshold range"] == "0.50-0.50"
    assert script.rule_table(["two"]) == []


def test_one_run_from_its_prediction_tables(script, tmp_path: Path) -> None:
    for split, predictions in (("validation", VALIDATION), ("test", TEST)):
        table = {"image_id": [f"{split}/{i}" for i in range(len(predictions["y_true"]))]}
        pd.DataFrame(table | predictions).to_csv(tmp_path / f"{split}_predictions.csv")

    rows = script.run_table(tmp_path)

    assert [r["rule"] for r in rows] == ["youden", "equal_error", "accuracy", "fixed 0.5"]
    assert rows[1] == {
        "rule": "equal_error",
        "threshold": "0.300",
        "test acc": "0.750",
        "test spec": "0.500",
    }
    assert script.main(["--predictions", str(tmp_path)]) == 0


def test_a_run_without_its_tables_names_the_missing_file(
    script, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert script.main(["--predictions", str(tmp_path)]) == 2
    assert "validation_predictions.csv: no such file" in capsys.readouterr().err
