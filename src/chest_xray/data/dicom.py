"""Decode a DICOM X-ray to the 8-bit grey image a radiologist's viewer would show.

Bytes in, Pillow image out, so ``imaging.decode`` hands DICOM files here and the
training preprocessing and inference share one decoder. The grey levels follow
the DICOM display pipeline (PS3.3 C.11 and C.7.6.3.1.2):

1. the modality LUT (Rescale Slope/Intercept or a Modality LUT Sequence) turns
   stored values into modality units;
2. the VOI LUT (the first VOI LUT Sequence item, else the first Window
   Center/Width) picks the range a viewer shows; without one, the whole nominal range of the stored
   values (Bits Stored and Pixel Representation, through the modality LUT) is
   shown, widened to the actual values should any fall outside it. The nominal
   range rather than the image's min-max keeps one device's images comparable
   (exposure is information) and matches how ``imaging.to_grey`` scales 16-bit
   PNGs by their bit depth; an 8-bit image keeps its values exactly;
3. that range is scaled to 0..255 (``floor(255 * (v - low) / (high - low))``,
   as ``to_grey`` does), then MONOCHROME1 is inverted so bone is bright, as in
   MONOCHROME2.

Colour images (RGB, YBR) become grey through Pillow's ``convert("L")``, as other
colour files do. What cannot be decoded faithfully is refused with a reason,
never guessed at: multi-frame files, files without pixel data, images over
Pillow's pixel limit (checked on the header, before any pixel is decoded), and
transfer syntaxes no installed pydicom decoder handles.
"""

from __future__ import annotations

import io
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import PurePath

import numpy as np
from PIL import Image
from pydicom import dcmread
from pydicom.dataelem import RawDataElement
from pydicom.dataset import Dataset
from pydicom.pixels import (
    apply_modality_lut,
    apply_windowing,
    get_decoder,
    pixel_array,
)
from pydicom.uid import UID, ExplicitVRLittleEndian, ImplicitVRLittleEndian, JPEGExtended12Bit

from chest_xray.data.decode_budget import decode_budget
from chest_xray.data.image_errors import UnreadableImageError, UnsupportedImageError

DICOM_SUFFIXES = (".dcm", ".dicom")

_MAGIC_OFFSET = 128  # the preamble's length; "DICM" follows it
_MONOCHROME = ("MONOCHROME1", "MONOCHROME2")
# pydicom returns YBR_FULL(_422) as RGB; JPEG decoders return YBR_ICT/RCT/PARTIAL as RGB.
_COLOUR = ("RGB", "YBR_FULL", "YBR_FULL_422", "YBR_ICT", "YBR_RCT", "YBR_PARTIAL_420")
_UNDEFINED_LENGTH = 0xFFFFFFFF
# Peak bytes per pixel while decoding: the stored values (up to 4 for colour), the
# 8-bit result (up to 3) and its grey copy (1); the float64 transforms run by strips.
_DECODE_BYTES_PER_PIXEL = 8


@dataclass(frozen=True)
class DicomImage:
    """A decoded DICOM image plus the description the preprocessing log records."""

    image: Image.Image  # mode L
    mode: str  # e.g. "DICOM MONOCHROME1 12-bit": photometric interpretation, Bits Stored
    size: tuple[int, int]  # (Columns, Rows) = (width, height), as Pillow reports sizes


@dataclass(frozen=True)
class _Header:
    """The attributes that decide whether and how the pixels can be decoded."""

    photometric: str
    rows: int
    columns: int
    frames: int
    bits_stored: int
    signed: bool
    syntax: UID


def is_dicom(data: bytes, name: str) -> bool:
    """Whether ``data`` is a DICOM file: the ``DICM`` prefix after the 128-byte
    preamble, or, for the bare datasets some older systems write without
    preamble or file meta, a ``.dcm``/``.dicom`` name."""
    return (
        data[_MAGIC_OFFSET : _MAGIC_OFFSET + 4] == b"DICM"
        or PurePath(name).suffix.lower() in DICOM_SUFFIXES
    )


def decode_dicom(data: bytes, name: str) -> Image.Image:
    """Decode the DICOM file ``data`` to an 8-bit grey (mode L) image.

    Raises ``UnreadableImageError`` for bytes that are not a whole DICOM file and
    ``UnsupportedImageError`` for DICOM files this decoder refuses (see the module).
    """
    return read_dicom(data, name).image


