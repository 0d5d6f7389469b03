"""A run stopped by bad input prints the project's message, a bug its traceback."""

from __future__ import annotations

import io
import linecache
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
from kedro.config import OmegaConfigLoader
from kedro.io import DatasetError

from chest_xray.evaluation.params import EvaluationParams
from chest_xray.params import TrainingParams, check_runtime_params
from chest_xray.pipelines.evaluation.nodes import PREDICTION_COLUMNS, evaluate
from chest_xray.summary import failure
from chest_xray.summary.failure import PACKAGE_DIR, TRACEBACK_VARIABLE, is_input_error
from chest_xray.tracking.lifecycle import RESUME_ADVICE, TerminatedBySignalError


def _caught(function, *args, **kwargs) -> BaseException:
    with pytest.raises(Exception) as caught:
        function(*args, **kwargs)
    return caught.value


@pytest.fixture
def raised_in_the_package(monkeypatch: pytest.MonkeyPatch):
    """Run a line of source as if it were a line of a module of the package."""

    def run(source: str) -> BaseException:
        filename = str(PACKAGE_DIR / f"_made_up_{abs(hash(source))}.py")
        monkeypatch.setitem(linecache.cache, filename, (len(source), None, [source], filename))
        return _caught(exec, compile(source, filename, "exec"), {})

    return run


def test_the_project_s_own_messages_are_input_errors() -> None:
    unknown = _caught(check_runtime_params, {"epochs": 3}, {"training": {"epochs": 60}})
    assert is_input_error(unknown)
    empty = pd.DataFrame(columns=PREDICTION_COLUMNS)
    no_test = _caught(evaluate, empty, empty, empty, TrainingParams(), EvaluationParams())
    assert "test split is empty" in str(no_test)
    assert is_input_error(no_test)
    assert is_input_error(_caught(TrainingParams, epochs=-1))  # a parameter's validation
    wrapped = DatasetError("Failed while loading data from dataset 'x'")
    wrapped.__cause__ = unknown
    assert is_input_error(wrapped)


def test_a_dataset_whose_file_is_missing_is_an_input_error_named_by_its_path() -> None:
    missing = FileNotFoundError(2, "No such file or directory", "/raw/metadata.csv")
    inner = DatasetError("Failed while loading data from dataset CSVDataset(filepath=...)")
    inner.__cause__ = missing
    outer = DatasetError(f"raw_metadata: {inner}")
    outer.__cause__ = inner
    assert is_input_error(outer)
    assert failure.message(outer) == "raw_metadata: no such file: /raw/metadata.csv"
    assert not is_input_error(missing)  # outside a dataset's load: where it came from matters
    unrelated = DatasetError("raw_metadata: Failed while loading data")
    unrelated.__cause__ = KeyError("k")
    assert not is_input_error(unrelated)


def test_a_configuration_file_kedro_cannot_read_is_an_input_error(tmp_path: Path) -> None:
    for env in ("base", "local"):
        (tmp_path / env).mkdir()
    (tmp_path / "base" / "parameters.yml").write_text("training:\n  epochs: [1\n")
    loader = OmegaConfigLoader(str(tmp_path), base_env="base", default_run_env="local")
    broken = _caught(loader.__getitem__, "parameters")
    assert "parameters.yml" in str(broken)  # Kedro names the file and the line
    assert is_input_error(broken)
    (tmp_path / "base" / "parameters.yml").write_text("training: {}\n")
    assert not is_input_error(_caught(loader.__getitem__, "no_such_key"))  # asked by code


def test_errors_that_no_raise_of_the_project_wrote_are_bugs(raised_in_the_package) -> None:
    assert is_input_error(raised_in_the_package("raise ValueError('made up')"))
    assert is_input_error(raised_in_the_package("raise FileNotFoundError('data/x.csv')"))
    assert not is_input_error(raised_in_the_package("int('x')"))
    assert not is_input_error(raised_in_the_package("raise KeyError('k')"))
    assert not is_input_error(_caught(pd.DataFrame({"a": [1]}).astype, {"a": "int8", "b": 1}))
    assert not is_input_error(_caught(int, "x"))


def test_the_hook_prints_input_errors_and_passes_bugs_on(
    monkeypatch, raised_in_the_package
) -> None:
    seen: list[BaseException] = []
    monkeypatch.setattr(sys, "excepthook", lambda kind, error, trace: seen.append(error))
    out = io.StringIO()
    failure.install(out)
    failure.install(out)  # once: a second session in the process wraps nothing more
    unknown = _caught(check_runtime_params, {"epochs": 3}, {"training": {"epochs": 60}})
    sys.excepthook(type(unknown), unknown, unknown.__traceback__)
    assert seen == []
    assert "The run stopped: --params sets epochs=3" in out.getvalue()
    bug = raised_in_the_package("int('x')")
    sys.excepthook(type(bug), bug, bug.__traceback__)
    monkeypatch.setenv(TRACEBACK_VARIABLE, "1")
    sys.excepthook(type(unknown), unknown, unknown.__traceback__)
    assert seen == [bug, unknown]


def test_a_run_its_user_stopped_says_so_and_how_to_resume(monkeypatch) -> None:
    seen: list[BaseException] = []
    monkeypatch.setattr(sys, "excepthook", lambda kind, error, trace: seen.append(error))
    out = io.StringIO()
    failure.install(out)
    # As Keras re-raises it from a layer call (a new instance, the same type), then wrapped
    terminated = TerminatedBySignalError("Received SIGTERM: the run was stopped (in a layer)")
    wrapped = RuntimeError("node failed")
    wrapped.__cause__ = terminated
    assert failure.stopped_by(wrapped) == "SIGTERM"
    assert failure.stopped_by(KeyboardInterrupt()) == "Ctrl-C"
    assert failure.stopped_by(ValueError("x")) is None
    sys.excepthook(type(terminated), terminated, None)
    assert seen == []
    said = out.getvalue()
    assert "The run was stopped by SIGTERM before its pipeline ended" in said
    assert RESUME_ADVICE in said
    monkeypatch.setenv(TRACEBACK_VARIABLE, "1")  # the traceback stays one variable away
    sys.excepthook(type(terminated), terminated, None)
    assert seen == [terminated]


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        # Refused by the project's own check, RuntimeParamsHooks
        ("epochs=3", ["The run stopped: --params sets epochs=3", "did you mean 'training.epochs'"]),
        # A dataset whose file is not there: the dataset and the path, not its arguments
        (
            "raw_root=/nonexistent-raw",
            ["The run stopped: raw_", "no such file: /nonexistent-raw/"],
        ),
        # Refused by Kedro's validation of the nodes' typed parameters
        (
            "training.epochs=-1",
            [
                "The run stopped: Parameter validation failed",
                "epochs",
                "greater than or equal to 0",
            ],
        ),
    ],
)
def test_kedro_run_with_a_bad_parameter_names_it_without_a_traceback(
    kedro_project: Path, params: str, expected: list[str]
) -> None:
    result = subprocess.run(
        ["kedro", "run", "--env=demo", f"--params={params}"],
        cwd=kedro_project,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    output = result.stdout + result.stderr
    assert result.returncode == 1
    for text in expected:
        assert text in output
    assert "Traceback" not in output and "╭" not in output
