"""Compiled text generation: ``model.generate`` for causal LMs.

The prompt (left padded, as HF expects for decoder-only models) gets extra left padding up to a
bucket length (``generation.buckets``), the output budget is rounded up to a bucket too, and a
fixed-size KV cache of ``prompt bucket + budget bucket`` slots (``model.init_cache``) is made inside
the program that uses it. One jitted program runs the prefill and then every decoding step (logits processing,
the token choice of ``generation.sampling.choose_tokens``, which the serving engine shares, EOS
bookkeeping) inside a ``lax.while_loop``; the requested ``max_new_tokens``, the prompt length and
the numeric knobs (temperature, top-k, top-p, penalty, min lengths) are traced values, so calls
whose shapes fall into the same buckets reuse one compiled program.

Semantics follow ``transformers.GenerationMixin.generate`` (greedy / multinomial sampling):
positions ``cumsum(mask) - 1``; finished rows are filled with ``pad_token_id`` (falling back to
the first EOS id); the output is the prompt as given plus the new tokens, only as long as the
longest-running row.
"""
from __future__ import annotations

import contextlib
import functools
from collections.abc import Mapping
from typing import NamedTuple

import jax
import jax.numpy as jnp

import numpy as np

from transformers_jax.layers import kv_cache
from transformers_jax.generation import logits_process as lp
from transformers_jax.generation.buckets import MIN_BUCKET, bucket_size, pad_left
from transformers_jax.generation.configuration_utils import GenerationConfig, token_ids
from transformers_jax.generation.sampling import choose_tokens, validate_sampling_args
from transformers_jax.partitioning import MeshRules, activate, constrain


class StaticOptions(NamedTuple):
    """What changes the compiled program (everything else is traced)."""

    do_sample: bool
    use_repetition_penalty: bool
    no_repeat_ngram_size: int
    use_temperature: bool
    use_top_k: bool
    use_top_p: bool
    eos_token_ids: tuple
    pad_token_id: int
    forced_bos_token_id: int | None = None
    forced_eos_token_ids: tuple = ()


def decoding_params(decode, params):
    """``params`` as a decoding loop should hand them to its prefill and every ``decode`` step: laid out once,
    outside the loop, by the model class's ``decode_params`` when it has one."""
    prepare = getattr(getattr(decode, "__self__", None), "decode_params", None)
    return params if prepare is None else prepare(params)


def _decode_loop(params, context, input_ids, mask, key, scalars, *, decode, init_cache, config, static: StaticOptions,
                 cache_length: int, sharding: MeshRules | None = None):
    """Prefill + the whole decoding loop (:func:`_run_loop`) over a KV cache of ``cache_length`` slots per row that
    the program makes itself (``init_cache``, empty) and adds to ``context`` (an encoder-decoder's cross entries,
    else empty): the cache exists only inside the program, in the one form its loop holds it (per layer on
    XLA:CPU, :func:`kv_cache.loop_form`), never also as an argument or a result beside it. Under ``sharding``
    (the model's placement on a mesh) it is traced inside that placement's ``logical_sharding``: the activations
    carry their constraints, the cache is made and stays split by rows and KV heads, the tokens come back split
    by rows. Returns (token buffer, number of steps run)."""
    with activate(sharding):
        cache = kv_cache.constrain({**init_cache(config, input_ids.shape[0], cache_length), **context})
        tokens, steps = _run_loop(params, kv_cache.loop_form(cache, params, sharding), input_ids, mask, key, scalars,
                                  decode=decode, config=config, static=static)
        return constrain(tokens, ("batch", None)), steps


