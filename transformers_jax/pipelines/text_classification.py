"""``text-classification`` (alias ``sentiment-analysis``): labels and scores from a sequence classifier."""
from __future__ import annotations

import numpy as np

from transformers_jax.pipelines.base import Pipeline, check_top_k, to_numpy_dict, warn_deprecated

FUNCTIONS = ("sigmoid", "softmax", "none")


def sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


def softmax(x: np.ndarray) -> np.ndarray:
    """Softmax over the last axis (shifted by the maximum, so large logits do not overflow)."""
    e = np.exp(x - np.max(x, axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


class TextClassificationPipeline(Pipeline):
    """Classify texts, or text pairs given as ``{"text": ..., "text_pair": ...}``, with a model that
    ``AutoModelForSequenceClassification`` loads.

    Parameters (to ``pipeline(...)`` or per call):
        top_k: how many labels per input, best first; ``None`` for all of them. Without it a single text
            gives ``[{"label", "score"}]`` (the best label) as in Hugging Face; with it, a list per input.
        function_to_apply: ``"softmax"``, ``"sigmoid"`` or ``"none"``. By default: none for
            ``problem_type="regression"``, sigmoid for multi-label or one-label models, softmax otherwise.
        return_all_scores: Hugging Face's deprecated spelling of ``top_k=None`` (scores in label order).
        other keyword arguments go to the tokenizer (``truncation=True``, ``max_length=...``).
    """

    def _sanitize_parameters(self, function_to_apply=None, top_k="", return_all_scores=None, **tokenizer_kwargs):
        postprocess_params = {}
        if isinstance(top_k, str):  # "" = not given: Hugging Face's legacy single-label output
            if top_k != "":
                raise ValueError(f"top_k must be a positive integer or None, got {top_k!r}")
            if return_all_scores is not None:
                warn_deprecated("`return_all_scores` is deprecated: use `top_k=None` for all scores, `top_k=1` for the best")
                postprocess_params["top_k"] = None if return_all_scores else 1
        else:
            postprocess_params["top_k"] = check_top_k(top_k, allow_none=True)
            postprocess_params["_legacy"] = False
        if function_to_apply is not None:
            name = str(getattr(function_to_apply, "value", function_to_apply)).lower()
            if name != "default":
                if name not in FUNCTIONS:
                    raise ValueError(f"function_to_apply must be one of {FUNCTIONS}, got {function_to_apply!r}")
                postprocess_params["function_to_apply"] = name
        return tokenizer_kwargs, {}, postprocess_params

    def __call__(self, inputs, **kwargs):
        """Classify one text (-> ``[{"label", "score"}]``), a text pair dict, or a list/iterable of them.

        With ``top_k`` each input gives a list of ``{"label", "score"}`` dicts, best first."""
        result = super().__call__(inputs, **kwargs)
        if isinstance(inputs, str) and "top_k" not in kwargs:
            return [result]  # Hugging Face returns a list for a single text
        return result

    def preprocess(self, inputs, **tokenizer_kwargs) -> dict:
        if isinstance(inputs, dict):
            unknown = sorted(set(inputs) - {"text", "text_pair"})
            if unknown or "text" not in inputs:
                raise ValueError(f"a text pair is a dict with the keys 'text' and 'text_pair'; got keys {sorted(inputs)}")
            return dict(self.tokenizer(**inputs, return_tensors="np", **tokenizer_kwargs))
        if isinstance(inputs, (list, tuple)):
            raise ValueError('The pipeline received invalid inputs, if you are trying to send text pairs, you can try '
                             'to send a dictionary `{"text": "My text", "text_pair": "My pair"}` in order to send a '
                             'text pair.')
        if not isinstance(inputs, str):
            raise TypeError(f"text-classification takes a string or a text pair dict, got {type(inputs).__name__}")
        return dict(self.tokenizer(inputs, return_tensors="np", **tokenizer_kwargs))

    def _forward(self, batch: dict) -> dict:
        return to_numpy_dict(self.run_model(batch))

    def _default_function(self) -> str:
        config = self.model.config
        if config.problem_type == "regression":
            return "none"
        if config.problem_type == "multi_label_classification" or config.num_labels == 1:
            return "sigmoid"
        if config.problem_type == "single_label_classification" or config.num_labels > 1:
            return "softmax"
        return str(getattr(config, "extra", {}).get("function_to_apply", "none"))

    def postprocess(self, model_outputs: dict, function_to_apply=None, top_k=1, _legacy=True):
        logits = np.asarray(model_outputs["logits"][0], np.float32)  # [num_labels]
        function = function_to_apply or self._default_function()
        scores = {"sigmoid": sigmoid, "softmax": softmax, "none": lambda x: x}[function](logits)
        id2label = self.model.config.id2label
        if top_k == 1 and _legacy:
            return {"label": id2label[int(scores.argmax())], "score": float(scores.max())}
        results = [{"label": id2label[i], "score": float(score)} for i, score in enumerate(scores)]
        if not _legacy:
            results.sort(key=lambda r: r["score"], reverse=True)
            if top_k is not None:
                results = results[:top_k]
        return results


__all__ = ["TextClassificationPipeline"]
