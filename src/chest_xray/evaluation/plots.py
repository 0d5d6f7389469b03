"""Figures of a trained model: training curves, confusion matrix, ROC curve, gallery.

Each function returns a ``matplotlib.figure.Figure`` built without ``pyplot``
(see ``data.figures``); the catalog saves it.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator
from sklearn.metrics import roc_curve

from chest_xray.data.figures import (
    CATEGORY_COLOURS,
    MUTED_COLOUR,
    OPERATING_POINT_MARKERS,
    RIGHT_COLOUR,
    TRAIN_COLOUR,
    VAL_COLOUR,
    WRONG_COLOUR,
    message_figure,
    new_figure,
)
from chest_xray.evaluation.metrics import binary_metrics

# Metrics drawn by ``training_curves_figure``, in panel order, with their axis labels.
CURVE_METRICS: tuple[tuple[str, str], ...] = (
    ("loss", "Loss"),
    ("accuracy", "Accuracy"),
    ("auc", "AUC"),
)


# ---------------------------------------------------------------------- training curves


def _plot_curve_panel(
    ax: Axes, history: Mapping[str, Sequence[float]], key: str, label: str
) -> None:
    for series, name, colour in (
        (key, "train", TRAIN_COLOUR),
        (f"val_{key}", "validation", VAL_COLOUR),
    ):
        values = list(history.get(series, []))
        if values:
            epochs = range(1, len(values) + 1)
            ax.plot(epochs, values, marker="o", markersize=3, color=colour, label=name)
    ax.set_title(label)
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel("Epoch")
    ax.set_ylabel(label)
    ax.grid(alpha=0.3)
    ax.legend()


def training_curves_figure(history: Mapping[str, Sequence[float]]) -> Figure:
    """Train vs validation loss and accuracy per epoch (and AUC when recorded).

    ``history`` is Keras' ``History.history``: ``loss``, ``val_loss``,
    ``accuracy``, ... A panel is drawn for each metric that has any values.
    """
    panels = [
        (key, label)
        for key, label in CURVE_METRICS
        if history.get(key) or history.get(f"val_{key}")
    ]
    if not panels:
        return message_figure("Training curves", "no epochs trained")
    fig = new_figure(4.5 * len(panels), 3.8)
    fig.suptitle("Training curves")
    for ax, (key, label) in zip(
        fig.subplots(1, len(panels), squeeze=False)[0], panels, strict=True
    ):
        _plot_curve_panel(ax, history, key, label)
    return fig


# --------------------------------------------------------------------- confusion matrix


def _cell_text(count: int, row_total: int) -> str:
    share = f"{100.0 * count / row_total:.1f}%" if row_total else "n/a"
    return f"{count}\n({share})"


def confusion_matrix_figure(
    confusion: Mapping[str, int], classes: Sequence[str], title: str
) -> Figure:
    """2x2 heat map, actual on rows and predicted on columns.

    Each cell shows the count and its share of the row (so the diagonal reads
    as specificity and sensitivity); the colour is that row share, which keeps
    the minority class visible.
    """
    if len(classes) != 2:
        raise ValueError(f"expected two class names, got {list(classes)}")
    counts = [[confusion["tn"], confusion["fp"]], [confusion["fn"], confusion["tp"]]]
    return confusion_grid_figure(counts, classes, title)


def confusion_grid_figure(
    counts: Sequence[Sequence[int]], classes: Sequence[str], title: str
) -> Figure:
    """K x K heat map (any K >= 2), actual on rows and predicted on columns, in
    ``classes`` order; cells as in ``confusion_matrix_figure``."""
    matrix = np.asarray(counts, dtype=np.int64)
    k = len(classes)
    if matrix.shape != (k, k):
        raise ValueError(f"expected a {k}x{k} matrix for {list(classes)}, got {matrix.shape}")
    row_totals = matrix.sum(axis=1)
    shares = np.divide(
        matrix, row_totals[:, None], out=np.zeros((k, k)), where=row_totals[:, None] > 0
    )
    side = max(4.8, 1.5 * k + 1.8)
    fig = new_figure(side, side - 0.6)
    ax = fig.add_subplot()
    ax.imshow(shares, cmap="Blues", vmin=0.0, vmax=1.0)
    for row in range(k):
        for col in range(k):
            colour = "white" if shares[row, col] > 0.5 else "black"
            text = _cell_text(int(matrix[row, col]), int(row_totals[row]))
            ax.text(col, row, text, ha="center", va="center", color=colour, fontsize=13)
    ax.set_xticks(range(k), labels=list(classes))
    ax.set_yticks(range(k), labels=list(classes))
    ax.set_xlabel("Predicted")
    ax.set_ylabel("Actual")
    ax.set_title(title)
    return fig


# ---------------------------------------------------------------------------- ROC curve


def _operating_point_label(
    name: str, threshold: float, sensitivity: float, specificity: float
) -> str:
    return f"{name} (t={threshold:.2f}): sens {sensitivity:.2f}, spec {specificity:.2f}"


def _plot_operating_points(
    ax: Axes, y_true: np.ndarray, prob: np.ndarray, points: Mapping[str, float]
) -> None:
    """Mark each threshold at its exact (FPR, TPR), computed from the predictions it makes."""
    for index, (name, threshold) in enumerate(points.items()):
        point = binary_metrics(y_true, prob, threshold)
        sens, spec = point["sensitivity"], point["specificity"]
        ax.plot(
            1.0 - spec,
            sens,
            linestyle="none",
            marker=OPERATING_POINT_MARKERS[index % len(OPERATING_POINT_MARKERS)],
            markersize=8,
            color=CATEGORY_COLOURS[(index + 1) % len(CATEGORY_COLOURS)],
            label=_operating_point_label(name, threshold, sens, spec),
        )


def roc_canvas() -> tuple[Figure, Axes]:
    """A square ROC figure with the chance diagonal drawn, for one or more curves."""
    fig = new_figure(5.5, 5.5)
    ax = fig.add_subplot()
    ax.plot([0, 1], [0, 1], linestyle="--", color=MUTED_COLOUR, label="chance")
    return fig, ax


def finish_roc_axes(ax: Axes, title: str) -> None:
    """The axes every ROC figure shares: unit square, rate labels, grid, legend."""
    ax.set_xlim(0.0, 1.0)
    ax.set_ylim(0.0, 1.02)
    ax.set_aspect("equal")
    ax.set_xlabel("False positive rate (1 - specificity)")
    ax.set_ylabel("True positive rate (sensitivity)")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right", fontsize=8)


def roc_curve_figure(
    y_true: Sequence[int] | np.ndarray,
    prob: Sequence[float] | np.ndarray,
    *,
    auc: float | None,
    operating_points: Mapping[str, float] | None = None,
) -> Figure:
    """ROC curve against the chance diagonal, with markers at chosen thresholds.

    When ``y_true`` holds a single class the curve is undefined; the figure
    then says so instead of drawing NaNs.
    """
    y = np.asarray(y_true).reshape(-1).astype(np.int64)
    p = np.asarray(prob, dtype=np.float64).reshape(-1)
    fig, ax = roc_canvas()
    if np.unique(y).size == 2:
        fpr, tpr, _ = roc_curve(y, p, pos_label=1)
        label = "model" if auc is None else f"model (AUC = {auc:.3f})"
        ax.plot(fpr, tpr, color=TRAIN_COLOUR, linewidth=2, label=label)
        _plot_operating_points(ax, y, p, operating_points or {})
    else:
        ax.text(0.5, 0.6, "ROC undefined:\nonly one class present", ha="center", color=MUTED_COLOUR)
    finish_roc_axes(ax, "ROC curve")
    return fig


def one_vs_rest_roc_figure(
    y_true: Sequence[int] | np.ndarray,
    prob: np.ndarray,
    classes: Sequence[str],
    *,
    aucs: Mapping[str, float | None],
) -> Figure:
    """One ROC curve per class (its probability against "any other class"), multiclass.

    A class with no test image (or only such images) has no curve; the legend says so.
    """
    y = np.asarray(y_true).reshape(-1).astype(np.int64)
    p = np.asarray(prob, dtype=np.float64)
    fig, ax = roc_canvas()
    for k, name in enumerate(classes):
        colour = CATEGORY_COLOURS[k % len(CATEGORY_COLOURS)]
        is_k = y == k
        if is_k.all() or not is_k.any():
            ax.plot([], [], color=colour, label=f"{name}: no ROC (one side empty)")
            continue
        fpr, tpr, _ = roc_curve(is_k, p[:, k])
        value = aucs.get(name)
        label = name if value is None else f"{name} (AUC = {value:.3f})"
        ax.plot(fpr, tpr, color=colour, linewidth=2, label=label)
    finish_roc_axes(ax, "ROC curves, one class against the rest")
    return fig


# ------------------------------------------------------------------------------ gallery


def as_displayable(image: np.ndarray) -> tuple[np.ndarray, float | None, float | None]:
    """Drop a channel axis and fix the grey scale so images are comparable, not auto-stretched."""
    array = np.asarray(image)
    if array.ndim == 3 and array.shape[-1] == 1:
        array = array[..., 0]
    if array.dtype == np.uint8:
        return array, 0.0, 255.0
    if array.size and float(array.min()) >= 0.0 and float(array.max()) <= 1.0:
        return array, 0.0, 1.0
    return array, None, None


def gallery_title(actual: str, predicted: str, prob: float) -> str:
    """Title of one gallery tile, as in the write-up.

    ``prob`` is P(positive class) for a binary model, the predicted class's
    probability for a multiclass one.
    """
    return f"actual: {actual} / predicted: {predicted} (p={prob:.2f})"


def prediction_gallery_figure(
    images: Sequence[np.ndarray],
    actual: Sequence[str],
    predicted: Sequence[str],
    prob: Sequence[float],
    columns: int = 4,
) -> Figure:
    """Grid of grayscale images titled with actual and predicted class; mistakes in red.

    ``prob`` is shown as given (the model's probability of the positive class; of the
    predicted class for a multiclass model).
    The figure has exactly one axes per image.
    """
    n = len(images)
    if not len(actual) == len(predicted) == len(prob) == n:
        raise ValueError("images, actual, predicted and prob must have the same length")
    if columns < 1:
        raise ValueError("columns must be at least 1")
    if n == 0:
        return message_figure("Predictions", "no images")
    cols = min(columns, n)
    rows = math.ceil(n / cols)
    fig = new_figure(3.8 * cols, 4.0 * rows)
    grid = fig.subplots(rows, cols, squeeze=False).ravel()
    for ax, image, truth, guess, p in zip(grid, images, actual, predicted, prob, strict=False):
        array, vmin, vmax = as_displayable(image)
        ax.imshow(array, cmap="gray", vmin=vmin, vmax=vmax)
        colour = RIGHT_COLOUR if truth == guess else WRONG_COLOUR
        ax.set_title(gallery_title(truth, guess, float(p)), color=colour, fontsize=9)
        ax.set_axis_off()
    for ax in grid[n:]:
        ax.remove()
    return fig


# ---------------------------------------------------------------------- reliability


def reliability_diagram_figure(calibration: Mapping[str, object]) -> Figure:
    """Reliability diagram of the test split, before and after the fitted temperature.

    ``calibration`` is the report's ``calibration`` section
    (``chest_xray.evaluation.calibration.calibration_section``). Each point is a bin of
    the predicted probability at (mean probability, observed rate); on the diagonal a
    probability means what it says. The lower panel counts the bins' images, since a
    point made of five images says little.
    """
    test = calibration.get("test")
    if not isinstance(test, Mapping) or not test.get("n"):
        return message_figure("Reliability diagram", "No test predictions to draw")
    fig = new_figure(5.5, 6.5)
    top, bottom = fig.subplots(2, 1, height_ratios=(3, 1), sharex=True)
    top.plot([0, 1], [0, 1], linestyle="--", color=MUTED_COLOUR, label="perfect calibration")
    after = calibration.get("test_calibrated")
    temperature = calibration.get("temperature")
    for name, section, colour, marker in (
        ("model", test, TRAIN_COLOUR, "o"),
        (f"temperature {temperature:.2f}", after, VAL_COLOUR, "s"),
    ):
        if not isinstance(section, Mapping) or "reliability" not in section:
            continue
        curve = section["reliability"]
        label = f"{name} (ECE {section['ece']:.3f})"
        top.plot(
            curve["mean_probability"],
            curve["observed_rate"],
            marker=marker,
            color=colour,
            label=label,
        )
    curve = test["reliability"]
    bottom.bar(curve["mean_probability"], curve["count"], width=0.06, color=TRAIN_COLOUR)
    top.set_xlim(0.0, 1.0)
    top.set_ylim(0.0, 1.02)
    top.set_ylabel("Observed rate of the class")
    top.set_title(f"Reliability, test split (n={test['n']}; {test['binning']})", fontsize=9)
    top.grid(alpha=0.3)
    top.legend(loc="upper left", fontsize=8)
    bottom.set_xlabel("Mean predicted probability of the bin")
    bottom.set_ylabel("Images")
    bottom.grid(alpha=0.3)
    return fig