def _run_loop(params, cache, input_ids, mask, key, scalars, *, decode, config, static: StaticOptions):
    """Prefill + the whole decoding loop. input_ids/mask: [B, Pb] (left padded); the cache has
    Pb + Nb slots. Returns (token buffer [B, Pb + Nb], number of steps run).

    Step ``s`` picks token ``s`` from the logits of the prefill (s = 0) or of feeding token ``s - 1``;
    the loop stops once ``max_new_tokens`` tokens are picked or every row is finished, so the last
    token picked is never fed through the model."""
    batch, prompt_bucket = input_ids.shape
    total = kv_cache.cache_length(cache)
    budget_bucket = total - prompt_bucket
    mask = mask.astype(jnp.int32)
    counts = jnp.sum(mask, axis=-1)  # valid prompt tokens per row
    positions = jnp.where(mask == 1, jnp.cumsum(mask, axis=-1) - 1, 1)
    cache_mask = jnp.concatenate([mask, jnp.ones((batch, budget_bucket), jnp.int32)], axis=1)
    logits, cache = decode(params, config, input_ids, positions, cache_mask, cache, 0, logits_index=prompt_bucket - 1)
    logits = logits[:, -1].astype(jnp.float32)
    pad = static.pad_token_id
    tokens = jnp.concatenate([input_ids.astype(jnp.int32), jnp.full((batch, budget_bucket), pad, jnp.int32)], axis=1)
    slots = jnp.arange(total)[None, :]
    offset = prompt_bucket - scalars["prompt_length"]  # first slot of the prompt as given
    first_attended = jnp.argmax(mask, axis=-1)[:, None]  # HF's repetition penalty skips left padding
    eos = jnp.asarray(static.eos_token_ids, jnp.int32) if static.eos_token_ids else None

    def pick(step, tokens, logits, unfinished, key):
        """Token ``step`` of every row from ``logits`` (HF's processors, then the choice), written to
        ``tokens``; returns (tokens, unfinished, key)."""
        end = prompt_bucket + step  # slot of the token chosen now
        history = slots < end
        scores = logits
        if static.use_repetition_penalty:
            scores = lp.repetition_penalty(scores, tokens, history & (slots >= first_attended), scalars["repetition_penalty"])
        if static.no_repeat_ngram_size > 0:
            scores = lp.no_repeat_ngram(scores, tokens, history & (slots >= offset), end, static.no_repeat_ngram_size)
        if eos is not None:
            too_short = (scalars["prompt_length"] + step < scalars["min_length"]) | (step < scalars["min_new_tokens"])
            scores = lp.suppress_eos(scores, static.eos_token_ids, too_short)
        if static.forced_bos_token_id is not None:  # HF: the first token after a one-token prompt
            scores = lp.force_tokens(scores, (static.forced_bos_token_id,), scalars["prompt_length"] + step == 1)
        if static.forced_eos_token_ids:  # HF: the last token the length budget allows
            scores = lp.force_tokens(scores, static.forced_eos_token_ids, step == scalars["max_new_tokens"] - 1)
        sub = None
        if static.do_sample:
            key, sub = jax.random.split(key)
        token = choose_tokens(
            scores, sub, greedy=not static.do_sample,
            temperature=scalars["temperature"] if static.use_temperature else None,
            top_k=scalars["top_k"] if static.use_top_k else None,
            top_p=scalars["top_p"] if static.use_top_p else None,
        )
        token = jnp.where(unfinished, token, pad)
        tokens = jax.lax.dynamic_update_slice_in_dim(tokens, token[:, None], end, axis=1)
        if eos is not None:
            unfinished = unfinished & ~jnp.isin(token, eos)
        return tokens, unfinished, key

    def cond(carry):
        step, _, _, unfinished, _ = carry
        return (step < scalars["max_new_tokens"]) & jnp.any(unfinished)

    def body(carry):
        step, tokens, cache, unfinished, key = carry
        fed = prompt_bucket + step - 1  # slot of the token picked last step, fed now
        last = jax.lax.dynamic_slice_in_dim(tokens, fed, 1, axis=1)  # [B, 1]
        logits, cache = decode(params, config, last, (counts + step - 1)[:, None], cache_mask, cache, fed)
        cache = kv_cache.constrain(cache)  # (a no-op off a mesh)
        tokens, unfinished, key = pick(step, tokens, logits[:, -1].astype(jnp.float32), unfinished, key)
        return step + 1, tokens, cache, unfinished, key

    tokens, unfinished, key = pick(jnp.int32(0), tokens, logits, jnp.ones((batch,), bool), key)
    carry = (jnp.int32(1), tokens, cache, unfinished, key)
    step, tokens, _, _, _ = jax.lax.while_loop(cond, body, carry)
    return tokens, step


