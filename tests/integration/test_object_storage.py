"""Data on object storage: raw data and data layers in an S3 bucket, through the catalog.

A real S3 API on 127.0.0.1 (moto's standalone server, in this process), reached
by s3fs with the endpoint and keys from the project's credentials file, as a
user's ``conf/local/credentials.yml`` would give them. data_processing reads
the raw images from the bucket and writes the PNGs, tables and manifest back;
a second run reuses what the evidence in the bucket vouches for; training reads
the PNGs from the bucket and stores its model there. Nothing but the figures
(local by design) is written under the project's data/.
"""

from __future__ import annotations

import json
import logging
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import yaml

s3fs = pytest.importorskip("s3fs", reason="the s3 extra: pip install -e '.[s3]'")
moto_server = pytest.importorskip("moto.server", reason="moto[server] (a dev dependency)")

from chest_xray.tools.demo_data import write_demo_dataset  # noqa: E402
from tests.conftest import RunKedro  # noqa: E402

BUCKET = "chest-xray-test"
RAW = f"{BUCKET}/coronahack"
DATA = f"{BUCKET}/chest-xray"
IMAGES = f"{DATA}/03_primary/images"
KEYS = {"key": "test-key", "secret": "test-secret"}  # moto accepts any


@pytest.fixture(scope="module")
def endpoint() -> Iterator[str]:
    """moto's S3-compatible server on a free port of 127.0.0.1, for this module."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # a line per request otherwise
    server = moto_server.ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.stop()


@pytest.fixture
def bucket(endpoint: str, tmp_path: Path) -> s3fs.S3FileSystem:
    """A fresh bucket holding a small demo download under coronahack/."""
    fs = s3fs.S3FileSystem(**credentials(endpoint), skip_instance_cache=True)
    if fs.exists(BUCKET):
        fs.rm(BUCKET, recursive=True)
    fs.call_s3("create_bucket", Bucket=BUCKET)  # in us-east-1: no location constraint
    local = tmp_path / "coronahack"
    write_demo_dataset(local, n_train=60, n_test=16, seed=3)
    fs.put(f"{local}/", f"{RAW}/", recursive=True)
    return fs


def credentials(endpoint: str) -> dict[str, Any]:
    """What s3fs gets: keys, and the endpoint of an S3-compatible server."""
    return {**KEYS, "client_kwargs": {"endpoint_url": endpoint, "region_name": "us-east-1"}}


@pytest.fixture
def bucket_project(kedro_project: Path, endpoint: str) -> Path:
    """The project configured as the README says, in the environment the runs use (demo):
    credentials.yml holds the storage's entry, globals.yml names it for both roots."""
    conf = kedro_project / "conf" / "demo"
    (conf / "credentials.yml").write_text(
        yaml.safe_dump({"object_store": credentials(endpoint)}), encoding="utf-8"
    )
    globals_yml = conf / "globals.yml"
    settings = yaml.safe_load(globals_yml.read_text(encoding="utf-8"))
    settings.update(
        raw_root=f"s3://{RAW}",
        data_root=f"s3://{DATA}",
        raw_credentials="object_store",
        data_credentials="object_store",
    )
    globals_yml.write_text(yaml.safe_dump(settings), encoding="utf-8")
    return kedro_project


def read_csv(fs: s3fs.S3FileSystem, path: str) -> pd.DataFrame:
    with fs.open(path, "rb") as handle:
        return pd.read_csv(handle, dtype=str, keep_default_na=False)


def pngs(fs: s3fs.S3FileSystem) -> dict[str, Any]:
    """PNG object -> (ETag, LastModified), listed afresh."""
    fs.invalidate_cache()
    found = fs.find(IMAGES, detail=True)
    return {name: (info["ETag"], info["LastModified"]) for name, info in found.items()}


