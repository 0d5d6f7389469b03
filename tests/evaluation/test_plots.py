"""Figures: the right panels, texts and colours, and each renders to a PNG."""

from __future__ import annotations

from collections.abc import Callable
from io import BytesIO

import numpy as np
import pytest
from matplotlib.colors import to_hex
from matplotlib.figure import Figure

from chest_xray.data.figures import RIGHT_COLOUR, WRONG_COLOUR
from chest_xray.data.summary import dataset_summary_figure
from chest_xray.evaluation.plots import (
    confusion_matrix_figure,
    prediction_gallery_figure,
    roc_curve_figure,
    training_curves_figure,
)
from tests.data.test_summary import summary_table

CLASSES = ("NORMAL", "PNEUMONIA")
HISTORY = {
    "loss": [0.7, 0.5, 0.4],
    "val_loss": [0.8, 0.6, 0.55],
    "accuracy": [0.6, 0.75, 0.8],
    "val_accuracy": [0.55, 0.7, 0.72],
}


def _texts(fig: Figure) -> list[str]:
    return [text.get_text() for ax in fig.axes for text in ax.texts]


def _png_bytes(fig: Figure) -> bytes:
    buffer = BytesIO()
    fig.savefig(buffer, format="png", dpi=40)
    return buffer.getvalue()


# --------------------------------------------------------------------- training curves


def test_training_curves_have_loss_and_accuracy_panels() -> None:
    fig = training_curves_figure(HISTORY)

    assert [ax.get_title() for ax in fig.axes] == ["Loss", "Accuracy"]
    loss_ax = fig.axes[0]
    assert [line.get_label() for line in loss_ax.get_lines()] == ["train", "validation"]
    assert list(loss_ax.get_lines()[0].get_xdata()) == [1, 2, 3]  # epochs count from 1
    assert list(loss_ax.get_lines()[1].get_ydata()) == HISTORY["val_loss"]
    assert all(ax.get_xlabel() == "Epoch" for ax in fig.axes)


def test_training_curves_add_auc_panel_when_recorded() -> None:
    fig = training_curves_figure({**HISTORY, "auc": [0.7, 0.8, 0.85], "val_auc": [0.6, 0.7, 0.8]})

    assert [ax.get_title() for ax in fig.axes] == ["Loss", "Accuracy", "AUC"]


def test_training_curves_without_validation_draw_train_only() -> None:
    fig = training_curves_figure({"loss": [0.7, 0.5], "accuracy": [0.6, 0.7]})

    assert [line.get_label() for line in fig.axes[0].get_lines()] == ["train"]


@pytest.mark.parametrize("history", [{}, {"loss": [], "val_loss": []}])
def test_training_curves_of_no_epochs_say_so(history: dict[str, list[float]]) -> None:
    fig = training_curves_figure(history)

    assert len(fig.axes) == 1
    assert _texts(fig) == ["no epochs trained"]


# -------------------------------------------------------------------- confusion matrix


def test_confusion_matrix_shows_counts_and_row_percentages() -> None:
    fig = confusion_matrix_figure({"tn": 3, "fp": 2, "fn": 1, "tp": 4}, CLASSES, "Test @ 0.5")

    (ax,) = fig.axes
    # Reading order is row by row: actual NORMAL (tn, fp), then actual PNEUMONIA (fn, tp).
    assert _texts(fig) == ["3\n(60.0%)", "2\n(40.0%)", "1\n(20.0%)", "4\n(80.0%)"]
    positions = [text.get_position() for text in ax.texts]
    assert positions == [(0, 0), (1, 0), (0, 1), (1, 1)]  # (column=predicted, row=actual)
    assert ax.get_title() == "Test @ 0.5"
    assert (ax.get_xlabel(), ax.get_ylabel()) == ("Predicted", "Actual")
    assert [t.get_text() for t in ax.get_xticklabels()] == list(CLASSES)
    assert [t.get_text() for t in ax.get_yticklabels()] == list(CLASSES)


def test_confusion_matrix_with_an_empty_row() -> None:
    fig = confusion_matrix_figure({"tn": 0, "fp": 0, "fn": 1, "tp": 4}, CLASSES, "t")

    assert _texts(fig)[:2] == ["0\n(n/a)", "0\n(n/a)"]


# ---------------------------------------------------------------------------- ROC curve


