"""The few lines a ``kedro run`` ends with: its results, what it left out, where to look.

Kedro's last line, "Pipeline execution completed", says nothing of what the run made. The
summary does: for a run that evaluated, the test metrics at the threshold the packaged model
applies, with their bootstrap intervals, and the calibration; for one that did not, what it
made (images, split, model, predictions); then what was dropped or skipped, where the plots
and the report are, the MLflow run and the commands that open MLflow's UI and kedro-viz.

Pure functions of ``RunFacts``, which ``hook.RunSummaryHooks`` gathers during the
run (the reports as saved, counts of the tables, the datasets' locations): no Kedro, no
MLflow here, so every line is tested from a hand-made report.
"""

from __future__ import annotations

import textwrap
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import PurePath
from typing import Any

import pandas as pd

EVALUATION_REPORT = "test_metrics"
CV_SUMMARY = "cv_summary"
CV_ENSEMBLE_REPORT = "cv_ensemble_test_metrics"
REPORTS = (EVALUATION_REPORT, CV_SUMMARY, CV_ENSEMBLE_REPORT)
TRAINING_HISTORY = "training_history"


@dataclass(frozen=True)
class MlflowRunInfo:
    """The run this ``kedro run`` logged to, and how to open it."""

    run_id: str
    experiment_id: str
    tracking_uri: str
    ui_host: str = "127.0.0.1"
    ui_port: str = "5000"


@dataclass
class RunFacts:
    """What one ``kedro run`` made, as the summary needs it (``hook`` fills it)."""

    env: str = "local"
    pipelines: Sequence[str] = ("__default__",)
    # Every dataset the run saved, in order, with its location (None: in memory).
    made: dict[str, str | None] = field(default_factory=dict)
    reports: dict[str, dict[str, Any]] = field(default_factory=dict)  # REPORTS, as saved
    history: dict[str, list[float]] | None = None
    counts: dict[str, dict[str, int]] = field(default_factory=dict)  # table_counts per table
    # Tables this run did not make, read from an earlier run (name -> location).
    counts_from_earlier: dict[str, str | None] = field(default_factory=dict)
    model_threshold: str = "validation"  # evaluation.model_threshold: what the package applies
    # The packaged model's own decision rule (InferenceSettings.decision), when one was saved.
    packaged_decision: str | None = None
    mlflow: MlflowRunInfo | None = None


# ------------------------------------------------------------------ counting the tables


def dropped_reason(reason: str) -> str:
    """A dropped item's reason without its details: ``unreadable image: <error>`` ->
    ``unreadable image`` (the grouping ``report_dropped_items`` logs)."""
    return reason.replace(",", ":").split(":", 1)[0].strip() or "unknown"


def table_counts(name: str, table: pd.DataFrame) -> dict[str, int] | None:
    """The counts the summary shows of a table the run saved; None for other tables."""
    if name == "dropped_items" and "reason" in table.columns:
        return _value_counts(table["reason"].astype(str).map(dropped_reason))
    if name == "preprocessing_log" and "status" in table.columns:
        return _value_counts(table["status"].astype(str))
    if name == "split_manifest" and "split" in table.columns:
        return _value_counts(table["split"].astype(str))
    if name == "inference_predictions" and "ood_flag" in table.columns:
        # Out-of-distribution images the guard flagged (left unlabelled by default).
        return {"rows": len(table), "ood_flagged": int(table["ood_flag"].fillna(False).sum())}
    if name in {"inference_predictions", "inference_skipped"}:
        return {"rows": len(table)}
    return None


def _value_counts(column: pd.Series) -> dict[str, int]:
    return {str(key): int(value) for key, value in column.value_counts().items()}


# ---------------------------------------------------------------------- the whole text


def summary_text(facts: RunFacts) -> str:
    """The summary, as plain lines (aligned for a terminal, readable in a log file)."""
    pipelines = ", ".join(facts.pipelines) or "__default__"
    lines = [f"Run summary (kedro run --env={facts.env}, pipelines: {pipelines})"]
    evaluated = [name for name in REPORTS if name in facts.reports]
    if evaluated:
        for name in evaluated:
            lines += ["", *_report_lines(name, facts.reports[name], facts.model_threshold)]
            if name == EVALUATION_REPORT and facts.packaged_decision:
                lines.append(f"  packaged model: {facts.packaged_decision}")
    else:
        lines += ["", "No evaluation in this run. It made:", *_made_lines(facts)]
    found = [*_dropped_lines(facts), *_where_lines(facts)]
    lines += ["", *found] if found else []
    lines += ["", *_mlflow_lines(facts), f"Pipeline graph: kedro viz run --env {facts.env}"]
    return "\n".join(lines)


