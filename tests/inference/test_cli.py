"""``chest-xray predict`` against hostile input: odd folder entries, bad arguments, outputs
that cannot be written. Exit codes keep their documented meaning, no traceback is shown."""

from __future__ import annotations

import io
import os
import signal
import socket
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from chest_xray.inference import cli

RAMP = np.tile(np.linspace(0, 255, 48).round().astype(np.uint8), (40, 1))


def image_bytes(fmt: str, mode: str = "L") -> bytes:
    image = Image.fromarray(RAMP)
    if mode == "LAB":
        flat = Image.new("L", image.size, 128)
        image = Image.merge("LAB", [image, flat, flat])
    elif mode != "L":
        image = image.convert(mode)
    buffer = io.BytesIO()
    image.save(buffer, format=fmt)
    return buffer.getvalue()


@pytest.fixture(autouse=True)
def no_hang() -> Iterator[None]:
    """A FIFO opened for reading would block for ever: fail instead."""
    signal.signal(signal.SIGALRM, lambda *_: pytest.fail("chest-xray predict hung"))
    signal.alarm(120)
    yield
    signal.alarm(0)


@pytest.fixture
def hostile(tmp_path: Path) -> Path:
    folder = tmp_path / "scans"
    (folder / "deep").mkdir(parents=True)
    (folder / "a.png").write_bytes(image_bytes("PNG"))
    (folder / "lab.tiff").write_bytes(image_bytes("TIFF", "LAB"))
    (folder / "cmyk.tiff").write_bytes(image_bytes("TIFF", "CMYK"))
    (folder / "deep" / "b.png").write_bytes(image_bytes("PNG"))
    (folder / "dangling.png").symlink_to(folder / "gone.png")
    (folder / "link.png").symlink_to(folder / "a.png")
    os.mkfifo(folder / "pipe.png")
    sock = socket.socket(socket.AF_UNIX)
    sock.bind(str(folder / "sock.png"))
    sock.close()
    return folder


def run(*args: str) -> int:
    return cli.main(list(args))


def test_only_regular_files_are_read_the_rest_skipped_with_reasons(
    hostile: Path, package: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out, skipped = tmp_path / "p.csv", tmp_path / "s.csv"
    status = run(
        str(hostile), "--model", str(package), "--out", str(out), "--skipped", str(skipped)
    )
    assert status == cli.EXIT_SOME_SKIPPED
    predicted = {Path(file).name for file in pd.read_csv(out)["file"]}
    assert predicted == {"a.png", "lab.tiff", "cmyk.tiff", "b.png", "link.png"}
    reasons = dict(zip(pd.read_csv(skipped)["file"].map(lambda f: Path(f).name),
                       pd.read_csv(skipped)["reason"], strict=True))  # fmt: skip
    assert reasons.keys() == {"dangling.png", "pipe.png", "sock.png"}
    assert "dangling symbolic link" in reasons["dangling.png"]
    assert "a FIFO" in reasons["pipe.png"] and "a socket" in reasons["sock.png"]
    assert "Traceback" not in capsys.readouterr().err


def test_a_fifo_or_dangling_link_named_directly_is_a_skip(
    hostile: Path, package: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    status = run(str(hostile / "pipe.png"), str(hostile / "dangling.png"), "--model", str(package))
    assert status == cli.EXIT_NONE_PREDICTED
    err = capsys.readouterr().err
    assert "skipped" in err and "a FIFO" in err and "dangling symbolic link" in err


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["--batch-size", "0"], "--batch-size"),
        (["--batch-size", "-1"], "--batch-size"),
        (["--batch-size", "many"], "--batch-size"),
        (["--workers", "-1"], "--workers"),
        (["--max-pixels", "0"], "--max-pixels"),
        (["--out", "{tmp}"], "is a folder"),
        (["--out", "{tmp}/a/p.csv", "--skipped", "{tmp}/a/p.csv"], "the same file"),
        (["--out", "{image}/p.csv"], "is not a folder"),
        (["--gradcam", "{image}"], "not a folder"),
        (["--model", "{tmp}/no-such-package"], "no-such-package: no such model package"),
        (["{tmp}/missing.png"], "no such file or folder"),
    ],
)
def test_bad_arguments_are_refused_before_any_work(
    args: list[str],
    says: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    image = tmp_path / "a.png"
    image.write_bytes(image_bytes("PNG"))

    def no_model(uri: str) -> None:
        raise AssertionError("loaded a model despite bad arguments")

    monkeypatch.setattr("chest_xray.inference.packaging.load_classifier", no_model)
    filled = [arg.format(tmp=tmp_path, image=image) for arg in args]
    assert run(str(image), *filled) == cli.EXIT_USAGE
    err = capsys.readouterr().err
    assert says in err and "Traceback" not in err


def test_predictions_are_never_lost_when_the_output_cannot_be_written(
    package: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    image = tmp_path / "a.png"
    image.write_bytes(image_bytes("PNG"))

    def full_disk(table: pd.DataFrame, path: Path) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(cli, "_write_csv", full_disk)
    status = run(str(image), "--model", str(package), "--out", str(tmp_path / "p.csv"))
    assert status == cli.EXIT_USAGE
    captured = capsys.readouterr()
    assert "No space left on device" in captured.err
    # The CSV from its header on: in this test process Kedro's rich logging (configured by
    # other tests) writes to stdout; the command's own logging goes to stderr.
    table = captured.out[captured.out.index("file,probability") :]
    assert pd.read_csv(io.StringIO(table))["file"].tolist() == [str(image)]


def test_an_image_over_the_pixel_limit_is_skipped_as_too_large(
    package: Path, tmp_path: Path
) -> None:
    image = tmp_path / "a.png"
    image.write_bytes(image_bytes("PNG"))  # 48 x 40 = 1920 pixels
    skipped = tmp_path / "s.csv"
    status = run(
        str(image), "--model", str(package), "--max-pixels", "1000", "--skipped", str(skipped)
    )
    assert status == cli.EXIT_NONE_PREDICTED
    row = pd.read_csv(skipped).iloc[0]
    assert row["category"] == "too_large" and "1,920 pixels" in row["reason"]


def test_help_is_not_an_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert run("--help") == cli.EXIT_OK
    assert "--max-pixels" in capsys.readouterr().out


def test_a_network_failing_at_predict_time_is_one_line(
    package: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    image = tmp_path / "a.png"
    image.write_bytes(image_bytes("PNG"))

    def broken(*args: object, **kwargs: object) -> None:
        raise RuntimeError("oneDNN primitive failed")

    monkeypatch.setattr("chest_xray.inference.classifier.Classifier.probabilities", broken)
    assert run(str(image), "--model", str(package)) == cli.EXIT_ERROR
    err = capsys.readouterr().err
    assert "the model failed: oneDNN primitive failed" in err and "Traceback" not in err
