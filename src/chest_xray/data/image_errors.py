"""The errors an image read can end in, apart from the readers, so that every reader
(imaging's Pillow path, dicom's pydicom path) imports them without importing each other."""

from __future__ import annotations


class UnreadableImageError(ValueError):
    """The bytes of ``name`` are not a decodable image (truncated, empty, not an image...)."""

    def __init__(self, name: str, reason: str) -> None:
        super().__init__(f"{name}: {reason}")
        self.name = name
        self.reason = reason


class UnsupportedImageError(UnreadableImageError):
    """``name`` is a well-formed file of a known format that this project cannot use
    (a multi-frame or non-image DICOM, a compression no installed decoder handles...).

    A subclass, so whoever counts unreadable files as skips counts these too, while
    a caller that cares can tell "fix the file" from "convert the file".
    """
