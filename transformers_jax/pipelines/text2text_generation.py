"""``text2text-generation``, ``summarization`` and ``translation`` (``translation_xx_to_yy``): generate an output
text from an input text with an encoder-decoder model (BART, mBART, Marian, T5...) through its ``generate``.

Hugging Face transformers 5.x removed these pipelines; the behaviour followed here is that of their last 4.x release
(4.57), which ``tests/fixtures/seq2seq_oracle`` records:

* inputs: a string (-> a list of ``num_return_sequences`` records), a list of strings (-> one record per string
  when each has one sequence, else a list of such lists), or any other iterable (-> an iterator of record lists);
* records: ``{"generated_text"}`` (``"summary_text"``, ``"translation_text"``) decoded without special tokens, or
  with ``return_tensors=True`` ``{"generated_token_ids"}`` (``"summary_token_ids"``...): the decoder's sequence as
  ``generate`` returns it (start token first, padded like the batch it ran in), as a list of ints;
* the text put before every input (``prefix``): the config's ``task_specific_params[task]["prefix"]`` (T5's
  ``"summarize: "``, ``"translate English to German: "``...), else the config's ``prefix``;
* generation settings, lowest priority first: the pipeline's defaults ``max_new_tokens=256, num_beams=4``; the
  model's generation config where it differs from Hugging Face's global defaults; generation arguments given to
  ``pipeline(...)``; then -- as in Hugging Face -- if ``max_new_tokens`` is still the pipeline's 256 while a
  ``max_length`` other than 20 is set, ``max_new_tokens`` is dropped (the model's or the pipeline's
  ``max_length`` rules); then the other entries of ``task_specific_params[task]``; then the tokenizer's pad token
  when none is set. Arguments given to a call go to ``generate`` on top of that. So, as in Hugging Face 4.57, a
  ``max_length`` given to a call does NOT override the pipeline's default ``max_new_tokens=256`` (which takes
  precedence in ``generate``); give ``max_new_tokens``, or give ``max_length`` to ``pipeline(...)``;
* warnings (logged, as Hugging Face's ``check_inputs``): summarization when ``min_length > max_length`` or the
  input is shorter than ``max_length``; translation when the input is longer than ``0.9 * max_length``.

Translation: ``pipeline("translation_en_to_de")`` reads the languages from the task name (``src_lang``/``tgt_lang``
may also be given per call); a tokenizer with language codes (mBART's) encodes the input as ``src_lang`` and makes
generation start with the ``tgt_lang`` code (``forced_bos_token_id``); other models rely on the prefix.
``pipeline("translation", model=...)`` with a config that names ``translation_xx_to_yy`` tasks takes the first one
(with a warning), as Hugging Face does. Unlike Hugging Face, which then translates silently without a prefix, a
``translation_xx_to_yy`` task that the config's ``task_specific_params`` does not name while it names others is an
error; pass ``prefix=`` (``""`` for none) to run it anyway.

Batching: inputs are taken in order, ``batch_size`` at a time (as Hugging Face batches them, so that token ids
come back padded exactly as there), right padded to the longest of the batch (padding is masked, and the positions
of a right-padded input are its own), and a batch short of ``batch_size`` is completed with copies of its first
input, whose outputs are dropped; ``generate`` pads the encoder input and the output budget to length buckets, so
batches that fall into the same buckets reuse its compiled programs.
"""
from __future__ import annotations

import enum
import logging
import warnings
from typing import Any

import numpy as np

from transformers_jax.generation.configuration_utils import GLOBAL_DEFAULTS, GenerationConfig
from transformers_jax.pipelines import task_options
from transformers_jax.pipelines.base import Pipeline
from transformers_jax.pipelines.text_generation import check_generate_kwargs

logger = logging.getLogger(__name__)

# Hugging Face's Text2TextGenerationPipeline._default_generation_config (the same for its two subclasses).
DEFAULT_GENERATION = {"max_new_tokens": 256, "num_beams": 4}
HF_DEFAULT_MAX_LENGTH = 20  # GenerationConfig().max_length in Hugging Face


