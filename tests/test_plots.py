"""Figures: the right panels, texts and colours, and each renders to a PNG."""

from __future__ import annotations

from collections.abc import Callable
from io import BytesIO

import numpy as np
import pandas as pd
import pytest
from matplotlib.colors import to_hex
from matplotlib.figure import Figure

from chest_xray.plots import (
    RIGHT_COLOUR,
    WRONG_COLOUR,
    plot_confusion_matrix,
    plot_dataset_summary,
    plot_prediction_gallery,
    plot_roc_curve,
    plot_training_curves,
)

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


def _summary() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "split": ["train", "train", "train", "train", "test", "test", "test"],
            "label": [
                *("NORMAL", "PNEUMONIA", "PNEUMONIA", "PNEUMONIA"),
                *("NORMAL", "PNEUMONIA", "PNEUMONIA"),
            ],
            "label_1": ["", "bacteria", "Virus", "Virus", "", "bacteria", "Virus"],
            "label_2": ["", "", "", "COVID-19", "", "", ""],
            "metadata_rows": [10, 20, 6, 3, 4, 7, 2],
            "images": [10, 18, 6, 2, 4, 7, 2],
        }
    )


# --------------------------------------------------------------------- training curves


def test_training_curves_have_loss_and_accuracy_panels() -> None:
    fig = plot_training_curves(HISTORY)

    assert [ax.get_title() for ax in fig.axes] == ["Loss", "Accuracy"]
    loss_ax = fig.axes[0]
    assert [line.get_label() for line in loss_ax.get_lines()] == ["train", "validation"]
    assert list(loss_ax.get_lines()[0].get_xdata()) == [1, 2, 3]  # epochs count from 1
    assert list(loss_ax.get_lines()[1].get_ydata()) == HISTORY["val_loss"]
    assert all(ax.get_xlabel() == "Epoch" for ax in fig.axes)


def test_training_curves_add_auc_panel_when_recorded() -> None:
    fig = plot_training_curves({**HISTORY, "auc": [0.7, 0.8, 0.85], "val_auc": [0.6, 0.7, 0.8]})

    assert [ax.get_title() for ax in fig.axes] == ["Loss", "Accuracy", "AUC"]


def test_training_curves_without_validation_draw_train_only() -> None:
    fig = plot_training_curves({"loss": [0.7, 0.5], "accuracy": [0.6, 0.7]})

    assert [line.get_label() for line in fig.axes[0].get_lines()] == ["train"]


@pytest.mark.parametrize("history", [{}, {"loss": [], "val_loss": []}])
def test_training_curves_of_no_epochs_say_so(history: dict[str, list[float]]) -> None:
    fig = plot_training_curves(history)

    assert len(fig.axes) == 1
    assert _texts(fig) == ["no epochs trained"]


# -------------------------------------------------------------------- confusion matrix


def test_confusion_matrix_shows_counts_and_row_percentages() -> None:
    fig = plot_confusion_matrix({"tn": 3, "fp": 2, "fn": 1, "tp": 4}, CLASSES, "Test @ 0.5")

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
    fig = plot_confusion_matrix({"tn": 0, "fp": 0, "fn": 1, "tp": 4}, CLASSES, "t")

    assert _texts(fig)[:2] == ["0\n(n/a)", "0\n(n/a)"]


# ---------------------------------------------------------------------------- ROC curve


def test_roc_curve_marks_operating_points() -> None:
    y = [0, 0, 1, 1]
    p = [0.1, 0.4, 0.35, 0.8]

    fig = plot_roc_curve(y, p, auc=0.75, operating_points={"0.5": 0.5, "youden": 0.35})

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
    fig = plot_roc_curve([0, 1], [0.2, 0.9], auc=None)

    assert [line.get_label() for line in fig.axes[0].get_lines()] == ["chance", "model"]


def test_roc_curve_of_one_class_says_it_is_undefined() -> None:
    fig = plot_roc_curve([1, 1, 1], [0.2, 0.5, 0.9], auc=None, operating_points={"0.5": 0.5})

    assert [line.get_label() for line in fig.axes[0].get_lines()] == ["chance"]
    assert "only one class present" in _texts(fig)[0]


# ------------------------------------------------------------------------------ gallery


