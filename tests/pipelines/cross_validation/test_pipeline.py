"""Real runs of the cross_validation pipeline on demo data: 3 patient-grouped folds, one
parent MLflow run with a child per fold, one fold rerun alone, a half-done run resumed."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from kedro.framework.project import pipelines
from omegaconf import OmegaConf
from PIL import Image
from sklearn.metrics import roc_auc_score

from chest_xray.pipelines.fold_count import DEFAULT_FOLDS
from tests.conftest import REPO
from tests.pipelines.cross_validation.conftest import FOLDS, Project

pytestmark = pytest.mark.slow

CV = Path("data", "08_reporting", "cross_validation")
# What the combining nodes write there (a complete run's; Kedro's --only-missing-outputs
# reruns a node only when one of its own outputs is missing).
COMBINED = ("summary.json", "fold_metrics.csv", "roc_curves.png", "ensemble_test_metrics.json")


def test_the_configured_folds_build_the_namespaces(project: Project) -> None:
    namespaces = {node.namespace for node in pipelines["cross_validation"].nodes}
    assert namespaces == {None, *(f"fold_{i}" for i in range(1, FOLDS + 1))}
    base = OmegaConf.load(REPO / "conf" / "base" / "parameters_cross_validation.yml")
    assert base.cross_validation.folds == DEFAULT_FOLDS  # a plain find_pipelines() agrees


def test_every_train_image_is_held_out_once_and_scored_by_a_model_that_never_saw_it(
    project: Project,
) -> None:
    main = pd.read_csv(project.path("data", "03_primary", "split_manifest.csv"))
    folds = pd.read_csv(project.path("data", "05_model_input", "cross_validation", "folds.csv"))
    train = main[main["split"].isin(["train", "validation"])]
    assert sorted(folds["image_id"]) == sorted(train["image_id"])
    assert folds.groupby("patient_id")["fold"].nunique().max() == 1

    held_out = []
    for fold in range(1, FOLDS + 1):
        name = f"fold_{fold}"
        manifest = pd.read_csv(
            project.path("data", "05_model_input", "cross_validation", name, "split_manifest.csv")
        )
        test = set(manifest.loc[manifest["split"] == "test", "image_id"])
        assert test == set(folds.loc[folds["fold"] == fold, "image_id"])
        seen = set(manifest.loc[manifest["split"] != "test", "image_id"])
        assert not test & seen
        predictions = pd.read_csv(
            project.path(
                "data", "07_model_output", "cross_validation", name, "test_predictions.csv"
            )
        )
        assert set(predictions["image_id"]) == test
        assert project.path("data", "06_models", "cross_validation", name, "model.keras").exists()
        held_out += list(predictions["image_id"])
    assert sorted(held_out) == sorted(train["image_id"])


def test_the_summary_holds_each_metric_s_statistics_over_the_folds(project: Project) -> None:
    summary = json.loads(project.path(*CV.parts, "summary.json").read_text())
    table = pd.read_csv(project.path(*CV.parts, "fold_metrics.csv"))

    assert summary["folds"] == FOLDS == len(table)
    assert list(table["fold"]) == [f"fold_{i}" for i in range(1, FOLDS + 1)]
    for metric in ("test_accuracy", "test_auc", "test_sensitivity", "validation_auc"):
        values = table[metric]
        statistics = summary["statistics"][metric]
        assert statistics["mean"] == pytest.approx(values.mean())
        assert statistics["sd"] == pytest.approx(values.std(ddof=1))
        assert (statistics["min"], statistics["max"]) == (values.min(), values.max())
    assert summary["pooled_out_of_fold"]["n"] == table["n_test"].sum()
    assert 0.0 <= summary["pooled_out_of_fold"]["auc"] <= 1.0
    assert project.path(*CV.parts, "roc_curves.png").stat().st_size > 0
    for fold in range(1, FOLDS + 1):
        assert project.path(*CV.parts, f"fold_{fold}", "training_curves.png").exists()


def test_the_fold_models_as_one_classifier_score_the_test_split(project: Project) -> None:
    import keras

    main = pd.read_csv(project.path("data", "03_primary", "split_manifest.csv"))
    test = main[main["split"] == "test"].reset_index(drop=True)
    table = pd.read_csv(
        project.path("data", "07_model_output", "cross_validation", "ensemble_test_predictions.csv")
    )
    assert list(table["image_id"]) == list(test["image_id"])

    # The mean of the k saved fold models' probabilities, image by image.
    images = np.stack(
        [
            np.asarray(Image.open(project.path("data", "03_primary", "images", f"{image_id}.png")))
            for image_id in test["image_id"]
        ]
    )[..., None]
    members = [
        keras.models.load_model(
            project.path("data", "06_models", "cross_validation", f"fold_{i}", "model.keras"),
            compile=False,
        )
        for i in range(1, FOLDS + 1)
    ]
    mean = np.mean([m.predict(images, verbose=0)[:, 0] for m in members], axis=0)
    np.testing.assert_allclose(table["probability"], mean, atol=1e-5)

    report = json.loads(project.path(*CV.parts, "ensemble_test_metrics.json").read_text())
    assert report["ensemble"]["members"] == FOLDS
    assert report["test"]["n"] == len(test)
    if test["label"].nunique() == 2:
        assert report["test"]["auc"] == pytest.approx(
            roc_auc_score(table["y_true"], table["probability"])
        )
    # Its threshold is chosen on every TRAIN image, scored by the fold model that left it out.
    assert report["validation"]["n"] == sum(
        len(pd.read_csv(path))
        for path in project.path("data", "07_model_output", "cross_validation").glob(
            "fold_*/test_predictions.csv"
        )
    )


def test_mlflow_has_one_parent_run_with_a_child_run_per_fold(project: Project) -> None:
    runs = project.runs()
    parent = runs[runs["tags.mlflow.runName"].str.startswith("data_processing+cross_validation")]
    assert len(parent) == 1
    parent_id = parent["run_id"].iloc[0]
    children = runs[runs["tags.mlflow.parentRunId"] == parent_id]

    assert sorted(children["tags.mlflow.runName"]) == [f"fold_{i}" for i in range(1, FOLDS + 1)]
    assert set(children["status"]) == {"FINISHED"} == set(parent["status"])
    table = pd.read_csv(project.path(*CV.parts, "fold_metrics.csv")).set_index("fold")
    for _, child in children.iterrows():
        name = child["tags.mlflow.runName"]
        assert child["metrics.test_accuracy"] == pytest.approx(table.loc[name, "test_accuracy"])
        assert child["metrics.test_auc"] == pytest.approx(table.loc[name, "test_auc"])
        assert not pd.isna(child["metrics.loss"])  # the fold's training history
        assert child["params.training.epochs"] == "1"  # the parameters its nodes read
        assert child["params.split.seed"] == "2"
    summary = json.loads(project.path(*CV.parts, "summary.json").read_text())
    parent_row = parent.iloc[0]
    assert parent_row["metrics.cv_test_accuracy_mean"] == pytest.approx(
        summary["statistics"]["test_accuracy"]["mean"]
    )
    assert parent_row["metrics.cv_pooled_auc"] == pytest.approx(
        summary["pooled_out_of_fold"]["auc"]
    )
    assert pd.isna(parent_row.get("metrics.test_accuracy"))  # the folds' figures: children only
    ensemble = json.loads(project.path(*CV.parts, "ensemble_test_metrics.json").read_text())
    assert parent_row["metrics.ensemble_test_accuracy"] == pytest.approx(
        ensemble["test"]["at_fixed_threshold"]["accuracy"]
    )


def test_the_run_ends_with_the_cross_validation_summary(project: Project) -> None:
    printed = project.printed[0]  # data_processing + cross_validation
    summary = json.loads(project.path(*CV.parts, "summary.json").read_text())
    auc = summary["statistics"]["test_auc"]
    assert f"Cross-validation over {FOLDS} folds" in printed
    row = f"  {'AUC':<18}{auc['mean']:>7.3f}{auc['sd']:>8.3f}   {auc['min']:.3f} - {auc['max']:.3f}"
    assert row in printed.splitlines()
    assert f"pooled out-of-fold AUC {summary['pooled_out_of_fold']['auc']:.3f}" in printed
    ensemble = json.loads(project.path(*CV.parts, "ensemble_test_metrics.json").read_text())
    assert f"Fold ensemble on the test split: {ensemble['test']['n']} images" in printed
    assert "packaged" not in printed  # cross-validation packages no model
    runs = project.runs()
    parent = runs[runs["tags.mlflow.runName"].str.startswith("data_processing+cross_validation")]
    assert f"MLflow run {parent['run_id'].iloc[0]}" in printed


def test_one_fold_reruns_alone_with_namespaces(project: Project) -> None:
    models = {
        fold: project.path("data", "06_models", "cross_validation", f"fold_{fold}", "model.keras")
        for fold in range(1, FOLDS + 1)
    }
    before = {fold: path.stat().st_mtime_ns for fold, path in models.items()}
    runs_before = set(project.runs()["run_id"])

    project.run(["cross_validation"], namespaces=["fold_2"])

    after = {fold: path.stat().st_mtime_ns for fold, path in models.items()}
    assert after[2] != before[2]
    assert after[1] == before[1] and after[3] == before[3]
    runs = project.runs()
    new = runs[~runs["run_id"].isin(runs_before)]
    parent = new[new["tags.mlflow.parentRunId"].isna()]
    assert len(parent) == 1
    assert list(new.loc[new["tags.mlflow.parentRunId"].notna(), "tags.mlflow.runName"]) == [
        "fold_2"
    ]

    # Folds run as separate processes are combined by the two combining nodes alone.
    project.run(["cross_validation"], node_names=["aggregate_folds", "plot_fold_roc_curves"])
    summary = json.loads(project.path(*CV.parts, "summary.json").read_text())
    metrics = json.loads(project.path(*CV.parts, "fold_2", "test_metrics.json").read_text())
    fold_2 = summary["per_fold"]["fold_2"]
    assert fold_2["test_auc"] == pytest.approx(metrics["test"]["auc"])


def test_a_half_done_cross_validation_resumes_with_only_missing_outputs(project: Project) -> None:
    models = {
        fold: project.path("data", "06_models", "cross_validation", f"fold_{fold}", "model.keras")
        for fold in range(1, FOLDS + 1)
    }
    before = {fold: path.stat().st_mtime_ns for fold, path in models.items()}
    # As if the run had stopped while training fold 3: none of its outputs, nothing combined.
    for layer in ("06_models", "07_model_output", "08_reporting"):
        shutil.rmtree(project.path("data", layer, "cross_validation", "fold_3"))
    combined = [project.path(*CV.parts, name) for name in COMBINED]
    for path in combined:
        path.unlink()

    project.run(["cross_validation"], only_missing_outputs=True)

    assert models[3].exists() and all(path.exists() for path in combined)
    assert {fold: models[fold].stat().st_mtime_ns for fold in (1, 2)} == {
        fold: before[fold] for fold in (1, 2)
    }
