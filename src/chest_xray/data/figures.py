"""What every chart of the project shares: one palette and two figure constructors.

Figures are built directly (never through ``pyplot``), so no figure is
registered in global state and nothing depends on the backend; the catalog
saves them (``matplotlib.MatplotlibDataset``). Used by ``data.summary`` and
``evaluation.plots``, ``.cross_validation`` and ``.gradcam``: in ``data``, the lower of
the two rooms, so that evaluation imports it upwards and never the other way.
"""

from __future__ import annotations

from matplotlib.figure import Figure

# One palette for every figure, so train/validation and classes read the same everywhere.
TRAIN_COLOUR = "#1f77b4"
VAL_COLOUR = "#ff7f0e"
WRONG_COLOUR = "#d62728"
RIGHT_COLOUR = "#222222"
MUTED_COLOUR = "#888888"
CATEGORY_COLOURS = ("#4c72b0", "#dd8452", "#55a868", "#c44e52", "#8172b3", "#937860", "#da8bc3")
OPERATING_POINT_MARKERS = ("o", "s", "D", "^", "v", "P", "X")


def new_figure(width: float, height: float) -> Figure:
    """A constrained-layout figure of ``width`` x ``height`` inches."""
    return Figure(figsize=(width, height), layout="constrained")


def message_figure(title: str, message: str) -> Figure:
    """A figure that says why there is nothing to plot, so a report never lacks the file."""
    fig = new_figure(5.0, 3.0)
    ax = fig.add_subplot()
    ax.set_title(title)
    ax.text(0.5, 0.5, message, ha="center", va="center", fontsize=12, color=MUTED_COLOUR)
    ax.set_axis_off()
    return fig