def test_gallery_titles_and_marks_mistakes_in_red() -> None:
    images = [np.full((8, 8), 40 * i, dtype=np.uint8) for i in range(5)]
    actual = ["NORMAL", "PNEUMONIA", "PNEUMONIA", "NORMAL", "PNEUMONIA"]
    predicted = ["NORMAL", "NORMAL", "PNEUMONIA", "PNEUMONIA", "PNEUMONIA"]
    prob = [0.1, 0.3, 0.93, 0.6, 0.999]

    fig = plot_prediction_gallery(images, actual, predicted, prob, columns=4)

    assert len(fig.axes) == 5  # the three unused grid cells are removed
    titles = [ax.title for ax in fig.axes]
    assert titles[2].get_text() == "actual: PNEUMONIA / predicted: PNEUMONIA (p=0.93)"
    assert titles[4].get_text().endswith("(p=1.00)")
    colours = [to_hex(t.get_color()) for t in titles]
    assert colours == [RIGHT_COLOUR, WRONG_COLOUR, RIGHT_COLOUR, WRONG_COLOUR, RIGHT_COLOUR]


def test_gallery_shows_images_grey_on_a_fixed_scale() -> None:
    images = [np.full((6, 6, 1), 0.25, dtype=np.float32), np.full((6, 6), 200, dtype=np.uint8)]

    fig = plot_prediction_gallery(images, ["NORMAL"] * 2, ["NORMAL"] * 2, [0.1, 0.2])

    float_image, byte_image = (ax.get_images()[0] for ax in fig.axes)
    assert float_image.get_array().shape == (6, 6)  # channel axis dropped
    assert float_image.get_clim() == (0.0, 1.0)
    assert byte_image.get_clim() == (0.0, 255.0)
    assert float_image.get_cmap().name == "gray"


def test_gallery_rejects_mismatched_lengths() -> None:
    with pytest.raises(ValueError, match="same length"):
        plot_prediction_gallery([np.zeros((4, 4))], ["NORMAL"], [], [0.5])


def test_gallery_without_images_says_so() -> None:
    assert _texts(plot_prediction_gallery([], [], [], [])) == ["no images"]


# ------------------------------------------------------------------------ data summary


def test_dataset_summary_stacks_subtypes_per_split_and_label() -> None:
    fig = plot_dataset_summary(_summary())

    (ax,) = fig.axes
    ticks = [t.get_text() for t in ax.get_xticklabels()]
    assert ticks == ["NORMAL\ntrain", "PNEUMONIA\ntrain", "NORMAL\ntest", "PNEUMONIA\ntest"]
    # Segments in drawing order: (bar, subtype) with label_2 rows summed into label_1.
    heights = [patch.get_height() for patch in ax.patches]
    assert heights == [10, 18, 8, 4, 7, 2]
    legend = [t.get_text() for t in ax.get_legend().get_texts()]
    assert legend == ["no subtype", "bacteria", "Virus"]
    # Totals on top; train PNEUMONIA lost 3 of 29 metadata rows to missing files.
    assert _texts(fig) == ["10", "26\n(of 29 rows)", "4", "9"]


def test_dataset_summary_rejects_missing_columns() -> None:
    with pytest.raises(ValueError, match="images"):
        plot_dataset_summary(_summary().drop(columns=["images"]))


def test_dataset_summary_of_nothing_says_so() -> None:
    assert _texts(plot_dataset_summary(_summary().iloc[0:0])) == ["no images"]


# ----------------------------------------------------------------------------- all


FIGURES: dict[str, Callable[[], Figure]] = {
    "curves": lambda: plot_training_curves({**HISTORY, "auc": [0.5] * 3, "val_auc": [0.4] * 3}),
    "empty_curves": lambda: plot_training_curves({}),
    "confusion": lambda: plot_confusion_matrix({"tn": 3, "fp": 2, "fn": 1, "tp": 4}, CLASSES, "t"),
    "roc": lambda: plot_roc_curve([0, 1, 0, 1], [0.2, 0.7, 0.4, 0.9], auc=1.0),
    "gallery": lambda: plot_prediction_gallery(
        [np.zeros((8, 8))] * 3, ["NORMAL"] * 3, ["PNEUMONIA"] * 3, [0.7] * 3, columns=2
    ),
    "summary": lambda: plot_dataset_summary(_summary()),
}


@pytest.mark.parametrize("name", FIGURES)
def test_figure_renders_to_png_without_touching_pyplot(name: str) -> None:
    import matplotlib.pyplot as plt

    before = plt.get_fignums()
    fig = FIGURES[name]()

    assert isinstance(fig, Figure)
    assert _png_bytes(fig).startswith(b"\x89PNG\r\n\x1a\n")
    assert plt.get_fignums() == before  # nothing registered in pyplot's global state