class ReturnType(enum.Enum):
    """What each record holds (Hugging Face's names and values)."""

    TENSORS = 0
    TEXT = 1


def _has_language_codes(tokenizer) -> bool:
    """Whether the tokenizer puts language codes around its inputs (mBART's classes: ``src_lang``/``tgt_lang``)."""
    return getattr(tokenizer, "_language_wrap", None) is not None


class Text2TextGenerationPipeline(Pipeline):
    """Generate text from text with an encoder-decoder model that ``AutoModelForSeq2SeqLM`` loads (see the module
    docstring for inputs, outputs and how generation settings combine).

    Parameters (to ``pipeline(...)`` or per call), with Hugging Face's names:
        return_tensors: ``True`` gives ``<name>_token_ids`` records instead of ``<name>_text`` (``return_type`` too).
        return_text: accepted (texts are the default).
        clean_up_tokenization_spaces: clean up spaces when decoding (default ``False``).
        truncation: cut inputs longer than the tokenizer's ``model_max_length`` (``True``, or a strategy name).
        stop_sequence: a string whose first token ends generation (it becomes ``eos_token_id``; a warning when the
            string has several tokens).
        prefix: text put before every input, replacing the one the config gives (an addition of this library).
        anything else: a ``generate`` argument (``max_new_tokens``, ``max_length``, ``min_length``,
            ``min_new_tokens``, ``num_beams``, ``num_return_sequences``, ``do_sample``, ``temperature``, ``top_k``,
            ``top_p``, ``repetition_penalty``, ``no_repeat_ngram_size``, ``length_penalty``, ``early_stopping``,
            ``eos_token_id``, ``generation_config``, ``prng_key``...).
    """

    return_name = "generated"
    sorts_by_length = False  # batches in input order, as Hugging Face's (token ids are padded per batch)
    default_generation = DEFAULT_GENERATION

    def __init__(self, model, tokenizer=None, task: str = "", **kwargs):
        if not getattr(model.config, "is_encoder_decoder", False) or not callable(getattr(model, "generate", None)):
            raise ValueError(
                f"the {task or 'text2text-generation'!r} pipeline needs an encoder-decoder model with a language "
                f"modeling head and generate (one that AutoModelForSeq2SeqLM loads: BART, mBART, Marian, T5...); got "
                f"a {type(model).__name__}")
        if tokenizer is None:
            raise ValueError(f"the {task or 'text2text-generation'!r} pipeline needs a tokenizer")
        names = set(GenerationConfig.field_names())
        construction = {k: kwargs.pop(k) for k in list(kwargs) if k in names}
        self._key_counter = 0  # batches run without a prng_key
        self._call_batches = 0
        task = self._resolve_task(model, task)
        super().__init__(model, tokenizer, task=task, **kwargs)
        task_params = dict((getattr(model.config, "task_specific_params", None) or {}).get(self.task) or {})
        config_prefix = task_params.pop("prefix", None)
        if config_prefix is None:
            config_prefix = getattr(model.config, "prefix", None)
        self.prefix = config_prefix
        self.generation_config = self._pipeline_generation_config(construction, task_params)
        self._check_task_is_named()

    # ------------------------------------------------------------------ construction
    def _resolve_task(self, model, task: str) -> str:
        return task

    def _check_task_is_named(self) -> None:
        """Refuse a task the model cannot do (TranslationPipeline: a language pair its config does not name)."""

    def _pipeline_generation_config(self, construction: dict, task_params: dict) -> GenerationConfig:
        """The pipeline's generation config, built as Hugging Face 4.57 builds it (see the module docstring)."""
        values: dict[str, Any] = dict(self.default_generation)
        names = set(GenerationConfig.field_names())
        for name, value in self.model.generation_config.to_dict().items():
            default = GLOBAL_DEFAULTS.get(name)
            if name in names and value is not None and value != default and values.get(name, default) == default:
                values[name] = value
        values.update({k: v for k, v in construction.items() if v is not None})
        if (self.default_generation.get("max_new_tokens") is not None
                and values.get("max_new_tokens") == self.default_generation["max_new_tokens"]
                and values.get("max_length") not in (None, HF_DEFAULT_MAX_LENGTH)):
            del values["max_new_tokens"]  # a set max_length rules (HF: e.g. bart-large-cnn's 142)
        values.update({k: v for k, v in task_params.items() if k in names})
        pad = getattr(self.tokenizer, "pad_token_id", None)
        if values.get("pad_token_id") is None and pad is not None:
            values["pad_token_id"] = pad
        return GenerationConfig.from_dict(values)

    # ------------------------------------------------------------------ parameters
    def _sanitize_parameters(self, return_tensors=None, return_text=None, return_type=None,
                             clean_up_tokenization_spaces=None, truncation=None, stop_sequence=None, prefix=None,
                             **generate_kwargs):
        preprocess_params: dict[str, Any] = {}
        if truncation is not None:
            preprocess_params["truncation"] = truncation
        if prefix is not None:
            if not isinstance(prefix, str):
                raise TypeError(f"prefix must be a string, got {type(prefix).__name__}")
            preprocess_params["prefix"] = prefix

        check_generate_kwargs(self.task or "text2text-generation", generate_kwargs)
        forward_params = dict(generate_kwargs)
        if stop_sequence is not None:
            if not isinstance(stop_sequence, str) or not stop_sequence:
                raise ValueError(f"stop_sequence must be a non-empty string, got {stop_sequence!r}")
            ids = self.tokenizer.encode(stop_sequence, add_special_tokens=False)
            if not ids:
                raise ValueError(f"stop_sequence {stop_sequence!r} encodes to no token")
            if len(ids) > 1:
                warnings.warn("Stopping on a multiple token sequence is not yet supported on transformers. The first "
                              "token of the stop sequence will be used as the stop sequence string in the interim.",
                              UserWarning, stacklevel=3)
            forward_params["eos_token_id"] = int(ids[0])

        postprocess_params: dict[str, Any] = {}
        if return_tensors is not None and return_type is None:
            return_type = ReturnType.TENSORS if return_tensors else ReturnType.TEXT
        if return_type is not None:
            postprocess_params["return_type"] = ReturnType(return_type)
        if clean_up_tokenization_spaces is not None:
            postprocess_params["clean_up_tokenization_spaces"] = clean_up_tokenization_spaces
        return preprocess_params, forward_params, postprocess_params

    # ------------------------------------------------------------------ calling
    def __call__(self, inputs, **kwargs):
        """Generate for one text (-> a list of records), a list of texts (-> one record per text, or a list of record
        lists when a text has several sequences) or another iterable (-> an iterator of record lists)."""
        result = super().__call__(inputs, **kwargs)
        if isinstance(inputs, list) and all(isinstance(x, str) for x in inputs) and all(len(r) == 1 for r in result):
            return [r[0] for r in result]
        return result

    def preprocess(self, inputs, truncation=None, prefix=None, **kwargs) -> dict:
        if not isinstance(inputs, str):
            raise TypeError(f"the {self.task or 'text2text-generation'!r} pipeline takes a string or a list of "
                            f"strings; got {type(inputs).__name__}: {inputs!r}")
        return self._encode((self.prefix or "") if prefix is None else prefix, inputs, truncation)

    def _encode(self, prefix: str, text: str, truncation, **tokenizer_kwargs) -> dict:
        kwargs = dict(tokenizer_kwargs)
        if truncation is not None:
            kwargs["truncation"] = truncation
        encoded = self.tokenizer(prefix + text, return_tensors="np", **kwargs)
        ids = np.asarray(encoded["input_ids"], np.int32).reshape(1, -1)
        mask = encoded.get("attention_mask")
        mask = np.ones_like(ids) if mask is None else np.asarray(mask, np.int32).reshape(1, -1)
        if ids.shape[1] == 0:
            raise ValueError(f"the input {text!r} encodes to no token: the encoder needs at least one")
        return {"input_ids": ids, "attention_mask": mask}

    def _padding_side(self) -> str:
        return "right"  # the encoder's positions are then each input's own (left padding would shift BART's)

    def _bucket(self, length: int) -> int:
        return length  # inputs are padded to the batch's longest here; generate pads that to its length bucket

    def _effective(self, name: str, forward_params: dict):
        """The value of a length setting for the input checks: the call's, else the pipeline config's, else HF's
        global default."""
        value = forward_params.get(name)
        if value is None:
            value = getattr(self.generation_config, name)
        return GLOBAL_DEFAULTS.get(name) if value is None else value

    def check_inputs(self, input_length: int, min_length: int, max_length: int) -> None:
        """Warn about settings that look wrong for this task (Hugging Face's checks; none for text2text)."""

    def forward(self, examples: list[dict], rows: int | None = None, **forward_params) -> list[dict]:
        """Generate for a batch: right pad the inputs to a bucket, complete the batch to ``rows`` rows, run
        ``generate`` and give each example its ``num_return_sequences`` sequences."""
        import jax

        rows = max(rows or 1, len(examples))
        batch, lengths, _ = self.collate(examples, rows)
        user_key = forward_params.pop("prng_key", None)
        self.check_inputs(max(lengths), self._effective("min_length", forward_params),
                          self._effective("max_length", forward_params))
        generation_config = forward_params.pop("generation_config", None) or self.generation_config
        forced_bos = batch.pop("forced_bos_token_id", None)
        if forced_bos is not None and "forced_bos_token_id" not in forward_params:
            forward_params["forced_bos_token_id"] = forced_bos[0]
        if user_key is not None:
            key = jax.random.fold_in(user_key, self._call_batches)
        else:
            key = jax.random.fold_in(jax.random.PRNGKey(0), self._key_counter)
            self._key_counter += 1
        self._call_batches += 1
        sequences = np.asarray(self.model.generate(
            batch["input_ids"], attention_mask=batch["attention_mask"], generation_config=generation_config,
            prng_key=key, params=self._params, **forward_params))
        per_row = sequences.shape[0] // rows
        return [{"output_ids": sequences[i * per_row:(i + 1) * per_row]} for i in range(len(examples))]

    def _run(self, *args, **kwargs):
        self._call_batches = 0
        return super()._run(*args, **kwargs)

    def postprocess(self, model_outputs: dict, return_type=ReturnType.TEXT, clean_up_tokenization_spaces=False):
        records = []
        for ids in np.asarray(model_outputs["output_ids"]).tolist():
            if return_type == ReturnType.TENSORS:
                records.append({f"{self.return_name}_token_ids": ids})
            else:
                text = self.tokenizer.decode(ids, skip_special_tokens=True,
                                             clean_up_tokenization_spaces=clean_up_tokenization_spaces)
                records.append({f"{self.return_name}_text": text})
        return records


