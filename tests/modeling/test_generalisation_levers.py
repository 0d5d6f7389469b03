"""The input levers for generalisation (issue #11): gamma augmentation, per-image
standardisation in the model, histogram equalisation / CLAHE in preprocessing."""

from __future__ import annotations

import io
from pathlib import Path

import keras
import numpy as np
import pytest
from PIL import Image

from chest_xray.data.imaging import OutputSettings, normalise_contrast, prepare
from chest_xray.datasets import KerasModelDataset
from chest_xray.modeling.augmentation import RandomGamma, build_augmentation
from chest_xray.modeling.model import build_model, without_augmentation
from chest_xray.params import AugmentationParams, ModelParams, PreprocessingParams
from tests.inference.new_images import encoded

TINY = ModelParams(conv_filters=[4, 8], dense_units=8, dropout=0.0)


def test_gamma_bends_mid_tones_keeps_black_and_white_and_is_off_in_inference() -> None:
    layer = RandomGamma(1.0, seed=3)
    pixels = np.tile(np.array([0.0, 0.25, 0.5, 1.0], np.float32), (64, 1)).reshape(64, 2, 2, 1)
    out = keras.ops.convert_to_numpy(layer(pixels, training=True))
    np.testing.assert_allclose(out[:, 0, 0, 0], 0.0)
    np.testing.assert_allclose(out[:, 1, 1, 0], 1.0, atol=1e-6)
    exponents = np.log(out[:, 1, 0, 0]) / np.log(0.5)  # per image
    assert exponents.min() >= 1 / 2 - 1e-4 and exponents.max() <= 2 + 1e-4
    assert (exponents < 1).any() and (exponents > 1).any()  # both ways
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(layer(pixels, training=False)), pixels)


def test_gamma_joins_the_augmentation_and_leaves_with_it() -> None:
    augmentation = build_augmentation(AugmentationParams(gamma=0.5, rotation_degrees=0), seed=1)
    assert augmentation is not None
    model = build_model((32, 32, 1), TINY, augmentation)
    assert "gamma" in [layer.name for layer in augmentation.layers]
    saved = without_augmentation(model)
    assert "augmentation" not in [layer.name for layer in saved.layers]
    clone = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(augmentation))
    assert clone.get_layer("gamma").gamma == 0.5


def test_standardize_makes_exposure_invisible_to_the_network() -> None:
    keras.utils.set_random_seed(0)
    model = build_model((32, 32, 1), TINY.model_copy(update={"input_normalisation": "standardize"}))
    image = np.random.default_rng(0).integers(40, 120, (1, 32, 32, 1)).astype("float32")
    brighter = image * 1.8 + 30  # another exposure: an affine map of the grey levels
    np.testing.assert_allclose(
        model.predict(image, verbose=0), model.predict(brighter, verbose=0), atol=1e-4
    )
    # A stock layer only: the saved model loads without this package's custom objects.
    layer = model.get_layer("standardize")
    assert type(layer) is keras.layers.LayerNormalization


@pytest.mark.parametrize("suffix", [".h5", ".keras"])
def test_a_standardizing_model_predicts_the_same_after_a_reload(
    suffix: str, tmp_path: Path
) -> None:
    """Keras' HDF5 loader dropped LayerNormalization(axis=[1, 2, 3])'s axes: the reloaded
    model answered 0.5 for every image (a cross-validation screening found AUC 0.5)."""
    keras.utils.set_random_seed(0)
    model = build_model((32, 32, 1), TINY.model_copy(update={"input_normalisation": "standardize"}))
    images = np.random.default_rng(1).integers(0, 256, (6, 32, 32, 1)).astype("uint8")
    dataset = KerasModelDataset(filepath=str(tmp_path / f"model{suffix}"))
    dataset.save(model)
    reloaded = dataset.load()
    expected = model.predict(images, verbose=0)
    assert np.ptp(expected) > 1e-3  # the images are told apart
    np.testing.assert_allclose(reloaded.predict(images, verbose=0), expected, atol=1e-5)


