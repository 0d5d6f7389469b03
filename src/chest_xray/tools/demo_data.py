"""A small synthetic dataset in the exact layout and quirks of the Kaggle CoronaHack download.

The real download is 1.2 GB and needs a Kaggle account; tests and the README's demo run need
something that exercises the same code paths in seconds. So this writes the same two CSVs
(with the dataset's ``Pnemonia`` spelling, gappy unnamed index and summary format), the same
nested folder, the same file-name conventions and several images per patient, plus the messy
parts a loader must survive: unlabelled files, rows without a file, mixed extensions, modes
and sizes. Images are drawn, not copied: a chest-like silhouette whose PNEUMONIA lungs carry
hazy patchy opacities, so a small CNN learns the classes in a few epochs at 64-96 px, while
global brightness is jittered so the mean pixel alone is a poor classifier.
"""

from __future__ import annotations

import argparse
import csv
import logging
import shutil
import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Literal

import numpy as np
from PIL import Image

logger = logging.getLogger(__name__)

METADATA_CSV = "Chest_xray_Corona_Metadata.csv"
SUMMARY_CSV = "Chest_xray_Corona_dataset_Summary.csv"
IMAGES_TOP = "Coronahack-Chest-XRay-Dataset"
IMAGES_DIR = Path(IMAGES_TOP, IMAGES_TOP)
METADATA_HEADER = (
    "",
    "X_ray_image_name",
    "Label",
    "Dataset_type",
    "Label_2_Virus_category",
    "Label_1_Virus_category",
)
SUMMARY_HEADER = ("", "Label", "Label_1_Virus_category", "Label_2_Virus_category", "Image_Count")

Split = Literal["train", "test"]
ClassName = Literal["NORMAL", "PNEUMONIA"]

NORMAL_SHARE = 0.3  # the real set is ~27% normal
MIN_TRAIN, MIN_TEST = 20, 2  # below this the fixed quirks no longer fit
_IMAGES_PER_PATIENT = (1, 1, 1, 2, 2, 3)
_GAP_PROBABILITY = 0.04


@dataclass(frozen=True)
class DemoDatasetFacts:
    """What was written, so tests assert against facts rather than re-derive them."""

    root: Path
    train_files: int  # files in train/ (including unlabelled)
    test_files: int
    unlabelled_files: tuple[str, ...]  # train file names with no metadata row
    rows_without_file: tuple[tuple[str, str], ...]  # (Dataset_type, X_ray_image_name)
    # (split 'train'/'test', 'NORMAL'/'PNEUMONIA') -> images with both a file and a row
    labelled_images: dict[tuple[str, str], int] = field(default_factory=dict)


@dataclass(frozen=True)
class _Item:
    """One image and/or metadata row; the unit everything else is derived from."""

    name: str
    cls: ClassName
    label_1: str = ""  # bacteria / Virus / Stress-Smoking; empty for Normal
    label_2: str = ""  # COVID-19 / Streptococcus / SARS / ARDS or empty
    mode: str = "L"  # PIL mode the file is stored in
    has_row: bool = True
    has_file: bool = True
    patient: int = 0  # index into the anatomy table, shared by a patient's images


@dataclass
class _Names:
    """Counters that make patient ids unique across splits (no patient in both)."""

    rng: np.random.Generator
    im_number: int = 100
    person: int = 0
    image_number: dict[str, int] = field(default_factory=lambda: {"bacteria": 0, "virus": 0})

    def normal_patient(self, n_images: int) -> list[str]:
        """``IM-0115-0001.jpeg`` or ``NORMAL2-IM-0381-0001.jpeg``; one number pool for both."""
        self.im_number += int(self.rng.integers(1, 4))
        prefix = "NORMAL2-IM" if self.rng.random() < 0.4 else "IM"
        return [f"{prefix}-{self.im_number:04d}-{k + 1:04d}.jpeg" for k in range(n_images)]

    def pneumonia_patient(self, n_images: int, kind: str) -> list[str]:
        """``person12_bacteria_45.jpeg``: person id, then a running per-kind image number."""
        self.person += int(self.rng.integers(1, 3))
        names = []
        for _ in range(n_images):
            self.image_number[kind] += int(self.rng.integers(1, 3))
            names.append(f"person{self.person}_{kind}_{self.image_number[kind]}.jpeg")
        return names