@functools.cache
def _compiled_loop():
    return jax.jit(_decode_loop,
                   static_argnames=("decode", "init_cache", "config", "static", "cache_length", "sharding"))


_LOOP_RECORDERS: list[list] = []


@contextlib.contextmanager
def recorded_loops():
    """Record the compiled decoding loop's calls that ``generate`` makes inside the block: yields a list that
    fills with one ``lower()`` callable per call, giving the ``jax.stages.Lowered`` of exactly that program
    (its shapes, static options and sharding), for inspecting the compiled HLO (tests, ``scripts/profile_decode.py``)."""
    calls: list = []
    _LOOP_RECORDERS.append(calls)
    try:
        yield calls
    finally:
        _LOOP_RECORDERS.remove(calls)


def _run_compiled_loop(*args, **kwargs):
    """``_compiled_loop()(*args, **kwargs)``, shown first to any :func:`recorded_loops` block (as the arguments'
    shapes, dtypes and placements)."""
    if _LOOP_RECORDERS:
        shapes = jax.tree.map(lambda a: jax.ShapeDtypeStruct(a.shape, a.dtype, sharding=_placed_sharding(a)), args)
        for calls in _LOOP_RECORDERS:
            calls.append(functools.partial(_compiled_loop().lower, *shapes, **kwargs))
    return _compiled_loop()(*args, **kwargs)


def _placed_sharding(array):
    """The sharding of an array placed over several devices, else None (one device's array, like a host one, goes
    where the compiled program puts it)."""
    sharding = getattr(array, "sharding", None)
    return sharding if sharding is not None and len(sharding.device_set) > 1 else None


def _to_numpy_ids(input_ids, attention_mask):
    if isinstance(input_ids, Mapping) or hasattr(input_ids, "keys"):
        if attention_mask is None and "attention_mask" in input_ids:
            attention_mask = input_ids["attention_mask"]
        input_ids = input_ids["input_ids"]
    ids = np.asarray(input_ids)
    if ids.ndim == 1:
        ids = ids[None]
    if ids.ndim != 2:
        raise ValueError(f"input_ids must be [batch, length], got shape {ids.shape}")
    if not np.issubdtype(ids.dtype, np.integer):
        raise TypeError(f"input_ids must be integers, got dtype {ids.dtype}")
    mask = None
    if attention_mask is not None:
        mask = np.asarray(attention_mask).reshape(ids.shape).astype(np.int32)
    return ids.astype(np.int32), mask


