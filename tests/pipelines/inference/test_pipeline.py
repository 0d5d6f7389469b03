"""Real runs: train on demo data, then use the model on new files, through Kedro and the CLI
(the served model: test_serving.py): the same preprocessing, probabilities and threshold
everywhere."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from chest_xray.evaluation.calibration import apply_temperature
from chest_xray.inference import cli
from chest_xray.inference.settings import calibrated_threshold
from tests.inference.new_images import NewImages
from tests.pipelines.inference.trained_project import Project, not_x_rays, png_bytes

pytestmark = pytest.mark.slow


def test_every_readable_file_is_predicted_and_every_other_listed(
    project: Project, new_images: NewImages, predicted: pd.DataFrame
) -> None:
    assert set(predicted["file"]) == new_images.readable
    skipped = pd.read_csv(project.data / "07_model_output" / "inference_skipped.csv")
    assert dict(zip(skipped["file"], skipped["category"], strict=True)) == new_images.skipped
    assert skipped["reason"].str.len().min() > 10
    # Threshold and source come with the model: the evaluation's validation choice.
    metrics = json.loads((project.data / "08_reporting" / "test_metrics.json").read_text())
    tuned = metrics["test"]["at_validation_threshold"]
    # ... in the units of the calibrated probabilities the package returns.
    temperature = metrics["calibration"]["temperature"]
    assert temperature != pytest.approx(1.0, abs=1e-3)
    shift = metrics.get("prior_shift")
    pair = None if shift is None else (shift["from"], shift["to"])
    threshold = calibrated_threshold(tuned["threshold"], temperature, pair)
    assert predicted["threshold"].unique().tolist() == [pytest.approx(threshold)]
    assert predicted["threshold_source"].unique().tolist() == [
        f"{tuned['strategy']} on validation, in calibrated units"
    ]
    labels = np.where(predicted["probability"] >= predicted["threshold"], "PNEUMONIA", "NORMAL")
    flagged = predicted["ood_flag"].astype(bool)  # out of distribution: no label (below)
    assert (predicted["label"] == labels)[~flagged].all()
    assert predicted.loc[flagged, "label"].isna().all()  # "" in the CSV
    assert predicted["model"].str.contains("servable_model").all()


def test_inference_gives_the_training_pipelines_test_probabilities(
    project: Project, predicted: pd.DataFrame
) -> None:
    test = pd.read_csv(project.data / "07_model_output" / "test_predictions.csv")
    ours = predicted[predicted["file"].str.startswith("test_split/")].copy()
    ours["image_id"] = (
        "test/" + ours["file"].str.removeprefix("test_split/").str.rsplit(".", n=1).str[0]
    )
    both = test.merge(ours, on="image_id", suffixes=("_test", "_new"))
    assert len(both) == len(test) > 20
    # The package returns the network's probabilities calibrated by the report's temperature.
    metrics = json.loads((project.data / "08_reporting" / "test_metrics.json").read_text())
    calibrated = apply_temperature(both["probability_test"], metrics["calibration"]["temperature"])
    np.testing.assert_allclose(both["probability_new"], calibrated, atol=1e-5)


def test_a_dicom_predicts_as_the_png_it_was_made_from(
    new_images: NewImages, predicted: pd.DataFrame
) -> None:
    prob = dict(zip(predicted["file"], predicted["probability"], strict=True))
    png, dicom = new_images.same_picture
    assert abs(prob[png] - prob[dicom]) < 0.02


def test_gradcam_overlays_are_written_for_every_prediction(
    project: Project, predicted: pd.DataFrame
) -> None:
    folder = project.data / "08_reporting" / "inference_gradcam"
    assert {str(p.relative_to(folder))[:-4] for p in folder.rglob("*.png")} == set(
        predicted["file"]
    )
    gallery = project.data / "08_reporting" / "gradcam_gallery.png"
    assert gallery.stat().st_size > 5_000


def test_a_registered_model_uri_predicts_the_same(
    project: Project, predicted: pd.DataFrame
) -> None:
    project.run("inference", model_uri="models:/chest-xray@champion", **{"inference.gradcam": 1})
    again = pd.read_csv(project.data / "07_model_output" / "inference_predictions.csv")
    np.testing.assert_allclose(again["probability"], predicted["probability"], atol=1e-6)
    assert (again["model"] == "models:/chest-xray@champion").all()
    overlays = list((project.data / "08_reporting" / "inference_gradcam").rglob("*.png"))
    assert len(overlays) == 2  # the most confident each way, the old ones gone


def test_the_packaged_guard_flags_what_is_no_x_ray(
    project: Project, predicted: pd.DataFrame, tmp_path: Path
) -> None:
    """Fitted at packaging, carried by the local package and the registered MLflow model;
    a blank and a noise image flagged and unlabelled, the demo's test films mostly not."""
    package = project.data / "06_models" / "servable_model"
    assert list(package.glob("*/servable_model/artifacts/ood_guard.npz"))
    films = predicted[predicted["file"].str.startswith("test_split/")]
    assert films["ood_flag"].astype(bool).mean() <= 0.1
    folder = tmp_path / "not_x_rays"
    folder.mkdir()
    for name, pixels in not_x_rays().items():
        (folder / name).write_bytes(png_bytes(pixels))
    outputs = project.data / "07_model_output" / "inference_predictions.csv"
    project.run("inference", inference_root=str(folder), **{"inference.gradcam": "none"})
    table = pd.read_csv(outputs, keep_default_na=False)
    assert table["ood_flag"].tolist() == [True, True] and set(table["label"]) == {""}
    assert table["ood_reason"].str.startswith("out of distribution: score").all()
    project.run(
        "inference",
        inference_root=str(folder),
        model_uri="models:/chest-xray@champion",
        **{"inference.gradcam": "none", "inference.ood": "label"},
    )
    forced = pd.read_csv(outputs)
    assert forced["ood_flag"].all() and forced["label"].isin(["NORMAL", "PNEUMONIA"]).all()


