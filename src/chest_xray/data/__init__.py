"""Data stages, 01_raw -> 03_primary: metadata join, image decoding, preprocessing, split,
summary, and their typed parameters. Plain functions on pandas and Pillow; nothing here
imports Kedro or Keras. The lowest room, so it also holds what every other room shares:
the figures' palette (``figures``) and whole-file writes and local paths (``files``)."""
