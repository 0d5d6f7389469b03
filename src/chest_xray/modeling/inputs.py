"""Getting PNG partitions into Keras as compact uint8 arrays.

A float32 copy of the training split is four times the uint8 one (at 300x300,
gigabytes: docs/benchmarks.md#design-figures), so images stay uint8 until a
batch is on its way to the model, which rescales them itself.
"""

from __future__ import annotations

import io
from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pandas as pd
from PIL import Image

from chest_xray.data.partitions import PartitionLoaders, resolve_workers

# Below this many images a progress bar is noise in the log.
_PROGRESS_MIN_IMAGES = 500


def split_rows(manifest: pd.DataFrame, split: str) -> pd.DataFrame:
    """The manifest's rows of ``split`` (train / validation / test), in ``image_id`` order."""
    rows = manifest[manifest["split"] == split]
    return rows.sort_values("image_id").reset_index(drop=True)


def label_indices(rows: pd.DataFrame, classes: Sequence[str]) -> np.ndarray:
    """Each row's ``label`` as its index in ``classes`` (the model's target)."""
    unknown = sorted(set(rows["label"]) - set(classes))
    if unknown:
        raise ValueError(f"split_manifest has label(s) {unknown} not in classes {tuple(classes)}")
    return rows["label"].map({name: index for index, name in enumerate(classes)}).to_numpy()


def decode_grey_png(data: bytes, *, key: str = "") -> np.ndarray:
    """Decode an 8-bit grayscale PNG to (H, W) uint8; anything else is a preprocessing bug.

    A PNG that does not decode (damaged on disk) is an error naming the image and
    the fix: a data_processing run that verifies every PNG's digest rebuilds it (a
    plain rerun trusts a PNG whose size and modification time are unchanged).
    """
    try:
        with Image.open(io.BytesIO(data)) as image:
            image.load()
            mode = image.mode
            pixels = np.asarray(image, dtype=np.uint8).copy()
    except (OSError, SyntaxError, ValueError) as error:
        raise ValueError(
            f"The preprocessed image {key!r} (processed_images: {key}.png) does not decode "
            f"({error}); rebuild it with `kedro run --pipelines=data_processing "
            "--params=preprocessing.verify_pngs=true`"
        ) from error
    if mode != "L":
        raise ValueError(f"Image {key!r} has mode {mode!r}; expected 8-bit grayscale 'L'")
    return pixels


def load_image_array(
    loaders: PartitionLoaders,
    keys: Iterable[str],
    threads: int = 0,
    *,
    progress: bool | None = None,
) -> np.ndarray:
    """Decode ``keys`` (in that order) into one preallocated (N, H, W, 1) uint8 array.

    Decoding runs on a thread pool (PIL and zlib release the GIL) and each
    thread writes straight into its row, so peak memory is the result plus one
    image per thread. ``threads=0`` uses one thread per CPU core; ``progress``
    None shows a tqdm bar only for large loads.
    """
    keys = list(keys)  # a pandas Series would index by label and refuse `not keys`
    if not keys:
        raise ValueError("No images to load: the list of keys is empty")
    missing = [key for key in keys if key not in loaders]
    if missing:
        raise KeyError(f"{len(missing)} image(s) not found, first: {missing[0]!r}")

    first = decode_grey_png(loaders[keys[0]](), key=keys[0])
    out = np.empty((len(keys), *first.shape, 1), dtype=np.uint8)
    out[0, ..., 0] = first

    def fill(row: int) -> None:
        key = keys[row]
        image = decode_grey_png(loaders[key](), key=key)
        if image.shape != first.shape:
            raise ValueError(
                f"Image {key!r} is {image.shape[0]}x{image.shape[1]}, but {keys[0]!r} is "
                f"{first.shape[0]}x{first.shape[1]}; all images must share one size"
            )
        out[row, ..., 0] = image

    with ThreadPoolExecutor(max_workers=resolve_workers(threads)) as pool:
        done = pool.map(fill, range(1, len(keys)))
        show = len(keys) >= _PROGRESS_MIN_IMAGES if progress is None else progress
        if show:
            from tqdm.auto import tqdm

            done = tqdm(done, total=len(keys) - 1, desc="Loading images", unit="img")
        for _ in done:  # consuming re-raises the first worker error
            pass
    return out
