"""The synthetic download must look like the Kaggle one, quirks included, and carry a signal."""

from __future__ import annotations

import logging
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score

from chest_xray.tools.demo_data import DemoDatasetFacts, main, write_demo_dataset

IMAGES = Path("Coronahack-Chest-XRay-Dataset", "Coronahack-Chest-XRay-Dataset")
METADATA = "Chest_xray_Corona_Metadata.csv"
SUMMARY = "Chest_xray_Corona_dataset_Summary.csv"
PLAIN_NAME = re.compile(
    r"^(?:NORMAL2-)?(IM-\d{4})-\d{4}\.jpeg$|^(person\d+)_(bacteria|virus)_\d+\.jpeg$"
)


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> DemoDatasetFacts:
    return write_demo_dataset(tmp_path_factory.mktemp("demo"))


@pytest.fixture(scope="module")
def metadata(demo: DemoDatasetFacts) -> pd.DataFrame:
    return pd.read_csv(demo.root / METADATA, keep_default_na=False)


def _files(root: Path, split: str) -> set[str]:
    return {p.name for p in (root / IMAGES / split).iterdir()}


def _rows(metadata: pd.DataFrame, dataset_type: str) -> set[str]:
    return set(metadata.loc[metadata.Dataset_type == dataset_type, "X_ray_image_name"])


def _patient(name: str) -> str:
    """IM number (shared by IM- and NORMAL2-IM-), personN, or the whole name for the rest."""
    match = PLAIN_NAME.match(name)
    return (match.group(1) or match.group(2)) if match else name


def _grey(path: Path) -> np.ndarray:
    image = Image.open(path)
    if image.mode.startswith("I"):
        return (np.asarray(image, dtype=np.float32) / 257.0).astype(np.uint8)
    return np.asarray(image.convert("L"))


def _labelled(demo: DemoDatasetFacts, metadata: pd.DataFrame, split: str) -> pd.DataFrame:
    rows = metadata[metadata.Dataset_type == split.upper()]
    return rows[rows.X_ray_image_name.isin(_files(demo.root, split))]


# ------------------------------------------------------------------------ layout and CSVs


def test_layout_matches_the_kaggle_download(demo: DemoDatasetFacts) -> None:
    assert (demo.root / METADATA).is_file()
    assert (demo.root / SUMMARY).is_file()
    assert len(_files(demo.root, "train")) == demo.train_files == 240 + 3
    assert len(_files(demo.root, "test")) == demo.test_files == 60
    assert {p.name for p in demo.root.iterdir()} == {METADATA, SUMMARY, IMAGES.parts[0]}


def test_metadata_header_and_values_are_verbatim(
    demo: DemoDatasetFacts, metadata: pd.DataFrame
) -> None:
    raw = (demo.root / METADATA).read_bytes()
    assert raw.startswith(
        b",X_ray_image_name,Label,Dataset_type,Label_2_Virus_category,Label_1_Virus_category\n"
    )
    assert b"\r" not in raw
    assert set(metadata.Label) == {"Normal", "Pnemonia"}
    assert set(metadata.Dataset_type) == {"TRAIN", "TEST"}
    assert set(metadata.Label_1_Virus_category) == {"", "bacteria", "Virus", "Stress-Smoking"}
    assert set(metadata.Label_2_Virus_category) == {"", "COVID-19", "Streptococcus", "SARS", "ARDS"}
    normal = metadata[metadata.Label == "Normal"]
    assert (normal.Label_1_Virus_category == "").all()
    assert (normal.Label_2_Virus_category == "").all()
    assert ",Normal,TRAIN,,\n" in raw.decode()


def test_unnamed_index_is_gappy_and_increasing(metadata: pd.DataFrame) -> None:
    index = metadata.iloc[:, 0].to_numpy()
    assert metadata.columns[0] == "Unnamed: 0"
    assert index[0] == 0
    steps = np.diff(index)
    assert (steps >= 1).all()
    assert (steps > 1).sum() >= 1
    assert index[-1] > len(index) - 1


def test_summary_counts_every_metadata_row(demo: DemoDatasetFacts, metadata: pd.DataFrame) -> None:
    raw = (demo.root / SUMMARY).read_bytes()
    assert raw.startswith(b",Label,Label_1_Virus_category,Label_2_Virus_category,Image_Count\n")
    summary = pd.read_csv(demo.root / SUMMARY, keep_default_na=False)
    keys = ["Label", "Label_1_Virus_category", "Label_2_Virus_category"]
    expected = metadata.groupby(keys).size().rename("Image_Count").reset_index()
    assert summary.iloc[:, 0].tolist() == list(range(len(summary)))
    pd.testing.assert_frame_equal(summary[[*keys, "Image_Count"]], expected)
    assert summary.Image_Count.sum() == len(metadata) == 240 + 60 + 3
    # 72 + 1 row without file in train, 18 in test: fixed by the 30% normal share, not by chance.
    assert raw.splitlines()[1] == b"0,Normal,,,91"


