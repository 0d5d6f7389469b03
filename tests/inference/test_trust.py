"""A package is code: only packages this machine made or the tracking store records load."""

from __future__ import annotations

import shutil
from pathlib import Path

import mlflow
import mlflow.pyfunc
import numpy as np
import pandas as pd
import pytest
from PIL import Image

from chest_xray.inference import cli, trust
from chest_xray.inference.packaging import ServableModel, load_classifier, log_servable_model
from chest_xray.inference.trust import UntrustedPackageError, package_digest
from tests.inference.conftest import tiny_model, tiny_settings


@pytest.fixture
def empty_store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A record of trusted packages that holds nothing yet."""
    path = tmp_path / "store" / "trusted.json"
    monkeypatch.setenv(trust.STORE_ENV, str(path))
    return path


def tampered(package: Path, where: Path) -> Path:
    """The package with one line added to the code MLflow runs on load."""
    copy = where / "tampered"
    shutil.copytree(package, copy)
    code = next(copy.rglob("served_model.py"))
    code.write_text(code.read_text() + "\n# changed\n")
    return copy


def test_the_digest_follows_the_content_not_the_place(package: Path, tmp_path: Path) -> None:
    copy = shutil.copytree(package, tmp_path / "elsewhere" / "model")
    assert package_digest(copy) == package_digest(package)
    (copy / "code" / "__pycache__").mkdir(parents=True)
    (copy / "code" / "__pycache__" / "x.pyc").write_bytes(b"python writes these on import")
    assert package_digest(copy) == package_digest(package)
    (copy / "extra.txt").write_text("one more file")
    assert package_digest(copy) != package_digest(package)
    assert package_digest(tampered(package, tmp_path)) != package_digest(package)


def test_a_saved_package_is_recorded_and_loads_a_changed_one_is_refused(
    package: Path, tmp_path: Path
) -> None:
    assert trust.recorded(package_digest(package))  # save_servable_model recorded it
    assert load_classifier(str(package)).source == str(package)
    changed = tampered(package, tmp_path)
    with pytest.raises(UntrustedPackageError, match=r"A package is code.*--trust-package"):
        load_classifier(str(changed))
    assert load_classifier(str(changed), trust=True).settings.threshold == 0.5


class _RunsOnLoad(mlflow.pyfunc.PythonModel):
    """Unpickling this touches a file: any code in a pickle runs when a package loads."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[object, tuple[()]]:
        return (self.marker.touch, ())

    def predict(  # typed: MLflow warns about a PythonModel whose predict has no type hints
        self, context: object, model_input: pd.DataFrame, params: dict | None = None
    ) -> pd.DataFrame:
        return model_input


def test_the_cli_refuses_a_strangers_package_before_any_of_its_code_runs(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    marker = tmp_path / "code-ran"
    stranger = tmp_path / "stranger"
    mlflow.pyfunc.save_model(path=str(stranger), python_model=_RunsOnLoad(marker))
    marker.unlink(missing_ok=True)  # saving pickles it; only loading must stay harmless
    image = tmp_path / "scan.png"
    Image.fromarray(np.full((40, 48), 128, np.uint8)).save(image)
    status = cli.main([str(image), "--model", str(stranger)])
    err = capsys.readouterr().err
    assert status == cli.EXIT_ERROR
    assert "is not a package this machine's pipelines made" in err and "--trust-package" in err
    assert "Traceback" not in err
    assert not marker.exists()
    # On the user's word it is loaded, and its code runs (then it is no chest-xray model).
    assert cli.main([str(image), "--model", str(stranger), "--trust-package"]) == cli.EXIT_ERROR
    assert marker.exists()


def test_the_cli_predicts_with_a_tampered_package_only_when_trusted(
    package: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    image = tmp_path / "scan.png"
    Image.fromarray(np.full((40, 48), 128, np.uint8)).save(image)
    changed = tampered(package, tmp_path)
    assert cli.main([str(image), "--model", str(changed)]) == cli.EXIT_ERROR
    assert "cannot load the model" in capsys.readouterr().err
    out = tmp_path / "p.csv"
    args = [str(image), "--model", str(changed), "--trust-package", "--out", str(out)]
    assert cli.main(args) == cli.EXIT_OK
    assert out.read_text().count("\n") == 2


def test_the_tracking_store_vouches_for_what_it_logged(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, empty_store: Path
) -> None:
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    mlflow.set_tracking_uri(uri)
    mlflow.set_experiment("trust-test")
    with mlflow.start_run() as run:
        info = log_servable_model(ServableModel(tiny_model(), tiny_settings()), name="model")
    tag = mlflow.MlflowClient().get_run(run.info.run_id).data.tags[trust.RUN_TAG]
    assert trust.recorded(tag)  # the logging machine's own record
    empty_store.unlink()  # another machine: only the tracking store knows it
    assert load_classifier(info.model_uri).source == info.model_uri
    mlflow.MlflowClient().set_tag(run.info.run_id, trust.RUN_TAG, "0" * 64)
    with pytest.raises(UntrustedPackageError, match="no tracking store records it"):
        load_classifier(info.model_uri)


def test_a_package_with_a_link_in_it_is_refused(package: Path, tmp_path: Path) -> None:
    copy = shutil.copytree(package, tmp_path / "linked")
    (copy / "code" / "elsewhere.py").symlink_to("/etc/hostname")
    with pytest.raises(UntrustedPackageError, match="regular files only"):
        load_classifier(str(copy))


def test_concurrent_records_keep_every_entry(tmp_path: Path, empty_store: Path) -> None:
    from concurrent.futures import ThreadPoolExecutor

    folders = []
    for index in range(8):
        folder = tmp_path / f"p{index}"
        folder.mkdir()
        (folder / "MLmodel").write_text(f"model {index}")
        folders.append(folder)
    with ThreadPoolExecutor(4) as pool:
        digests = list(pool.map(lambda f: trust.record(f, source=str(f)), folders))
    assert all(trust.recorded(digest) for digest in digests)


def test_the_catalogs_dataset_refuses_it_unless_trust_package(
    package: Path, tmp_path: Path
) -> None:
    from kedro.io.core import DatasetError

    from chest_xray.datasets.servable_model_dataset import ServableModelDataset

    changed = str(tampered(package, tmp_path))
    folder = str(tmp_path / "packages")
    with pytest.raises(DatasetError, match="trust_package=true"):
        ServableModelDataset(filepath=folder, model_uri=changed).load()
    loaded = ServableModelDataset(filepath=folder, model_uri=changed, trust_package=True).load()
    assert loaded.source == changed
