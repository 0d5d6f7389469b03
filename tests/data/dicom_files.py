"""Build small DICOM files in memory, for tests that need X-rays in DICOM form.

Real DICOM X-rays are large and carry patient data, so tests make their own from
a numpy array with pydicom: every file is a valid Part 10 file (preamble, ``DICM``
and file meta) of a Digital X-Ray image unless told otherwise, so the decoder
under test meets what a modality writes. Typical uses::

    from tests.data.dicom_files import dicom_bytes, non_image_dicom_bytes

    dicom_bytes(grey_uint8)                                    # MONOCHROME2, 8-bit
    dicom_bytes(values_uint16, bits_stored=12)                 # 12 bits in 16
    dicom_bytes(values_uint16, bits_stored=12, photometric="MONOCHROME1",
                window=(2048, 1024))                           # inverted, windowed
    dicom_bytes(grey_uint8, frames=3)                          # multi-frame (refused)
    dicom_bytes(grey_uint8, compress_rle=True)                 # RLE Lossless
    dicom_bytes(grey_uint8, jpeg_quality=95)                   # JPEG Baseline
    dicom_bytes(rgb_uint8, photometric="RGB")                  # colour, (rows, cols, 3)
    dicom_bytes(grey_uint8, preamble=False)                    # bare dataset: name it .dcm
    non_image_dicom_bytes()                                    # a report, no pixels

Write the bytes to a test folder with ``Path.write_bytes``, named ``x.dcm`` or
anything else: a Part 10 file is recognised by its content.
"""

from __future__ import annotations

import io

import numpy as np
from PIL import Image
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.encaps import encapsulate
from pydicom.pixels import convert_color_space
from pydicom.uid import (
    UID,
    BasicTextSRStorage,
    DigitalXRayImageStorageForPresentation,
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
    JPEGBaseline8Bit,
    RLELossless,
    generate_uid,
)

__all__ = ["dicom_bytes", "non_image_dicom_bytes"]

_PHOTOMETRICS = ("MONOCHROME1", "MONOCHROME2", "RGB", "YBR_FULL")


def _base_dataset(sop_class: UID, transfer_syntax: UID) -> Dataset:
    """A dataset with the file meta and identifying attributes every DICOM file has."""
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = sop_class
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = transfer_syntax
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID = sop_class
    ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
    ds.StudyInstanceUID = generate_uid()
    ds.SeriesInstanceUID = generate_uid()
    ds.PatientID = "TEST"
    return ds


def _write(ds: Dataset, *, preamble: bool) -> bytes:
    """Encode ``ds`` as a Part 10 file, or (``preamble=False``) as a bare dataset.

    A bare dataset has no preamble, no ``DICM`` and no file meta: what some
    older systems write, which only a ``.dcm`` name identifies as DICOM.
    """
    buffer = io.BytesIO()
    if preamble:
        ds.save_as(buffer, enforce_file_format=True)
    else:
        syntax = ds.file_meta.TransferSyntaxUID
        del ds.file_meta
        ds.save_as(buffer, implicit_vr=syntax.is_implicit_VR, little_endian=True)
    return buffer.getvalue()


def dicom_bytes(
    pixels: np.ndarray,
    *,
    photometric: str = "MONOCHROME2",
    bits_stored: int | None = None,
    window: tuple[float, float] | None = None,
    rescale: tuple[float, float] | None = None,
    frames: int = 1,
    compress_rle: bool = False,
    jpeg_quality: int | None = None,
    fake_transfer_syntax: str | None = None,
    implicit_vr: bool = False,
    preamble: bool = True,
    rows_columns: tuple[int, int] | None = None,
) -> bytes:
    """Return the bytes of a DICOM X-ray whose stored pixel values are ``pixels``.

    ``pixels``: (rows, columns) for MONOCHROME1/2, (rows, columns, 3) RGB values for
    RGB and YBR_FULL (converted to YBR here, so the file decodes back to these RGB
    values). dtype uint8, uint16, int8 or int16: it sets Bits Allocated (8 or 16)
    and Pixel Representation (signed for int types).

    ``bits_stored``: Bits Stored, default the dtype's full width (8 or 16); the
        values must fit in it, e.g. 0..4095 for 12.
    ``window``: (Window Center, Window Width), the VOI window a viewer applies.
    ``rescale``: (Rescale Slope, Rescale Intercept), the modality LUT.
    ``frames``: repeat the image into this many frames (Number of Frames).
    ``compress_rle``: encode the pixel data as RLE Lossless (pydicom's own encoder).
    ``jpeg_quality``: encode as JPEG Baseline with Pillow at this quality (uint8
        MONOCHROME2, or RGB pixels stored as YBR_FULL_422 as the standard wants).
    ``fake_transfer_syntax``: label the file with this (encapsulated) transfer syntax
        UID and wrap the raw pixel bytes as its one fragment. Not a valid encoding:
        for testing that a syntax without an installed decoder is refused.
    ``implicit_vr``: Implicit VR Little Endian rather than Explicit VR Little Endian.
    ``preamble``: ``False`` writes a bare dataset with no preamble, ``DICM`` or file
        meta (Implicit VR, as such files usually are).
    ``rows_columns``: overwrite Rows and Columns after the pixels are set, to make a
        header that lies about the size (a decompression bomb, a truncated image).
    """
    pixels, colour = _stored_pixels(pixels, photometric, frames)
    syntax = ImplicitVRLittleEndian if implicit_vr or not preamble else ExplicitVRLittleEndian
    ds = _base_dataset(DigitalXRayImageStorageForPresentation, syntax)
    ds.Modality = "DX"
    ds.set_pixel_data(pixels, photometric, bits_stored or pixels.dtype.itemsize * 8)
    if syntax != ds.file_meta.TransferSyntaxUID:  # set_pixel_data's default
        ds.file_meta.TransferSyntaxUID = syntax
    _set_lookup_tables(ds, window, rescale)
    _encode(
        ds,
        pixels,
        colour,
        compress_rle=compress_rle,
        jpeg_quality=jpeg_quality,
        fake_transfer_syntax=fake_transfer_syntax,
    )
    if rows_columns is not None:
        ds.Rows, ds.Columns = rows_columns
    return _write(ds, preamble=preamble)