def test_a_folder_without_images_is_an_error_naming_it(project: Project, tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    with pytest.raises(Exception, match="empty"):
        project.run("inference", inference_root=str(tmp_path / "empty"))
    (tmp_path / "junk").mkdir()
    (tmp_path / "junk" / "notes.txt").write_text("no image")
    with pytest.raises(Exception, match=f"None of the 1 files under {tmp_path / 'junk'}"):
        project.run("inference", inference_root=str(tmp_path / "junk"))


def test_the_cli_predicts_as_the_pipeline(
    project: Project,
    new_images: NewImages,
    predicted: pd.DataFrame,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    out, overlays = tmp_path / "predictions.csv", tmp_path / "gradcam"
    status = cli.main([str(new_images.root), "--out", str(out), "--gradcam", str(overlays)])
    assert status == cli.EXIT_SOME_SKIPPED
    table = pd.read_csv(out)
    table["file"] = table["file"].str.removeprefix(f"{new_images.root}/")
    merged = table.merge(predicted, on="file")
    assert len(merged) == len(predicted) == len(table)
    np.testing.assert_allclose(merged["probability_x"], merged["probability_y"], atol=1e-6)
    assert len(list(overlays.rglob("*.png"))) == len(table)
    err = capsys.readouterr().err
    assert all(f"skipped {new_images.root}/{name}" in err for name in new_images.skipped)
    good = str(new_images.root / "test_split")
    assert cli.main([good, "--out", str(tmp_path / "ok.csv")]) == cli.EXIT_OK
    assert cli.main([str(tmp_path / "missing")]) == cli.EXIT_USAGE
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "x.txt").write_text("x")
    assert cli.main([str(bad)]) == cli.EXIT_NONE_PREDICTED
    assert cli.main([good, "--model", str(tmp_path)]) == cli.EXIT_ERROR


def test_the_console_script_runs_without_kedro(project: Project, new_images: NewImages) -> None:
    script = Path(sys.executable).with_name("chest-xray")
    done = subprocess.run(
        [str(script), "predict", str(new_images.root / "test_split")],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("file,probability,label,ood_score,ood_flag,ood_reason,threshold")
    assert "Kedro" not in done.stderr and "kedro" not in done.stderr


# ------------------------------------------------------------------ the registry, live curves


def test_re_evaluating_registers_a_version_but_keeps_the_champion(project: Project) -> None:
    client = project.mlflow()
    before = client.get_model_version_by_alias("chest-xray", "champion").version
    project.run("evaluation")  # the same model again: the same AUC is not better
    versions = client.search_model_versions("name='chest-xray'")
    assert len(versions) == 2
    assert client.get_model_version_by_alias("chest-xray", "champion").version == before


def test_training_curves_reach_the_run_epoch_by_epoch(project: Project) -> None:
    client = project.mlflow()
    runs = client.search_runs(
        [client.get_experiment_by_name("chest-xray").experiment_id],
        filter_string="tags.mlflow.runName LIKE 'default-%'",
    )
    history = client.get_metric_history(runs[0].info.run_id, "val_loss")
    assert [m.step for m in history] == [1, 2, 3, 4]  # each epoch once: live, not again at the end
    stamps = [m.timestamp for m in history]
    assert stamps == sorted(stamps) and stamps[0] < stamps[-1]  # logged as they happened
    assert runs[0].data.tags["registered_model_version"] == "chest-xray/1"
