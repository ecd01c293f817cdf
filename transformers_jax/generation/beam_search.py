"""Beam search in one compiled program: a prefill, then every decoding step inside a ``lax.while_loop``.

The semantics follow Hugging Face's vectorised beam search (``GenerationMixin._beam_search``, v5):

* each step keeps the top ``max(2, 1 + n_eos) * num_beams`` continuations of all beams of a row,
  ranked by accumulated log-probability;
* continuations that end in an EOS token or reach the length budget are candidates for the finished
  pool, but only those among the first ``num_beams`` of that ranking; their score is the accumulated
  log-probability over ``generated_length ** length_penalty``;
* the best ``num_beams`` continuations that did not stop become the running beams, and the KV cache is
  reordered by their source beam (a gather along the batch axis);
* the loop ends when no row can improve (the ``early_stopping`` heuristics: ``True``, ``False`` or
  ``"never"``), when every row is full under ``early_stopping=True``, or when the budget is spent;
* log-probabilities pass through HF's processors before scoring, in HF's order: repetition penalty
  and no-repeat n-grams (from ``logits_process``, on a history buffer of prompt + beam tokens),
  then min_length / min_new_tokens (EOS masked to -inf); beam sampling is refused;
* the output is the best ``num_return_sequences`` finished hypotheses of each row after the prompt, cut
  to the longest of them, shorter ones padded with ``pad_token_id`` (or the first EOS id when the pad id
  is unset or 0, as Hugging Face does).

Prefill: the prompt runs once per batch row (not once per beam) and the cache and the last logits are
then repeated across beams. Every beam of a row starts from the same prompt, and only beam 0 has a
finite initial score, so running ``B * num_beams`` identical rows would only multiply the prefill cost.

Compilation: the prompt is left-padded to its length bucket and the cache budget is rounded up to its
bucket (``generation.buckets``, as ``generate`` does); the true ``max_new_tokens``, ``min_new_tokens``, EOS ids,
pad id and the length-penalty table are traced values. The compiled program therefore depends only on
(config, num_beams, early_stopping, number of EOS ids, batch size, the two buckets), and jax.jit's cache
keeps it across calls.
"""
from __future__ import annotations

import functools

import jax
import jax.numpy as jnp

import numpy as np

from transformers_jax.layers import kv_cache
from transformers_jax.generation import logits_process as lp_
from transformers_jax.generation.buckets import MIN_BUCKET, bucket_size, pad_left
from transformers_jax.generation.configuration_utils import token_ids
from transformers_jax.generation.sampling import validate_sampling_args

_NEG = -1.0e9  # Hugging Face's "very large negative" beam score


def _normalize_early_stopping(early_stopping):
    if early_stopping is True or early_stopping is False:
        return early_stopping
    if isinstance(early_stopping, (bool, np.bool_)):
        return bool(early_stopping)
    if early_stopping == "never":
        return "never"
    raise ValueError(f"early_stopping must be True, False or 'never', got {early_stopping!r}")


def _gather_beams(x, index):
    """x: [B, N, ...], index: [B, M] -> [B, M, ...]."""
    index = index.reshape(index.shape + (1,) * (x.ndim - 2))
    return jnp.take_along_axis(x, index, axis=1)


@functools.partial(jax.jit, static_argnames=("decode", "init_cache", "config", "num_beams", "early_stopping",
                                               "use_repetition_penalty", "no_repeat_ngram_size", "use_forced_bos",
                                               "use_forced_eos"))
