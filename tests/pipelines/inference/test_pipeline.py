"""Real runs: train on demo data, then use the model on new files, through Kedro, the CLI and
a real ``mlflow models serve``: the same preprocessing, probabilities and threshold everywhere."""

from __future__ import annotations

import base64
import io
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from kedro.framework.session import KedroSession
from PIL import Image

from chest_xray.evaluation.calibration import apply_temperature
from chest_xray.inference import cli
from chest_xray.inference.settings import calibrated_threshold
from chest_xray.tools.demo_data import write_demo_dataset
from tests.conftest import entered_project, nest
from tests.inference.new_images import NewImages, write_new_images

pytestmark = pytest.mark.slow

TEST_IMAGES = Path("Coronahack-Chest-XRay-Dataset", "Coronahack-Chest-XRay-Dataset", "test")


class Project:
    """A throw-away project (as tests/conftest.py's kedro_project) shared by this module."""

    def __init__(self, root: Path, raw: Path) -> None:
        self.root, self.raw = root, raw

    def run(self, pipeline: str | None = None, **params: object) -> None:
        runtime = nest({"raw_root": str(self.raw), "preprocessing.workers": 1, **params})
        with KedroSession.create(project_path=self.root, env="demo", runtime_params=runtime) as s:
            s.run(pipeline_names=[pipeline] if pipeline else None)

    @property
    def data(self) -> Path:
        return self.root / "data"

    def mlflow(self):  # type: ignore[no-untyped-def]
        import mlflow

        mlflow.set_tracking_uri(os.environ["MLFLOW_TRACKING_URI"])
        return mlflow.MlflowClient()


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Project]:
    """Trained and evaluated once: the default pipeline on 240 demo images, 4 epochs."""
    root = tmp_path_factory.mktemp("project")
    raw = write_demo_dataset(tmp_path_factory.mktemp("raw") / "coronahack", n_train=240, seed=1)
    with entered_project(root):
        built = Project(root, raw.root)
        built.run(**{"training.epochs": 4})
        yield built


@pytest.fixture(scope="module")
def new_images(project: Project) -> NewImages:
    """data/01_raw/new_images: the demo test split's files as they are, plus every format."""
    root = project.data / "01_raw" / "new_images"
    shutil.copytree(project.raw / TEST_IMAGES, root / "test_split")
    pictures = []
    for path in sorted((root / "test_split").iterdir())[:3]:
        with Image.open(path) as image:
            pictures.append(np.asarray(image.convert("L")))
    made = write_new_images(root / "formats", pictures)
    readable = {f"formats/{name}" for name in made.readable} | {
        f"test_split/{path.name}" for path in (root / "test_split").iterdir()
    }
    skipped = {f"formats/{name}": category for name, category in made.skipped.items()}
    png, dicom = made.same_picture
    return NewImages(root, frozenset(readable), skipped, (f"formats/{png}", f"formats/{dicom}"))


@pytest.fixture(scope="module")
def predicted(project: Project, new_images: NewImages) -> pd.DataFrame:
    project.run("inference")
    return pd.read_csv(project.data / "07_model_output" / "inference_predictions.csv")


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


def _not_x_rays() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    noise = rng.integers(0, 256, (256, 256)).astype(np.uint8)
    return {"blank.png": np.zeros((256, 256), np.uint8), "noise.png": noise}


