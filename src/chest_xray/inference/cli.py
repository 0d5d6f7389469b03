"""``chest-xray predict``: a trained model on image files, for people who do not use Kedro.

    chest-xray predict scans/ extra.dcm --out predictions.csv --gradcam overlays/

Paths are files or folders (walked to any depth). The model is the newest
package the project's pipelines wrote (``data/06_models/servable_model`` under
the current folder) unless ``--model`` names a package folder or any MLflow
model URI (``models:/chest-xray@champion``; the tracking store is
``MLFLOW_TRACKING_URI``, else the project's ``sqlite:///mlflow.db``).
Preprocessing and threshold come with the model, and so does the out-of-distribution
guard: an image unlike the chest X-rays the model learnt from is flagged (``ood_flag``,
``ood_score``, ``ood_reason`` in the CSV) and left without a label, unless ``--ood=label``
(label it anyway) or ``--ood=off`` (no check).

Exit status: 0 every file predicted; 3 some files skipped (listed on stderr and
in ``--skipped``), the others predicted; 4 no file could be predicted; 2 bad
arguments (a path that does not exist); 1 the model could not be loaded.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import pandas as pd

from chest_xray.data.files import write_atomically

if TYPE_CHECKING:
    from chest_xray.inference.classifier import Classifier

EXIT_OK, EXIT_ERROR, EXIT_USAGE, EXIT_SOME_SKIPPED, EXIT_NONE_PREDICTED = 0, 1, 2, 3, 4
DEFAULT_PACKAGES = Path("data/06_models/servable_model")
DEFAULT_TRACKING_URI = "sqlite:///mlflow.db"
_PROGRESS_MIN_FILES = 20

logger = logging.getLogger("chest_xray.predict")


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``chest-xray predict``; returns the exit status (see the module docstring)."""
    args = _parser().parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(message)s")
    # Skipped files are reported below, once each, as "skipped <file>: <reason>".
    logging.getLogger("chest_xray.inference.batch").setLevel(logging.ERROR)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")  # TF's CUDA probing on CPU machines
    files: dict[str, Callable[[], bytes]] = {}
    sizes: dict[str, int] = {}
    overlay_names: dict[str, str] = {}
    for path in args.paths:
        if not Path(path).exists():
            print(f"chest-xray predict: {path}: no such file or folder", file=sys.stderr)
            return EXIT_USAGE
        for name, file, overlay in _files_under(Path(path)):
            files[name] = file.read_bytes
            sizes[name] = file.stat().st_size
            overlay_names[name] = overlay
    if not files:
        print(f"chest-xray predict: no files under {', '.join(args.paths)}", file=sys.stderr)
        return EXIT_NONE_PREDICTED

    from chest_xray.inference.batch import predict_files
    from chest_xray.inference.explain import gradcam_overlays
    from chest_xray.inference.packaging import load_classifier

    try:
        classifier = load_classifier(_model_uri(args.model))
    except Exception as error:  # any reason a model does not load, said in one line
        print(f"chest-xray predict: cannot load the model: {error}", file=sys.stderr)
        return EXIT_ERROR
    classifier.ood_policy = args.ood

    show = args.progress
    if show is None:
        show = len(files) >= _PROGRESS_MIN_FILES and sys.stderr.isatty()
    result = predict_files(
        files,
        classifier,
        batch_size=args.batch_size,
        workers=args.workers,
        sizes=sizes,
        progress=show,
    )
    for file, reason in zip(result.skipped["file"], result.skipped["reason"], strict=True):
        print(f"skipped {file}: {reason}", file=sys.stderr)
    if args.out:
        _write_csv(result.predictions, Path(args.out))
    else:
        result.predictions.to_csv(sys.stdout, index=False)
    if args.skipped:
        _write_csv(result.skipped, Path(args.skipped))
    if args.gradcam and not result.predictions.empty:
        overlays = gradcam_overlays(
            files, result.predictions["file"].tolist(), classifier, args.batch_size
        )
        for name, make in overlays.items():
            _write_bytes(Path(args.gradcam) / f"{overlay_names[name]}.png", make())
    print(
        f"{len(result.predictions)} predicted, {len(result.skipped)} skipped, "
        f"{_ood_summary(result.predictions, classifier)} "
        f"(model {classifier.source}, {classifier.settings.decision})",
        file=sys.stderr,
    )
    if result.predictions.empty:
        return EXIT_NONE_PREDICTED
    return EXIT_SOME_SKIPPED if len(result.skipped) else EXIT_OK


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="chest-xray predict",
        description="Predict NORMAL / PNEUMONIA (or a multi-class model's classes) for X-ray "
        "files (JPEG, PNG, DICOM...) with a trained chest-xray model. A research tool, not a "
        "diagnostic device.",
        epilog="Exit status: 0 all predicted; 3 some files skipped; 4 none predicted; "
        "2 bad arguments; 1 the model could not be loaded.",
    )
    parser.add_argument("paths", nargs="+", metavar="PATH", help="image files or folders")
    parser.add_argument(
        "--model",
        help="a package folder or MLflow model URI (runs:/<id>/model, models:/chest-xray/3, "
        "models:/chest-xray@champion); default: the newest under data/06_models/servable_model",
    )
    parser.add_argument("--out", help="write the predictions CSV here (default: standard output)")
    parser.add_argument("--skipped", help="write the skipped files (file, category, reason) here")
    parser.add_argument("--gradcam", metavar="DIR", help="write a Grad-CAM overlay PNG per image")
    parser.add_argument(
        "--ood",
        choices=("flag", "label", "off"),
        default="flag",
        help="images the model's out-of-distribution guard flags: flag = no label (default), "
        "label = labelled anyway (still flagged), off = not checked",
    )
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--workers", type=int, default=0, help="decoding threads (0: one per core)")
    parser.add_argument(
        "--progress",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="a progress bar on stderr (default: on a terminal, for 20 files or more)",
    )
    return parser