def _beam_search_program(params, prompt_ids, prompt_mask, prompt_start, eos_ids, penalty, max_new_tokens,
                         min_new_tokens, fill_value, use_max_length_heuristic, repetition_penalty, context,
                         forced_bos_id, forced_eos_ids, *, decode, init_cache, config, num_beams, early_stopping,
                         use_repetition_penalty, no_repeat_ngram_size, use_forced_bos, use_forced_eos):
    """prompt_ids/prompt_mask: [B, P] (left padded to the bucket; the caller's prompt starts at slot
    ``prompt_start``); eos_ids: [E]; penalty: [N + 1] float32 with penalty[t] = t ** length_penalty;
    N (= penalty.size - 1) is the bucketed budget. ``context``: extra cache entries of the prompt rows
    (an encoder-decoder's cross-attention keys and values; ``{}`` for causal LMs). ``forced_bos_id``
    (int32) and ``forced_eos_ids`` [F]: HF's forced first and last tokens, when switched on.

    Returns the finished pool: tokens [B, K, N], lengths [B, K] (generated tokens), scores [B, K].
    """
    batch, prompt_len = prompt_ids.shape
    budget = penalty.shape[0] - 1
    k = num_beams
    n_eos = eos_ids.shape[0]
    keep = max(2, 1 + n_eos) * k
    cache_len = prompt_len + budget

    # ---- prefill: once per row, then repeated across beams
    prompt_mask = prompt_mask.astype(jnp.int32)
    positions = jnp.maximum(jnp.cumsum(prompt_mask, axis=-1) - 1, 0)
    n_valid = prompt_mask.sum(-1)  # [B]
    prefill_mask = jnp.concatenate([prompt_mask, jnp.zeros((batch, budget), jnp.int32)], axis=1)
    cache = {**init_cache(config, batch, cache_len), **context}
    logits, cache = decode(params, config, prompt_ids, positions, prefill_mask, cache, 0, logits_index=prompt_len - 1)
    logits = jnp.repeat(logits[:, -1].astype(jnp.float32), k, axis=0)  # [B*K, V]
    cache = kv_cache.loop_form(kv_cache.repeat_rows(cache, k), params)  # one buffer per layer when unrolled
    beam_prompt_mask = jnp.repeat(prompt_mask, k, axis=0)  # [B*K, P]
    beam_n_valid = jnp.repeat(n_valid, k, axis=0)  # [B*K]
    beam_prompt_ids = jnp.repeat(prompt_ids, k, axis=0)  # [B*K, P]
    history_prompt_valid = jnp.broadcast_to(jnp.arange(prompt_len) >= prompt_start, (batch * k, prompt_len))
    vocab = logits.shape[-1]

    top_mask = jnp.arange(keep) < k  # only the first K continuations may enter the finished pool
    row_offset = (jnp.arange(batch) * k)[:, None]
    # EOS ids outside the vocabulary are never produced (dropped, not clipped)
    eos_vocab = jnp.zeros((vocab,), bool).at[eos_ids].set(True, mode="drop")
    es_true = early_stopping is True

    state = dict(
        step=jnp.int32(0),
        done=jnp.bool_(False),
        logits=logits,
        cache=cache,
        run_tokens=jnp.full((batch, k, budget), fill_value, jnp.int32),
        run_scores=jnp.where(jnp.arange(k) == 0, 0.0, _NEG).astype(jnp.float32)[None].repeat(batch, 0),
        fin_tokens=jnp.full((batch, k, budget), fill_value, jnp.int32),
        fin_scores=jnp.full((batch, k), _NEG, jnp.float32),
        fin_lengths=jnp.zeros((batch, k), jnp.int32),
        fin_flags=jnp.zeros((batch, k), bool),
        improvable=jnp.ones((batch,), bool),
        run_source=jnp.arange(batch * k, dtype=jnp.int32),
    )

    def cond(s):
        return ~s["done"] & (s["step"] < max_new_tokens)

    def select(s):
        """Step ``s["step"]``: extend the beams by one token from ``s["logits"]``, update the finished pool."""
        i = s["step"]
        log_probs = jax.nn.log_softmax(s["logits"], axis=-1)
        # processors act on log-probabilities, in Hugging Face's order; the history is HF's input_ids
        # (the caller's prompt, its padding included, then each beam's tokens so far)
        if use_repetition_penalty or no_repeat_ngram_size:
            history = jnp.concatenate([beam_prompt_ids, s["run_tokens"].reshape(batch * k, budget)], axis=1)
            history_valid = jnp.concatenate(
                [history_prompt_valid, jnp.broadcast_to(jnp.arange(budget) < i, (batch * k, budget))], axis=1)
            if use_repetition_penalty:
                log_probs = lp_.repetition_penalty(log_probs, history, history_valid, repetition_penalty)
            if no_repeat_ngram_size:
                log_probs = lp_.no_repeat_ngram(log_probs, history, history_valid, prompt_len + i,
                                                no_repeat_ngram_size)
        # min_new_tokens: EOS is impossible while fewer tokens have been generated
        log_probs = jnp.where(eos_vocab[None] & (i < min_new_tokens), -jnp.inf, log_probs)
        if use_forced_bos:  # HF: the first token after a one-token prompt
            log_probs = jnp.where(prompt_len - prompt_start + i == 1,
                                  jnp.where(jnp.arange(vocab) == forced_bos_id, 0.0, -jnp.inf)[None], log_probs)
        if use_forced_eos:  # HF: the last token the length budget allows
            forced = jnp.zeros((vocab,), bool).at[forced_eos_ids].set(True, mode="drop")
            log_probs = jnp.where(i == max_new_tokens - 1, jnp.where(forced, 0.0, -jnp.inf)[None], log_probs)
        acc = log_probs.reshape(batch, k, vocab) + s["run_scores"][:, :, None]
        top_scores, top_index = jax.lax.top_k(acc.reshape(batch, k * vocab), keep)  # [B, 2K]
        source = top_index // vocab
        token = (top_index % vocab).astype(jnp.int32)
        cand_tokens = _gather_beams(s["run_tokens"], source)
        cand_tokens = jax.lax.dynamic_update_slice_in_dim(cand_tokens, token[:, :, None], i, axis=2)
        stops = (token[:, :, None] == eos_ids).any(-1) | (i + 1 >= max_new_tokens)  # [B, 2K]

        # running beams for the next step: the best K continuations that did not stop
        running = top_scores + stops.astype(jnp.float32) * _NEG
        chosen = jax.lax.top_k(running, k)[1]
        run_tokens = _gather_beams(cand_tokens, chosen)
        run_scores = _gather_beams(running, chosen)
        run_source = _gather_beams(source, chosen)

        # finished pool: merge the newly finished continuations, keep the best K
        just_finished = stops & top_mask[None]
        scores = top_scores / penalty[i + 1]
        if es_true:
            row_full = jnp.all(s["fin_flags"], axis=1, keepdims=True)
            scores = scores + row_full.astype(jnp.float32) * _NEG
        scores = scores + (~s["improvable"])[:, None].astype(jnp.float32) * _NEG
        scores = scores + (~just_finished).astype(jnp.float32) * _NEG
        merged_scores = jnp.concatenate([s["fin_scores"], scores], axis=1)
        best = jax.lax.top_k(merged_scores, k)[1]
        fin_tokens = _gather_beams(jnp.concatenate([s["fin_tokens"], cand_tokens], axis=1), best)
        fin_scores = _gather_beams(merged_scores, best)
        fin_lengths = _gather_beams(
            jnp.concatenate([s["fin_lengths"], jnp.full((batch, keep), i + 1, jnp.int32)], axis=1), best)
        fin_flags = _gather_beams(jnp.concatenate([s["fin_flags"], just_finished], axis=1), best)

        # can a running beam still beat the worst finished one?
        hypothetical = jnp.where(use_max_length_heuristic, max_new_tokens, i + 1)
        best_running = run_scores[:, 0] / penalty[hypothetical]
        worst_finished = jnp.where(fin_flags, jnp.min(fin_scores, axis=1, keepdims=True), _NEG)
        improvable = s["improvable"] & jnp.any(best_running[:, None] > worst_finished, axis=1)
        done = ~(jnp.any(improvable) & ~(jnp.all(fin_flags) & es_true) & ~jnp.all(stops))

        return dict(s, step=i + 1, done=done, run_source=(run_source + row_offset).reshape(-1),
                    run_tokens=run_tokens, run_scores=run_scores, fin_tokens=fin_tokens, fin_scores=fin_scores,
                    fin_lengths=fin_lengths, fin_flags=fin_flags, improvable=improvable)

    def feed(s):
        """Reorder the cache by source beam and run the tokens chosen at the previous step."""
        i = s["step"] - 1
        # the prompt's slots are the same in every beam of a prompt: only the generated ones are gathered
        cache = kv_cache.reorder_beams(s["cache"], s["run_source"], shared_slots=prompt_len)
        new_tokens = s["run_tokens"][:, :, i].reshape(batch * k, 1)
        gen_mask = jnp.broadcast_to((jnp.arange(budget) <= i).astype(jnp.int32), (batch * k, budget))
        step_mask = jnp.concatenate([beam_prompt_mask, gen_mask], axis=1)
        step_positions = (beam_n_valid + i)[:, None]
        logits, cache = decode(params, config, new_tokens, step_positions, step_mask, cache, prompt_len + i)
        return dict(s, logits=logits[:, -1].astype(jnp.float32), cache=cache)

    # the tokens chosen at the last step are never fed through the model
    state = jax.lax.while_loop(cond, lambda s: select(feed(s)), select(state))
    return state["fin_tokens"], state["fin_lengths"], state["fin_scores"]