def read_dicom(data: bytes, name: str, *, max_pixels: int | None = None) -> DicomImage:
    """``decode_dicom``, plus the original's description and size for the log.

    ``max_pixels`` refuses, from the header, an image of more pixels (Pillow's
    limit always applies); the decode runs inside the process's decode budget.
    """
    ds = _parse(data, name)
    header = _check(ds, name)
    count = header.rows * header.columns
    if max_pixels is not None and count > max_pixels:
        raise UnsupportedImageError(
            name,
            f"image too large: {header.columns}x{header.rows} = {count:,} pixels, over the "
            f"limit of {max_pixels:,} pixels",
        )
    with decode_budget().admit(count * _DECODE_BYTES_PER_PIXEL):
        return _decoded(ds, header, name)


def _decoded(ds: Dataset, header: _Header, name: str) -> DicomImage:
    """The pixels of a checked dataset through the display pipeline, as mode L."""
    try:
        pixels = pixel_array(ds)
    except NotImplementedError as error:  # e.g. 12-bit JPEG, which Pillow cannot decode
        raise UnsupportedImageError(
            name,
            f"transfer syntax {_syntax_name(header.syntax)} cannot be decoded here: "
            f"{_one_line(error)}",
        ) from error
    except Exception as error:
        # pydicom and its plugins raise many types on corrupt data (ValueError for
        # too few bytes, RuntimeError when every plugin failed...): all mean the same.
        raise UnreadableImageError(
            name,
            f"cannot decode the DICOM pixel data ({_syntax_name(header.syntax)}): "
            f"{_one_line(error)}",
        ) from error
    try:
        grey = _to_grey(pixels, ds, header)
    except Exception as error:  # malformed LUTs or windows
        raise UnreadableImageError(
            name, f"cannot apply the DICOM grey-level transforms: {_one_line(error)}"
        ) from error
    return DicomImage(
        Image.fromarray(grey, mode="L"),
        f"DICOM {header.photometric} {header.bits_stored}-bit",
        (header.columns, header.rows),
    )


def _one_line(error: Exception) -> str:
    """The error's message on one line (pydicom's span several), for the log's CSV."""
    return " ".join(str(error).split()) or type(error).__name__


def _syntax_name(syntax: UID) -> str:
    """'JPEG-LS Lossless Image Compression (1.2.840.10008.1.2.4.80)', or the bare UID."""
    return f"{syntax.name} ({syntax})" if syntax.name != str(syntax) else str(syntax)


def _parse(data: bytes, name: str) -> Dataset:
    """Read the dataset from memory, tolerating a missing preamble and file meta."""
    has_magic = data[_MAGIC_OFFSET : _MAGIC_OFFSET + 4] == b"DICM"
    try:
        ds = dcmread(io.BytesIO(data), force=not has_magic)
    except Exception as error:
        raise UnreadableImageError(
            name, f"cannot parse the DICOM file: {_one_line(error)}"
        ) from error
    if not has_magic and "SOPClassUID" not in ds and "PixelData" not in ds:
        # force=True reads any bytes as some dataset; these are not one.
        raise UnreadableImageError(name, "not a DICOM file (no DICM prefix, no DICOM header)")
    keys = list(ds.keys())
    last = ds.get_item(keys[-1], keep_deferred=True) if keys else None
    if (
        isinstance(last, RawDataElement)
        and last.length != _UNDEFINED_LENGTH
        and len(last.value or b"") < last.length
    ):
        # pydicom silently keeps a value that the end of the file cut short.
        raise UnreadableImageError(
            name,
            f"truncated DICOM file: element {last.tag} needs {last.length} bytes, "
            f"the file ends after {len(last.value or b'')}",
        )
    if "TransferSyntaxUID" not in ds.file_meta:
        # A bare dataset: pydicom guessed its encoding, and its decoders need it named.
        implicit, _ = ds.original_encoding
        ds.file_meta.TransferSyntaxUID = (
            ImplicitVRLittleEndian if implicit is not False else ExplicitVRLittleEndian
        )
    return ds


def _check(ds: Dataset, name: str) -> _Header:
    """Refuse, from the header alone, what must not or cannot be decoded.

    In the order a reader would ask: is there pixel data at all, can its header be
    read, is it one image of a size and colour model this decoder handles, and can an
    installed decoder read its transfer syntax.
    """
    _check_pixel_data(ds, name)
    header = _read_header(ds, name)
    _check_image(header, name)
    _check_decoder(header, name)
    return header