# ------------------------------------------------------------------------ quirks


def test_unlabelled_files_are_on_disk_but_not_in_the_csv(
    demo: DemoDatasetFacts, metadata: pd.DataFrame
) -> None:
    assert len(demo.unlabelled_files) == 3
    on_disk = _files(demo.root, "train")
    for name in demo.unlabelled_files:
        assert name in on_disk
        assert name not in set(metadata.X_ray_image_name)
    assert on_disk - _rows(metadata, "TRAIN") == set(demo.unlabelled_files)
    assert _files(demo.root, "test") <= _rows(metadata, "TEST")


def test_rows_without_file_are_in_the_csv_but_not_on_disk(
    demo: DemoDatasetFacts, metadata: pd.DataFrame
) -> None:
    assert sorted(t for t, _ in demo.rows_without_file) == ["TEST", "TRAIN", "TRAIN"]
    for dataset_type, name in demo.rows_without_file:
        assert name in _rows(metadata, dataset_type)
        assert not (demo.root / IMAGES / dataset_type.lower() / name).exists()
    missing = {
        (t, n) for t in ("TRAIN", "TEST") for n in _rows(metadata, t) - _files(demo.root, t.lower())
    }
    assert missing == set(demo.rows_without_file)


def test_labelled_counts_match_disk_and_csv(demo: DemoDatasetFacts, metadata: pd.DataFrame) -> None:
    counted = {}
    for split in ("train", "test"):
        labels = _labelled(demo, metadata, split).Label
        counted[split, "NORMAL"] = int((labels == "Normal").sum())
        counted[split, "PNEUMONIA"] = int((labels == "Pnemonia").sum())
    assert counted == demo.labelled_images
    assert counted["train", "NORMAL"] + counted["train", "PNEUMONIA"] == 240
    assert counted["test", "NORMAL"] + counted["test", "PNEUMONIA"] == 60
    assert 0.25 <= counted["train", "NORMAL"] / 240 <= 0.35


def test_modes_formats_and_extensions_are_mixed(demo: DemoDatasetFacts) -> None:
    modes, extensions = set(), set()
    for split in ("train", "test"):
        for path in (demo.root / IMAGES / split).iterdir():
            with Image.open(path) as image:
                modes.add(image.mode)
                expected = "PNG" if path.suffix == ".png" else "JPEG"
                assert image.format == expected, path.name
            extensions.add(path.suffix)
    assert {"L", "RGB", "RGBA", "P", "CMYK"} <= modes
    assert modes & {"I;16", "I"}
    assert extensions == {".jpeg", ".jpg", ".png"}


def test_sizes_vary_but_do_not_reveal_the_class(
    demo: DemoDatasetFacts, metadata: pd.DataFrame
) -> None:
    rows = _labelled(demo, metadata, "train")
    sizes = [Image.open(demo.root / IMAGES / "train" / n).size for n in rows.X_ray_image_name]
    widths = np.array([w for w, _ in sizes])
    heights = np.array([h for _, h in sizes])
    assert widths.min() >= 72 and heights.min() >= 72
    assert widths.max() <= 160 and heights.max() <= 160
    assert widths.std() > 15
    assert len({round(w / h, 2) for w, h in sizes}) > 20
    pneumonia = (rows.Label == "Pnemonia").to_numpy()
    gap = abs(widths[pneumonia].mean() - widths[~pneumonia].mean())
    assert gap < 0.08 * widths.mean()


def test_names_follow_the_real_conventions(metadata: pd.DataFrame) -> None:
    for name, label, label_1 in metadata[
        ["X_ray_image_name", "Label", "Label_1_Virus_category"]
    ].itertuples(index=False):
        match = PLAIN_NAME.match(name)
        if label == "Normal":
            assert match and match.group(1), name
        elif match:
            assert match.group(3) == label_1.lower(), name
    odd = metadata[~metadata.X_ray_image_name.str.match(PLAIN_NAME)]
    assert (odd.Label == "Pnemonia").all()
    assert (odd.Label_2_Virus_category != "").all()
    assert odd.X_ray_image_name.str.endswith(".png").sum() >= 3


def test_patients_have_several_images_and_never_span_splits(
    demo: DemoDatasetFacts, metadata: pd.DataFrame
) -> None:
    names = {
        split: _files(demo.root, split.lower()) | _rows(metadata, split)
        for split in ("TRAIN", "TEST")
    }
    patients = {split: [_patient(n) for n in found] for split, found in names.items()}
    assert not set(patients["TRAIN"]) & set(patients["TEST"])
    per_patient = pd.Series(patients["TRAIN"]).value_counts()
    assert (per_patient >= 2).sum() >= 20
    assert per_patient.max() >= 3