def beam_search(model, input_ids, attention_mask=None, generation_config=None, *, num_beams=None,
                max_new_tokens=None, length_penalty=None, early_stopping=None, num_return_sequences=None,
                eos_token_id=None, pad_token_id=None, min_new_tokens=None, min_length=None,
                repetition_penalty=None, no_repeat_ngram_size=None, forced_bos_token_id=None,
                forced_eos_token_id=None, params=None, prng_key=None, context=None, bucket_minimum=None,
                return_scores=False):
    """Beam-search decoding, token-identical to Hugging Face ``generate(num_beams=..., do_sample=False)``.

    ``input_ids``/``attention_mask``: [B, P], left padded. Settings come from keyword arguments (HF
    names and defaults: length_penalty 1.0, early_stopping False, num_return_sequences 1) or, for any
    left unset, from ``generation_config`` (a transformers_jax GenerationConfig, as ``generate`` passes
    it; its ``max_new_tokens`` must be set). Returns int32 ids [B * num_return_sequences, P + generated]:
    the prompt as given, then the best hypotheses of each row in order of score, shorter ones padded.
    With ``return_scores=True`` also returns their length-penalised scores [B * num_return_sequences].
    ``prng_key`` is accepted for ``generate``'s sake and unused (beam sampling is not supported).
    ``context``: extra cache entries per prompt row (an encoder-decoder's cross-attention entries, from
    ``generate``); ``bucket_minimum``: the smallest prompt bucket (``generate`` passes 1 for a decoder's
    one-token prompt).
    """
    gc = generation_config

    def setting(value, name, default):
        if value is None and gc is not None:
            value = getattr(gc, name, None)
        return default if value is None else value

    if gc is not None and getattr(gc, "do_sample", False):
        raise ValueError("beam sampling (do_sample=True with num_beams > 1) is not supported; use do_sample=False")
    num_beams = int(setting(num_beams, "num_beams", 1))
    max_new_tokens = setting(max_new_tokens, "max_new_tokens", None)
    length_penalty = float(setting(length_penalty, "length_penalty", 1.0))
    early_stopping = _normalize_early_stopping(setting(early_stopping, "early_stopping", False))
    num_return_sequences = int(setting(num_return_sequences, "num_return_sequences", 1))
    if eos_token_id is None and gc is not None:
        eos_token_id = gc.eos_token_id
    pad_token_id = setting(pad_token_id, "pad_token_id", None)
    min_new_tokens = int(setting(min_new_tokens, "min_new_tokens", 0))
    min_length = int(setting(min_length, "min_length", 0))
    repetition_penalty = float(setting(repetition_penalty, "repetition_penalty", 1.0))
    no_repeat_ngram_size = int(setting(no_repeat_ngram_size, "no_repeat_ngram_size", 0))
    forced_bos_token_id = setting(forced_bos_token_id, "forced_bos_token_id", None)
    forced_eos = list(token_ids(setting(forced_eos_token_id, "forced_eos_token_id", None)))

    input_ids = np.asarray(input_ids)
    if input_ids.ndim != 2:
        raise ValueError(f"input_ids must be [batch, length], got shape {input_ids.shape}")
    batch, prompt_len = input_ids.shape
    mask = np.ones_like(input_ids) if attention_mask is None else np.asarray(attention_mask)
    if mask.shape != input_ids.shape:
        raise ValueError(f"attention_mask shape {mask.shape} != input_ids shape {input_ids.shape}")
    if max_new_tokens is None:
        raise ValueError("beam_search needs max_new_tokens")
    if num_beams < 1:
        raise ValueError(f"num_beams must be at least 1, got {num_beams}")
    validate_sampling_args(max_new_tokens=max_new_tokens, repetition_penalty=repetition_penalty)
    max_new_tokens = int(max_new_tokens)
    if not 1 <= num_return_sequences <= num_beams:
        raise ValueError(f"num_return_sequences ({num_return_sequences}) must be between 1 and num_beams ({num_beams})")
    eos = list(token_ids(eos_token_id))
    if pad_token_id is None and eos:
        pad_token_id = eos[0]
    # Hugging Face: ``pad_token_id or eos_token_id[0] if eos_token_id is not None else -1``
    fill = (pad_token_id if pad_token_id else eos[0]) if eos else -1
    # HF's MinLength processor counts the (padded) prompt; MinNewTokensLength only new tokens
    min_new = max(min_new_tokens, min_length - prompt_len, 0)

    padded_len = bucket_size(prompt_len, minimum=bucket_minimum or MIN_BUCKET)
    budget = bucket_size(max_new_tokens)
    ids, full_mask = pad_left(input_ids, mask, padded_len, fill=0)  # bucket padding: masked out, but a valid id

    lengths = np.arange(budget + 1, dtype=np.float64)
    penalty = (lengths ** length_penalty).astype(np.float32)
    use_max_length = early_stopping == "never" and length_penalty > 0.0

    tokens, gen_lengths, scores = _beam_search_program(
        model.decoding_params(params), ids, full_mask, np.int32(padded_len - prompt_len),
        np.asarray(eos, np.int32), penalty, np.int32(max_new_tokens), np.int32(min_new), np.int32(fill),
        np.bool_(use_max_length), np.float32(repetition_penalty), {} if context is None else context,
        np.int32(forced_bos_token_id if forced_bos_token_id is not None else -1), np.asarray(forced_eos or [0], np.int32),
        decode=model.decode, init_cache=model.init_cache, config=model.config, num_beams=num_beams,
        early_stopping=early_stopping, use_repetition_penalty=repetition_penalty != 1.0,
        no_repeat_ngram_size=no_repeat_ngram_size, use_forced_bos=forced_bos_token_id is not None,
        use_forced_eos=bool(forced_eos))
    tokens = np.asarray(tokens)[:, :num_return_sequences]
    gen_lengths = np.asarray(gen_lengths)[:, :num_return_sequences]
    generated = int(gen_lengths.max())
    prompts = np.repeat(input_ids.astype(np.int32), num_return_sequences, axis=0)
    out = np.concatenate([prompts, tokens[:, :, :generated].reshape(batch * num_return_sequences, generated)], axis=1)
    if return_scores:
        return out, np.asarray(scores)[:, :num_return_sequences].reshape(-1)
    return out