def png(pixels: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG")
    return buffer.getvalue()


@pytest.mark.parametrize("contrast", ["equalize", "clahe"])
def test_equalisation_spreads_a_narrow_histogram(contrast: str) -> None:
    rng = np.random.default_rng(1)
    narrow = rng.integers(100, 140, (64, 64), dtype=np.uint8)
    out = np.asarray(normalise_contrast(Image.fromarray(narrow), contrast))  # type: ignore[arg-type]
    assert out.dtype == np.uint8 and out.shape == narrow.shape
    assert np.ptp(out) > 2 * np.ptp(narrow)
    # Monotone for global equalisation: the order of grey levels is kept.
    if contrast == "equalize":
        order = np.argsort(narrow, axis=None, kind="stable")
        assert np.all(np.diff(out.reshape(-1)[order].astype(int)) >= 0)


def test_contrast_is_part_of_the_settings_key_only_when_on() -> None:
    plain = PreprocessingParams().output_settings
    assert "clahe" not in plain.key and "equalize" not in plain.key
    clahe = PreprocessingParams(contrast="clahe").output_settings
    assert clahe.key.endswith(" clahe") and clahe.key.startswith(plain.key)


def test_prepare_applies_the_contrast_step_after_the_resize() -> None:
    narrow = np.random.default_rng(2).integers(90, 150, (80, 60), dtype=np.uint8)
    settings = OutputSettings((40, 30), contrast="equalize")
    image, _, _ = prepare(png(narrow), "x.png", settings)
    plain, _, _ = prepare(png(narrow), "x.png", OutputSettings((40, 30)))
    np.testing.assert_array_equal(
        np.asarray(image), np.asarray(normalise_contrast(plain, "equalize"))
    )


def test_border_crop_cuts_the_edges_before_the_resize() -> None:
    image = np.zeros((100, 200), np.uint8)
    image[:10, :20] = 255  # a bright marker in the top-left corner, inside the crop
    image[50, 100] = 7
    settings = OutputSettings((100, 200), border_crop=0.1)
    cropped, _, _ = prepare(png(image), "x.png", settings)
    pixels = np.asarray(cropped)
    assert pixels.shape == (100, 200)  # resized back to the target
    assert pixels.max() < 255  # the marker is gone
    assert "crop0.1" in settings.key and "crop" not in OutputSettings((100, 200)).key
    assert PreprocessingParams(border_crop=0.08).output_settings.border_crop == 0.08
    with pytest.raises(ValueError):
        PreprocessingParams(border_crop=0.3)


def _jpeg(image: Image.Image, quality: int) -> bytes:
    return encoded(np.asarray(image), "JPEG", quality=quality)


def test_via_size_takes_an_original_by_the_copies_path_and_leaves_a_copy_alone() -> None:
    rng = np.random.default_rng(3)
    texture = Image.fromarray(rng.integers(0, 256, (450, 600), dtype=np.uint8))
    original = _jpeg(texture.resize((600, 450), Image.Resampling.BOX), 95)
    with Image.open(io.BytesIO(original)) as decoded:  # made as the shared copy's were
        copy = _jpeg(decoded.convert("L").resize((224, 224), Image.Resampling.BILINEAR), 75)
    for target in ((150, 150), (40, 48)):  # at 40 x 48 a copy is decoded in draft
        via = OutputSettings(target, via_size=(224, 224))
        plain = OutputSettings(target)
        from_copy, _, _ = prepare(copy, "copy.jpeg", plain)
        through, _, size = prepare(original, "original.jpeg", via)
        direct, _, _ = prepare(original, "original.jpeg", plain)
        assert size == (600, 450)  # the original's own size is still the one reported
        np.testing.assert_array_equal(np.asarray(through), np.asarray(from_copy))
        assert not np.array_equal(np.asarray(direct), np.asarray(from_copy))  # another path
        copy_via, _, _ = prepare(copy, "copy.jpeg", via)  # a copy is not made again
        np.testing.assert_array_equal(np.asarray(copy_via), np.asarray(from_copy))
    assert via.key.endswith(" via224x224") and "via" not in plain.key
    assert PreprocessingParams(via_size=224).output_settings.via_size == (224, 224)
    assert PreprocessingParams().output_settings.via_size is None
