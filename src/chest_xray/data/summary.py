"""Counts of the dataset by split, label and category, checked against Kaggle's own summary,
and the stacked-bar chart of them (``dataset_summary_plot``)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import pandas as pd
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from chest_xray.data.figures import CATEGORY_COLOURS, message_figure, new_figure
from chest_xray.data.metadata import clean_text

GROUPS = ["split", "label", "label_1", "label_2"]
CATEGORY = ["label", "label_1", "label_2"]


def summarise(tidy: pd.DataFrame, index: pd.DataFrame) -> pd.DataFrame:
    """Metadata rows and usable images per (split, label, label_1, label_2).

    ``metadata_rows`` counts every row of the CSV; ``images`` counts the rows
    whose file is present (the joined index).
    """
    rows = tidy.groupby(GROUPS).size().rename("metadata_rows")
    images = index.groupby(GROUPS).size().rename("images")
    summary = pd.concat([rows, images], axis=1).fillna(0).astype(int).reset_index()
    return summary.sort_values(GROUPS).reset_index(drop=True)


def compare_with_shipped(
    summary: pd.DataFrame, shipped: pd.DataFrame, label_map: Mapping[str, str]
) -> pd.DataFrame:
    """Per category: Kaggle's ``Image_Count`` beside our metadata rows and images.

    Kaggle's summary counts metadata rows over both splits, so ``metadata_rows``
    must equal ``shipped`` and, where every row has its file, so must
    ``images``.
    """
    theirs = pd.DataFrame(
        {
            "label": clean_text(shipped["Label"]).map(label_map),
            "label_1": clean_text(shipped["Label_1_Virus_category"]),
            "label_2": clean_text(shipped["Label_2_Virus_category"]),
            "shipped": shipped["Image_Count"].astype(int),
        }
    )
    ours = summary.groupby(CATEGORY)[["metadata_rows", "images"]].sum().reset_index()
    merged = theirs.merge(ours, on=CATEGORY, how="outer").fillna(0)
    return merged.astype({"shipped": int, "metadata_rows": int, "images": int})


# ------------------------------------------------------------------------ the chart

NO_SUBTYPE = "no subtype"

SUMMARY_COLUMNS = ("split", "label", "label_1", "images", "metadata_rows")
SPLIT_ORDER = ("train", "test")
LABEL_ORDER = ("NORMAL", "PNEUMONIA")


def _ordered(values: Sequence[str], preferred: Sequence[str]) -> list[str]:
    """Known values in their usual order first, then any others as they appear."""
    present = list(dict.fromkeys(values))
    return [v for v in preferred if v in present] + [v for v in present if v not in preferred]


def _summary_table(summary: pd.DataFrame) -> pd.DataFrame:
    """Images and metadata rows per (split, label, label_1), with blank subtypes named."""
    missing = [column for column in SUMMARY_COLUMNS if column not in summary.columns]
    if missing:
        raise ValueError(f"summary lacks columns: {missing}")
    table = summary.loc[:, list(SUMMARY_COLUMNS)].copy()
    for column in ("split", "label", "label_1"):
        table[column] = table[column].fillna("").astype(str).str.strip()
    table["label_1"] = table["label_1"].replace("", NO_SUBTYPE)
    grouped = table.groupby(["split", "label", "label_1"], sort=False, as_index=False)
    return grouped[["images", "metadata_rows"]].sum()


def _bar_annotation(images: int, metadata_rows: int) -> str:
    """Total images, plus the metadata row count when some rows had no file."""
    return f"{images}" if images == metadata_rows else f"{images}\n(of {metadata_rows} rows)"


def dataset_summary_figure(summary: pd.DataFrame) -> Figure:
    """Images per split and label, each bar stacked by subtype (``label_1``).

    Bars are annotated with their totals and, where metadata rows lack an
    image file, how many rows there were.
    """
    table = _summary_table(summary)
    if table.empty:
        return message_figure("Dataset", "no images")
    splits = _ordered(table["split"].tolist(), SPLIT_ORDER)
    labels = _ordered(table["label"].tolist(), LABEL_ORDER)
    subtypes = _ordered(table["label_1"].tolist(), (NO_SUBTYPE,))
    colours = {s: CATEGORY_COLOURS[i % len(CATEGORY_COLOURS)] for i, s in enumerate(subtypes)}
    bars = [(split, label) for split in splits for label in labels]
    fig = new_figure(max(6.0, 1.6 * len(bars) + 2.0), 4.8)
    ax = fig.add_subplot()
    # A gap between splits: bar i sits at i plus 0.6 per earlier split.
    positions = {bar: i + (i // len(labels)) * 0.6 for i, bar in enumerate(bars)}
    _draw_stacked_bars(ax, table, positions, subtypes, colours)
    ax.set_xticks(list(positions.values()), labels=[f"{label}\n{split}" for split, label in bars])
    ax.set_ylabel("Images")
    ax.set_title("Images per split, label and subtype")
    ax.legend(title="subtype (label_1)", fontsize=8)
    ax.grid(axis="y", alpha=0.3)
    ax.margins(y=0.15)
    return fig


def _draw_stacked_bars(
    ax: Axes,
    table: pd.DataFrame,
    positions: Mapping[tuple[str, str], float],
    subtypes: Sequence[str],
    colours: Mapping[str, str],
) -> None:
    """One stacked bar per (split, label); each subtype gets one legend entry."""
    labelled: set[str] = set()
    for (split, label), x in positions.items():
        rows = table[(table["split"] == split) & (table["label"] == label)]
        bottom = 0
        for subtype in subtypes:
            count = int(rows.loc[rows["label_1"] == subtype, "images"].sum())
            if count == 0:
                continue
            legend = subtype if subtype not in labelled else "_nolegend_"
            labelled.add(subtype)
            ax.bar(x, count, bottom=bottom, width=0.8, color=colours[subtype], label=legend)
            bottom += count
        annotation = _bar_annotation(bottom, int(rows["metadata_rows"].sum()))
        ax.text(x, bottom, annotation, ha="center", va="bottom", fontsize=9)
