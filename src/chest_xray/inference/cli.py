"""``chest-xray predict``: a trained model on image files, for people who do not use Kedro.

    chest-xray predict scans/ extra.dcm --out predictions.csv --gradcam overlays/

Paths are files or folders (walked to any depth). Only regular files, and links
to them, are read; anything else met (a dangling link, a FIFO, a socket, a
device, a folder that cannot be listed) is a skipped file with its reason, and
nothing is ever opened in a way that could block. The model is the newest
package the project's pipelines wrote (``data/06_models/servable_model`` under
the current folder) unless ``--model`` names a package folder or any MLflow
model URI (``models:/chest-xray@champion``; the tracking store is
``MLFLOW_TRACKING_URI``, else the project's ``sqlite:///mlflow.db``).
Preprocessing and threshold come with the model, and so does the out-of-distribution
guard: an image unlike the chest X-rays the model learnt from is flagged (``ood_flag``,
``ood_score``, ``ood_reason`` in the CSV) and left without a label, unless ``--ood=label``
(label it anyway) or ``--ood=off`` (no check).

Every argument is checked before any work (numbers, the paths to read, the
outputs' folders). Exit status: 0 every file predicted; 3 some files skipped
(listed on stderr and in ``--skipped``), the others predicted; 4 no file could be
predicted; 2 bad arguments (a path that does not exist, a number out of range, an
output that cannot be written: should writing one still fail after predicting, the
predictions go to standard output, never lost); 1 the model could not be loaded
(or failed while predicting).
"""

from __future__ import annotations

import argparse
import logging
import os
import stat
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING

import pandas as pd

from chest_xray.data.files import write_atomically
from chest_xray.data.imaging import DEFAULT_MAX_PIXELS

if TYPE_CHECKING:
    from chest_xray.inference.batch import BatchResult
    from chest_xray.inference.classifier import Classifier

EXIT_OK, EXIT_ERROR, EXIT_USAGE, EXIT_SOME_SKIPPED, EXIT_NONE_PREDICTED = 0, 1, 2, 3, 4
DEFAULT_PACKAGES = Path("data/06_models/servable_model")
DEFAULT_TRACKING_URI = "sqlite:///mlflow.db"
_PROGRESS_MIN_FILES = 20