def test_roc_curve_marks_operating_points() -> None:
    y = [0, 0, 1, 1]
    p = [0.1, 0.4, 0.35, 0.8]

    fig = roc_curve_figure(y, p, auc=0.75, operating_points={"0.5": 0.5, "youden": 0.35})

    (ax,) = fig.axes
    labels = [line.get_label() for line in ax.get_lines()]
    assert labels[:2] == ["chance", "model (AUC = 0.750)"]
    # At 0.5 only 0.8 is positive: sens 0.5, spec 1 -> (FPR 0, TPR 0.5).
    # At 0.35: 0.8, 0.4 and 0.35 positive: sens 1, spec 0.5 -> (FPR 0.5, TPR 1).
    assert labels[2:] == [
        "0.5 (t=0.50): sens 0.50, spec 1.00",
        "youden (t=0.35): sens 1.00, spec 0.50",
    ]
    points = [(line.get_xdata()[0], line.get_ydata()[0]) for line in ax.get_lines()[2:]]
    assert points == [(0.0, 0.5), (0.5, 1.0)]
    assert {t.get_text() for t in ax.get_legend().get_texts()} == set(labels)


def test_roc_curve_without_auc_or_points() -> None:
    fig = roc_curve_figure([0, 1], [0.2, 0.9], auc=None)

    assert [line.get_label() for line in fig.axes[0].get_lines()] == ["chance", "model"]


def test_roc_curve_of_one_class_says_it_is_undefined() -> None:
    fig = roc_curve_figure([1, 1, 1], [0.2, 0.5, 0.9], auc=None, operating_points={"0.5": 0.5})

    assert [line.get_label() for line in fig.axes[0].get_lines()] == ["chance"]
    assert "only one class present" in _texts(fig)[0]


# ------------------------------------------------------------------------------ gallery


def test_gallery_titles_and_marks_mistakes_in_red() -> None:
    images = [np.full((8, 8), 40 * i, dtype=np.uint8) for i in range(5)]
    actual = ["NORMAL", "PNEUMONIA", "PNEUMONIA", "NORMAL", "PNEUMONIA"]
    predicted = ["NORMAL", "NORMAL", "PNEUMONIA", "PNEUMONIA", "PNEUMONIA"]
    prob = [0.1, 0.3, 0.93, 0.6, 0.999]

    fig = prediction_gallery_figure(images, actual, predicted, prob, columns=4)

    assert len(fig.axes) == 5  # the three unused grid cells are removed
    titles = [ax.title for ax in fig.axes]
    assert titles[2].get_text() == "actual: PNEUMONIA / predicted: PNEUMONIA (p=0.93)"
    assert titles[4].get_text().endswith("(p=1.00)")
    colours = [to_hex(t.get_color()) for t in titles]
    assert colours == [RIGHT_COLOUR, WRONG_COLOUR, RIGHT_COLOUR, WRONG_COLOUR, RIGHT_COLOUR]


def test_gallery_shows_images_grey_on_a_fixed_scale() -> None:
    images = [np.full((6, 6, 1), 0.25, dtype=np.float32), np.full((6, 6), 200, dtype=np.uint8)]

    fig = prediction_gallery_figure(images, ["NORMAL"] * 2, ["NORMAL"] * 2, [0.1, 0.2])

    float_image, byte_image = (ax.get_images()[0] for ax in fig.axes)
    assert float_image.get_array().shape == (6, 6)  # channel axis dropped
    assert float_image.get_clim() == (0.0, 1.0)
    assert byte_image.get_clim() == (0.0, 255.0)
    assert float_image.get_cmap().name == "gray"


def test_gallery_rejects_mismatched_lengths() -> None:
    with pytest.raises(ValueError, match="same length"):
        prediction_gallery_figure([np.zeros((4, 4))], ["NORMAL"], [], [0.5])


def test_gallery_without_images_says_so() -> None:
    assert _texts(prediction_gallery_figure([], [], [], [])) == ["no images"]


# ----------------------------------------------------------------------------- all


FIGURES: dict[str, Callable[[], Figure]] = {
    "curves": lambda: training_curves_figure({**HISTORY, "auc": [0.5] * 3, "val_auc": [0.4] * 3}),
    "empty_curves": lambda: training_curves_figure({}),
    "confusion": lambda: confusion_matrix_figure(
        {"tn": 3, "fp": 2, "fn": 1, "tp": 4}, CLASSES, "t"
    ),
    "roc": lambda: roc_curve_figure([0, 1, 0, 1], [0.2, 0.7, 0.4, 0.9], auc=1.0),
    "gallery": lambda: prediction_gallery_figure(
        [np.zeros((8, 8))] * 3, ["NORMAL"] * 3, ["PNEUMONIA"] * 3, [0.7] * 3, columns=2
    ),
    "summary": lambda: dataset_summary_figure(summary_table()),
}


@pytest.mark.parametrize("name", FIGURES)
def test_figure_renders_to_png_without_touching_pyplot(name: str) -> None:
    import matplotlib.pyplot as plt

    before = plt.get_fignums()
    fig = FIGURES[name]()

    assert isinstance(fig, Figure)
    assert _png_bytes(fig).startswith(b"\x89PNG\r\n\x1a\n")
    assert plt.get_fignums() == before  # nothing registered in pyplot's global state
