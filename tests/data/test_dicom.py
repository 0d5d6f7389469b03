"""DICOM decoding: the display pipeline's grey levels, and clear refusals."""

from __future__ import annotations

import io

import numpy as np
import pydicom
import pytest
from PIL import Image
from pydicom.dataset import Dataset

from chest_xray.data import dicom
from chest_xray.data.dicom import decode_dicom, is_dicom, read_dicom
from chest_xray.data.image_errors import UnreadableImageError, UnsupportedImageError
from chest_xray.data.imaging import (
    OutputSettings,
    decode,
    prepare,
    preprocess,
)
from tests.data.dicom_files import dicom_bytes, non_image_dicom_bytes


def grey_ramp(width: int = 40, height: int = 30) -> np.ndarray:
    """A horizontal ramp over every 8-bit level range, so scaling errors show."""
    row = np.linspace(0, 255, width).round().astype(np.uint8)
    return np.tile(row, (height, 1))


def twelve_bit_ramp(width: int = 64, height: int = 8) -> np.ndarray:
    """Stored values 0..4095, as a 12-bit detector writes them into 16 bits."""
    row = np.linspace(0, 4095, width).round().astype(np.uint16)
    return np.tile(row, (height, 1))


def pixels(data: bytes, name: str = "x.dcm") -> np.ndarray:
    image = decode_dicom(data, name)
    assert image.mode == "L"
    return np.asarray(image)