def _png(pixels: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG")
    return buffer.getvalue()


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
    for name, pixels in _not_x_rays().items():
        (folder / name).write_bytes(_png(pixels))
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


# ------------------------------------------------------------------ the served model


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture(scope="module")
def server(project: Project, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """``mlflow models serve`` of the champion on 127.0.0.1, paths allowed under one root."""
    port, root = free_port(), tmp_path_factory.mktemp("served")
    env = os.environ | {
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",  # uvicorn
        "CHEST_XRAY_SERVE_ROOT": str(root),
        "CHEST_XRAY_MAX_IMAGE_BYTES": "2000000",
        "TF_CPP_MIN_LOG_LEVEL": "3",
    }
    command = [
        str(Path(sys.executable).with_name("mlflow")),
        "models",
        "serve",
        "-m",
        "models:/chest-xray@champion",
        "--env-manager",
        "local",
        "-h",
        "127.0.0.1",
        "-p",
        str(port),
    ]
    log = open(tmp_path_factory.mktemp("log") / "serve.log", "w+")  # noqa: SIM115
    process = subprocess.Popen(command, env=env, stdout=log, stderr=log, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(180):
            try:
                urllib.request.urlopen(f"{url}/ping", timeout=2)
                break
            except OSError:
                if process.poll() is not None:
                    break
                time.sleep(1)
        else:
            pytest.fail("the server did not answer /ping in 3 minutes")
        if process.poll() is not None:
            log.seek(0)
            pytest.fail(f"mlflow models serve exited: {log.read()[-3000:]}")
        yield url
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=30)
        log.close()


def post(url: str, body: bytes) -> tuple[int, dict]:  # type: ignore[type-arg]
    request = urllib.request.Request(
        f"{url}/invocations", data=body, headers={"Content-Type": "application/json"}
    )
    try:
        with urllib.request.urlopen(request, timeout=60) as answer:
            return answer.status, json.loads(answer.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read() or b"{}")


def images_request(column: str, *values: str) -> bytes:
    return json.dumps(
        {"dataframe_split": {"columns": [column], "data": [[v] for v in values]}}
    ).encode()


def test_the_served_champion_answers_as_the_pipeline(
    server: str, new_images: NewImages, predicted: pd.DataFrame
) -> None:
    names = sorted(new_images.readable)[:3]
    encoded = [base64.b64encode((new_images.root / n).read_bytes()).decode() for n in names]
    status, answer = post(server, images_request("image", *encoded))
    assert status == 200, answer
    prob = dict(zip(predicted["file"], predicted["probability"], strict=True))
    got = [row["probability"] for row in answer["predictions"]]
    np.testing.assert_allclose(got, [prob[n] for n in names], atol=1e-5)
    assert {row["label"] for row in answer["predictions"]} <= {"NORMAL", "PNEUMONIA", ""}


def test_the_served_champion_flags_a_blank_and_a_noise_image(server: str) -> None:
    encoded = [base64.b64encode(_png(pixels)).decode() for pixels in _not_x_rays().values()]
    status, answer = post(server, images_request("image", *encoded))
    assert status == 200, answer
    rows = answer["predictions"]
    assert [row["ood_flag"] for row in rows] == [True, True]
    assert [row["label"] for row in rows] == ["", ""]
    assert all(row["ood_reason"].startswith("out of distribution") for row in rows)


def test_the_server_refuses_abuse_and_keeps_serving(
    server: str, new_images: NewImages, tmp_path: Path
) -> None:
    root = Path(os.environ.get("TMPDIR", "/tmp"))
    bomb = io.BytesIO()
    Image.new("L", (1, 1)).save(bomb, format="PNG")
    bomb_bytes = _claiming(bomb.getvalue(), 20_000, 20_000)
    cases = {
        "malformed JSON": b'{"dataframe_split": ',
        "no rows": images_request("image"),
        "no image column": images_request("pixels", "x"),
        "not base64": images_request("image", "%%%"),
        "undecodable": images_request("image", base64.b64encode(b"hello").decode()),
        "oversized": images_request("image", base64.b64encode(os.urandom(2_100_000)).decode()),
        "decompression bomb": images_request("image", base64.b64encode(bomb_bytes).decode()),
        "path escape": images_request("path", "../../../etc/passwd"),
        "absolute path outside": images_request("path", str(root)),
    }
    for case, body in cases.items():
        status, answer = post(server, body)
        assert 400 <= status < 500, (case, status, answer)
        assert answer.get("message"), case
    assert "too large" in post(server, cases["oversized"])[1]["message"]
    assert "too large" in post(server, cases["decompression bomb"])[1]["message"]
    assert "outside the served root" in post(server, cases["path escape"])[1]["message"]
    # Still serving.
    image = sorted(new_images.root.rglob("*.jpeg"))[0]
    ok = post(server, images_request("image", base64.b64encode(image.read_bytes()).decode()))
    assert ok[0] == 200


def _claiming(png: bytes, width: int, height: int) -> bytes:
    """``png`` with an IHDR that claims ``width`` x ``height`` pixels (nothing decodes it)."""
    import struct
    import zlib

    header = b"IHDR" + struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    chunk = struct.pack(">I", 13) + header + struct.pack(">I", zlib.crc32(header))
    return png[:8] + chunk + png[8 + len(chunk) :]


def test_served_paths_stay_inside_the_root(server: str, tmp_path: Path) -> None:
    status, answer = post(server, images_request("path", "missing.png"))
    assert status == 400 and "no such file" in answer["message"]


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