def _report_lines(name: str, report: dict[str, Any], model_threshold: str) -> list[str]:
    if name == CV_SUMMARY:
        return cross_validation_lines(report)
    title = "Fold ensemble on the test split" if name == CV_ENSEMBLE_REPORT else "Test split"
    if "skipped" in report:
        return [f"{title}: not scored ({report['skipped']})"]
    if report.get("task") == "multiclass":
        return [*multiclass_lines(report, title), *calibration_lines(report)]
    packaged = name == EVALUATION_REPORT  # the fold ensemble is not packaged
    return [*binary_lines(report, model_threshold, title, packaged), *calibration_lines(report)]


# ------------------------------------------------------------------------- evaluation


def _number(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.3f}"


def _interval(interval: Mapping[str, Any] | None) -> str:
    if not interval or interval.get("low") is None or interval.get("high") is None:
        return "n/a"
    return f"{interval['low']:.3f} - {interval['high']:.3f}"


def _metric_table(
    rows: Sequence[tuple[str, float | None, Mapping[str, Any] | None]], level: float
) -> list[str]:
    lines = [f"  {'metric':<18}{'value':>7}   {level:.0%} interval"]
    lines += [f"  {label:<18}{_number(value):>7}   {_interval(ci)}" for label, value, ci in rows]
    return lines


def binary_lines(
    report: dict[str, Any], model_threshold: str, title: str, packaged: bool = True
) -> list[str]:
    """Accuracy, sensitivity, specificity at the packaged model's threshold, and AUC.

    The packaged model applies the threshold chosen on validation unless
    ``evaluation.model_threshold`` is ``fixed`` (or none was chosen): the row shown is
    the one that says how the model a user gets decides (for a report of a model that is
    not packaged, ``packaged=False``, the same rule, without claiming so).
    """
    test = report["test"]
    intervals = test.get("confidence_intervals") or {}
    tuned = test.get("at_validation_threshold")
    if model_threshold == "validation" and tuned:
        point = tuned
        point_ci = intervals.get("at_validation_threshold") or {}
        source = f"{tuned.get('strategy', 'chosen')} on validation"
    else:
        point, source = test["at_fixed_threshold"], "fixed"
        point_ci = intervals.get("metrics") or {}
    auc_ci = (intervals.get("metrics") or {}).get("auc")
    rows = [(key, point.get(key), point_ci.get(key)) for key in _BINARY_KEYS]
    rows.append(("AUC", test.get("auc"), auc_ci))
    return [
        f"{title}: {test['n']} images, positive class {report.get('positive_class', '?')}, "
        f"threshold {point['threshold']:.3f} ({source}"
        f"{', as the packaged model decides' if packaged else ''})",
        *_metric_table(rows, float(intervals.get("level", 0.95))),
    ]


_BINARY_KEYS = ("accuracy", "sensitivity", "specificity")


def multiclass_lines(report: dict[str, Any], title: str) -> list[str]:
    """Accuracy, macro F1 and macro AUC with intervals; each class's sensitivity."""
    test = report["test"]
    intervals = test.get("confidence_intervals") or {}
    ci = intervals.get("metrics") or {}
    rows = [
        ("accuracy", test.get("accuracy"), ci.get("accuracy")),
        ("macro F1", test.get("macro_f1"), ci.get("macro_f1")),
        ("macro AUC", test.get("auc"), ci.get("macro_auc")),
    ]
    per_class = test.get("per_class") or {}
    sensitivity = ", ".join(
        f"{name} {_number(values.get('sensitivity'))}" for name, values in per_class.items()
    )
    classes = "/".join(report.get("classes", per_class))
    return [
        f"{title}: {test['n']} images, classes {classes} (the most probable class decides)",
        *_metric_table(rows, float(intervals.get("level", 0.95))),
        f"  sensitivity per class: {sensitivity}",
    ]


def calibration_lines(report: dict[str, Any]) -> list[str]:
    """Expected calibration error on test, before and after the validation temperature."""
    calibration = report.get("calibration")
    if not calibration:
        return []
    before = (calibration.get("test") or {}).get("ece")
    after = (calibration.get("test_calibrated") or {}).get("ece")
    return [
        f"  calibration (test ECE): {_number(before)} as the network gives them, "
        f"{_number(after)} after temperature {calibration.get('temperature', 1.0):.2f} "
        "(fitted on validation)"
    ]


_CV_METRICS = (
    "test_accuracy",
    "test_sensitivity",
    "test_specificity",
    "test_macro_f1",
    "test_auc",
)