def _check_pixel_data(ds: Dataset, name: str) -> None:
    """Float pixels are refused; no pixels at all is a truncated file or not an image."""
    if "FloatPixelData" in ds or "DoubleFloatPixelData" in ds:
        raise UnsupportedImageError(name, "DICOM float pixel data is not supported")
    if "PixelData" in ds:
        return
    uid = ds.get("SOPClassUID") or ds.file_meta.get("MediaStorageSOPClassUID") or ""
    sop_class = UID(str(uid)).name or "unknown SOP class"
    if not ds or "Rows" in ds or "Image" in sop_class:
        # An image's header without its pixels, or a file meta with no dataset after
        # it (pydicom drops the whole dataset when the file ends inside an element's
        # header or an encapsulated pixel data): the end of the file is missing.
        raise UnreadableImageError(
            name, f"truncated or corrupt DICOM file: no pixel data in a {sop_class} file"
        )
    raise UnsupportedImageError(name, f"DICOM file without pixel data ({sop_class}): not an image")


def _read_header(ds: Dataset, name: str) -> _Header:
    """The Image Pixel attributes the decoding needs; a missing or malformed one is corrupt."""
    try:
        return _Header(
            photometric=str(ds.PhotometricInterpretation).strip().upper(),
            rows=int(ds.Rows),
            columns=int(ds.Columns),
            frames=int(ds.get("NumberOfFrames") or 1),
            bits_stored=int(ds.get("BitsStored") or ds.BitsAllocated),
            signed=int(ds.get("PixelRepresentation") or 0) == 1,
            syntax=UID(str(ds.file_meta.TransferSyntaxUID)),
        )
    except Exception as error:  # a missing or malformed Image Pixel attribute
        raise UnreadableImageError(
            name, f"corrupt DICOM image header: {_one_line(error)}"
        ) from error


def _check_image(header: _Header, name: str) -> None:
    """One frame, within Pillow's pixel limit (before any pixel is decoded), grey or colour."""
    if header.frames > 1:
        raise UnsupportedImageError(
            name, f"multi-frame DICOM ({header.frames} frames): only single images are supported"
        )
    limit = Image.MAX_IMAGE_PIXELS
    if limit is not None and header.rows * header.columns > limit:
        raise UnsupportedImageError(
            name,
            f"image too large, over Pillow's limit: {header.columns}x{header.rows} = "
            f"{header.rows * header.columns} pixels > {limit}",
        )
    if header.photometric not in _MONOCHROME + _COLOUR:
        raise UnsupportedImageError(
            name, f"DICOM photometric interpretation {header.photometric} is not supported"
        )


def _check_decoder(header: _Header, name: str) -> None:
    """An installed pydicom decoder for the transfer syntax, able to read these samples."""
    try:
        decoder = get_decoder(header.syntax)
    except NotImplementedError as error:
        raise UnsupportedImageError(
            name, f"transfer syntax {_syntax_name(header.syntax)} is not supported by pydicom"
        ) from error
    if not decoder.is_available:
        needs = "; ".join(decoder.missing_dependencies) or "a decoding plugin"
        raise UnsupportedImageError(
            name,
            f"transfer syntax {_syntax_name(header.syntax)} cannot be decoded here (needs {needs})",
        )
    if (
        header.syntax == JPEGExtended12Bit
        and header.bits_stored > 8
        and decoder.available_plugins == ("pillow",)
    ):
        # Common in older CR/DX archives; Pillow's libjpeg is built for 8-bit samples.
        raise UnsupportedImageError(
            name,
            f"transfer syntax {_syntax_name(header.syntax)} with {header.bits_stored}-bit "
            "samples cannot be decoded here (Pillow decodes 8-bit JPEG only; needs "
            "pylibjpeg-libjpeg or gdcm)",
        )