def _ood_summary(predictions: pd.DataFrame, classifier: Classifier) -> str:
    """``N flagged out of distribution`` (``left unlabelled`` under the default policy)."""
    if classifier.ood_guard is None:
        return "no out-of-distribution guard in this model"
    if classifier.ood_policy == "off":
        return "out-of-distribution check off"
    flagged = int(predictions["ood_flag"].astype(bool).sum())
    unlabelled = " (left unlabelled)" if classifier.ood_policy == "flag" and flagged else ""
    return f"{flagged} flagged out of distribution{unlabelled}"


def _model_uri(model: str | None) -> str:
    """``--model`` as given (an MLflow URI needs the tracking store), else the newest package."""
    if model:
        if ":/" in model and not Path(model).exists():
            import mlflow

            mlflow.set_tracking_uri(os.environ.get("MLFLOW_TRACKING_URI", DEFAULT_TRACKING_URI))
        return model
    from chest_xray.inference.packaging import newest_package

    package = newest_package(DEFAULT_PACKAGES)
    if package is None:
        raise FileNotFoundError(
            f"no model package under {DEFAULT_PACKAGES}/ (run `kedro run` in the project "
            "folder first, or pass --model)"
        )
    return str(package)


def _files_under(path: Path) -> list[tuple[str, Path, str]]:
    """``(name, file, overlay name)`` for a file, or for every file below a folder, sorted.

    Names are the paths as typed (the CSV's ``file``); overlay names are relative:
    the file's name, or the folder's name and the path below it (``scans/a/1.dcm``).
    """
    if path.is_file():
        return [(str(path), path, path.name)]
    top = path.resolve().name or "images"
    found = []
    for root, _, names in os.walk(path):
        for name in names:
            file = Path(root, name)
            found.append((str(file), file, str(Path(top, file.relative_to(path)))))
    return sorted(found)


def _write_csv(table: pd.DataFrame, path: Path) -> None:
    _write_bytes(path, table.to_csv(index=False).encode())


def _write_bytes(path: Path, data: bytes) -> None:
    """Whole or not at all (a temporary file in the same folder, renamed into place)."""
    write_atomically(str(path), data)