def cross_validation_lines(summary: dict[str, Any]) -> list[str]:
    """Mean, sd and range over the folds of the headline metrics; the pooled AUC."""
    statistics = summary.get("statistics") or {}
    lines = [f"Cross-validation over {summary.get('folds', '?')} folds (held-out fold scores):"]
    lines.append(f"  {'metric':<18}{'mean':>7}{'sd':>8}   range")
    for metric in _CV_METRICS:
        if metric in statistics:
            s = statistics[metric]
            label = metric.removeprefix("test_").replace("auc", "AUC")
            lines.append(
                f"  {label:<18}{s['mean']:>7.3f}{s['sd']:>8.3f}   {s['min']:.3f} - {s['max']:.3f}"
            )
    pooled = summary.get("pooled_out_of_fold") or {}
    lines.append(f"  pooled out-of-fold AUC {_number(pooled.get('auc'))} (n={pooled.get('n', 0)})")
    return lines


# -------------------------------------------------------------- what a run made, and where


def _made_lines(facts: RunFacts) -> list[str]:
    """The run's products, the known ones with their counts, then any other dataset."""
    made, counts, lines = facts.made, facts.counts, []
    if "preprocessing_log" in counts:
        status = counts["preprocessing_log"]
        lines.append(
            f"  images: {sum(status.values())} preprocessed ({status.get('ok', 0)} ok, "
            f"{sum(status.values()) - status.get('ok', 0)} skipped) in "
            f"{made.get('processed_images') or 'processed_images'}"
        )
    if "split_manifest" in counts and "split_manifest" in made:
        split = counts["split_manifest"]
        parts = ", ".join(f"{name} {split[name]}" for name in sorted(split, key=_split_order))
        lines.append(f"  split: {parts} in {made['split_manifest']}")
    if "model" in made:
        lines.append(f"  model: {made['model']}{_history_note(facts.history)}")
    for name, label in (("inference_predictions", "predictions"), ("inference_skipped", "skips")):
        if name in counts and name in made:
            flagged = counts[name].get("ood_flagged")
            note = "" if flagged is None else f", {flagged} flagged out of distribution"
            lines.append(f"  {label}: {counts[name]['rows']} row(s){note} in {made[name]}")
    shown = {"processed_images", "preprocessing_log", "split_manifest", "model"}
    shown |= {"inference_predictions", "inference_skipped", "dropped_items"}
    others = [name for name in made if name not in shown and not name.endswith("_plot")]
    if others:
        lines.append(f"  also: {', '.join(others)}")
    return lines or ["  nothing saved (every output was in memory)"]


def _split_order(name: str) -> tuple[int, str]:
    order = {"train": 0, "validation": 1, "test": 2}
    return order.get(name, len(order)), name


def _history_note(history: dict[str, list[float]] | None) -> str:
    if not history or not history.get("loss"):
        return ""
    note = f" ({len(history['loss'])} epochs"
    if history.get("val_auc"):
        note += f", best validation AUC {max(history['val_auc']):.3f}"
    return note + ")"


def _dropped_lines(facts: RunFacts) -> list[str]:
    reasons = facts.counts.get("dropped_items")
    if reasons is None:
        return []
    earlier_run = "dropped_items" in facts.counts_from_earlier
    where = (facts.counts_from_earlier if earlier_run else facts.made).get("dropped_items")
    earlier = " (by the last data_processing run)" if earlier_run else ""
    if not reasons:
        return [f"Dropped or skipped: nothing{earlier}"]
    parts = ", ".join(f"{count} {reason}" for reason, count in sorted(reasons.items()))
    lines = [f"Dropped or skipped{earlier}: {sum(reasons.values())} ({parts})"]
    return [*lines, f"  listed in {where}"] if where else lines


def _where_lines(facts: RunFacts) -> list[str]:
    """The figures (grouped by folder) and the reports this run wrote."""
    lines = []
    plots = [path for name, path in facts.made.items() if name.endswith("_plot") and path]
    for folder, names in _by_folder(plots).items():
        text = f"Plots in {folder}/: {', '.join(names)}"
        lines += textwrap.wrap(text, width=100, subsequent_indent="  ", break_on_hyphens=False)
    for name in REPORTS:
        if name in facts.reports and facts.made.get(name):
            lines.append(f"Report: {facts.made[name]}")
    return lines


def _by_folder(paths: Sequence[str]) -> dict[str, list[str]]:
    folders: dict[str, list[str]] = {}
    for path in paths:
        pure = PurePath(path)
        folders.setdefault(str(pure.parent), []).append(pure.name)
    return folders


def _mlflow_lines(facts: RunFacts) -> list[str]:
    run = facts.mlflow
    if run is None:
        return ["MLflow: this run was not tracked (tracking disabled for it)"]
    page = f"#/experiments/{run.experiment_id}/runs/{run.run_id}"
    if run.tracking_uri.startswith(("http://", "https://")):
        return [f"MLflow run {run.run_id}: {run.tracking_uri.rstrip('/')}/{page}"]
    return [
        f"MLflow run {run.run_id} (experiment {run.experiment_id}, {run.tracking_uri})",
        f"  open it: kedro mlflow ui --env {facts.env}, then "
        f"http://{run.ui_host}:{run.ui_port}/{page}",
    ]
