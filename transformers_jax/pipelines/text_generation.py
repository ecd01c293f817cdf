"""``text-generation``: continue prompts, or answer chats, with a causal LM through the compiled ``generate``.

Behaviour follows Hugging Face's ``TextGenerationPipeline`` (transformers 5.x):

* inputs: a string, a chat (a list of ``{"role", "content"}`` messages, rendered with the tokenizer's chat
  template and ``add_generation_prompt``), or a list / iterable of either;
* outputs: per input a list of ``num_return_sequences`` records ``{"generated_text": ...}`` (the prompt plus the
  new text; only the new text with ``return_full_text=False``; for a chat, the chat with the assistant's message
  appended) or ``{"generated_token_ids": [...]}`` with ``return_tensors=True``;
* generation settings: every keyword argument that is not the pipeline's own goes to ``model.generate``
  (greedy, sampling, beams, penalties: see ``transformers_jax.generation``). Settings that neither the call,
  ``pipeline(...)``, a ``generation_config=`` nor the model's ``generation_config.json`` set take the pipeline's
  defaults, as in Hugging Face: ``max_new_tokens=256``, ``do_sample=True``, ``temperature=0.7`` (the sampling
  ones only when sampling) and the tokenizer's ``pad_token_id``.

Batching: prompts are left padded (a right-padding tokenizer is switched to left padding, as Hugging Face does)
to the longest prompt of the batch, and ``generate`` pads that to a length bucket, so batches whose prompts
and budgets fall into the same buckets reuse one compiled decoding program. A batch short of ``batch_size``
is filled with copies of its first prompt, whose outputs are dropped, so it reuses the program too.

Sampling keys: ``prng_key=`` (a ``jax.random`` key) makes a call reproducible; each batch of the call uses
``fold_in(prng_key, batch number)``. Without one, the pipeline folds a running counter into ``PRNGKey(0)``, so
successive calls draw different samples and a fresh pipeline repeats the same sequence of draws.

Stop sequences (``stop_sequence=``) end a sequence at the first token that completes one of the strings (the
string is kept, as Hugging Face's ``stop_strings`` do); the check runs on the generated tokens after the
compiled loop, which is exact for greedy decoding and sampling (rows are independent). With beam search the
chosen beam is cut at the stop string instead of the search stopping there.
"""
from __future__ import annotations

import collections.abc
import enum
import itertools
from typing import Any

import numpy as np

from transformers_jax.generation.configuration_utils import GenerationConfig
from transformers_jax.pipelines.base import Pipeline

# Hugging Face's TextGenerationPipeline._default_generation_config.
DEFAULT_GENERATION = {"max_new_tokens": 256, "do_sample": True, "temperature": 0.7}
# Applied by default only when sampling (HF's _prepare_generate_kwargs).
SAMPLING_PARAMS = {"temperature", "top_k", "top_p", "min_p", "typical_p", "epsilon_cutoff", "eta_cutoff"}
# Keyword arguments that go to ``generate`` besides GenerationConfig's fields.
GENERATE_EXTRA_KWARGS = ("generation_config", "prng_key")


def check_generate_kwargs(task: str, generate_kwargs: dict) -> None:
    """Refuse, by name, keyword arguments that are neither a pipeline's nor ``generate``'s."""
    known = set(GenerationConfig.field_names()) | set(GENERATE_EXTRA_KWARGS)
    unknown = sorted(set(generate_kwargs) - known)
    if unknown:
        raise ValueError(f"{task}: unknown argument(s) {', '.join(map(repr, unknown))}: they are neither the "
                         f"pipeline's nor generate's; generate takes {', '.join(sorted(known))}")


class ReturnType(enum.Enum):
    """What each record holds (Hugging Face's names and values)."""

    TENSORS = 0
    NEW_TEXT = 1
    FULL_TEXT = 2


class Chat:
    """A conversation given to the pipeline: its messages, each checked to be a dict with ``role`` and
    ``content`` (Hugging Face's internal ``Chat``, so that a list of messages is not taken for a batch)."""

    def __init__(self, messages):
        messages = list(messages)
        if not messages:
            raise ValueError("a chat given to the text-generation pipeline must hold at least one message")
        for i, message in enumerate(messages):
            if not is_valid_message(message):
                what = f"keys {sorted(message)}" if isinstance(message, dict) else f"a {type(message).__name__}"
                raise ValueError(f"When passing chat dicts as input, each dict must have a 'role' and 'content' key: "
                                 f"message {i} of the chat has {what}")
        self.messages = messages

    def __repr__(self) -> str:
        return f"Chat({self.messages!r})"