# ------------------------------------------------------------------------ planning


def _patient_sizes(rng: np.random.Generator, total: int) -> Iterator[int]:
    """Images per patient summing to ``total``, so a patient-aware split has groups."""
    left = total
    while left > 0:
        n = min(left, int(rng.choice(_IMAGES_PER_PATIENT)))
        left -= n
        yield n


def _plain_mode(rng: np.random.Generator) -> str:
    """Most files are 8-bit grey, stored as L or as grey-in-RGB JPEG."""
    return "RGB" if rng.random() < 0.3 else "L"


def _normal_items(
    rng: np.random.Generator, names: _Names, count: int, pid: list[int]
) -> list[_Item]:
    """``count`` NORMAL images grouped into patients; ``pid`` is the running patient id."""
    items = []
    for size in _patient_sizes(rng, count):
        pid[0] += 1
        items += [
            _Item(n, "NORMAL", mode=_plain_mode(rng), patient=pid[0])
            for n in names.normal_patient(size)
        ]
    return items


def _pneumonia_items(
    rng: np.random.Generator, names: _Names, count: int, pid: list[int]
) -> list[_Item]:
    """``count`` bacterial/viral PNEUMONIA images; one kind per patient."""
    items = []
    for size in _patient_sizes(rng, count):
        pid[0] += 1
        kind = "bacteria" if rng.random() < 0.63 else "virus"
        label_1 = "bacteria" if kind == "bacteria" else "Virus"
        items += [
            _Item(n, "PNEUMONIA", label_1, mode=_plain_mode(rng), patient=pid[0])
            for n in names.pneumonia_patient(size, kind)
        ]
    return items


def _special_items(rng: np.random.Generator, count: int, pid: list[int]) -> list[_Item]:
    """COVID/SARS/ARDS/Streptococcus rows with the odd names, extensions and modes."""
    u = uuid.UUID(bytes=rng.bytes(16), version=4)
    fixed = [
        (f"{str(u).upper()}.png", "Virus", "COVID-19", "RGBA"),
        ("41591_2020_819_Fig1_HTML.webp-day5.png", "Virus", "COVID-19", "I;16"),
        ("1-s2.0-S1684118220300682-main.pdf-003-b1.png", "Virus", "COVID-19", "P"),
        ("1-s2.0-S0140673620303706-fx1_lrg.jpg", "Virus", "COVID-19", "RGB"),
        ("acute-respiratory-distress-syndrome-ards.jpg", "Stress-Smoking", "ARDS", "L"),
        ("SARS-10.1148rg.242035193-g04mr34g09a-Fig9a-day17.jpeg", "Virus", "SARS", "L"),
        ("streptococcus-pneumoniae-pneumonia-1.jpg", "bacteria", "Streptococcus", "RGB"),
        ("acute-respiratory-distress-syndrome-ards-1.jpg", "Stress-Smoking", "ARDS", "L"),
    ]
    extra = [
        (f"kjr-21-e24-g{k:03d}-l-a.jpg", "Virus", "COVID-19", "RGB")
        for k in range(1, count - len(fixed) + 1)
    ]
    items = []
    for name, label_1, label_2, mode in (fixed + extra)[:count]:
        pid[0] += 1
        items.append(_Item(name, "PNEUMONIA", label_1, label_2, mode, patient=pid[0]))
    return items


def _plan_train(rng: np.random.Generator, names: _Names, n: int, pid: list[int]) -> list[_Item]:
    """Labelled normals, pneumonias and specials, then the quirks, in the real row order."""
    n_normal = round(n * NORMAL_SHARE)
    n_special = 8 + n // 60
    normals = _normal_items(rng, names, n_normal, pid)
    cmyk = int(rng.integers(len(normals)))
    normals[cmyk] = replace(normals[cmyk], mode="CMYK")
    pneumonias = _pneumonia_items(rng, names, n - n_normal - n_special, pid)
    specials = _special_items(rng, n_special, pid)
    pid[0] += 1
    missing_normal = _Item(names.normal_patient(1)[0], "NORMAL", has_file=False, patient=pid[0])
    u = uuid.UUID(bytes=rng.bytes(16), version=4)
    missing_covid = _Item(
        f"{str(u).upper()}.jpeg", "PNEUMONIA", "Virus", "COVID-19", has_file=False
    )
    unlabelled = [  # files in train/ that the CSV never mentions
        replace(_normal_items(rng, names, 1, pid)[0], has_row=False),
        replace(_pneumonia_items(rng, names, 1, pid)[0], has_row=False),
        replace(_normal_items(rng, names, 1, pid)[0], has_row=False),
    ]
    return [*normals, missing_normal, *pneumonias, *specials, missing_covid, *unlabelled]