class GenerationMixin:
    """``generate`` for causal LMs. The class must provide ``init_cache(config, batch, length)``
    and ``decode(params, config, input_ids, position_ids, cache_mask, cache, cache_index)``."""

    is_causal_lm = True  # labels are the unshifted input ids; the loss predicts labels[t + 1] at t

    @classmethod
    def can_generate(cls) -> bool:
        return True

    @property
    def generation_config(self) -> GenerationConfig:
        config = self.__dict__.get("_generation_config")
        if config is None:
            config = GenerationConfig.from_model_config(self.config)
            self._generation_config = config
        return config

    @generation_config.setter
    def generation_config(self, value: GenerationConfig) -> None:
        if not isinstance(value, GenerationConfig):
            raise TypeError(f"generation_config must be a GenerationConfig, got {type(value).__name__}")
        self._generation_config = value

    def decoding_params(self, params=None):
        """``params`` (default: the model's) as generation reads them, made once per params tree and kept on
        the model: the class's ``decode_params`` layout (on CPU the layer weights unstacked into separate
        arrays, a second copy of them; elsewhere the same arrays). A later ``generate`` with the same params
        reuses it, so a call's time to first token never includes the copy."""
        params = self.params if params is None else params
        leaves = jax.tree.leaves(params)
        kept = self.__dict__.get("_decoding_params")
        if kept is not None and len(kept[0]) == len(leaves) and all(a is b for a, b in zip(kept[0], leaves)):
            return kept[1]
        prepared = decoding_params(type(self).decode, params)
        self._decoding_params = (leaves, prepared)
        return prepared

    def _resolve_generation_config(self, generation_config, kwargs) -> GenerationConfig:
        base = generation_config if generation_config is not None else GenerationConfig()
        return base.resolve(self.generation_config, **kwargs)

    def generate(self, input_ids=None, attention_mask=None, generation_config: GenerationConfig | None = None,
                 prng_key=None, *, params=None, **kwargs):
        """Generate continuations of ``input_ids`` ([B, T] or [T]; a BatchEncoding or the dict
        ``apply_chat_template(..., return_dict=True)`` returns is accepted too).

        Causal LMs: the prompt is left padded; returns a [B * num_return_sequences, T + n] int32 array,
        the prompt as given plus the new tokens. Encoder-decoders: ``input_ids`` go to the encoder (run
        once; or pass ``encoder_outputs=`` with ``attention_mask``), the decoder starts from
        ``decoder_start_token_id`` (or continues ``decoder_input_ids=``), and the result is the decoder's
        sequence: the start token (or the decoder prompt) plus the new tokens, as Hugging Face returns it.

        Settings: ``generation_config`` (else the model's), unset fields filled from the model's
        generation config and HF's defaults, keyword arguments (HF names) on top.
        """
        seq2seq_inputs = {name: kwargs.pop(name) for name in SEQ2SEQ_INPUTS if name in kwargs}
        encoder_decoder = bool(getattr(self.config, "is_encoder_decoder", False))
        if seq2seq_inputs and not encoder_decoder:
            raise TypeError(f"{', '.join(seq2seq_inputs)}: only encoder-decoder models take these generate arguments")
        default_max_length = (kwargs.get("max_length") is None and kwargs.get("max_new_tokens") is None
                              and all(getattr(c, "max_length", None) is None for c in (generation_config, self.generation_config)))
        gc = self._resolve_generation_config(generation_config, kwargs)
        params = self.params if params is None else params
        eos = gc.eos_token_ids
        pad = gc.pad_token_id
        if pad is None and eos:
            pad = eos[0]  # HF: "Setting pad_token_id to eos_token_id for open-end generation"
        if self.mesh_rules is not None and (encoder_decoder or int(gc.num_beams) > 1):
            raise NotImplementedError(
                "generate on a mesh (model.shard) runs greedy and sampled decoding of causal LMs; "
                + ("encoder-decoder models" if encoder_decoder else f"beam search (num_beams={gc.num_beams})")
                + " run on one device: use a model that was not sharded")
        if encoder_decoder:
            ids, mask, context = self._encoder_decoder_prompt(input_ids, attention_mask, gc, pad, params, **seq2seq_inputs)
        else:
            ids, mask, context = *self._causal_prompt(input_ids, attention_mask, eos, pad), {}
        batch, prompt_length = ids.shape

        if gc.max_new_tokens is not None:
            validate_sampling_args(max_new_tokens=gc.max_new_tokens)
            max_new_tokens = int(gc.max_new_tokens)
        elif default_max_length:  # HF v5: with no length set anywhere, 20 new tokens (within the position table)
            max_new_tokens = int(gc.max_length)
            limit = getattr(self.config, "max_position_embeddings", None)
            if limit is not None:
                max_new_tokens = min(max_new_tokens, limit - prompt_length)
        else:
            max_new_tokens = int(gc.max_length) - prompt_length
        if max_new_tokens <= 0:
            raise ValueError(
                f"max_length={gc.max_length} leaves no room for new tokens after a prompt of length "
                f"{prompt_length}: max_new_tokens would be {max_new_tokens}; pass max_new_tokens instead"
            )
        limit = getattr(self.config, "max_position_embeddings", None)
        if limit is not None and prompt_length + max_new_tokens > limit:
            raise ValueError(
                f"prompt length {prompt_length} plus max_new_tokens {max_new_tokens} = "
                f"{prompt_length + max_new_tokens} exceeds max_position_embeddings={limit} of this model"
            )
        num_beams = int(gc.num_beams)
        num_return = int(gc.num_return_sequences)
        if num_return < 1:
            raise ValueError(f"num_return_sequences must be >= 1, got {num_return}")
        if not gc.do_sample and num_return > num_beams:
            raise ValueError(
                f"num_return_sequences ({num_return}) has to be smaller or equal to num_beams ({num_beams}) "
                "when do_sample=False (greedy and beam search return at most num_beams sequences)"
            )
        validate_sampling_args(do_sample=gc.do_sample, temperature=gc.temperature, top_k=gc.top_k, top_p=gc.top_p,
                               repetition_penalty=gc.repetition_penalty)
        # an encoder-decoder's decoder prompt is usually one token: its buckets start at 1, not at 16
        bucket_minimum = 1 if encoder_decoder else MIN_BUCKET
        if num_beams > 1:
            return _beam_search_dispatch(self, ids, mask, gc, max_new_tokens, pad, params, context, bucket_minimum)

        if num_return > 1:
            ids, mask = np.repeat(ids, num_return, axis=0), np.repeat(mask, num_return, axis=0)
            context = kv_cache.repeat_rows(context, num_return)
            batch = ids.shape[0]
        prompt_bucket = bucket_size(prompt_length, minimum=bucket_minimum)
        budget_bucket = bucket_size(max_new_tokens)
        extra = prompt_bucket - prompt_length
        fill = pad if pad is not None else 0
        padded_ids, padded_mask = pad_left(ids, mask, prompt_bucket, fill)

        do_sample = bool(gc.do_sample)
        static = StaticOptions(
            do_sample=do_sample,
            use_repetition_penalty=gc.repetition_penalty is not None and gc.repetition_penalty != 1.0,
            no_repeat_ngram_size=int(gc.no_repeat_ngram_size or 0),
            use_temperature=do_sample and gc.temperature not in (None, 1.0),
            use_top_k=do_sample and bool(gc.top_k),
            use_top_p=do_sample and gc.top_p is not None and gc.top_p < 1.0,
            eos_token_ids=eos,
            pad_token_id=int(fill),
            forced_bos_token_id=None if gc.forced_bos_token_id is None else int(gc.forced_bos_token_id),
            forced_eos_token_ids=token_ids(gc.forced_eos_token_id),
        )
        scalars = {
            "max_new_tokens": np.int32(max_new_tokens),
            "prompt_length": np.int32(prompt_length),
            "min_length": np.int32(gc.min_length or 0),
            "min_new_tokens": np.int32(gc.min_new_tokens or 0),
            "temperature": np.float32(gc.temperature if gc.temperature is not None else 1.0),
            "top_k": np.int32(gc.top_k or 0),
            "top_p": np.float32(gc.top_p if gc.top_p is not None else 1.0),
            "repetition_penalty": np.float32(gc.repetition_penalty if gc.repetition_penalty is not None else 1.0),
        }
        if prng_key is None:
            prng_key = jax.random.PRNGKey(0)
        if self.mesh_rules is not None:
            params, padded_ids, padded_mask = _placed_inputs(self, params, padded_ids, padded_mask)
        params = self.decoding_params(params)
        tokens, steps = _run_compiled_loop(
            params, context, padded_ids, padded_mask, prng_key, scalars, decode=type(self).decode,
            init_cache=type(self).init_cache, config=self.config, static=static,
            cache_length=prompt_bucket + budget_bucket, sharding=self.mesh_rules,
        )
        tokens = np.asarray(tokens)
        steps = int(steps)
        return jax.device_put(np.ascontiguousarray(tokens[:batch, extra : prompt_bucket + steps]))

    def _causal_prompt(self, input_ids, attention_mask, eos, pad):
        """A causal LM's prompt and its mask (inferred from the pad id as Hugging Face does), checked."""
        if input_ids is None:
            raise ValueError("generate needs input_ids (the prompt)")
        ids, mask = _to_numpy_ids(input_ids, attention_mask)
        if ids.shape[1] == 0:
            raise ValueError("generate needs a non-empty prompt (input_ids has length 0)")
        self.check_inputs({"input_ids": ids})
        mask = _infer_mask(ids, mask, eos, pad)
        if not np.all(mask.any(axis=-1)):
            raise ValueError("every prompt needs at least one attended token (a row of attention_mask is all zeros)")
        if (mask == 0).any() and pad is None:
            raise ValueError(
                "the batch is padded (attention_mask has zeros) but no pad_token_id is known: set "
                "generation_config.pad_token_id (or an eos_token_id) to pad finished and padded sequences"
            )
        return ids, mask

    def _encoder_decoder_prompt(self, input_ids, attention_mask, gc, pad, params, encoder_outputs=None,
                                decoder_input_ids=None, decoder_attention_mask=None):
        """An encoder-decoder's decoder prompt [B, T] (the start token, or ``decoder_input_ids`` behind it),
        its mask, and the cross-attention entries of the cache: the encoder runs here, once (or its given
        ``encoder_outputs`` are used), padded on the right to a length bucket."""
        if encoder_outputs is not None:
            hidden = encoder_outputs if hasattr(encoder_outputs, "ndim") else (
                encoder_outputs.last_hidden_state if hasattr(encoder_outputs, "last_hidden_state") else encoder_outputs[0])
            hidden = np.asarray(hidden)
            if hidden.ndim != 3:
                raise ValueError(f"encoder_outputs must hold a last hidden state [batch, length, d_model], got shape "
                                 f"{hidden.shape}")
            batch, length = hidden.shape[:2]
            mask = np.ones((batch, length), np.int32) if attention_mask is None else np.asarray(attention_mask, np.int32)
            if mask.shape != (batch, length):
                raise ValueError(f"attention_mask shape {mask.shape} does not match encoder_outputs {hidden.shape[:2]}")
            bucket = bucket_size(length)
            hidden = np.pad(hidden, ((0, 0), (0, bucket - length), (0, 0)))
            mask = np.pad(mask, ((0, 0), (0, bucket - length)))
            context = _cross_program(params, hidden, mask, model_class=type(self), config=self.config)
        else:
            if input_ids is None:
                raise ValueError("generate needs input_ids (the encoder's input) or encoder_outputs")
            ids, mask = _to_numpy_ids(input_ids, attention_mask)
            if ids.shape[1] == 0:
                raise ValueError("generate needs a non-empty encoder input (input_ids has length 0)")
            self.check_inputs({"input_ids": ids})
            mask = _infer_mask(ids, mask, gc.eos_token_ids, pad)
            batch, length = ids.shape
            bucket = bucket_size(length)
            fill = self.config.pad_token_id if self.config.pad_token_id is not None else 0
            ids = np.pad(ids, ((0, 0), (0, bucket - length)), constant_values=fill)
            mask = np.pad(mask, ((0, 0), (0, bucket - length)))
            context = _encoder_program(params, ids, mask, model_class=type(self), config=self.config)

        start = gc.decoder_start_token_id if gc.decoder_start_token_id is not None else gc.bos_token_id
        if start is None:
            raise ValueError("decoder_start_token_id or bos_token_id has to be defined for encoder-decoder generation "
                             "(set it in the model config or the generation config)")
        start = np.asarray(token_ids(start), np.int32)
        if start.size not in (1, batch):
            raise ValueError(f"decoder_start_token_id has {start.size} ids; expected one, or one per row ({batch})")
        start = np.broadcast_to(start.reshape(-1, 1), (batch, 1))
        if decoder_input_ids is None:
            return start.astype(np.int32), np.ones((batch, 1), np.int32), context
        dec_ids, dec_mask = _to_numpy_ids(decoder_input_ids, decoder_attention_mask)
        if dec_ids.shape[0] != batch:
            raise ValueError(f"decoder_input_ids has {dec_ids.shape[0]} rows; the encoder input has {batch}")
        if dec_mask is None:
            dec_mask = np.ones_like(dec_ids)
        if dec_ids.shape[1] == 0 or (dec_ids[:, 0] != start[:, 0]).all():  # HF prepends the start token
            dec_ids = np.concatenate([start, dec_ids], axis=1).astype(np.int32)
            dec_mask = np.concatenate([np.ones((batch, 1), np.int32), dec_mask], axis=1)
        return dec_ids, dec_mask, context


