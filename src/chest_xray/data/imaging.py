"""Decode any X-ray file (anything Pillow reads, and DICOM) to 8-bit grey, resize it,
encode it as PNG.

Pure functions of bytes -> bytes, so they run on worker threads (Pillow releases
the GIL while it decodes, resizes and encodes) and are tested without Kedro.
Every failure to decode is an ``UnreadableImageError`` carrying the file name,
which the preprocessing node counts as a skip.
"""

from __future__ import annotations

import io
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

# Also read from here by the callers that read images through this module.
from chest_xray.data.decode_budget import decode_budget, decode_cost
from chest_xray.data.image_errors import UnreadableImageError, UnsupportedImageError

ResizeMode = Literal["stretch", "pad"]
# Contrast normalisation after the resize: none (the write-up), global histogram
# equalisation (Pillow) or CLAHE (scikit-image's equalize_adapthist).
Contrast = Literal["none", "equalize", "clahe"]
CLAHE_CLIP_LIMIT = 0.01  # scikit-image's default: the share of a tile's pixels a bin keeps

_SIXTEEN_BIT_MODES = {"I;16", "I;16B", "I;16L", "I;16N", "I"}
_STRIP_PIXELS = 1 << 20  # pixels converted at a time from a 16/32-bit image (8 MB as int64)
# The pixel limit of ``chest-xray predict`` and the served model (``--max-pixels``,
# ``CHEST_XRAY_MAX_IMAGE_PIXELS``): 50 megapixels, three times the largest chest
# detector (43x43 cm at 0.1 mm is 4300x4300) and about 300 MB decoded at 16 bits.
DEFAULT_MAX_PIXELS = 50_000_000

# Recorded with every preprocessed image: bump it when a change here alters the
# pixels of ``preprocess``, so an incremental run redoes every image.
OUTPUT_VERSION = 1


@dataclass(frozen=True)
class OutputSettings:
    """Everything that decides a preprocessed PNG's bytes, passed down as one value."""

    size: tuple[int, int]  # (height, width)
    resize_mode: ResizeMode = "stretch"
    jpeg_draft: bool = True
    png_compress_level: int = 1
    contrast: Contrast = "none"
    border_crop: float = 0.0  # share of the height and width cut from each side first
    via_size: tuple[int, int] | None = None  # (height, width): the copies' path first (via_copy)

    @property
    def key(self) -> str:
        """The settings as one readable string, recorded with every image in the log."""
        height, width = self.size
        draft = "draft" if self.jpeg_draft else "full"
        # The contrast step only appears when on, so logs written before it existed
        # still match (their images had none).
        contrast = "" if self.contrast == "none" else f" {self.contrast}"
        crop = f" crop{self.border_crop:g}" if self.border_crop else ""
        via = "" if self.via_size is None else " via{}x{}".format(*self.via_size)
        return (
            f"v{OUTPUT_VERSION} {height}x{width} {self.resize_mode} {draft} "
            f"zlib{self.png_compress_level}{contrast}{crop}{via}"
        )


@dataclass(frozen=True)
class PreprocessedImage:
    """A PNG plus what the original looked like (for the preprocessing log)."""

    png: bytes
    original_mode: str
    original_width: int
    original_height: int


def to_grey(image: Image.Image) -> Image.Image:
    """Return ``image`` as 8-bit grey (mode L), whatever its mode and bit depth.

    Pillow's ``convert("L")`` clips 16-bit values at 255 instead of scaling
    them, so 16-bit and 32-bit integer images are scaled by their bit depth,
    a strip of rows at a time (never the whole image widened to 64-bit
    integers: a 9400x9400 16-bit PNG would take 700 MB). Alpha is dropped
    (X-rays carry no meaningful transparency); palette and CMYK images go
    through Pillow's own colour conversion, LAB keeps its lightness channel.
    A mode that cannot become grey raises ``ValueError`` naming it.
    """
    if image.mode == "L":
        return image
    if image.mode in _SIXTEEN_BIT_MODES:
        top = 65535
        if image.mode == "I":  # 32-bit: scaled as 16-bit only when it holds such values
            high = image.getextrema()[1]  # computed in C, no copy
            top = 65535 if isinstance(high, int | float) and high > 255 else 255
        return _by_strips(image, lambda v: np.clip(v.astype(np.int64), 0, top) * 255 // top)
    if image.mode == "F":
        return _by_strips(
            image, lambda v: np.clip(np.rint(np.nan_to_num(v.astype(np.float64))), 0, 255)
        )
    if image.mode == "LAB":
        return image.getchannel("L")  # Pillow has no LAB -> RGB; L* is the lightness
    if image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info):
        image = image.convert("RGBA").convert("RGB")
    try:
        return image.convert("L")
    except ValueError as error:
        raise ValueError(f"image mode {image.mode} cannot be converted to grey") from error