def _to_grey(pixels: np.ndarray, ds: Dataset, header: _Header) -> np.ndarray:
    """Stored values -> 8-bit grey through the display pipeline (see the module).

    Row strips at a time, twice (the range, then the scaling), so the float64 values
    of the transforms never exist for the whole image: a 9400x9400 16-bit image takes
    its stored values and its 8-bit result, not 700 MB per intermediate copy.
    """
    if header.photometric not in _MONOCHROME:
        top = 2**header.bits_stored - 1
        rgb = np.empty(pixels.shape, dtype=np.uint8)
        for rows in _strips(pixels):
            rgb[rows] = _scale(pixels[rows].astype(np.float64), 0, top)
        return np.asarray(Image.fromarray(rgb, mode="RGB").convert("L"))
    low_stored = -(2 ** (header.bits_stored - 1)) if header.signed else 0
    high_stored = low_stored + 2**header.bits_stored - 1
    transform, extremes = _display_transform(ds, low_stored, high_stored)
    low, high = float(extremes.min()), float(extremes.max())
    for rows in _strips(pixels):
        values = transform(pixels[rows])
        low = min(low, float(values.min(initial=np.inf)))
        high = max(high, float(values.max(initial=-np.inf)))
    grey = np.empty(pixels.shape, dtype=np.uint8)
    for rows in _strips(pixels):
        grey[rows] = _scale(transform(pixels[rows]), low, high)
    return 255 - grey if header.photometric == "MONOCHROME1" else grey


def _display_transform(
    ds: Dataset, low_stored: int, high_stored: int
) -> tuple[Callable[[np.ndarray], np.ndarray], np.ndarray]:
    """The modality then VOI transform, element by element, as float64, and the extremes of
    its output range (what the darkest and brightest stored values, or the window, map to)."""
    extremes = apply_modality_lut(np.array([low_stored, high_stored]), ds)
    voi_lut = ds.get("VOILUTSequence")
    if voi_lut and "LUTDescriptor" in voi_lut[0] and "LUTData" in voi_lut[0]:
        item, little_endian = voi_lut[0], ds.original_encoding[1]
        top = _apply_voi_lut_item(np.zeros(1), item, little_endian)[1]

        def through_lut(values: np.ndarray) -> np.ndarray:
            looked_up = _apply_voi_lut_item(apply_modality_lut(values, ds), item, little_endian)
            return looked_up[0].astype(np.float64)

        return through_lut, np.array([0, top])
    if "WindowCenter" in ds and "WindowWidth" in ds:
        # The window's output range is what infinitely dark and bright inputs map to:
        # pydicom's own y_min..y_max, whatever the bits and rescale.
        window = apply_windowing(np.array([-np.inf, np.inf]), ds)
        return (
            lambda values: apply_windowing(apply_modality_lut(values, ds), ds).astype(np.float64)
        ), window
    return (lambda values: apply_modality_lut(values, ds).astype(np.float64)), extremes


def _strips(pixels: np.ndarray) -> list[slice]:
    """Row ranges of about a million pixels each."""
    width = int(np.prod(pixels.shape[1:])) or 1
    step = max(1, (1 << 20) // width)
    return [slice(top, top + step) for top in range(0, len(pixels), step)]


def _apply_voi_lut_item(
    values: np.ndarray, item: Dataset, little_endian: bool | None
) -> tuple[np.ndarray, int]:
    """Look ``values`` up in a VOI LUT Sequence item; return the result and the top of
    its output range, 2**(bits per entry) - 1 (PS3.3 C.11.2.1.1).

    Not pydicom's ``apply_voi``: it indexes through an array of the LUT's own dtype,
    so with 8-bit entries every input more than 255 above the first mapped value
    wraps around (pydicom 3.0.2).
    """
    entries, first, bits = (int(value) for value in item.LUTDescriptor)
    data = item.LUTData
    if isinstance(data, bytes):  # VR OW: 16-bit words in the file's byte order
        lut = np.frombuffer(data, dtype="<u2" if little_endian is not False else ">u2")
    else:  # VR US: already numbers
        lut = np.asarray(data, dtype=np.int64).reshape(-1)
    lut = lut[: entries or 2**16]  # 0 entries means 65536
    index = np.clip(np.rint(values) - first, 0, len(lut) - 1).astype(np.intp)
    return lut[index], 2**bits - 1


def _scale(values: np.ndarray, low: float, high: float) -> np.ndarray:
    """``low..high`` -> 0..255 as uint8; exact for integer-valued input below 2**40."""
    if high <= low:
        return np.zeros(values.shape, dtype=np.uint8)
    scaled = np.floor((values - low) * 255 / (high - low))
    return np.clip(scaled, 0, 255).astype(np.uint8)
