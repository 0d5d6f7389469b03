"""Read-only view of another dataset that loads as None while it does not exist.

An incremental node needs what the previous run saved (``preprocessing_log``,
the PNG folder of ``processed_images``) as an input, but on the first run
there is nothing yet: a ``pandas.CSVDataset`` then raises on load, and a
``PartitionedDataset`` raises "No partitions found". kedro-datasets has no
optional dataset, and ``partitions.IncrementalDataset`` tracks a checkpoint of
partition *names*, not whether a file's content or the settings changed. So
this wrapper: a second catalog entry over the same path, loaded as None when
the wrapped dataset does not exist, never saved (the node's output entry owns
the writes).
"""

from __future__ import annotations

from typing import Any

from kedro.io.core import AbstractDataset, DatasetError


class OptionalDataset(AbstractDataset[Any, Any]):
    """Loads ``dataset``, or None when it does not exist yet.

    Example catalog entry (``dataset`` takes any catalog definition)::

        preprocessing_log_previous:
          type: chest_xray.datasets.OptionalDataset
          dataset:
            type: pandas.CSVDataset
            filepath: data/03_primary/preprocessing_log.csv
    """

    def __init__(
        self, *, dataset: str | dict[str, Any], metadata: dict[str, Any] | None = None
    ) -> None:
        config = dataset if isinstance(dataset, dict) else {"type": dataset}
        self._dataset = AbstractDataset.from_config("wrapped", dict(config))
        self.metadata = metadata

    def load(self) -> Any:
        # Load first and ask about existence only on failure: a PartitionedDataset
        # lists its folder once per call, and a CSV is usually there.
        try:
            return self._dataset.load()
        except DatasetError:
            if not self._dataset.exists():
                return None
            raise

    def save(self, data: Any) -> None:
        raise DatasetError(
            f"OptionalDataset is read only ({self._dataset}); save through the entry "
            "that owns the same path"
        )

    def _exists(self) -> bool:
        return self._dataset.exists()

    def _describe(self) -> dict[str, Any]:
        return {"dataset": self._dataset._describe()}
