"""The data room, 01_raw -> 03_primary: metadata, decoding, preprocessing, split, summary.

The metadata join and its checks, image decoding (any mode, DICOM) to 8-bit grey, the
incremental preprocessing, the patient-aware split and folds, the dataset summary, and
their typed parameters. Plain functions on pandas and Pillow; nothing here imports Kedro
or Keras. The lowest room, so it also holds what every other room shares: the figures'
palette (``figures``) and whole-file writes and local paths (``files``)."""