def _by_strips(image: Image.Image, scale: Callable[[np.ndarray], np.ndarray]) -> Image.Image:
    """``scale`` applied to ``image``'s values a strip of rows at a time, pasted into one L
    image: the wide intermediate arrays stay a few megabytes whatever the image's size,
    and the result is never copied whole."""
    width, height = image.size
    grey = Image.new("L", (width, height))
    rows = max(1, _STRIP_PIXELS // max(1, width))
    for top in range(0, height, rows):
        strip = np.asarray(image.crop((0, top, width, min(height, top + rows))))
        grey.paste(Image.fromarray(scale(strip).astype(np.uint8), mode="L"), (0, top))
    return grey


def resize(image: Image.Image, size: tuple[int, int], mode: ResizeMode) -> Image.Image:
    """Antialiased (LANCZOS) resize to ``size`` = (height, width).

    ``stretch`` ignores the aspect ratio, as the write-up did; ``pad`` keeps it
    and letterboxes with black.
    """
    height, width = size
    if mode == "stretch":
        return image.resize((width, height), Image.Resampling.LANCZOS)
    return ImageOps.pad(image, (width, height), Image.Resampling.LANCZOS, color=0)


# How the shared copy's 224 px TRAIN images were made from the originals, as measured
# (scripts/resample_shift.py: the nearest of Pillow's filters to the copies; the quality
# that their JPEG quantisation tables are).
VIA_RESAMPLE = Image.Resampling.BILINEAR
VIA_JPEG_QUALITY = 75


def via_copy(
    image: Image.Image, size: tuple[int, int], draft: tuple[int, int] | None = None
) -> Image.Image:
    """``image`` as the shared copy's TRAIN images were made from their originals:
    squashed to ``size`` = (height, width) by a bilinear resize and saved as a JPEG of
    quality 75, then decoded as ``prepare`` decodes such a copy (``draft``: its JPEG
    draft size). ``prepare`` leaves an image already of that size (a copy) alone.

    A model trained on such copies and shown an original otherwise sees a picture that
    reached its size by another path (docs/model_quality.md, "Copies and originals")."""
    height, width = size
    buffer = io.BytesIO()
    image.resize((width, height), VIA_RESAMPLE).save(
        buffer, format="JPEG", quality=VIA_JPEG_QUALITY
    )
    with Image.open(buffer) as copy:
        if draft is not None:
            copy.draft("L", draft)
        return copy.convert("L")


def decode(
    data: bytes,
    name: str,
    *,
    draft_size: tuple[int, int] | None = None,
    max_pixels: int | None = None,
) -> tuple[Image.Image, str, tuple[int, int]]:
    """Decode ``data`` fully, upright (EXIF orientation applied).

    Returns the image with the original's mode and (width, height), which a
    draft decode would otherwise hide.

    ``draft_size`` (width, height) lets libjpeg decode a JPEG at 1/2, 1/4 or 1/8
    scale, never below that size; other formats ignore it. ``max_pixels``
    refuses, from the header and before any pixel is decoded, an image that
    would decode to more pixels (Pillow's own limit always applies).

    DICOM files (``dicom.is_dicom``) go to ``dicom.read_dicom``, which applies the
    DICOM grey-level transforms and returns mode L; their mode reads like
    "DICOM MONOCHROME1 12-bit".
    """
    image, original_mode, original_size = _opened(data, name, draft_size, max_pixels)
    with decode_budget().admit(decode_cost(image.mode, image.width * image.height)):
        return _loaded(image, name), original_mode, original_size


def _loaded(image: Image.Image, name: str) -> Image.Image:
    """The pixels of a lazily opened image, upright; every failure an ``UnreadableImageError``."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image.load()
        # In place: otherwise Pillow returns a copy even when nothing turns (twice the memory).
        ImageOps.exif_transpose(image, in_place=True)
        return image
    except MemoryError as error:
        raise UnreadableImageError(name, "not enough memory to decode it") from error
    except Exception as error:  # OSError, SyntaxError, ValueError... from the decoders
        raise UnreadableImageError(name, f"cannot decode: {_one_line(error)}") from error


def _opened(
    data: bytes, name: str, draft_size: tuple[int, int] | None, max_pixels: int | None
) -> tuple[Image.Image, str, tuple[int, int]]:
    """The lazily opened image (header read, draft chosen, no pixel decoded), and the
    original's mode and size; refused here if it would decode to too many pixels.

    A DICOM file is decoded here already (``dicom.read_dicom`` sizes it from its own
    header and holds the decode budget while it decodes): it comes back in mode L.
    """
    if not data:
        raise UnreadableImageError(name, "empty file (0 bytes)")
    # Imported here: dicom.py imports this module's errors (and pydicom, which only
    # DICOM input needs).
    from chest_xray.data import dicom

    if dicom.is_dicom(data, name):
        read = dicom.read_dicom(data, name, max_pixels=max_pixels)
        return read.image, read.mode, read.size
    try:
        with warnings.catch_warnings():
            # Pillow warns before it raises for images over its pixel limit.
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(data))
            original = (image.mode, image.size)
            if draft_size is not None and image.format == "JPEG":
                image.draft("L" if image.mode in ("L", "RGB") else None, draft_size)
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as error:
        raise UnreadableImageError(
            name, f"image too large, over Pillow's limit: {error}"
        ) from error
    except UnidentifiedImageError as error:
        raise UnreadableImageError(name, "not an image file Pillow can identify") from error
    except (OSError, SyntaxError, ValueError) as error:
        raise UnreadableImageError(name, f"cannot decode: {_one_line(error)}") from error
    width, height = image.size
    if max_pixels is not None and width * height > max_pixels:
        raise UnsupportedImageError(
            name,
            f"image too large: {width}x{height} = {width * height:,} pixels, over the limit "
            f"of {max_pixels:,} pixels",
        )
    return image, *original


def _one_line(error: BaseException) -> str:
    """The error's message on one line, or its type when it has none."""
    return " ".join(str(error).split()) or type(error).__name__


def _has_size(data: bytes, size: tuple[int, int]) -> bool:
    """Whether the header says the image is ``size`` = (height, width)."""
    try:
        with warnings.catch_warnings():  # a bomb is _opened's to refuse, by name
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data)) as header:  # the header only: no pixel decoded
                return header.size == (size[1], size[0])
    except Exception:  # DICOM, or unreadable: _opened reads it, or names what is wrong
        return False