def _set_lookup_tables(
    ds: Dataset, window: tuple[float, float] | None, rescale: tuple[float, float] | None
) -> None:
    """The VOI window (center, width) and the modality LUT (slope, intercept), where given."""
    if window is not None:
        ds.WindowCenter, ds.WindowWidth = window
    if rescale is not None:
        ds.RescaleSlope, ds.RescaleIntercept = rescale
        ds.RescaleType = "US"  # unspecified units


def _stored_pixels(pixels: np.ndarray, photometric: str, frames: int) -> tuple[np.ndarray, bool]:
    """``pixels`` checked and as the file stores them (YBR, frames stacked); colour or not."""
    if photometric not in _PHOTOMETRICS:
        raise ValueError(f"photometric must be one of {_PHOTOMETRICS}, not {photometric!r}")
    if pixels.dtype not in (np.uint8, np.uint16, np.int8, np.int16):
        raise ValueError(f"pixels must be 8- or 16-bit integers, not {pixels.dtype}")
    colour = photometric in ("RGB", "YBR_FULL")
    if pixels.ndim != (3 if colour else 2) or (colour and pixels.shape[-1] != 3):
        raise ValueError(f"{photometric} needs pixels shaped {'(r, c, 3)' if colour else '(r, c)'}")
    if photometric == "YBR_FULL":
        pixels = convert_color_space(pixels, "RGB", "YBR_FULL")
    if frames > 1:
        pixels = np.stack([pixels] * frames)
    return pixels, colour


def _encode(
    ds: Dataset,
    pixels: np.ndarray,
    colour: bool,
    *,
    compress_rle: bool,
    jpeg_quality: int | None,
    fake_transfer_syntax: str | None,
) -> None:
    """Re-encode ``ds``'s native pixel data as asked (RLE, JPEG, a fake syntax) or leave it."""
    if compress_rle:
        ds.compress(RLELossless, generate_instance_uid=False)
    elif jpeg_quality is not None:
        _encapsulate(ds, _jpeg(pixels, jpeg_quality), JPEGBaseline8Bit)
        if colour:
            ds.PhotometricInterpretation = "YBR_FULL_422"
    elif fake_transfer_syntax is not None:
        _encapsulate(ds, pixels.tobytes(), UID(fake_transfer_syntax))


def _jpeg(pixels: np.ndarray, quality: int) -> bytes:
    if pixels.dtype != np.uint8:
        raise ValueError("JPEG Baseline holds 8-bit pixels only")
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="JPEG", quality=quality)
    return buffer.getvalue()


def _encapsulate(ds: Dataset, frame: bytes, syntax: UID) -> None:
    """Store ``frame`` as encapsulated Pixel Data (one fragment) under ``syntax``."""
    ds.PixelData = encapsulate([frame])
    ds["PixelData"].VR = "OB"
    ds["PixelData"].is_undefined_length = True
    ds.file_meta.TransferSyntaxUID = syntax


def non_image_dicom_bytes() -> bytes:
    """A valid DICOM file with no Pixel Data: a Basic Text Structured Report.

    PACS exports mix such reports with the images, so a folder of "X-rays" may
    hold them.
    """
    ds = _base_dataset(BasicTextSRStorage, ExplicitVRLittleEndian)
    ds.Modality = "SR"
    ds.ValueType = "CONTAINER"
    ds.ContinuityOfContent = "SEPARATE"
    return _write(ds, preamble=True)