class SummarizationPipeline(Text2TextGenerationPipeline):
    """Summarize documents (records ``{"summary_text"}`` / ``{"summary_token_ids"}``); see
    :class:`Text2TextGenerationPipeline` for the parameters. A model whose config has
    ``task_specific_params["summarization"]`` (T5: ``prefix="summarize: "``, beam settings) gets those."""

    return_name = "summary"

    def check_inputs(self, input_length: int, min_length: int, max_length: int) -> None:
        """Warn when ``min_length > max_length`` or when the input is shorter than ``max_length`` (Hugging Face's
        messages)."""
        if max_length < min_length:
            logger.warning(f"Your min_length={min_length} must be inferior than your max_length={max_length}.")
        if input_length < max_length:
            logger.warning(
                f"Your max_length is set to {max_length}, but your input_length is only {input_length}. Since this is "
                "a summarization task, where outputs shorter than the input are typically wanted, you might "
                f"consider decreasing max_length manually, e.g. summarizer('...', max_length={input_length // 2})")


class TranslationPipeline(Text2TextGenerationPipeline):
    """Translate texts (records ``{"translation_text"}`` / ``{"translation_token_ids"}``); see
    :class:`Text2TextGenerationPipeline` for the parameters, and the module docstring for how the languages are
    chosen.

    Additional parameters (to ``pipeline(...)`` or per call):
        src_lang, tgt_lang: the languages; with a tokenizer that has language codes (mBART's) the input is encoded
            as ``src_lang`` and generation starts with the ``tgt_lang`` code. Default: those of the task name.
    """

    return_name = "translation"

    def _resolve_task(self, model, task: str) -> str:
        """``"translation"`` with a config naming ``translation_xx_to_yy`` tasks: the first of them (Hugging Face)."""
        if task == "translation":
            for key in getattr(model.config, "task_specific_params", None) or {}:
                if key.startswith("translation"):
                    warnings.warn(f'"translation" task was used, instead of "translation_XX_to_YY", defaulting to '
                                  f'"{key}"', UserWarning, stacklevel=4)
                    return key
        if task.startswith("translation"):
            task_options(task)  # a malformed "translation..." name is an error
        return task

    def _check_task_is_named(self) -> None:
        """A ``translation_xx_to_yy`` task that the config's ``task_specific_params`` does not name, while it names
        other translation tasks (a T5-style model that translates by prefix), is refused: Hugging Face would run it
        without a prefix, which such a model does not translate. An explicit ``prefix=`` (``""``: none) overrides."""
        params = getattr(self.model.config, "task_specific_params", None) or {}
        named = sorted(k for k in params if k.startswith("translation_"))
        if (self.task.startswith("translation_") and named and self.task not in params
                and "prefix" not in self._preprocess_params and not _has_language_codes(self.tokenizer)):
            raise ValueError(
                f"the model's config does not name the task {self.task!r}: its task_specific_params name "
                f"{', '.join(named)} (each with the prefix that makes the model translate that pair). Use one of "
                f"those, or pass prefix='...' (prefix='' for none) to run {self.task!r} anyway.")

    def _sanitize_parameters(self, src_lang=None, tgt_lang=None, **kwargs):
        preprocess_params, forward_params, postprocess_params = super()._sanitize_parameters(**kwargs)
        if src_lang is not None:
            preprocess_params["src_lang"] = src_lang
        if tgt_lang is not None:
            preprocess_params["tgt_lang"] = tgt_lang
        if src_lang is None and tgt_lang is None:
            languages = task_options(self.task or "")
            if languages is not None:
                preprocess_params["src_lang"], preprocess_params["tgt_lang"] = languages
        return preprocess_params, forward_params, postprocess_params

    def preprocess(self, inputs, truncation=None, prefix=None, src_lang=None, tgt_lang=None, **kwargs) -> dict:
        if not _has_language_codes(self.tokenizer):
            return super().preprocess(inputs, truncation=truncation, prefix=prefix)
        if not isinstance(inputs, str):
            raise TypeError(f"the {self.task!r} pipeline takes a string or a list of strings; got "
                            f"{type(inputs).__name__}: {inputs!r}")
        if src_lang is None or tgt_lang is None:
            raise ValueError("Translation requires a `src_lang` and a `tgt_lang` for this model")
        codes = self.tokenizer.added_tokens_encoder  # language codes are added special tokens
        for name, code in (("src_lang", src_lang), ("tgt_lang", tgt_lang)):
            if code not in codes:
                raise ValueError(f"{name}={code!r} is not a language code of this tokenizer (e.g. 'en_XX', 'ro_RO'); "
                                 f"pass src_lang= and tgt_lang=")
        self.tokenizer.src_lang = src_lang  # as Hugging Face's _build_translation_inputs
        example = self._encode((self.prefix or "") if prefix is None else prefix, inputs, truncation)
        example["forced_bos_token_id"] = int(codes[tgt_lang])
        return example

    def check_inputs(self, input_length: int, min_length: int, max_length: int) -> None:
        """Warn when the input is longer than ``0.9 * max_length`` (Hugging Face's message)."""
        if input_length > 0.9 * max_length:
            logger.warning(
                f"Your input_length: {input_length} is bigger than 0.9 * max_length: {max_length}. You might consider "
                "increasing your max_length manually, e.g. translator('...', max_length=400)")


__all__ = ["ReturnType", "SummarizationPipeline", "Text2TextGenerationPipeline", "TranslationPipeline"]
