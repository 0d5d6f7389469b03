"""The out-of-distribution guard: is this image a chest X-ray like the ones the model learnt from?

A classifier returns a pneumonia probability for anything that decodes: a photograph,
a hand, an inverted or rotated film, a blank or noise image. The guard scores how
unlike the training images an image is, so that such an image is flagged instead of
labelled NORMAL or PNEUMONIA.

The score is the Mahalanobis distance of 66 cheap statistics of the preprocessed grey
image (intensity quantiles and histogram, edge and Laplacian energy at two scales,
left-right and top-bottom symmetry, row and column profiles, a 4x4 grid of block means,
corners against the centre) from those of the TRAIN images, with a Ledoit-Wolf shrunk
covariance (stable with few images). Why statistics, not the network's penultimate
features: they need no network, so the guard does not move when the weights do, and a
frontal chest film has a strong, simple layout (dark lungs either side of a bright spine,
symmetric, taller than wide) that these numbers capture; measured in docs/ood.md.

The threshold is a quantile (0.99 by default) of the VALIDATION images' scores, so
about 1% of real X-rays like the training ones are flagged by design.

Pure NumPy / scikit-learn: no Kedro, no Keras. Saved as one ``.npz`` of plain arrays
(loaded without pickle).
"""

from __future__ import annotations

import io
import logging
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from chest_xray.data.files import write_atomically

logger = logging.getLogger(__name__)

# Bump when the features change: a guard of another version is refused (its numbers
# would be compared with different statistics).
FEATURE_VERSION = 1
# Every image is reduced to this (height, width) before its statistics, so the guard's
# numbers do not depend on the model's input size.
FEATURE_SIZE = (64, 64)
# A feature's spread on TRAIN is floored at this (features are on a 0..1 scale), so a
# statistic that is nearly constant on TRAIN (e.g. no saturated pixel) does not turn a
# one-pixel difference into an alarm.
_MIN_SCALE = 0.01
_QUANTILES = (0.01, 0.05, 0.1, 0.25, 0.5, 0.75, 0.9, 0.95, 0.99)
_BANDS = 6
# Fewer validation images than this and the quantile is a guess: the train images' own
# scores are used instead (said in the guard's threshold_source).
MIN_THRESHOLD_IMAGES = 20


class OodGuardError(ValueError):
    """A guard that cannot be fitted or read (names the file or the reason)."""


def image_features(pixels: np.ndarray) -> np.ndarray:
    """(H, W) or (H, W, 1) uint8 grey image -> its statistics (float64, about 0..1 each)."""
    grey = np.asarray(pixels)
    if grey.ndim == 3 and grey.shape[-1] == 1:
        grey = grey[..., 0]
    if grey.ndim != 2 or grey.size == 0:
        raise ValueError(f"image_features takes a grey (H, W) image, got shape {grey.shape}")
    bilinear = Image.Resampling.BILINEAR
    small = Image.fromarray(grey.astype(np.uint8)).resize(FEATURE_SIZE[::-1], bilinear)
    x = np.asarray(small, dtype=np.float64) / 255.0
    return np.concatenate([_intensity(x), _texture(x), _layout(x)])


def _intensity(x: np.ndarray) -> np.ndarray:
    """Quantiles, mean, spread, an 8-bin histogram, the share of black and white pixels."""
    histogram = np.histogram(x, bins=8, range=(0.0, 1.0))[0] / x.size
    extremes = [np.mean(x <= 2 / 255), np.mean(x >= 253 / 255)]
    return np.concatenate([np.quantile(x, _QUANTILES), [x.mean(), x.std()], histogram, extremes])


