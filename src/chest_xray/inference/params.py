"""Typed parameters of the inference pipeline (``inference`` in
``parameters_inference.yml``): how a folder of new images is predicted.

Beside the ``inference`` package they configure. ``chest_xray.params`` gathers every
stage's classes in one place.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, PositiveInt, field_validator

from chest_xray.data.params import StrictParams


class InferenceParams(StrictParams):
    """How the ``inference`` pipeline predicts a folder of new images.

    The folder (``inference_root``) and the model (``model_uri``) are catalog
    settings (conf/base/globals.yml); preprocessing and threshold come with the model.
    """

    batch_size: PositiveInt = 32
    workers: int = Field(0, ge=0)  # decoding threads: 0 = one per CPU core
    # Grad-CAM overlays: ``all`` images, ``none``, or N: the N most confidently
    # positive and the N most confidently negative.
    gradcam: Literal["all", "none"] | PositiveInt = "all"
    progress: bool = True  # a progress bar on the console (not in the log)
    # Images the model's out-of-distribution guard flags: ``flag`` = no label (empty),
    # ``label`` = labelled anyway (still flagged), ``off`` = not checked (docs/ood.md).
    ood: Literal["flag", "label", "off"] = "flag"

    @field_validator("ood", mode="before")
    @classmethod
    def _yaml_off(cls, value: object) -> object:
        """YAML reads a bare ``off`` (``ood: off``, ``--params=inference.ood=off``) as false."""
        return "off" if value is False else value
