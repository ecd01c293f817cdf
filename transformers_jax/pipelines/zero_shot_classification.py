"""``zero-shot-classification``: candidate labels scored by an NLI model as hypotheses about the text."""
from __future__ import annotations

import logging

import numpy as np

from transformers_jax.pipelines.base import ChunkPipeline, to_numpy_dict

logger = logging.getLogger("transformers_jax")


def parse_labels(labels) -> list[str]:
    """Candidate labels: a list of strings, or one string of comma-separated labels."""
    if isinstance(labels, str):
        labels = [label.strip() for label in labels.split(",") if label.strip()]
    if not isinstance(labels, (list, tuple)) or not all(isinstance(label, str) for label in labels):
        raise TypeError(f"candidate_labels must be a list of strings or a comma-separated string, got {labels!r}")
    return list(labels)


class ZeroShotClassificationPipeline(ChunkPipeline):
    """Score ``candidate_labels`` for each text with a model trained on natural language inference (loaded by
    ``AutoModelForSequenceClassification``, with an "entailment..." label in ``config.label2id``): each label
    becomes the hypothesis ``hypothesis_template.format(label)`` of a premise/hypothesis pair.

    Each text gives ``{"sequence", "labels", "scores"}``, labels best first.

    Parameters (to ``pipeline(...)`` or per call):
        candidate_labels: a list of labels or a comma-separated string (required; also the second positional
            argument of a call).
        hypothesis_template: default ``"This example is {}."``.
        multi_label: False (default): a softmax of the entailment logits over the labels (scores sum to 1);
            True: each label on its own, a softmax of its entailment vs contradiction logits.
    """

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if self.entailment_id == -1:
            logger.warning("Failed to determine 'entailment' label id from the label2id mapping in the model config. "
                           "Setting to -1. Define a descriptive label2id mapping in the model config to ensure "
                           "correct outputs.")

    @property
    def entailment_id(self) -> int:
        """The id of the first label of ``config.label2id`` that starts with "entail" (any case); -1 if none."""
        for label, index in self.model.config.label2id.items():
            if label.lower().startswith("entail"):
                return int(index)
        return -1

    def _sanitize_parameters(self, candidate_labels=None, hypothesis_template=None, multi_label=None, **kwargs):
        if kwargs:
            raise TypeError(f"zero-shot-classification got unexpected arguments {sorted(kwargs)}")
        preprocess_params, postprocess_params = {}, {}
        if candidate_labels is not None:
            preprocess_params["candidate_labels"] = parse_labels(candidate_labels)
        if hypothesis_template is not None:
            if not isinstance(hypothesis_template, str):
                raise TypeError(f"hypothesis_template must be a string, got {hypothesis_template!r}")
            preprocess_params["hypothesis_template"] = hypothesis_template
        if multi_label is not None:
            postprocess_params["multi_label"] = bool(multi_label)
        return preprocess_params, {}, postprocess_params

    def __call__(self, sequences, *args, **kwargs):
        """Classify one text (-> a dict) or a list/iterable of texts; ``candidate_labels`` may come second."""
        if len(args) == 1 and "candidate_labels" not in kwargs:
            kwargs["candidate_labels"] = args[0]
        elif args:
            raise ValueError(f"Unable to understand extra arguments {args}")
        return super().__call__(sequences, **kwargs)

    def preprocess(self, inputs, candidate_labels=None, hypothesis_template="This example is {}."):
        if not candidate_labels:
            raise ValueError("zero-shot-classification needs candidate_labels (a list of labels or a comma-separated "
                             "string): You must include at least one label and at least one sequence.")
        if not isinstance(inputs, str):
            raise TypeError(f"zero-shot-classification takes a string (or a list of strings), got {type(inputs).__name__}")
        if not inputs:
            raise ValueError("You must include at least one label and at least one sequence (got an empty string).")
        if hypothesis_template.format(candidate_labels[0]) == hypothesis_template:
            raise ValueError(f'The provided hypothesis_template "{hypothesis_template}" was not able to be formatted '
                             "with the target labels. Make sure the passed template includes formatting syntax such "
                             "as {} where the label should go.")
        for i, label in enumerate(candidate_labels):
            model_inputs = self._tokenize(inputs, hypothesis_template.format(label))
            yield {"candidate_label": label, "sequence": inputs, "is_last": i == len(candidate_labels) - 1,
                   **model_inputs}

    def _tokenize(self, premise: str, hypothesis: str) -> dict:
        """Tokenize a premise/hypothesis pair, truncating only the premise (the hypothesis is kept whole)."""
        try:
            return dict(self.tokenizer(premise, hypothesis, return_tensors="np", truncation="only_first"))
        except Exception as err:  # the premise cannot be shortened enough: keep both whole, as Hugging Face does
            if "too short" not in str(err):
                raise
            return dict(self.tokenizer(premise, hypothesis, return_tensors="np", truncation=False))

    def _forward(self, batch: dict) -> dict:
        outputs = to_numpy_dict(self.run_model(batch))
        return {"candidate_label": batch["candidate_label"], "sequence": batch["sequence"],
                "is_last": batch["is_last"], **outputs}

    def postprocess(self, model_outputs: list[dict], multi_label: bool = False) -> dict:
        labels = [outputs["candidate_label"] for outputs in model_outputs]
        logits = np.concatenate([np.asarray(outputs["logits"], np.float32) for outputs in model_outputs])  # [n, C]
        entailment = self.entailment_id
        if multi_label or len(labels) == 1:
            contradiction = -1 if entailment == 0 else 0
            pair = logits[:, [contradiction, entailment]]  # [n, 2]
            scores = (np.exp(pair) / np.exp(pair).sum(-1, keepdims=True))[:, 1]
        else:
            entail = logits[:, entailment]  # [n]
            scores = np.exp(entail) / np.exp(entail).sum()
        order = list(reversed(scores.argsort()))
        return {"sequence": model_outputs[0]["sequence"], "labels": [labels[i] for i in order],
                "scores": [float(scores[i]) for i in order]}


__all__ = ["ZeroShotClassificationPipeline"]