# ------------------------------------------------------------------------ class signal


def test_class_signal_is_in_the_lungs_not_in_global_brightness(
    demo: DemoDatasetFacts, metadata: pd.DataFrame
) -> None:
    def features(split: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        rows = _labelled(demo, metadata, split)
        pixels = np.stack(
            [
                np.asarray(
                    Image.fromarray(_grey(demo.root / IMAGES / split / n)).resize((32, 32)),
                    dtype=np.float32,
                ).ravel()
                for n in rows.X_ray_image_name
            ]
        )
        means = pixels.mean(axis=1)
        standardised = (pixels - means[:, None]) / pixels.std(axis=1, keepdims=True)
        return standardised, means, (rows.Label == "Pnemonia").to_numpy()

    x_train, mean_train, y_train = features("train")
    x_test, mean_test, y_test = features("test")
    # Lung fields sit around x = 0.3 and 0.7 of the width, y = 0.5 of the height.
    lungs = x_train.reshape(-1, 32, 32)[:, 8:22, [*range(7, 12), *range(21, 26)]].mean(axis=(1, 2))
    assert lungs[y_train].mean() - lungs[~y_train].mean() > 0.4  # in per-image std units
    model = LogisticRegression(C=0.1, max_iter=2000).fit(x_train, y_train)
    assert model.score(x_test, y_test) > 0.8
    # Brightness jitter keeps the mean pixel a weak clue on its own.
    assert roc_auc_score(y_train, mean_train) < 0.7
    assert roc_auc_score(y_test, mean_test) < 0.7


# ------------------------------------------------------------------------ determinism, errors


def test_same_seed_same_bytes_other_seed_other_data(tmp_path: Path) -> None:
    first = write_demo_dataset(tmp_path / "a", n_train=24, n_test=4, seed=7)
    again = write_demo_dataset(tmp_path / "b", n_train=24, n_test=4, seed=7)
    other = write_demo_dataset(tmp_path / "c", n_train=24, n_test=4, seed=8)
    assert first.labelled_images == again.labelled_images
    for name in (METADATA, SUMMARY):
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes()
    train = sorted(_files(tmp_path / "a", "train"))
    assert train == sorted(_files(tmp_path / "b", "train"))
    for name in train:
        a, b = (tmp_path / d / IMAGES / "train" / name for d in "ab")
        assert a.read_bytes() == b.read_bytes(), name
    assert (tmp_path / "a" / METADATA).read_bytes() != (tmp_path / "c" / METADATA).read_bytes()
    assert other.unlabelled_files != first.unlabelled_files


def test_small_sizes_are_rejected_and_nothing_is_overwritten(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="n_train"):
        write_demo_dataset(tmp_path, n_train=10)
    write_demo_dataset(tmp_path, n_train=20, n_test=2, min_size=16, max_size=24)
    with pytest.raises(FileExistsError):
        write_demo_dataset(tmp_path, n_train=20, n_test=2)


# ------------------------------------------------------------------------ CLI


def test_cli_writes_then_refuses_a_non_empty_folder(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="chest_xray.tools.demo_data")
    root = tmp_path / "raw"
    root.mkdir()
    (root / ".gitkeep").touch()

    assert main([str(root), "--n-train", "20", "--n-test", "3", "--seed", "1"]) == 0
    assert "Wrote demo dataset" in caplog.text
    assert len(_files(root, "train")) == 23
    before = (root / METADATA).read_bytes()

    assert main([str(root), "--n-train", "20", "--n-test", "3", "--seed", "2"]) == 1
    assert "--force" in caplog.text
    assert (root / METADATA).read_bytes() == before


def test_cli_force_replaces_only_what_it_generates(tmp_path: Path) -> None:
    root = tmp_path / "raw"
    assert main([str(root), "--n-train", "30", "--n-test", "3"]) == 0
    (root / "notes.txt").write_text("keep me")
    stale = root / IMAGES / "train" / "stale.jpeg"
    stale.write_bytes(b"x")

    assert main([str(root), "--n-train", "20", "--n-test", "3", "--force"]) == 0
    assert (root / "notes.txt").read_text() == "keep me"
    assert main([str(root), "--n-train", "5", "--force"]) == 2  # checked before deleting
    assert (root / METADATA).exists()
    assert not stale.exists()
    assert len(_files(root, "train")) == 23


def test_runs_as_a_module() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "chest_xray.tools.demo_data", "--help"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert "--force" in result.stdout
