"""The task's classes: binary unchanged, multiclass from the Kaggle categories, rows of no
class reported; and the parameters that go with the task."""

from __future__ import annotations

import pandas as pd
import pytest
from pydantic import ValidationError

from chest_xray.data.metadata import (
    DROPPED_COLUMNS,
    REASON_NO_CLASS,
    assign_task_labels,
    task_classes,
)
from chest_xray.params import RuntimeParameterError, TrainingParams, check_task_options


def _index() -> pd.DataFrame:
    rows = [
        ("IM-1", "NORMAL", "", ""),
        ("person1_bacteria_1", "PNEUMONIA", "bacteria", ""),
        ("person2_virus_2", "PNEUMONIA", "Virus", ""),
        ("covid-1", "PNEUMONIA", "Virus", "COVID-19"),
        ("strep-1", "PNEUMONIA", "bacteria", "Streptococcus"),
        ("sars-1", "PNEUMONIA", "Virus", "SARS"),
        ("ards-1", "PNEUMONIA", "Stress-Smoking", "ARDS"),
        ("odd-1", "PNEUMONIA", "", ""),
    ]
    return pd.DataFrame(
        {
            "image_id": [f"train/{name}" for name, *_ in rows],
            "split": "train",
            "label": [label for _, label, _, _ in rows],
            "label_1": [label_1 for *_, label_1, _ in rows],
            "label_2": [label_2 for *_, label_2 in rows],
            "file_name": [f"{name}.jpeg" for name, *_ in rows],
        }
    )


def test_binary_leaves_the_index_as_it_is() -> None:
    index = _index()
    kept, dropped = assign_task_labels(index, "binary")
    pd.testing.assert_frame_equal(kept, index)
    assert dropped.empty
    assert list(dropped.columns) == DROPPED_COLUMNS


def test_multiclass_splits_pneumonia_by_category_and_reports_rows_of_no_class() -> None:
    kept, dropped = assign_task_labels(_index(), "multiclass")
    assert dict(zip(kept["file_name"], kept["label"], strict=True)) == {
        "IM-1.jpeg": "NORMAL",
        "person1_bacteria_1.jpeg": "BACTERIA",
        "person2_virus_2.jpeg": "VIRUS",
        "covid-1.jpeg": "VIRUS",  # its Label_1 is Virus; COVID-19 only with covid_class
        "strep-1.jpeg": "BACTERIA",
        "sars-1.jpeg": "VIRUS",
    }
    assert list(dropped.columns) == DROPPED_COLUMNS
    assert dropped["file_name"].tolist() == ["ards-1.jpeg", "odd-1.jpeg"]
    assert dropped["reason"].tolist() == [
        f"{REASON_NO_CLASS}: Label_1_Virus_category 'Stress-Smoking'",
        f"{REASON_NO_CLASS}: Label_1_Virus_category ''",
    ]


def test_covid_class_takes_covid_images_out_of_virus() -> None:
    kept, _ = assign_task_labels(_index(), "multiclass", covid_class=True)
    assert kept.set_index("file_name").loc["covid-1.jpeg", "label"] == "COVID-19"
    assert set(kept["label"]) == set(task_classes("multiclass", covid_class=True))
    assert task_classes("multiclass", covid_class=True) == (
        "NORMAL",
        "BACTERIA",
        "VIRUS",
        "COVID-19",
    )


def test_training_params_name_the_task_classes() -> None:
    assert TrainingParams().class_names == ("NORMAL", "PNEUMONIA")
    assert TrainingParams(task="multiclass").class_names == ("NORMAL", "BACTERIA", "VIRUS")
    assert TrainingParams(task="multiclass", covid_class=True).class_names[-1] == "COVID-19"
    with pytest.raises(ValidationError, match=r"covid_class .* needs task: multiclass"):
        TrainingParams(covid_class=True)
    with pytest.raises(ValidationError, match="task"):
        TrainingParams(task="ternary")  # type: ignore[arg-type]


def test_binary_only_evaluation_settings_are_refused_in_multiclass_naming_them() -> None:
    multiclass = {"training": {"task": "multiclass"}}
    check_task_options({**multiclass, "evaluation": {"threshold": 0.5, "tta": "flip"}})
    check_task_options({"training": {"task": "binary"}, "evaluation": {"threshold": 0.3}})
    with pytest.raises(RuntimeParameterError, match=r"evaluation\.threshold=0\.3"):
        check_task_options({**multiclass, "evaluation": {"threshold": 0.3}})
    with pytest.raises(RuntimeParameterError, match=r"evaluation\.model_threshold='fixed'"):
        check_task_options({**multiclass, "evaluation": {"model_threshold": "fixed"}})
