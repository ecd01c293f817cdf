"""``fill-mask``: the most likely tokens at each mask token of a text."""
from __future__ import annotations

import logging

import numpy as np

from transformers_jax.pipelines.base import Pipeline, PipelineException, check_top_k, to_numpy_dict
from transformers_jax.pipelines.text_classification import softmax

logger = logging.getLogger("transformers_jax")


class FillMaskPipeline(Pipeline):
    """Predict the token at each ``tokenizer.mask_token`` of a text with a model that ``AutoModelForMaskedLM``
    loads.

    One mask gives a list of ``{"score", "token", "token_str", "sequence"}`` dicts (best first); several masks
    in one text give one such list per mask (scores of each mask on its own, as in Hugging Face).

    Parameters (to ``pipeline(...)`` or per call):
        top_k: how many predictions per mask (default 5).
        targets: a word or list of words to score instead of the whole vocabulary; a word that is not a
            vocabulary entry is replaced (with a warning) by the first token it tokenizes to, as in Hugging Face.
        tokenizer_kwargs: a dict of tokenizer arguments (``{"truncation": True}``).
    """

    token_outputs = ("logits",)

    def _sanitize_parameters(self, top_k=None, targets=None, tokenizer_kwargs=None):
        if self.tokenizer.mask_token_id is None:
            raise PipelineException("fill-mask", type(self.model).__name__, "The tokenizer does not define a `mask_token`.")
        preprocess_params = {} if tokenizer_kwargs is None else {"tokenizer_kwargs": dict(tokenizer_kwargs)}
        postprocess_params = {}
        if targets is not None:
            postprocess_params["target_ids"] = self.get_target_ids(targets)
        if top_k is not None:
            postprocess_params["top_k"] = check_top_k(top_k)
        return preprocess_params, {}, postprocess_params

    def get_target_ids(self, targets) -> np.ndarray:
        """Vocabulary ids of ``targets``; a word outside the vocabulary becomes the first token it tokenizes to."""
        if isinstance(targets, str):
            targets = [targets]
        if not isinstance(targets, (list, tuple)) or not all(isinstance(t, str) for t in targets):
            raise TypeError(f"targets must be a string or a list of strings, got {targets!r}")
        vocab = self.tokenizer.get_vocab()
        ids = []
        for target in targets:
            token_id = vocab.get(target)
            if token_id is None:
                pieces = self.tokenizer(target, add_special_tokens=False, return_attention_mask=False,
                                        return_token_type_ids=False, max_length=1, truncation=True)["input_ids"]
                if not pieces:
                    logger.warning("The specified target token `%s` does not exist in the model vocabulary. We cannot "
                                   "replace it with anything meaningful, ignoring it", target)
                    continue
                token_id = pieces[0]
                logger.warning("The specified target token `%s` does not exist in the model vocabulary. Replacing "
                               "with `%s`.", target, self.tokenizer.convert_ids_to_tokens(token_id))
            ids.append(token_id)
        ids = list(dict.fromkeys(ids))  # each id once
        if not ids:
            raise ValueError("At least one target must be provided when passed.")
        return np.array(ids)

    def __call__(self, inputs, **kwargs):
        """Fill the masks of one text or of each text of a list (a list of one text gives that text's result)."""
        outputs = super().__call__(inputs, **kwargs)
        if isinstance(inputs, list) and len(inputs) == 1:
            return outputs[0]
        return outputs

    def preprocess(self, inputs, tokenizer_kwargs=None) -> dict:
        if not isinstance(inputs, str):
            raise TypeError(f"fill-mask takes a string (or a list of strings), got {type(inputs).__name__}")
        model_inputs = dict(self.tokenizer(inputs, return_tensors="np", **(tokenizer_kwargs or {})))
        if not (model_inputs["input_ids"] == self.tokenizer.mask_token_id).any():
            raise PipelineException("fill-mask", type(self.model).__name__,
                                    f"No mask_token ({self.tokenizer.mask_token}) found on the input")
        return model_inputs

    def _forward(self, batch: dict) -> dict:
        return {**to_numpy_dict(self.run_model(batch)), "input_ids": batch["input_ids"]}

    def postprocess(self, model_outputs: dict, top_k: int = 5, target_ids: np.ndarray | None = None):
        input_ids = np.asarray(model_outputs["input_ids"][0])  # [T]
        masked = np.flatnonzero(input_ids == self.tokenizer.mask_token_id)  # [M]
        probs = softmax(np.asarray(model_outputs["logits"][0, masked], np.float32))  # [M, V]
        if target_ids is not None:
            probs = probs[:, target_ids]  # [M, targets]
            top_k = min(top_k, len(target_ids))
        single_mask = len(masked) == 1
        result = []
        for row, position in zip(probs, masked):
            best = np.argsort(-row, kind="stable")[:top_k]
            predictions = []
            for index in best:
                token = int(target_ids[index]) if target_ids is not None else int(index)
                tokens = input_ids.copy()
                tokens[position] = token
                tokens = tokens[tokens != self.tokenizer.pad_token_id]
                predictions.append({
                    "score": float(row[index]),
                    "token": token,
                    "token_str": self.tokenizer.decode([token]),
                    "sequence": self.tokenizer.decode(tokens, skip_special_tokens=single_mask),
                })
            result.append(predictions)
        return result[0] if single_mask else result


__all__ = ["FillMaskPipeline"]
