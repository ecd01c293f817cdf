"""Which dataset columns reach the model: Hugging Face Trainer's ``remove_unused_columns``, and clear errors for a
dataset that cannot feed the model.

Works on anything the loaders read (a list of row dicts, :class:`~train.data.ArrayDataset`, ``datasets.Dataset``,
``datasets.IterableDataset``) without importing ``datasets``: a dataset's columns are its ``column_names`` when it
has them, else the keys of its first row.
"""
from __future__ import annotations

import inspect
import logging
from collections.abc import Mapping
from typing import Callable

from train.data import is_streamed

logger = logging.getLogger("transformers_jax.train")

#: Columns kept as labels although the forward may not name them; the collators pass ``label`` / ``label_ids`` on as
#: ``labels``, as Hugging Face's do.
LABEL_COLUMNS = ("label", "label_ids", "labels")


def required_inputs(model_class) -> list[str]:
    """The forward's inputs without a default (``input_ids`` for every model here)."""
    parameters = inspect.signature(model_class.forward).parameters
    return [n for n in model_class._input_names() if parameters[n].default is inspect.Parameter.empty]


def dataset_columns(dataset, description: str) -> list[str]:
    """The column names of ``dataset``: ``column_names`` when it has them, else the keys of its first row.

    Raises ``ValueError`` for a dict of splits (a ``DatasetDict``), an empty dataset or rows that are not dicts.
    """
    if isinstance(dataset, Mapping):
        raise ValueError(
            f"The {description} dataset is a dict with keys {sorted(dataset)} (a DatasetDict?); pass one split, "
            "e.g. dataset['train']"
        )
    names = getattr(dataset, "column_names", None)
    if isinstance(names, (list, tuple)):
        return list(names)
    if is_streamed(dataset):
        first = next(iter(dataset), None)
    else:
        first = dataset[0] if len(dataset) else None
    if first is None:
        raise ValueError(f"The {description} dataset is empty")
    if not isinstance(first, Mapping):
        raise TypeError(f"The {description} dataset's rows must be dicts of columns; row 0 is a {type(first).__name__}")
    return list(first)


def prepare_dataset(dataset, model_class, collate_fn: Callable, remove_unused_columns: bool, description: str):
    """``(dataset, collate_fn)`` ready for a loader, with Hugging Face's column handling.

    With ``remove_unused_columns``, the columns that ``model_class.forward`` does not take (other than
    :data:`LABEL_COLUMNS`) are dropped and their names logged: through ``dataset.remove_columns`` when the dataset has
    it (``datasets`` objects), else row by row before collation. A dataset without a column the forward needs is
    then refused here, naming the column and listing the columns present. Without it, every column reaches
    ``collate_fn``, which must make model inputs of them.

    The returned collate function adds the dataset's columns to any error of ``collate_fn`` and refuses a batch
    that lacks an input the forward needs.
    """
    columns = dataset_columns(dataset, description)
    accepted = None
    if remove_unused_columns:
        takes = set(model_class._input_names()) | set(LABEL_COLUMNS)
        ignored = [c for c in columns if c not in takes]
        for name in required_inputs(model_class):
            if name not in columns:
                raise ValueError(
                    f"The {description} dataset has no column '{name}', which {model_class.__name__}.forward needs; "
                    f"its columns are {columns}. Tokenize it first, e.g. "
                    "dataset.map(lambda rows: tokenizer(rows['text'], truncation=True), batched=True)"
                )
        if ignored:
            logger.info("The columns %s of the %s set are not inputs of %s.forward and were removed "
                        "(remove_unused_columns=False keeps them).", ", ".join(ignored), description,
                        model_class.__name__)
            if hasattr(dataset, "remove_columns"):
                dataset = dataset.remove_columns(ignored)
            else:
                accepted = takes
    return dataset, ColumnCollator(collate_fn, model_class, columns, description, accepted)


class ColumnCollator:
    """``collate_fn`` with the column rules of :func:`prepare_dataset`: keeps only ``accepted`` keys of each row
    (when given), names the dataset's columns in collation errors, and checks the batch has the forward's inputs."""

    def __init__(self, collate_fn: Callable, model_class, columns: list[str], description: str,
                 accepted: set[str] | None = None):
        self.collate_fn, self.model_class = collate_fn, model_class
        self.columns, self.description, self.accepted = columns, description, accepted
        self.required = required_inputs(model_class)
        self.rowwise = bool(getattr(collate_fn, "rowwise", False))  # dropping columns keeps a collator row-wise

    def __call__(self, features, rng=None):
        """Collate ``features`` (a list of row dicts) as ``collate_fn(features, rng=rng)`` does."""
        if self.accepted is not None:
            features = [{k: v for k, v in f.items() if k in self.accepted} if isinstance(f, Mapping) else f
                        for f in features]
        try:
            batch = self.collate_fn(features, rng=rng)
        except (KeyError, ValueError, TypeError) as err:
            message = err.args[0] if len(err.args) == 1 else str(err)
            raise ValueError(f"The {self.description} dataset (columns {self.columns}) cannot form a batch: "
                             f"{message}") from err
        for name in self.required:
            if name not in batch:
                raise ValueError(
                    f"The {self.description} batches have no '{name}', which {self.model_class.__name__}.forward "
                    f"needs: the data collator made {sorted(batch)} of the columns {self.columns}"
                )
        return batch