SEQ2SEQ_INPUTS = ("encoder_outputs", "decoder_input_ids", "decoder_attention_mask")


def _placed_inputs(model, params, ids, mask):
    """The compiled loop's inputs on the model's mesh (``model.mesh_rules``): params by the rules (no copy when
    they are placed already), ``ids``/``mask`` [B, Pb] split by rows. Rows are added (copies of the last one, cut
    from the output again) up to a multiple of the data-parallel ways: rows are independent, so the real rows are
    unchanged, and split evenly; the KV heads' split was checked when the model was placed (``check_placement``),
    so the cache the loop makes in its shards (rows by the batch axes, KV heads by the tensor axes) splits too."""
    placement = model.mesh_rules
    spare = -ids.shape[0] % placement.split("batch")[1]
    if spare:
        ids = np.concatenate([ids, np.repeat(ids[-1:], spare, axis=0)])  # [B + spare, Pb]
        mask = np.concatenate([mask, np.repeat(mask[-1:], spare, axis=0)])
    rows = placement.exact(("batch", None), ids.shape)
    params = placement.place_params(params, type(model).param_specs(model.config))
    return params, jax.device_put(ids, rows), jax.device_put(mask, rows)


def _infer_mask(ids, mask, eos, pad):
    """The attention mask as Hugging Face infers it when none is given: padding where ``ids`` hold the pad
    id, unless the pad id is an EOS id (then nothing is padding)."""
    if mask is not None:
        return mask
    if pad is not None and np.isin(ids, [pad]).any() and not np.isin(eos, [pad]).any():
        return (ids != pad).astype(np.int32)
    return np.ones_like(ids)