logger = logging.getLogger("chest_xray.predict")


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``chest-xray predict``; returns the exit status (see the module docstring)."""
    try:
        args = _parser().parse_args(argv)
    except SystemExit as exit_:  # argparse has said why (usage), or printed --help
        return exit_.code if isinstance(exit_.code, int) else EXIT_USAGE
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(message)s")
    # Skipped files are reported below, once each, as "skipped <file>: <reason>".
    logging.getLogger("chest_xray.inference.batch").setLevel(logging.ERROR)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")  # TF's CUDA probing on CPU machines
    problem = _argument_problem(args)
    if problem:
        print(f"chest-xray predict: {problem}", file=sys.stderr)
        return EXIT_USAGE
    return _predict(args)


def _predict(args: argparse.Namespace) -> int:
    """List the paths, load the model, predict, write the outputs: the exit status."""
    listing = _Listing()
    for path in args.paths:
        listing.add_under(Path(path))
    if not listing.files and not listing.skipped:
        print(f"chest-xray predict: no files under {', '.join(args.paths)}", file=sys.stderr)
        return EXIT_NONE_PREDICTED
    classifier = _loaded_classifier(args)
    if classifier is None:
        return EXIT_ERROR
    from chest_xray.inference.batch import BatchResult, predict_files

    show = args.progress
    if show is None:
        show = len(listing.files) >= _PROGRESS_MIN_FILES and sys.stderr.isatty()
    try:
        result = predict_files(
            listing.files,
            classifier,
            batch_size=args.batch_size,
            workers=args.workers,
            sizes=listing.sizes,
            progress=show,
        )
    except Exception as error:  # the network itself failed: said in one line, as a load
        print(f"chest-xray predict: the model failed: {error}", file=sys.stderr)
        return EXIT_ERROR
    skipped = pd.concat(
        [pd.DataFrame(listing.skipped, columns=result.skipped.columns), result.skipped]
    )
    result = BatchResult(result.predictions, skipped.sort_values("file").reset_index(drop=True))
    written = _write_outputs(args, result, classifier, listing)
    print(
        f"{len(result.predictions)} predicted, {len(result.skipped)} skipped, "
        f"{_ood_summary(result.predictions, classifier)} "
        f"(model {classifier.source}, {classifier.settings.decision})",
        file=sys.stderr,
    )
    if not written:
        return EXIT_USAGE
    if result.predictions.empty:
        return EXIT_NONE_PREDICTED
    return EXIT_SOME_SKIPPED if len(result.skipped) else EXIT_OK


def _positive(text: str) -> int:
    """An argparse type: a whole number >= 1 (argparse names the option in its error)."""
    return _whole(text, 1)


def _non_negative(text: str) -> int:
    return _whole(text, 0)


def _whole(text: str, least: int) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < least:
        raise argparse.ArgumentTypeError(f"{value} is below {least}")
    return value


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="chest-xray predict",
        description="Predict NORMAL / PNEUMONIA (or a multi-class model's classes) for X-ray "
        "files (JPEG, PNG, DICOM...) with a trained chest-xray model. A research tool, not a "
        "diagnostic device.",
        epilog="Exit status: 0 all predicted; 3 some files skipped; 4 none predicted; "
        "2 bad arguments (or an output that could not be written); 1 the model could not "
        "be loaded.",
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
    parser.add_argument("--batch-size", type=_positive, default=32, metavar="N")
    parser.add_argument(
        "--workers", type=_non_negative, default=0, metavar="N",
        help="decoding threads (0: one per core)",
    )  # fmt: skip
    parser.add_argument(
        "--max-pixels", type=_positive, default=DEFAULT_MAX_PIXELS, metavar="N",
        help="skip an image of more pixels, read from its header before decoding "
        f"(default {DEFAULT_MAX_PIXELS:,})",
    )  # fmt: skip
    parser.add_argument(
        "--trust-package",
        action="store_true",
        help="load a package that this machine's pipelines did not make and no tracking store "
        "records (a package is code: it runs when loaded)",
    )
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


def _argument_problem(args: argparse.Namespace) -> str | None:
    """Why the arguments cannot work, before any work is done; None when they can."""
    for path in args.paths:
        if not os.path.lexists(path):
            return f"{path}: no such file or folder"
    if args.model and ":/" not in args.model and not Path(args.model).exists():
        return f"--model {args.model}: no such model package folder"
    outputs = [
        (option, value)
        for option, value in (("--out", args.out), ("--skipped", args.skipped))
        if value
    ]
    if len(outputs) == 2 and Path(args.out).resolve() == Path(args.skipped).resolve():
        return f"--out and --skipped name the same file ({args.out})"
    for option, value in outputs:
        if problem := _output_problem(Path(value), folder=False):
            return f"{option} {value}: {problem}"
    if args.gradcam and (problem := _output_problem(Path(args.gradcam), folder=True)):
        return f"--gradcam {args.gradcam}: {problem}"
    return None


def _output_problem(path: Path, *, folder: bool) -> str | None:
    """Why ``path`` cannot be written (as a file, or a folder of files); None when it can."""
    if path.exists():
        if folder and not path.is_dir():
            return "exists and is not a folder"
        if not folder and path.is_dir():
            return "is a folder; name a file"
        if not folder and not path.is_file():
            return "exists and is not a regular file"
    parent = path if folder and path.is_dir() else path.parent
    while not parent.exists():  # the folders that do not exist yet are created
        parent = parent.parent
    if not parent.is_dir():
        return f"{parent} is not a folder"
    if not os.access(parent, os.W_OK | os.X_OK):
        return f"the folder {parent} is not writable"
    return None


def _loaded_classifier(args: argparse.Namespace) -> Classifier | None:
    """The model, with this run's pixel limit; None (said on stderr) if it cannot be loaded."""
    from dataclasses import replace

    from chest_xray.inference.packaging import load_classifier

    try:
        classifier = load_classifier(_model_uri(args.model), trust=args.trust_package)
    except Exception as error:  # any reason a model does not load, said in one line
        print(f"chest-xray predict: cannot load the model: {error}", file=sys.stderr)
        return None
    return replace(classifier, max_pixels=args.max_pixels, ood_policy=args.ood)


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


