"""A small synthetic dataset in the exact layout and quirks of the Kaggle CoronaHack download.

The real download is 1.2 GB and needs a Kaggle account; tests and the README's demo run need
something that exercises the same code paths in seconds. So this writes the same two CSVs
(with the dataset's ``Pnemonia`` spelling, gappy unnamed index and summary format), the same
nested folder, the same file-name conventions and several images per patient, plus the messy
parts a loader must survive: unlabelled files, rows without a file, mixed extensions, modes
and sizes. Images are drawn, not copied: a chest-like silhouette whose PNEUMONIA lungs carry
hazy patchy opacities, so a small CNN learns the classes in a few epochs at 64-96 px, while
global brightness is jittered so the mean pixel alone is a poor classifier.

What the download holds is planned in ``demo_plan``, the images drawn in ``demo_images``;
this module writes them, the two CSVs, and is the ``chest-xray-demo-data`` command.
"""

from __future__ import annotations

import argparse
import csv
import logging
import shutil
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from chest_xray.tools.demo_images import anatomy, draw, image_size, save
from chest_xray.tools.demo_plan import Item, Names, Split, plan_test, plan_train

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

MIN_TRAIN, MIN_TEST = 20, 2  # below this the fixed quirks no longer fit
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


def _write_metadata(path: Path, rows: list[tuple[str, Item]], index: list[int]) -> None:
    with path.open("w", newline="") as f:
        writer = csv.writer(f, lineterminator="\n")
        writer.writerow(METADATA_HEADER)
        for i, (dataset_type, item) in zip(index, rows, strict=True):
            label = "Normal" if item.cls == "NORMAL" else "Pnemonia"
            writer.writerow((i, item.name, label, dataset_type, item.label_2, item.label_1))


def _write_summary(path: Path, rows: list[tuple[str, Item]]) -> None:
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
    names, pid = Names(rng), [0]
    plan: dict[Split, list[Item]] = {
        "train": plan_train(rng, names, n_train, pid),
        "test": plan_test(rng, names, n_test, pid),
    }
    anatomies = [anatomy(rng) for _ in range(pid[0] + 1)]
    for split, items in plan.items():
        folder = root / IMAGES_DIR / split
        folder.mkdir(parents=True, exist_ok=True)
        for item in items:
            if item.has_file:
                grey = draw(
                    rng,
                    anatomies[item.patient],
                    item.cls == "PNEUMONIA",
                    *image_size(rng, min_size, max_size),
                )
                save(grey, item.mode, folder / item.name)

    rows = [(split.upper(), it) for split, items in plan.items() for it in items if it.has_row]
    first_special = next(k for k, (_, it) in enumerate(rows) if it.label_2)
    _write_metadata(root / METADATA_CSV, rows, _gappy_index(rng, len(rows), first_special))
    _write_summary(root / SUMMARY_CSV, rows)
    return _facts(root, plan)


def _facts(root: Path, plan: dict[Split, list[Item]]) -> DemoDatasetFacts:
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