def test_data_processing_and_training_read_and_write_the_bucket(
    bucket: s3fs.S3FileSystem, bucket_project: Path, run_kedro: RunKedro
) -> None:
    run_kedro(pipeline_names=["data_processing"])

    log = read_csv(bucket, f"{DATA}/03_primary/preprocessing_log.csv")
    ok = log[log["status"] == "ok"]
    first = pngs(bucket)
    assert sorted(first) == sorted(f"{IMAGES}/{image_id}.png" for image_id in ok["image_id"])
    # The stamp of a source object is its size and ETag (content), not a time.
    assert ok["source_stamp"].str.fullmatch(r'\d+:"[0-9a-f]{32}"').all()
    manifest = read_csv(bucket, f"{DATA}/03_primary/split_manifest.csv")
    assert set(manifest["split"]) == {"train", "validation", "test"}
    assert set(manifest["image_id"]) <= set(ok["image_id"])
    for table in ("02_intermediate/image_index.csv", "08_reporting/dropped_items.csv"):
        assert bucket.exists(f"{DATA}/{table}")
    # kedro-mlflow logged the manifest from its local copy; the bucket holds the data.
    assert "data/split_manifest.csv" in artifacts(bucket_project)

    # A rerun reuses every PNG (the first rerun checks each one's digest once and
    # records its stamp); one changed source object is made again, and only it.
    index = read_csv(bucket, f"{DATA}/02_intermediate/image_index.csv").set_index("image_id")
    changed, other = ok["image_id"].iloc[:2]
    source = f"{RAW}/Coronahack-Chest-XRay-Dataset/Coronahack-Chest-XRay-Dataset"
    bucket.pipe_file(
        f"{source}/{index.loc[changed, 'raw_partition']}",
        bucket.cat_file(f"{source}/{index.loc[other, 'raw_partition']}"),
    )
    run_kedro(pipeline_names=["data_processing"])

    second = pngs(bucket)
    rewritten = {name for name in first if second[name][1] != first[name][1]}
    assert rewritten == {f"{IMAGES}/{changed}.png"}
    rerun_log = read_csv(bucket, f"{DATA}/03_primary/preprocessing_log.csv")
    rerun_ok = rerun_log[rerun_log["status"] == "ok"].set_index("image_id")
    unchanged = rerun_ok.drop(index=changed)
    expected = {
        f"{IMAGES}/{image_id}.png": stamp for image_id, stamp in unchanged["output_stamp"].items()
    }
    assert all(
        stamp == f"{bucket.info(name)['size']}:{second[name][0]}"
        for name, stamp in expected.items()
    )

    run_kedro(pipeline_names=["training"], runtime_params={"training.epochs": 1})

    models = bucket.glob(f"{DATA}/06_models/model.keras/*/model.keras")
    assert len(models) == 1 and bucket.info(models[0])["size"] > 0
    with bucket.open(f"{DATA}/08_reporting/training_history.json", "rb") as handle:
        history = json.load(handle)
    assert len(history["loss"]) == 1
    local = bucket_project / "data"
    written = sorted(str(p.relative_to(local)) for p in local.rglob("*") if p.is_file())
    assert all(name.startswith("08_reporting/") and name.endswith(".png") for name in written)
    assert not (local / "03_primary").exists()


def test_a_remote_checkpoint_folder_is_refused_at_start(
    bucket_project: Path, run_kedro: RunKedro
) -> None:
    """Checkpoints stay on the machine that trains, also when the data is in a bucket."""
    with pytest.raises(Exception, match=r"training\.checkpoint_dir must be a folder on this"):
        run_kedro(
            pipeline_names=["training"],
            runtime_params={"training.checkpoint_dir": f"s3://{DATA}/checkpoints"},
        )


def artifacts(project: Path) -> set[str]:
    """Artifact paths of the newest MLflow run of ``project``."""
    from mlflow.tracking import MlflowClient

    client = MlflowClient(f"sqlite:///{project}/mlflow.db")
    experiment = client.get_experiment_by_name("chest-xray")
    assert experiment is not None
    run = client.search_runs([experiment.experiment_id], order_by=["start_time DESC"])[0]
    found: set[str] = set()
    folders = [""]
    while folders:
        for item in client.list_artifacts(run.info.run_id, folders.pop() or None):
            (folders.append(item.path) if item.is_dir else found.add(item.path))
    return found