def _plan_test(rng: np.random.Generator, names: _Names, n: int, pid: list[int]) -> list[_Item]:
    """Like the real TEST split: plain names only, and one row whose file is missing."""
    n_normal = max(1, round(n * NORMAL_SHARE))
    normals = _normal_items(rng, names, n_normal, pid)
    pneumonias = _pneumonia_items(rng, names, n - n_normal, pid)
    missing = replace(_pneumonia_items(rng, names, 1, pid)[0], has_file=False)
    return [*normals, *pneumonias, missing]


# ------------------------------------------------------------------------ drawing


@dataclass(frozen=True)
class _Anatomy:
    """Per-patient shape, so a patient's images look alike (what a leaky split exploits)."""

    body_width: float
    lung_x: float
    lung_y: float
    lung_rx: float
    lung_ry: float
    heart_x: float
    rib_freq: float


def _anatomy(rng: np.random.Generator) -> _Anatomy:
    return _Anatomy(
        body_width=rng.uniform(0.84, 0.95),
        lung_x=rng.uniform(0.38, 0.44),
        lung_y=rng.uniform(-0.1, 0.0),
        lung_rx=rng.uniform(0.27, 0.32),
        lung_ry=rng.uniform(0.55, 0.66),
        heart_x=rng.uniform(0.08, 0.16),
        rib_freq=rng.uniform(4.5, 6.0),
    )


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-np.clip(x, -30.0, 30.0)))


def _smooth_noise(rng: np.random.Generator, width: int, height: int, cells: int) -> np.ndarray:
    """Low-frequency noise in [0, 1]: a coarse random grid upsampled bicubically."""
    grid = Image.fromarray(rng.random((cells, cells), dtype=np.float32))
    big = np.asarray(grid.resize((width, height), Image.Resampling.BICUBIC))
    return np.clip(big, 0.0, 1.0)


def _lung_mask(u: np.ndarray, v: np.ndarray, a: _Anatomy) -> np.ndarray:
    """Two soft egg shapes, narrow at the apex; 1 inside the lung fields, 0 outside."""
    depth = np.clip((v - a.lung_y + a.lung_ry) / (2 * a.lung_ry), 0.0, 1.0)
    rx = a.lung_rx * (0.65 + 0.35 * np.sqrt(depth))
    masks = [
        _sigmoid(6.0 * (1.0 - ((u - s * a.lung_x) / rx) ** 2 - ((v - a.lung_y) / a.lung_ry) ** 2))
        for s in (-1.0, 1.0)
    ]
    return np.maximum(*masks)


def _opacities(
    rng: np.random.Generator, u: np.ndarray, v: np.ndarray, a: _Anatomy, patchy: np.ndarray
) -> np.ndarray:
    """Bright hazy blobs inside the lungs: the PNEUMONIA signal."""
    total = np.zeros_like(u)
    for _ in range(int(rng.integers(2, 6))):
        side = rng.choice((-1.0, 1.0))
        cx = side * a.lung_x + a.lung_rx * 0.6 * rng.uniform(-1, 1)
        cy = a.lung_y + a.lung_ry * 0.7 * rng.uniform(-1, 1)
        sx, sy = rng.uniform(0.12, 0.22), rng.uniform(0.14, 0.3)
        blob = np.exp(-(((u - cx) / sx) ** 2 + ((v - cy) / sy) ** 2) / 2.0)
        total += rng.uniform(0.3, 0.5) * blob
    return np.minimum(total, 0.55) * (0.5 + 0.5 * patchy)