def png_bytes(values: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(values).save(buffer, format="PNG")
    return buffer.getvalue()


def png_pixels(png: bytes) -> np.ndarray:
    with Image.open(io.BytesIO(png)) as image:
        return np.asarray(image)


# --------------------------------------------------------------------- grey levels


def test_eight_bit_monochrome2_keeps_its_values() -> None:
    grey = grey_ramp()
    np.testing.assert_array_equal(pixels(dicom_bytes(grey)), grey)
    decoded = read_dicom(dicom_bytes(grey), "a.dcm")
    assert (decoded.mode, decoded.size) == ("DICOM MONOCHROME2 8-bit", (40, 30))


def test_twelve_bit_values_are_scaled_over_0_to_255_not_clipped() -> None:
    row = pixels(dicom_bytes(twelve_bit_ramp(), bits_stored=12))[0].astype(int)
    assert (row[0], row[-1]) == (0, 255)
    assert (np.diff(row) > 0).all()  # monotonic, and no run of clipped 255s
    # Bits Stored, not the image's own range, decides the scale: half of 4095 is grey.
    half = np.full((4, 4), 2048, dtype=np.uint16)
    assert pixels(dicom_bytes(half, bits_stored=12))[0, 0] == 127


def test_monochrome1_is_inverted_so_bone_stays_bright() -> None:
    values = twelve_bit_ramp()
    normal = pixels(dicom_bytes(values, bits_stored=12))
    inverted = read_dicom(dicom_bytes(values, bits_stored=12, photometric="MONOCHROME1"), "x")
    assert inverted.mode == "DICOM MONOCHROME1 12-bit"
    np.testing.assert_array_equal(np.asarray(inverted.image), 255 - normal)


def test_voi_window_shows_only_its_range() -> None:
    values = twelve_bit_ramp(width=4096, height=2)  # every stored value 0..4095
    row = pixels(dicom_bytes(values, bits_stored=12, window=(2048, 1024)))[0].astype(int)
    assert row[: 2048 - 512].max() == 0  # below the window: black
    assert row[2048 + 512 :].min() == 255  # above it: white
    inside = row[2048 - 512 : 2048 + 512]
    assert (np.diff(inside) >= 0).all() and inside.min() < 5 and inside.max() > 250
    flipped = dicom_bytes(values, bits_stored=12, window=(2048, 1024), photometric="MONOCHROME1")
    np.testing.assert_array_equal(pixels(flipped)[0], 255 - row)


@pytest.mark.parametrize("vr", ["US", "OW"])
def test_voi_lut_sequence_is_applied_in_preference_to_a_window(vr: str) -> None:
    values = twelve_bit_ramp(width=4096, height=1)
    ds = pydicom.dcmread(io.BytesIO(dicom_bytes(values, bits_stored=12, window=(100, 10))))
    item = Dataset()
    item.LUTDescriptor = [256, 1000, 8]  # 256 entries from stored value 1000, 8 bits each
    item["LUTDescriptor"].VR = "US"
    entries = np.arange(256, dtype="<u2")
    item.LUTData = entries.tobytes() if vr == "OW" else entries.tolist()
    item["LUTData"].VR = vr
    ds.VOILUTSequence = [item]
    buffer = io.BytesIO()
    ds.save_as(buffer, enforce_file_format=True)
    row = pixels(buffer.getvalue())[0]
    assert row[:1000].max() == 0 and row[1256:].min() == 255
    np.testing.assert_array_equal(row[1000:1256], np.arange(256))


def test_window_is_in_rescaled_units() -> None:
    values = twelve_bit_ramp(width=4096, height=1)
    # Stored 0..4095 mean -1000..3095 modality units; a window on 0..1000 of those
    # is stored 1000..2000.
    row = pixels(dicom_bytes(values, bits_stored=12, rescale=(1, -1000), window=(500, 1000)))[0]
    assert row[:1000].max() == 0 and row[2001:].min() == 255
    assert 120 < row[1500] < 135


def test_rescale_without_window_keeps_the_scale_of_the_nominal_range() -> None:
    values = twelve_bit_ramp()
    plain = pixels(dicom_bytes(values, bits_stored=12))
    # A positive linear rescale maps the nominal range along with the values.
    np.testing.assert_array_equal(
        pixels(dicom_bytes(values, bits_stored=12, rescale=(2, -1000))), plain
    )
    # A negative slope swaps dark and bright, as the modality units say.
    swapped = pixels(dicom_bytes(values, bits_stored=12, rescale=(-1, 4095))).astype(int)
    assert np.abs(swapped - (255 - plain.astype(int))).max() <= 1  # floor on the other side
    assert (swapped[0, 0], swapped[0, -1]) == (255, 0)


def test_bits_above_bits_stored_are_ignored() -> None:
    # Bits above Bits Stored are not part of the value (old files keep overlays there):
    # pydicom masks them, so they neither brighten the pixel nor stretch the range.
    values = np.array([[0, 2048, 0x1000 | 2048, 0xF000 | 4095]], dtype=np.uint16)
    data = dicom_bytes(values, bits_stored=16)
    ds = pydicom.dcmread(io.BytesIO(data))
    ds.BitsStored, ds.HighBit = 12, 11
    buffer = io.BytesIO()
    ds.save_as(buffer, enforce_file_format=True)
    np.testing.assert_array_equal(pixels(buffer.getvalue()), [[0, 127, 127, 255]])


def test_signed_pixels_use_the_signed_range() -> None:
    values = np.array([[-2048, 0, 2047]], dtype=np.int16)
    np.testing.assert_array_equal(pixels(dicom_bytes(values, bits_stored=12)), [[0, 127, 255]])


@pytest.mark.parametrize("photometric", ["RGB", "YBR_FULL"])
def test_colour_becomes_the_grey_pillow_makes(photometric: str) -> None:
    grey = grey_ramp()
    rgb = np.stack([grey, grey // 2, 255 - grey], axis=-1)
    expected = np.asarray(Image.fromarray(rgb).convert("L"), dtype=int)
    got = pixels(dicom_bytes(rgb, photometric=photometric)).astype(int)
    assert np.abs(got - expected).max() <= 1  # YBR_FULL rounds once more


# --------------------------------------------------------------------- transfer syntaxes


def test_rle_lossless_decodes_like_uncompressed() -> None:
    for values, bits in ((grey_ramp(), 8), (twelve_bit_ramp(), 12)):
        plain = pixels(dicom_bytes(values, bits_stored=bits, photometric="MONOCHROME1"))
        rle = dicom_bytes(values, bits_stored=bits, photometric="MONOCHROME1", compress_rle=True)
        assert b"1.2.840.10008.1.2.5" in rle[:400]  # really RLE Lossless
        np.testing.assert_array_equal(pixels(rle), plain)


def test_jpeg_baseline_decodes_through_pillow() -> None:
    blocks = np.kron(np.arange(20).reshape(4, 5) * 12, np.ones((16, 16))).astype(np.uint8)
    decoded = pixels(dicom_bytes(blocks, jpeg_quality=95)).astype(int)
    assert np.abs(decoded - blocks).max() <= 2


@pytest.mark.parametrize(
    ("syntax", "needs"),
    [
        ("1.2.840.10008.1.2.4.80", "JPEG-LS Lossless Image Compression"),
        ("1.2.840.10008.1.2.4.70", "JPEG Lossless"),
    ],
)
def test_syntax_without_a_decoder_is_refused_by_name(syntax: str, needs: str) -> None:
    data = dicom_bytes(grey_ramp(), fake_transfer_syntax=syntax)
    with pytest.raises(UnsupportedImageError, match=f"transfer syntax {needs}") as error:
        decode_dicom(data, "ls.dcm")
    assert syntax in error.value.reason and "cannot be decoded here" in error.value.reason


def test_twelve_bit_jpeg_extended_is_refused_by_name() -> None:
    data = dicom_bytes(
        twelve_bit_ramp(), bits_stored=12, fake_transfer_syntax="1.2.840.10008.1.2.4.51"
    )
    with pytest.raises(UnsupportedImageError, match=r"JPEG Extended .* 12-bit samples"):
        decode_dicom(data, "old-cr.dcm")


# --------------------------------------------------------------------- refusals


def test_multi_frame_is_refused() -> None:
    with pytest.raises(UnsupportedImageError, match=r"multi-frame DICOM \(3 frames\)") as error:
        decode_dicom(dicom_bytes(grey_ramp(), frames=3), "cine.dcm")
    assert error.value.name == "cine.dcm"


def test_non_image_dicom_is_refused() -> None:
    with pytest.raises(UnsupportedImageError, match=r"without pixel data.*Basic Text SR"):
        decode_dicom(non_image_dicom_bytes(), "report.dcm")


@pytest.mark.filterwarnings("ignore:End of file reached before delimiter:UserWarning")
@pytest.mark.parametrize("compress_rle", [False, True])
@pytest.mark.parametrize("keep", [0.1, 0.3, 0.6, 0.9, 0.99])
def test_truncated_dicom_is_unreadable(keep: float, compress_rle: bool) -> None:
    data = dicom_bytes(twelve_bit_ramp(), bits_stored=12, compress_rle=compress_rle)
    with pytest.raises(UnreadableImageError, match=r"truncated|not a DICOM") as error:
        decode_dicom(data[: int(len(data) * keep)], "cut.dcm")
    assert not isinstance(error.value, UnsupportedImageError)


def test_oversized_header_is_refused_before_any_pixel_is_decoded(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def no_decoding(*args: object, **kwargs: object) -> np.ndarray:
        raise AssertionError("pixel data decoded")

    monkeypatch.setattr(dicom, "pixel_array", no_decoding)
    # A header claiming 60000 x 60000 pixels in front of 100 bytes of pixel data.
    bomb = dicom_bytes(np.zeros((10, 10), np.uint8), rows_columns=(60000, 60000))
    with pytest.raises(UnsupportedImageError, match="too large, over Pillow's limit"):
        decode_dicom(bomb, "bomb.dcm")
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)
    with pytest.raises(UnsupportedImageError, match="too large"):
        decode_dicom(dicom_bytes(np.zeros((40, 40), np.uint8)), "big.dcm")


def test_not_dicom_at_all_is_unreadable() -> None:
    with pytest.raises(UnreadableImageError, match="not a DICOM file"):
        decode_dicom(b"notes, not an X-ray\n" * 20, "notes.dcm")


# --------------------------------------------------------------------- detection


def test_detection_by_prefix_or_by_name() -> None:
    part10 = dicom_bytes(grey_ramp())
    bare = dicom_bytes(grey_ramp(), preamble=False)
    assert part10[128:132] == b"DICM" and b"DICM" not in bare
    assert is_dicom(part10, "no-suffix")
    assert is_dicom(bare, "scan.DCM") and is_dicom(bare, "a/b/scan.dicom")
    assert not is_dicom(bare, "scan.png")
    assert not is_dicom(png_bytes(grey_ramp()), "x.png")


def test_bare_dataset_named_dcm_decodes() -> None:
    grey = grey_ramp()
    np.testing.assert_array_equal(pixels(dicom_bytes(grey, preamble=False), "old.dcm"), grey)
    np.testing.assert_array_equal(pixels(dicom_bytes(grey, implicit_vr=True)), grey)


# --------------------------------------------------------------------- the shared pipeline


def test_decode_hands_dicom_over_with_its_description() -> None:
    data = dicom_bytes(twelve_bit_ramp(), bits_stored=12, photometric="MONOCHROME1")
    image, mode, size = decode(data, "x.dcm", draft_size=(8, 8))
    assert (image.mode, mode, size) == ("L", "DICOM MONOCHROME1 12-bit", (64, 8))


@pytest.mark.parametrize("resize_mode", ["stretch", "pad"])
def test_preprocess_of_8_bit_dicom_equals_preprocess_of_the_same_png(resize_mode: str) -> None:
    grey = grey_ramp(80, 60)
    settings = OutputSettings((30, 20), resize_mode=resize_mode)  # type: ignore[arg-type]
    from_dicom = preprocess(dicom_bytes(grey), "a.dcm", settings)
    from_png = preprocess(png_bytes(grey), "a.png", settings)
    np.testing.assert_array_equal(png_pixels(from_dicom.png), png_pixels(from_png.png))
    assert (from_dicom.original_width, from_dicom.original_height) == (80, 60)
    assert from_dicom.original_mode == "DICOM MONOCHROME2 8-bit"


def test_preprocess_of_16_bit_dicom_equals_preprocess_of_the_16_bit_png() -> None:
    # Bits Stored 16 scales like a 16-bit PNG (by the bit depth), so the two agree.
    values = (grey_ramp(80, 60).astype(np.uint16) * 257) ^ 0x55
    settings = OutputSettings((30, 20))
    from_dicom = preprocess(dicom_bytes(values), "a.dcm", settings)
    from_png = preprocess(png_bytes(values), "a.png", settings)
    np.testing.assert_array_equal(png_pixels(from_dicom.png), png_pixels(from_png.png))


@pytest.mark.parametrize(
    ("data", "name"),
    [
        (dicom_bytes(twelve_bit_ramp(), bits_stored=12, window=(2000, 3000)), "a.dcm"),
        (png_bytes(grey_ramp(80, 60)), "a.png"),
    ],
)
def test_prepare_gives_the_pixels_of_the_preprocessed_png(data: bytes, name: str) -> None:
    settings = OutputSettings((16, 24))
    image, mode, size = prepare(data, name, settings)
    result = preprocess(data, name, settings)
    assert image.mode == "L" and image.size == (24, 16)
    assert (mode, size) == (result.original_mode, (result.original_width, result.original_height))
    np.testing.assert_array_equal(np.asarray(image), png_pixels(result.png))