def _texture(x: np.ndarray) -> np.ndarray:
    """Edge and fine-detail energy at two scales, and how they compare: a film's texture
    at 64 px is not a crop's (enlarged, smoother) nor noise's (all fine detail)."""
    height, width = x.shape
    coarse = x.reshape(height // 2, 2, width // 2, 2).mean(axis=(1, 3))
    fine, broad = _edges(x), _edges(coarse)
    return np.concatenate([fine, broad, fine[[0, 3]] / (broad[[0, 3]] + 1e-6)])


def _edges(x: np.ndarray) -> np.ndarray:
    """Edges across and along, their balance, and fine detail (the Laplacian)."""
    across = np.abs(np.diff(x, axis=1)).mean()
    along = np.abs(np.diff(x, axis=0)).mean()
    laplacian = np.abs(
        4 * x[1:-1, 1:-1] - x[:-2, 1:-1] - x[2:, 1:-1] - x[1:-1, :-2] - x[1:-1, 2:]
    ).mean()
    return np.array([across, along, across / (across + along + 1e-6), laplacian])


def _layout(x: np.ndarray) -> np.ndarray:
    """Where the brightness is: symmetry, row and column bands, a 4x4 grid of block means,
    corners against the centre."""
    height, width = x.shape
    left_right = np.abs(x - x[:, ::-1]).mean()
    top_bottom = np.abs(x - x[::-1, :]).mean()
    rows = [band.mean() for band in np.array_split(x, _BANDS, axis=0)]
    columns = [band.mean() for band in np.array_split(x, _BANDS, axis=1)]
    h, w = height // 4, width // 4
    centre = x[h:-h, w:-w].mean()
    corners = [x[:h, :w], x[:h, -w:], x[-h:, :w], x[-h:, -w:]]
    corner_contrast = [corner.mean() - centre + 0.5 for corner in corners]
    grid = [b.mean() for r in np.array_split(x, 4, axis=0) for b in np.array_split(r, 4, axis=1)]
    return np.array([left_right, top_bottom, *rows, *columns, *grid, centre, *corner_contrast])


def feature_matrix(images: Iterable[np.ndarray]) -> np.ndarray:
    """The statistics of each image, one row each; images are consumed one at a time
    (a generator of decoded images keeps memory at one image)."""
    rows = [image_features(image) for image in images]
    if not rows:
        return np.zeros((0, len(image_features(np.zeros((8, 8), np.uint8)))))
    return np.vstack(rows)


@dataclass(frozen=True)
class OodGuard:
    """A fitted guard: ``score`` > ``threshold`` means unlike the training images."""

    centre: np.ndarray  # per-feature mean on TRAIN
    scale: np.ndarray  # per-feature spread on TRAIN (floored)
    precision: np.ndarray  # inverse of the shrunk covariance of the scaled features
    threshold: float
    quantile: float
    n_fit: int  # TRAIN images fitted on
    n_threshold: int  # images the threshold's quantile was taken over
    threshold_source: str  # "validation" or "train (too few validation images)"

    def score_features(self, features: np.ndarray) -> np.ndarray:
        """Mahalanobis distance of each row of ``features`` from the TRAIN images."""
        z = (np.atleast_2d(features) - self.centre) / self.scale
        squared = np.einsum("ij,jk,ik->i", z, self.precision, z)
        return np.sqrt(np.maximum(squared, 0.0))

    def scores(self, images: Iterable[np.ndarray]) -> np.ndarray:
        """The distance of each (H, W[, 1]) uint8 image; an (N, H, W, 1) array works too."""
        return self.score_features(feature_matrix(images))

    def flags(self, scores: np.ndarray) -> np.ndarray:
        """True where a score is over the threshold."""
        return np.asarray(scores) > self.threshold

    def reason(self, score: float) -> str:
        """Why an image is flagged, in words like the skip reasons."""
        return (
            f"out of distribution: score {score:.1f} over the guard's threshold "
            f"{self.threshold:.1f} (not like the chest X-rays the model learnt from)"
        )

    def describe(self) -> str:
        return (
            f"OOD guard: {self.n_fit} TRAIN images, threshold {self.threshold:.2f} = "
            f"{self.quantile:.0%} quantile of {self.n_threshold} {self.threshold_source} images"
        )


def fit_guard(
    train: Iterable[np.ndarray], validation: Iterable[np.ndarray], quantile: float = 0.99
) -> OodGuard:
    """Fit on ``train`` images, set the threshold at ``quantile`` of ``validation``'s scores.

    Both are iterables of grey uint8 images, consumed one at a time. Too few validation
    images (under ``MIN_THRESHOLD_IMAGES``) and the train images' scores set it instead.
    """
    from sklearn.covariance import LedoitWolf

    if not 0.5 <= quantile < 1.0:
        raise OodGuardError(f"the guard's quantile must be in [0.5, 1), got {quantile}")
    features = feature_matrix(train)
    if len(features) < 2:
        raise OodGuardError(
            f"the OOD guard needs at least 2 TRAIN images to fit on, got {len(features)}"
        )
    centre = features.mean(axis=0)
    scale = np.maximum(features.std(axis=0), _MIN_SCALE)
    estimator = LedoitWolf().fit((features - centre) / scale)
    guard = OodGuard(centre, scale, estimator.precision_, np.inf, quantile, len(features), 0, "")
    held_out = feature_matrix(validation)
    if len(held_out) >= MIN_THRESHOLD_IMAGES:
        reference, source = guard.score_features(held_out), "validation"
    else:
        logger.warning(
            "Only %d validation images: the OOD guard's threshold is set on the %d TRAIN "
            "images instead (it will flag fewer images than the quantile says)",
            len(held_out),
            len(features),
        )
        reference, source = guard.score_features(features), "train (too few validation images)"
    threshold = float(np.quantile(reference, quantile))
    return OodGuard(
        centre,
        scale,
        estimator.precision_,
        threshold,
        quantile,
        len(features),
        len(reference),
        source,
    )


_ARRAYS = ("centre", "scale", "precision")


def guard_bytes(guard: OodGuard) -> bytes:
    """The guard as one ``.npz`` (plain arrays, no pickle)."""
    buffer = io.BytesIO()
    np.savez(
        buffer,
        feature_version=np.int64(FEATURE_VERSION),
        centre=guard.centre,
        scale=guard.scale,
        precision=guard.precision,
        threshold=np.float64(guard.threshold),
        quantile=np.float64(guard.quantile),
        n_fit=np.int64(guard.n_fit),
        n_threshold=np.int64(guard.n_threshold),
        threshold_source=np.str_(guard.threshold_source),
    )
    return buffer.getvalue()


def save_guard(guard: OodGuard, path: str | Path) -> None:
    """Write the guard to ``path``, whole or not at all."""
    write_atomically(str(path), guard_bytes(guard))


def load_guard(path: str | Path) -> OodGuard:
    """Read a guard written by ``save_guard``; a damaged or foreign file is refused, named."""
    try:
        with np.load(path, allow_pickle=False) as stored:
            version = int(stored["feature_version"])
            if version != FEATURE_VERSION:
                raise OodGuardError(
                    f"{path}: an OOD guard of feature version {version}; this version of "
                    f"chest-xray reads version {FEATURE_VERSION} (package the model again)"
                )
            arrays = {name: np.asarray(stored[name], dtype=np.float64) for name in _ARRAYS}
            guard = OodGuard(
                **arrays,
                threshold=float(stored["threshold"]),
                quantile=float(stored["quantile"]),
                n_fit=int(stored["n_fit"]),
                n_threshold=int(stored["n_threshold"]),
                threshold_source=str(stored["threshold_source"]),
            )
    except (OSError, KeyError, ValueError) as error:
        if isinstance(error, OodGuardError):
            raise
        raise OodGuardError(f"{path}: not a readable OOD guard ({error})") from error
    n = len(guard.centre)
    if guard.scale.shape != (n,) or guard.precision.shape != (n, n):
        raise OodGuardError(f"{path}: an OOD guard whose arrays do not fit together")
    return guard
