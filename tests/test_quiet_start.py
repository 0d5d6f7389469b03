"""TensorFlow's start-up lines held to TF_CPP_MIN_LOG_LEVEL; every other line kept."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from chest_xray.quiet_start import held_to_level, min_log_level, stderr_held_to_level
from tests.conftest import REPO

BANNER = b"WARNING: All log messages before absl::InitializeLog() is called are written to STDERR\n"
ONEDNN = (
    b"I0000 00:00:1796607924.235094    6360 port.cc:153] oneDNN custom operations are on. "
    b"You may see slightly different numerical results.\n"
)
NO_DRIVER = (
    b"I0000 00:00:1796607924.236235    6360 cudart_stub.cc:31] Could not find cuda drivers on "
    b"your machine, GPU will not be used.\n"
)
CUINIT = (
    b"E0000 00:00:1796607929.710210    6360 cuda_platform.cc:52] failed call to cuInit: "
    b"INTERNAL: CUDA error: Failed call to cuInit: UNKNOWN ERROR (303)\n"
)
WARNING = b"W1207 01:45:24.123456   6360 op_kernel.cc:1857] a C++ warning\n"
ERROR = b"E1207 01:45:24.123456   6360 graph.cc:12] a real C++ error\n"
PYTHON = b"Traceback (most recent call last):\n  ImportError: libfoo.so\n"


def test_lines_below_the_level_go_and_everything_else_stays_in_order() -> None:
    output = BANNER + ONEDNN + NO_DRIVER + WARNING + ERROR + PYTHON
    assert held_to_level(output, 2) == ERROR + PYTHON
    assert held_to_level(output, 1) == WARNING + ERROR + PYTHON  # INFO goes, WARNING stays
    assert held_to_level(output, 3) == PYTHON
    assert held_to_level(output, 0) == output  # the user asked for everything


def test_cuinit_failure_goes_only_where_no_driver_was_found() -> None:
    # The GPU build on a CPU machine: the ERROR only repeats the INFO line.
    assert held_to_level(BANNER + NO_DRIVER + CUINIT, 2) == b""
    # A machine with a driver whose cuInit fails: a real problem, kept.
    assert held_to_level(CUINIT, 2) == CUINIT


@pytest.mark.parametrize(("value", "level"), [(None, 0), ("2", 2), ("x", 0), ("-1", 0)])
def test_the_level_is_read_as_tensorflow_reads_it(
    monkeypatch: pytest.MonkeyPatch, value: str | None, level: int
) -> None:
    if value is None:
        monkeypatch.delenv("TF_CPP_MIN_LOG_LEVEL", raising=False)
    else:
        monkeypatch.setenv("TF_CPP_MIN_LOG_LEVEL", value)
    assert min_log_level() == level


def test_descriptor_2_is_held_and_written_back_filtered(capfd: pytest.CaptureFixture) -> None:
    with stderr_held_to_level(2):
        os.write(2, BANNER + ONEDNN + ERROR)
    assert capfd.readouterr().err == ERROR.decode()


def test_a_failing_block_gives_back_everything(capfd: pytest.CaptureFixture) -> None:
    with pytest.raises(ImportError), stderr_held_to_level(2):
        os.write(2, BANNER + ONEDNN)
        raise ImportError("no tensorflow")
    assert capfd.readouterr().err == (BANNER + ONEDNN).decode()


@pytest.mark.slow
def test_importing_tensorflow_after_the_package_prints_nothing() -> None:
    """A fresh interpreter, as ``kedro run`` or ``chest-xray predict`` starts: the package,
    then Keras (which imports TensorFlow) and a first operation."""
    env = {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}
    env["PYTHONPATH"] = os.pathsep.join([str(REPO / "src"), env.get("PYTHONPATH", "")])
    code = (
        "import chest_xray, keras, tensorflow as tf\n"
        "assert float(tf.constant(1.0) + 1) == 2.0\n"
        "import sys; print('after the import', file=sys.stderr)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,  # the assertion shows stderr
    )
    assert done.returncode == 0, done.stderr
    assert done.stderr == "after the import\n"