@functools.partial(jax.jit, static_argnames=("model_class", "config"))
def _encoder_program(params, input_ids, attention_mask, *, model_class, config):
    """Run an encoder-decoder's encoder once and return the cache's cross-attention entries."""
    hidden = model_class.encode(params, config, input_ids, attention_mask)
    return model_class.cross_attention_cache(params, config, hidden, attention_mask)


@functools.partial(jax.jit, static_argnames=("model_class", "config"))
def _cross_program(params, encoder_hidden, attention_mask, *, model_class, config):
    """The cache's cross-attention entries from given encoder outputs."""
    return model_class.cross_attention_cache(params, config, encoder_hidden, attention_mask)


def _beam_search_dispatch(model, ids, mask, gc: GenerationConfig, max_new_tokens: int, pad, params, context,
                          bucket_minimum: int):
    """num_beams > 1: hand the resolved config to ``generation.beam_search.beam_search``."""
    from transformers_jax.generation.beam_search import beam_search

    resolved = gc.replace(max_new_tokens=max_new_tokens, pad_token_id=pad)
    out = beam_search(model, ids, mask, resolved, params=params, context=context, bucket_minimum=bucket_minimum)
    return jax.device_put(np.asarray(out, np.int32))


def chat(model, tokenizer, messages, *, prng_key=None, **gen_kwargs) -> str:
    """Answer a conversation (list of {"role", "content"}) through the tokenizer's chat template;
    returns the new text, special tokens skipped. ``gen_kwargs`` go to ``generate``."""
    ids = tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=True)
    if isinstance(ids, Mapping) or hasattr(ids, "keys"):
        ids = ids["input_ids"]
    ids = np.asarray(ids, np.int32).reshape(-1)
    out = model.generate(ids[None], prng_key=prng_key, **gen_kwargs)
    return tokenizer.decode(np.asarray(out)[0, ids.shape[0]:].tolist(), skip_special_tokens=True)


__all__ = ["GenerationMixin", "MIN_BUCKET", "bucket_size", "chat"]