def prepare(
    data: bytes, name: str, settings: OutputSettings, *, max_pixels: int | None = None
) -> tuple[Image.Image, str, tuple[int, int]]:
    """Encoded image -> the grey, resized image ``preprocess`` would save, with the
    original's mode and (width, height).

    What inference calls on a new X-ray: the very pixels training saw, without
    the PNG round trip (PNG is lossless, so skipping it changes nothing).
    Anything that goes wrong on the way (a mode with no grey conversion, a crop
    or resize Pillow refuses) is an ``UnreadableImageError`` naming the file,
    so every caller counts it as a skip.
    """
    # Decode at >= twice the target (a fraction of a grey level from a full decode,
    # docs/benchmarks.md#design-figures); square, since EXIF rotation may swap the axes.
    # With ``via_size``, an original is decoded whole (the copies were resized from a full
    # decode) and its copy as a copy is.
    side = 2 * max(settings.size)
    draft = (side, side) if settings.jpeg_draft else None
    via = settings.via_size
    if via is not None and _has_size(data, via):
        via = None  # a copy already: not made again
    original_draft = draft if via is None else None
    image, original_mode, original_size = _opened(data, name, original_draft, max_pixels)
    with decode_budget().admit(decode_cost(image.mode, image.width * image.height)):
        image = _loaded(image, name)
        try:
            grey = to_grey(image)
            del image  # the full-depth image is freed before the crop and resize
            if via is not None:
                grey = via_copy(grey, via, draft)
            grey = resize(
                crop_border(grey, settings.border_crop), settings.size, settings.resize_mode
            )
            return normalise_contrast(grey, settings.contrast), original_mode, original_size
        except MemoryError as error:
            raise UnreadableImageError(name, "not enough memory to make it grey") from error
        except Exception as error:  # Pillow raises ValueError, OSError, KeyError... per mode
            raise UnsupportedImageError(
                name, f"cannot make a {original_mode} image grey: {_one_line(error)}"
            ) from error


def crop_border(image: Image.Image, share: float) -> Image.Image:
    """``image`` without ``share`` of its height and width on each side.

    The edges of a chest film carry what is not anatomy: the laterality letter,
    hospital text, calipers and the collimation edge. Their style can differ by
    class or period, and a network will use them (Grad-CAM shows the "R" marker
    in the top corner lighting up for PNEUMONIA). Cutting them off before the
    resize keeps them out of every image, training and inference alike.
    """
    if not share:
        return image
    width, height = image.size
    dx, dy = round(share * width), round(share * height)
    return image.crop((dx, dy, width - dx, height - dy))


def normalise_contrast(image: Image.Image, contrast: Contrast) -> Image.Image:
    """Histogram equalisation, global or adaptive (CLAHE), of an 8-bit grey image.

    Exposure and detector response differ between hospitals and years (the
    official TEST set was drawn and graded apart from TRAIN); equalising each
    image's histogram takes the global grey-level distribution out of what the
    network can use. CLAHE does it per tile, with a clip limit so noise in flat
    regions is not amplified. Applied after the resize, on the image the network sees.
    """
    if contrast == "none":
        return image
    if contrast == "equalize":
        return ImageOps.equalize(image)
    from skimage.exposure import equalize_adapthist

    adapted = equalize_adapthist(np.asarray(image), clip_limit=CLAHE_CLIP_LIMIT)
    return Image.fromarray(np.clip(np.rint(adapted * 255), 0, 255).astype(np.uint8), mode="L")


def preprocess(data: bytes, name: str, settings: OutputSettings) -> PreprocessedImage:
    """Encoded image -> grey, resized PNG: the whole per-image preprocessing step
    (Pillow's pixel limit only: training data is the project's own)."""
    grey, original_mode, (original_width, original_height) = prepare(data, name, settings)
    buffer = io.BytesIO()
    grey.save(buffer, format="PNG", compress_level=settings.png_compress_level)
    return PreprocessedImage(buffer.getvalue(), original_mode, original_width, original_height)