def _draw(
    rng: np.random.Generator, a: _Anatomy, pneumonia: bool, width: int, height: int
) -> np.ndarray:
    """An 8-bit grey chest-like image of ``width`` x ``height``."""
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    scale = rng.uniform(0.92, 1.05)
    u = ((xx + 0.5) / width * 2 - 1 - rng.uniform(-0.06, 0.06)) / scale
    v = ((yy + 0.5) / height * 2 - 1 - rng.uniform(-0.06, 0.06)) / scale
    body = _sigmoid(8.0 * (1.0 - np.abs(u / a.body_width) ** 2.5 - np.abs((v - 0.1) / 1.2) ** 2.5))
    lungs = _lung_mask(u, v, a)
    ribs = 0.5 + 0.5 * np.sin(2 * np.pi * (v * a.rib_freq + 0.6 * u**2))
    img = 0.08 + 0.5 * body - 0.33 * lungs
    img += 0.07 * ribs * lungs + 0.12 * np.exp(-((u / 0.09) ** 2)) * body
    img += 0.18 * np.exp(-(((u - a.heart_x) / 0.2) ** 2 + ((v - 0.3) / 0.18) ** 2) / 2.0)
    img += 0.05 * (_smooth_noise(rng, width, height, 8) - 0.5) * lungs  # vessels, both classes
    if pneumonia:
        img += _opacities(rng, u, v, a, _smooth_noise(rng, width, height, 6)) * lungs
    img = img * rng.uniform(0.75, 1.25) + rng.uniform(-0.16, 0.16)
    img += rng.normal(0.0, 0.025, img.shape)
    return (np.clip(img, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)


def _size(rng: np.random.Generator, min_size: int, max_size: int) -> tuple[int, int]:
    """Width and height drawn the same way for both classes: no resolution shortcut."""
    width = int(rng.integers(min_size, max_size + 1))
    height = int(np.clip(round(width * rng.uniform(0.8, 1.25)), min_size, max_size))
    return width, height


def _save(grey: np.ndarray, mode: str, path: Path) -> None:
    """Store 8-bit grey in ``mode``; PNG for the modes JPEG cannot hold."""
    image = Image.fromarray(grey)
    if mode == "I;16":
        Image.fromarray(grey.astype(np.uint16) * 257).save(path, "PNG")
    elif mode in ("RGBA", "P"):
        image.convert(mode).save(path, "PNG")
    elif mode == "CMYK":
        image.convert("RGB").convert("CMYK").save(path, "JPEG", quality=92)
    else:
        image.convert(mode).save(path, "JPEG", quality=92)


# ------------------------------------------------------------------------ writing


def _gappy_index(rng: np.random.Generator, n: int, forced_gap_at: int) -> list[int]:
    """0, 1, 2, 5, 6, ...: the real unnamed index skips numbers; always at least one gap."""
    index, value = [], 0
    for k in range(n):
        if k == forced_gap_at or rng.random() < _GAP_PROBABILITY:
            value += int(rng.integers(1, 4))
        index.append(value)
        value += 1
    return index


def _write_metadata(path: Path, rows: list[tuple[str, _Item]], index: list[int]) -> None:
    with path.open("w", newline="") as f:
        writer = csv.writer(f, lineterminator="\n")
        writer.writerow(METADATA_HEADER)
        for i, (dataset_type, item) in zip(index, rows, strict=True):
            label = "Normal" if item.cls == "NORMAL" else "Pnemonia"
            writer.writerow((i, item.name, label, dataset_type, item.label_2, item.label_1))


def _write_summary(path: Path, rows: list[tuple[str, _Item]]) -> None:
    """One row per (Label, Label_1, Label_2) present, counting every metadata row."""
    counts = Counter(
        ("Normal" if item.cls == "NORMAL" else "Pnemonia", item.label_1, item.label_2)
        for _, item in rows
    )
    with path.open("w", newline="") as f:
        writer = csv.writer(f, lineterminator="\n")
        writer.writerow(SUMMARY_HEADER)
        for i, key in enumerate(sorted(counts)):
            writer.writerow((i, *key, counts[key]))


def generated_paths(root: Path) -> tuple[Path, Path, Path]:
    """Everything :func:`write_demo_dataset` creates under ``root`` (what --force removes)."""
    return root / METADATA_CSV, root / SUMMARY_CSV, root / IMAGES_TOP


def _check_sizes(n_train: int, n_test: int, min_size: int = 72, max_size: int = 160) -> None:
    """Fail before touching disk: the fixed quirks need a minimum number of images."""
    if n_train < MIN_TRAIN or n_test < MIN_TEST:
        raise ValueError(f"need n_train >= {MIN_TRAIN} and n_test >= {MIN_TEST}")
    if not 8 <= min_size <= max_size:
        raise ValueError("need 8 <= min_size <= max_size")


def write_demo_dataset(
    root: Path,
    n_train: int = 240,
    n_test: int = 60,
    seed: int = 0,
    *,
    min_size: int = 72,
    max_size: int = 160,
) -> DemoDatasetFacts:
    """Write the synthetic download under ``root``; never overwrites an earlier one.

    ``n_train``/``n_test`` count labelled images that have a file; the unlabelled files and
    rows without a file come on top. The same arguments always give the same bytes.
    """
    root = Path(root)
    _check_sizes(n_train, n_test, min_size, max_size)
    if existing := [p for p in generated_paths(root) if p.exists()]:
        raise FileExistsError(f"demo dataset already present: {existing[0]}")

    rng = np.random.default_rng(seed)
    names, pid = _Names(rng), [0]
    plan: dict[Split, list[_Item]] = {
        "train": _plan_train(rng, names, n_train, pid),
        "test": _plan_test(rng, names, n_test, pid),
    }
    anatomies = [_anatomy(rng) for _ in range(pid[0] + 1)]
    for split, items in plan.items():
        folder = root / IMAGES_DIR / split
        folder.mkdir(parents=True, exist_ok=True)
        for item in items:
            if item.has_file:
                grey = _draw(
                    rng,
                    anatomies[item.patient],
                    item.cls == "PNEUMONIA",
                    *_size(rng, min_size, max_size),
                )
                _save(grey, item.mode, folder / item.name)

    rows = [(split.upper(), it) for split, items in plan.items() for it in items if it.has_row]
    first_special = next(k for k, (_, it) in enumerate(rows) if it.label_2)
    _write_metadata(root / METADATA_CSV, rows, _gappy_index(rng, len(rows), first_special))
    _write_summary(root / SUMMARY_CSV, rows)
    return _facts(root, plan)


def _facts(root: Path, plan: dict[Split, list[_Item]]) -> DemoDatasetFacts:
    labelled = Counter(
        (split, it.cls)
        for split, items in plan.items()
        for it in items
        if it.has_file and it.has_row
    )
    return DemoDatasetFacts(
        root=root,
        train_files=sum(it.has_file for it in plan["train"]),
        test_files=sum(it.has_file for it in plan["test"]),
        unlabelled_files=tuple(it.name for it in plan["train"] if not it.has_row),
        rows_without_file=tuple(
            (split.upper(), it.name)
            for split, items in plan.items()
            for it in items
            if not it.has_file
        ),
        labelled_images={key: count for key, count in labelled.items()},
    )


# ------------------------------------------------------------------------ CLI


def _is_empty(folder: Path) -> bool:
    """A folder holding only ``.gitkeep`` (like ``data/01_raw``) counts as empty."""
    return not folder.exists() or all(p.name == ".gitkeep" for p in folder.iterdir())


def _remove_generated(root: Path) -> None:
    """Delete only what this module writes, never anything else in ``root``."""
    for path in generated_paths(root):
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path)
        elif path.exists() or path.is_symlink():
            path.unlink()


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="chest-xray-demo-data",
        description="Write a small synthetic dataset laid out like the Kaggle CoronaHack download.",
    )
    parser.add_argument("root", type=Path, help="folder to write into (e.g. data/01_raw)")
    parser.add_argument("--n-train", type=int, default=240, help="labelled train images")
    parser.add_argument("--n-test", type=int, default=60, help="labelled test images")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--force",
        action="store_true",
        help="replace an earlier demo dataset (removes only the two CSVs and the image tree)",
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    """Console entry point ``chest-xray-demo-data``; returns the exit status."""
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    args = _parser().parse_args(argv)
    root: Path = args.root
    try:
        _check_sizes(args.n_train, args.n_test)
    except ValueError as exc:
        logger.error("%s", exc)
        return 2
    if not _is_empty(root):
        if not args.force:
            logger.error("%s is not empty; pass --force to replace the demo dataset there", root)
            return 1
        _remove_generated(root)
    facts = write_demo_dataset(root, args.n_train, args.n_test, args.seed)
    logger.info(
        "Wrote demo dataset to %s: %d train files, %d test files, %d unlabelled, "
        "%d rows without file (seed %d)",
        root,
        facts.train_files,
        facts.test_files,
        len(facts.unlabelled_files),
        len(facts.rows_without_file),
        args.seed,
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