def is_valid_message(message) -> bool:
    """A chat message: a dict with ``role`` and ``content`` keys."""
    return isinstance(message, dict) and "role" in message and "content" in message


def _is_chat(value) -> bool:
    return isinstance(value, (list, tuple)) and bool(value) and isinstance(value[0], dict)


def _as_chats(inputs):
    """Wrap chats (a list of message dicts, or a collection of such lists) in :class:`Chat`, as HF does."""
    if isinstance(inputs, Chat) or isinstance(inputs, (str, bytes)):
        return inputs
    if _is_chat(inputs):
        return Chat(inputs)
    if isinstance(inputs, (list, tuple)):  # a batch: each chat in it wrapped (strings and chats may mix)
        return [Chat(item) if _is_chat(item) else item for item in inputs]
    if isinstance(inputs, collections.abc.Iterator):  # a generator: peek at its first item
        try:
            first = next(inputs)
        except StopIteration:
            return []
        if isinstance(first, dict):
            return Chat([first, *inputs])
        rest = itertools.chain([first], inputs)
        return (Chat(item) if _is_chat(item) else item for item in rest)
    return inputs


class TextGenerationPipeline(Pipeline):
    """Generate text with a model that ``AutoModelForCausalLM`` loads (see the module docstring).

    Parameters (to ``pipeline(...)`` or per call), with Hugging Face's names:
        return_full_text: ``True`` (default) the prompt plus the new text; ``False`` only the new text.
        return_text / return_tensors: texts (default) or ``generated_token_ids`` (the prompt as batched plus the
            new tokens, as a list of ints) instead.
        clean_up_tokenization_spaces, skip_special_tokens (default ``True``): how the new tokens are decoded.
        prefix: text put before every (non-chat) prompt; not part of the returned text.
        continue_final_message: continue a chat's last message instead of adding an assistant message (the
            default when the last message is the assistant's).
        stop_sequence: a string or list of strings that ends a sequence (kept in the output).
        max_length: the total length (prompt included), as for ``generate``.
        handle_long_generation: ``"hole"`` cuts the prompt from the left so that prompt + new tokens fit the
            tokenizer's ``model_max_length``.
        add_special_tokens, truncation, padding, tokenizer_encode_kwargs: how prompts are encoded.
        tools, documents: passed to the chat template.
        anything else: a ``generate`` argument (``max_new_tokens``, ``do_sample``, ``num_beams``,
            ``num_return_sequences``, ``temperature``, ``top_k``, ``top_p``, ``repetition_penalty``,
            ``no_repeat_ngram_size``, ``min_new_tokens``, ``eos_token_id``, ``generation_config``, ``prng_key``...).
    """

    sorts_by_length = False  # generate pads and buckets its prompts itself; results stream in input order

    default_generation = DEFAULT_GENERATION

    def __init__(self, model, tokenizer=None, **kwargs):
        if not callable(getattr(model, "generate", None)) or not getattr(type(model), "can_generate", lambda: False)():
            raise ValueError(f"the 'text-generation' pipeline needs a causal language model (one that "
                             f"AutoModelForCausalLM loads, with a generate method); got a {type(model).__name__}")
        if tokenizer is None:
            raise ValueError("the 'text-generation' pipeline needs a tokenizer")
        if getattr(tokenizer, "padding_side", "left") == "right":
            tokenizer.padding_side = "left"  # decoder-only models generate from left-padded batches (as HF)
        self._key_counter = 0  # batches run without a prng_key (see the module docstring)
        self._call_batches = 0  # batches of the current call
        super().__init__(model, tokenizer, **kwargs)
        if "prefix" not in self._preprocess_params:
            prefix = getattr(model.config, "prefix", None) or getattr(model.config, "extra", {}).get("prefix")
            if prefix:
                pre, fwd, _ = self._sanitize_parameters(prefix=prefix)
                self._preprocess_params = {**self._preprocess_params, **pre}
                self._forward_params = {**self._forward_params, **fwd}

    # ------------------------------------------------------------------ parameters
    def _sanitize_parameters(self, return_full_text=None, return_tensors=None, return_text=None, return_type=None,
                             clean_up_tokenization_spaces=None, prefix=None, handle_long_generation=None,
                             stop_sequence=None, truncation=None, max_length=None, continue_final_message=None,
                             skip_special_tokens=None, tokenizer_encode_kwargs=None, tools=None, documents=None,
                             **generate_kwargs):
        preprocess_params: dict[str, Any] = {}
        forward_params: dict[str, Any] = {}
        for key in ("add_special_tokens", "padding"):
            if key in generate_kwargs:
                preprocess_params[key] = generate_kwargs.pop(key)
        if truncation is not None:
            preprocess_params["truncation"] = truncation
        if max_length is not None:
            preprocess_params["max_length"] = max_length
            generate_kwargs["max_length"] = max_length
        if tools is not None:
            preprocess_params["tools"] = tools
        if documents is not None:
            preprocess_params["documents"] = documents
        if prefix is not None:
            if not isinstance(prefix, str):
                raise TypeError(f"prefix must be a string, got {type(prefix).__name__}")
            preprocess_params["prefix"] = prefix
            if prefix:
                encoded = self.tokenizer(prefix, add_special_tokens=bool(preprocess_params.get("add_special_tokens")))
                forward_params["prefix_length"] = len(encoded["input_ids"])
        if handle_long_generation is not None:
            if handle_long_generation != "hole":
                raise ValueError(f"{handle_long_generation} is not a valid value for `handle_long_generation` "
                                 "parameter expected [None, 'hole']")
            preprocess_params["handle_long_generation"] = handle_long_generation
            preprocess_params["generate_kwargs"] = dict(generate_kwargs)
        if continue_final_message is not None:
            preprocess_params["continue_final_message"] = continue_final_message
        if tokenizer_encode_kwargs is not None:
            preprocess_params["tokenizer_encode_kwargs"] = tokenizer_encode_kwargs

        if stop_sequence is not None:
            stops = [stop_sequence] if isinstance(stop_sequence, str) else list(stop_sequence)
            if not stops or not all(isinstance(s, str) and s for s in stops):
                raise ValueError(f"stop_sequence must be a non-empty string or a list of them, got {stop_sequence!r}")
            forward_params["stop_sequence"] = stops
        check_generate_kwargs(self.task or "text-generation", generate_kwargs)
        forward_params.update(generate_kwargs)

        postprocess_params: dict[str, Any] = {}
        if tools is not None:
            postprocess_params["tools"] = tools
        if return_full_text is not None and return_type is None:
            if return_text is not None:
                raise ValueError("`return_text` is mutually exclusive with `return_full_text`")
            if return_tensors is not None:
                raise ValueError("`return_full_text` is mutually exclusive with `return_tensors`")
            return_type = ReturnType.FULL_TEXT if return_full_text else ReturnType.NEW_TEXT
        if return_tensors is not None and return_type is None:
            if return_text is not None:
                raise ValueError("`return_text` is mutually exclusive with `return_tensors`")
            return_type = ReturnType.TENSORS
        if return_type is not None:
            postprocess_params["return_type"] = ReturnType(return_type)
        if clean_up_tokenization_spaces is not None:
            postprocess_params["clean_up_tokenization_spaces"] = clean_up_tokenization_spaces
        if continue_final_message is not None:
            postprocess_params["continue_final_message"] = continue_final_message
        if skip_special_tokens is not None:
            postprocess_params["skip_special_tokens"] = skip_special_tokens
        return preprocess_params, forward_params, postprocess_params

    def generation_kwargs(self, generate_kwargs: dict, prefix_length: int = 0) -> dict:
        """The ``generate`` keyword arguments of a call: the user's (``pipeline(...)``'s under the call's), plus the
        pipeline's defaults for what neither they, their ``generation_config`` nor the model's generation config
        set (the sampling defaults only when sampling); with a prefix, a set ``max_length``/``min_length`` grows
        by its length (the prompt the model sees is longer than the one given)."""
        set_params = self._set_generation_params(generate_kwargs)
        defaults = dict(self.default_generation)
        pad = getattr(self.tokenizer, "pad_token_id", None)
        if pad is not None:
            defaults["pad_token_id"] = pad
        added = {k: v for k, v in defaults.items()
                 if k not in set_params and not (k == "max_new_tokens" and "max_length" in set_params)}
        if not {**set_params, **added}.get("do_sample"):
            added = {k: v for k, v in added.items() if k not in SAMPLING_PARAMS}
        out = {**generate_kwargs, **added}
        if prefix_length:
            merged = {**set_params, **added}
            for length, new in (("max_length", "max_new_tokens"), ("min_length", "min_new_tokens")):
                if merged.get(length) is not None and new not in merged:
                    out[length] = merged[length] + prefix_length
        return out

    def _set_generation_params(self, generate_kwargs: dict) -> dict:
        """What a generate call with ``generate_kwargs`` does not take from the global defaults."""
        params = self.model.generation_config.to_dict()
        user_config = generate_kwargs.get("generation_config")
        if user_config is not None:
            params.update(user_config.to_dict())
        return {**params, **{k: v for k, v in generate_kwargs.items() if v is not None}}

    # ------------------------------------------------------------------ calling
    def __call__(self, text_inputs, **kwargs):
        """Complete one prompt or chat (-> a list of records) or several (-> a list of such lists; an iterator
        for a generator or dataset). See the class docstring for the keyword arguments."""
        return super().__call__(_as_chats(text_inputs), **kwargs)

    def preprocess(self, prompt_text, prefix="", handle_long_generation=None, add_special_tokens=None,
                   truncation=None, padding=None, max_length=None, continue_final_message=None,
                   tokenizer_encode_kwargs=None, tools=None, documents=None, generate_kwargs=None) -> dict:
        tokenizer_kwargs = {k: v for k, v in (("add_special_tokens", add_special_tokens), ("truncation", truncation),
                                              ("padding", padding), ("max_length", max_length)) if v is not None}
        if max_length is not None and not truncation:
            tokenizer_kwargs.pop("max_length")  # only a generate setting then (HF's tokenizer ignores it too)
        tokenizer_kwargs.update(tokenizer_encode_kwargs or {})
        if _is_chat(prompt_text):  # a chat inside a dataset or KeyDataset column
            prompt_text = Chat(prompt_text)
        if isinstance(prompt_text, Chat):
            tokenizer_kwargs.pop("add_special_tokens", None)
            if continue_final_message is None:
                continue_final_message = prompt_text.messages[-1]["role"] == "assistant"
            encoded = self.tokenizer.apply_chat_template(
                prompt_text.messages, add_generation_prompt=not continue_final_message,
                continue_final_message=continue_final_message, return_dict=True, return_tensors="np",
                tools=tools, documents=documents, **tokenizer_kwargs)
        elif isinstance(prompt_text, str):
            encoded = self.tokenizer(prefix + prompt_text, return_tensors="np", **tokenizer_kwargs)
        else:
            raise TypeError(f"text-generation takes a string, a chat (a list of {{'role', 'content'}} dicts) or a "
                            f"list of them; got {type(prompt_text).__name__}")
        ids = np.asarray(encoded["input_ids"], np.int32).reshape(1, -1)
        mask = encoded.get("attention_mask")
        mask = np.ones_like(ids) if mask is None else np.asarray(mask, np.int32).reshape(1, -1)
        if handle_long_generation == "hole":
            ids, mask = self._hole(ids, mask, generate_kwargs or {})
        empty = ids.shape[1] == 0
        if empty:  # HF generates from the BOS token (and decodes the whole sequence)
            bos = self._generation_setting("bos_token_id", generate_kwargs or {})
            if bos is None:
                raise ValueError("the prompt is empty and no bos_token_id is set to start generating from: "
                                 "give a non-empty prompt or set generation_config.bos_token_id")
            ids, mask = np.full((1, 1), int(bos), np.int32), np.ones((1, 1), np.int32)
        return {"input_ids": ids, "attention_mask": mask, "prompt_text": prompt_text, "empty_prompt": empty}

    def _generation_setting(self, name: str, generate_kwargs: dict):
        value = self._set_generation_params({**self._forward_params, **generate_kwargs}).get(name)
        if value is None and name == "bos_token_id":
            value = getattr(self.tokenizer, "bos_token_id", None)
        return value

    def _hole(self, ids: np.ndarray, mask: np.ndarray, generate_kwargs: dict):
        """``handle_long_generation="hole"``: keep the end of the prompt so that it and the new tokens fit."""
        params = self._set_generation_params(self.generation_kwargs({**self._forward_params, **generate_kwargs}))
        length = ids.shape[1]
        new_tokens = params.get("max_new_tokens")
        if new_tokens is None:
            new_tokens = params.get("max_length", 20) - length
            if new_tokens < 0:
                raise ValueError("We cannot infer how many new tokens are expected")
        limit = self.tokenizer.model_max_length
        if length + new_tokens > limit:
            keep = limit - new_tokens
            if keep <= 0:
                raise ValueError("We cannot use `hole` to handle this generation the number of desired tokens "
                                 "exceeds the models max length")
            ids, mask = ids[:, -keep:], mask[:, -keep:]
        return ids, mask

    def _bucket(self, length: int) -> int:
        return length  # prompts are padded to the batch's longest here; generate pads that to its bucket

    def forward(self, examples: list[dict], rows: int | None = None, **forward_params) -> list[dict]:
        """Generate for a batch of prompts: left pad them to the longest, fill the batch to ``rows`` rows, run
        ``generate``, apply stop sequences, and give each example its ``num_return_sequences`` sequences."""
        import jax

        rows = max(rows or 1, len(examples))
        batch, _, width = self.collate(examples, rows)
        prefix_length = forward_params.pop("prefix_length", 0)
        stops = forward_params.pop("stop_sequence", None)
        user_key = forward_params.pop("prng_key", None)
        kwargs = self.generation_kwargs(forward_params, prefix_length)
        if user_key is not None:
            key = jax.random.fold_in(user_key, self._call_batches)
        else:
            key = jax.random.fold_in(jax.random.PRNGKey(0), self._key_counter)
            self._key_counter += 1
        self._call_batches += 1
        sequences = np.asarray(self.model.generate(batch["input_ids"], attention_mask=batch["attention_mask"],
                                                   prng_key=key, params=self._params, **kwargs))
        per_row = sequences.shape[0] // rows
        real = len(examples) * per_row
        sequences = sequences[:real]
        gc = self.model._resolve_generation_config(kwargs.get("generation_config"),
                                                   {k: v for k, v in kwargs.items() if k != "generation_config"})
        pad = gc.pad_token_id if gc.pad_token_id is not None else (gc.eos_token_ids or (0,))[0]
        sequences = self._finish_rows(sequences, width, gc.eos_token_ids, stops, int(pad))
        out = []
        for i, example in enumerate(examples):
            out.append({"generated_sequence": sequences[i * per_row:(i + 1) * per_row],
                        "prompt_length": 0 if example["empty_prompt"] else width,
                        "prompt_text": example["prompt_text"]})
        return out

    def _run(self, *args, **kwargs):
        self._call_batches = 0
        return super()._run(*args, **kwargs)

    def _finish_rows(self, sequences: np.ndarray, width: int, eos: tuple, stops: list[str] | None, pad: int):
        """Cut each row after its first stop sequence (filling the rest with ``pad``), then drop the columns past
        the longest-running row (the batch's filler rows may have run longer)."""
        sequences = sequences.copy()
        ends = []
        for row in sequences:
            new = row[width:]
            end = len(new)
            hits = np.flatnonzero(np.isin(new, eos)) if eos else ()
            if len(hits):
                end = int(hits[0]) + 1
            if stops:
                stop_at = self._stop_index(row[:width], new[:end], stops)
                if stop_at is not None:
                    end = stop_at + 1
                    row[width + end:] = pad
            ends.append(end)
        return sequences[:, :width + max(ends, default=0)]

    def _stop_index(self, prompt: np.ndarray, new: np.ndarray, stops: list[str]) -> int | None:
        """The index of the first new token that completes a stop string (one that overlaps that token)."""
        pieces = [self.tokenizer.decode([int(t)]) for t in prompt[-max(len(s) for s in stops):]]
        text = "".join(pieces)
        for i, token in enumerate(new):
            before = len(text)
            text += self.tokenizer.decode([int(token)])
            for stop in stops:
                if text.find(stop, max(0, before - len(stop) + 1)) != -1:
                    return i
        return None

    def postprocess(self, model_outputs: dict, return_type=ReturnType.FULL_TEXT, clean_up_tokenization_spaces=None,
                    continue_final_message=None, skip_special_tokens=None, tools=None):
        sequences = np.asarray(model_outputs["generated_sequence"]).tolist()
        prompt_length = model_outputs["prompt_length"]
        prompt_text = model_outputs["prompt_text"]
        skip_special_tokens = True if skip_special_tokens is None else skip_special_tokens
        records = []
        for sequence in sequences:
            if return_type == ReturnType.TENSORS:
                records.append({"generated_token_ids": sequence})
                continue
            text = self.tokenizer.decode(sequence[prompt_length:], skip_special_tokens=skip_special_tokens,
                                         clean_up_tokenization_spaces=clean_up_tokenization_spaces)
            if return_type == ReturnType.FULL_TEXT:
                if isinstance(prompt_text, str):
                    text = prompt_text + text
                else:
                    messages = list(prompt_text.messages)
                    final = continue_final_message
                    if final is None:
                        final = messages[-1]["role"] == "assistant"
                    if final:
                        text = messages[:-1] + [{"role": messages[-1]["role"],
                                                 "content": messages[-1]["content"] + text}]
                    else:
                        text = messages + [{"role": "assistant", "content": text}]
            records.append({"generated_text": text})
        return records


__all__ = ["Chat", "ReturnType", "TextGenerationPipeline"]
