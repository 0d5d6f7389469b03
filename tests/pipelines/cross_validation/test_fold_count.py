"""The fold count the pipeline is built with comes from the session's parameters."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from chest_xray.pipelines import fold_count
from chest_xray.pipelines.cross_validation.pipeline import create_pipeline


@pytest.fixture(autouse=True)
def _forget() -> Iterator[None]:
    fold_count.reset()
    yield
    fold_count.reset()


def namespaces() -> set[str]:
    return {node.namespace for node in create_pipeline().nodes if node.namespace}


def test_without_a_session_the_pipeline_has_the_default_folds() -> None:
    assert namespaces() == {f"fold_{i}" for i in range(1, fold_count.DEFAULT_FOLDS + 1)}


def test_the_configured_value_builds_that_many_namespaces() -> None:
    assert fold_count.configure({"cross_validation": {"folds": 3}}) is True
    assert namespaces() == {"fold_1", "fold_2", "fold_3"}
    assert fold_count.configure({"cross_validation": {"folds": 3}}) is False  # unchanged


@pytest.mark.parametrize(("value", "built"), [(1, 2), (0, 2), (99, 20), ("x", 5), (None, 5)])
def test_a_value_out_of_bounds_builds_the_nearest_bound(value: object, built: int) -> None:
    # (CrossValidationParams then stops the run, naming the parameter.)
    fold_count.configure({"cross_validation": {"folds": value}})
    assert fold_count.fold_count() == built