@dataclass
class _Listing:
    """What the paths hold: loaders of the regular files, and the entries skipped with why."""

    files: dict[str, Callable[[], bytes]] = field(default_factory=dict)
    sizes: dict[str, int] = field(default_factory=dict)
    overlay_names: dict[str, str] = field(default_factory=dict)
    skipped: list[dict[str, str]] = field(default_factory=list)

    def add_under(self, path: Path) -> None:
        """A file, or every entry below a folder (links to folders are not followed).

        Names are the paths as typed (the CSV's ``file``); overlay names are relative:
        the file's name, or the folder's name and the path below it (``scans/a/1.dcm``).
        """
        if not path.is_dir():
            self.add(str(path), path, path.name)
            return
        top = path.resolve().name or "images"

        def unlisted(error: OSError) -> None:
            self.skip(
                str(error.filename), "unreadable", f"cannot list the folder: {error.strerror}"
            )

        for root, _, names in os.walk(path, onerror=unlisted):
            for name in names:
                file = Path(root, name)
                self.add(str(file), file, str(Path(top, file.relative_to(path))))

    def add(self, name: str, file: Path, overlay: str) -> None:
        """``file`` if it is a regular file (or a link to one), else a skip naming what it is."""
        try:
            info = file.stat()  # follows links
        except FileNotFoundError:
            if file.is_symlink():
                target = os.readlink(file)
                self.skip(name, "unreadable", f"dangling symbolic link (to {target})")
            else:
                self.skip(name, "unreadable", "vanished while the folder was listed")
            return
        except OSError as error:  # a link loop, no permission, a name too long...
            self.skip(name, "unreadable", f"cannot read the file: {error.strerror or error}")
            return
        if not stat.S_ISREG(info.st_mode):
            self.skip(name, "unsupported", f"not a regular file ({_kind(info.st_mode)})")
            return
        self.files[name] = partial(_read_regular, file)
        self.sizes[name] = info.st_size
        self.overlay_names[name] = overlay

    def skip(self, name: str, category: str, reason: str) -> None:
        self.skipped.append({"file": name, "category": category, "reason": reason})


def _kind(mode: int) -> str:
    """What a non-regular file is, in words."""
    kinds = [(stat.S_ISDIR, "a folder"), (stat.S_ISFIFO, "a FIFO"), (stat.S_ISSOCK, "a socket"),
             (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device")]  # fmt: skip
    return next((word for test, word in kinds if test(mode)), "not a file")


def _read_regular(path: Path) -> bytes:
    """The bytes of ``path``, opened without blocking and checked to be a regular file once
    open (it may have been replaced by a FIFO since it was listed)."""
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0))
    with os.fdopen(fd, "rb") as handle:
        if not stat.S_ISREG(os.fstat(handle.fileno()).st_mode):
            raise OSError(f"{path} is no longer a regular file")
        return handle.read()


def _write_outputs(
    args: argparse.Namespace, result: BatchResult, classifier: Classifier, listing: _Listing
) -> bool:
    """The skipped lines, the predictions, ``--skipped`` and the overlays; False if an
    output could not be written (the predictions then go to standard output)."""
    for file, reason in zip(result.skipped["file"], result.skipped["reason"], strict=True):
        print(f"skipped {file}: {reason}", file=sys.stderr)
    written = True
    if not args.out or not _written(result.predictions, args.out, "--out"):
        written = not args.out
        if args.out:
            print("chest-xray predict: the predictions follow on standard output", file=sys.stderr)
        result.predictions.to_csv(sys.stdout, index=False)
    if args.skipped:
        written &= _written(result.skipped, args.skipped, "--skipped")
    if args.gradcam and not result.predictions.empty:
        from chest_xray.inference.explain import gradcam_overlays

        overlays = gradcam_overlays(
            listing.files, result.predictions["file"].tolist(), classifier, args.batch_size
        )
        try:
            for name, make in overlays.items():
                _write_bytes(Path(args.gradcam) / f"{listing.overlay_names[name]}.png", make())
        except Exception as error:  # a full disk, or Grad-CAM failing on this network
            print(
                f"chest-xray predict: cannot write --gradcam {args.gradcam}: {error}",
                file=sys.stderr,
            )
            written = False
    return written


def _written(table: pd.DataFrame, path: str, option: str) -> bool:
    """Write ``table`` as CSV to ``path``, whole or not at all; False (said) if it failed."""
    try:
        _write_csv(table, Path(path))
    except OSError as error:
        print(f"chest-xray predict: cannot write {option} {path}: {error}", file=sys.stderr)
        return False
    return True


def _write_csv(table: pd.DataFrame, path: Path) -> None:
    _write_bytes(path, table.to_csv(index=False).encode())


def _write_bytes(path: Path, data: bytes) -> None:
    """Whole or not at all (a temporary file in the same folder, renamed into place)."""
    write_atomically(str(path), data)
