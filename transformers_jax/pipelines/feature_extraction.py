"""``feature-extraction``: the hidden states of a base model, per token."""
from __future__ import annotations

import numpy as np

from transformers_jax.pipelines.base import Pipeline, to_numpy_dict


class FeatureExtractionPipeline(Pipeline):
    """The last hidden state of a base model (one that ``AutoModel`` loads) for each input text.

    Each input gives a nested list ``[1][T][D]`` of floats (T its own token count, as in Hugging Face's
    unbatched run), or with ``return_tensors=True`` a numpy array of shape [1, T, D].

    Parameters (to ``pipeline(...)`` or per call): ``truncation`` (to the tokenizer), ``tokenize_kwargs``
    (a dict of tokenizer arguments), ``return_tensors``.
    """

    token_outputs = ("last_hidden_state",)

    def _sanitize_parameters(self, truncation=None, tokenize_kwargs=None, return_tensors=None, **kwargs):
        if kwargs:
            raise TypeError(f"feature-extraction got unexpected arguments {sorted(kwargs)}; tokenizer arguments go "
                            "in tokenize_kwargs={...}")
        tokenize_kwargs = dict(tokenize_kwargs or {})
        if truncation is not None:
            if "truncation" in tokenize_kwargs:
                raise ValueError("truncation parameter defined twice (given as keyword argument as well as in "
                                 "tokenize_kwargs)")
            tokenize_kwargs["truncation"] = truncation
        postprocess_params = {} if return_tensors is None else {"return_tensors": return_tensors}
        return tokenize_kwargs, {}, postprocess_params

    def preprocess(self, inputs, **tokenize_kwargs) -> dict:
        if not isinstance(inputs, str):
            raise TypeError(f"feature-extraction takes a string (or a list of strings), got {type(inputs).__name__}")
        return dict(self.tokenizer(inputs, return_tensors="np", **tokenize_kwargs))

    def _forward(self, batch: dict) -> dict:
        return to_numpy_dict(self.run_model(batch))

    def postprocess(self, model_outputs: dict, return_tensors: bool = False):
        features = np.asarray(next(iter(model_outputs.values())))  # the first output: [1, T, D]
        return features if return_tensors else features.tolist()


__all__ = ["FeatureExtractionPipeline"]
