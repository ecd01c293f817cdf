"""Text-generation metrics from the reference libraries: ROUGE (Google's ``rouge-score``) and corpus BLEU
(``sacrebleu``), plus the decoding of generated ids that comes before them.

    from train.metrics import Seq2SeqMetrics
    trainer = Seq2SeqTrainer(..., compute_metrics=Seq2SeqMetrics(tokenizer, ("rouge", "bleu")))

``rouge_metrics`` gives the mean F-measure over the pairs of ``rouge1``, ``rouge2``, ``rougeL`` and ``rougeLsum``,
fractions in [0, 1] (Hugging Face's ``evaluate`` "rouge" reports a bootstrap estimate of the same mean, so its
numbers can differ in the last digits). ``rougeLsum`` splits summaries into sentences at newlines: join sentences
with "\\n" to score it as the summarization papers do; text without newlines gives ``rougeLsum == rougeL``.
``bleu_metric`` is sacrebleu's corpus BLEU (0-100) with its default 13a tokenization.

Both packages are test extras (``pip install rouge-score sacrebleu``), imported when first used.
"""
from __future__ import annotations

from collections.abc import Sequence
import numpy as np

from transformers_jax.losses import IGNORE_INDEX

ROUGE_TYPES = ("rouge1", "rouge2", "rougeL", "rougeLsum")


def _texts(values, name: str) -> list[str]:
    if isinstance(values, str) or not isinstance(values, Sequence):
        raise TypeError(f"{name} must be a list of strings, got {type(values).__name__}")
    bad = next((i for i, v in enumerate(values) if not isinstance(v, str)), None)
    if bad is not None:
        raise TypeError(f"{name}[{bad}] is a {type(values[bad]).__name__}, not a string (decode ids first)")
    return list(values)


def _require(module: str, package: str):
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError:
        raise ImportError(f"this metric needs the {package!r} package: pip install {package}") from None


def rouge_metrics(predictions: Sequence[str], references: Sequence[str], use_stemmer: bool = True,
                  rouge_types: Sequence[str] = ROUGE_TYPES) -> dict[str, float]:
    """Mean ROUGE F-measures of ``predictions`` against ``references`` (one reference each), by ``rouge-score``'s
    ``RougeScorer`` (Porter stemming when ``use_stemmer``, as Hugging Face's summarization example asks)."""
    predictions, references = _texts(predictions, "predictions"), _texts(references, "references")
    if len(predictions) != len(references):
        raise ValueError(f"{len(predictions)} predictions but {len(references)} references")
    if not predictions:
        raise ValueError("rouge_metrics needs at least one prediction")
    rouge_scorer = _require("rouge_score.rouge_scorer", "rouge-score")
    scorer = rouge_scorer.RougeScorer(list(rouge_types), use_stemmer=use_stemmer)
    totals = dict.fromkeys(rouge_types, 0.0)
    for prediction, reference in zip(predictions, references):
        scores = scorer.score(reference, prediction)  # (target, prediction)
        for name in rouge_types:
            totals[name] += scores[name].fmeasure
    return {name: total / len(predictions) for name, total in totals.items()}


def bleu_metric(predictions: Sequence[str], references: Sequence[str] | Sequence[Sequence[str]]) -> dict[str, float]:
    """sacrebleu's corpus BLEU (0-100) of ``predictions``; ``references`` holds one string per prediction, or one
    list of reference strings per prediction (all lists of the same length)."""
    predictions = _texts(predictions, "predictions")
    if len(predictions) != len(references):
        raise ValueError(f"{len(predictions)} predictions but {len(references)} references")
    if not predictions:
        raise ValueError("bleu_metric needs at least one prediction")
    if all(isinstance(r, str) for r in references):
        streams = [list(references)]
    else:
        per_row = [_texts(r, f"references[{i}]") for i, r in enumerate(references)]
        if len({len(r) for r in per_row}) != 1:
            raise ValueError("every prediction needs the same number of references for corpus BLEU")
        streams = [list(stream) for stream in zip(*per_row)]
    sacrebleu = _require("sacrebleu", "sacrebleu")
    return {"bleu": float(sacrebleu.corpus_bleu(predictions, streams).score)}


def decode_ids(tokenizer, ids) -> list[str]:
    """Rows of token ids (generated ids or label ids) as text: -100 (label and cross-batch padding) read as the pad
    id, special tokens skipped, surrounding whitespace stripped."""
    ids = np.asarray(ids)
    if ids.ndim != 2 or not np.issubdtype(ids.dtype, np.integer):
        raise ValueError(f"expected token ids [rows, length] of integers, got shape {ids.shape} dtype {ids.dtype}; "
                         "use predict_with_generate=True to get generated ids instead of logits")
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    if pad is None and (ids == IGNORE_INDEX).any():
        raise ValueError("the ids hold -100 padding but the tokenizer has neither a pad nor an eos token to read it as")
    ids = np.where(ids == IGNORE_INDEX, pad if pad is not None else 0, ids)
    return [text.strip() for text in tokenizer.batch_decode(ids.tolist(), skip_special_tokens=True)]


class Seq2SeqMetrics:
    """A ``compute_metrics`` for :class:`~train.trainer_seq2seq.Seq2SeqTrainer` with ``predict_with_generate``:
    decodes the generated ids and the labels with ``tokenizer`` and scores them.

    ``metrics``: any of ``"rouge"`` (:func:`rouge_metrics`) and ``"bleu"`` (:func:`bleu_metric`). Also reported:
    ``gen_len``, the mean number of generated tokens that are not padding.
    """

    KNOWN = ("rouge", "bleu")

    def __init__(self, tokenizer, metrics: Sequence[str] = ("rouge",), use_stemmer: bool = True):
        metrics = (metrics,) if isinstance(metrics, str) else tuple(metrics)
        unknown = [m for m in metrics if m not in self.KNOWN]
        if unknown or not metrics:
            raise ValueError(f"unknown metric(s) {unknown or metrics}; choose from {list(self.KNOWN)}")
        self.tokenizer, self.metrics, self.use_stemmer = tokenizer, metrics, use_stemmer

    def __call__(self, prediction) -> dict[str, float]:
        """Scores of an ``EvalPrediction`` (``predictions``: generated ids, ``label_ids``: labels)."""
        predictions = decode_ids(self.tokenizer, prediction.predictions)
        references = decode_ids(self.tokenizer, prediction.label_ids)
        out: dict[str, float] = {}
        if "rouge" in self.metrics:
            out.update(rouge_metrics(predictions, references, use_stemmer=self.use_stemmer))
        if "bleu" in self.metrics:
            out.update(bleu_metric(predictions, references))
        ids = np.asarray(prediction.predictions)
        pad = self.tokenizer.pad_token_id
        out["gen_len"] = float(np.mean(np.sum((ids != IGNORE_INDEX) & (ids != pad), axis=-1)))
        return out

