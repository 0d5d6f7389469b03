"""Data stages, 01_raw -> 03_primary: metadata join, image decoding, preprocessing, split,
summary. Plain functions on pandas and Pillow; nothing here imports Kedro or Keras."""
