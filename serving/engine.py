"""Continuous-batching inference engine over one slot-indexed KV cache.

A fixed number of *slots* share one KV cache ``{"k", "v"}: [layers, num_slots, kv_heads,
max_length, head_dim]`` (``model.init_cache``, ``layers.kv_cache``). A background thread runs the scheduling loop:

1. **Admit** (between chunks): while a slot is free and requests are queued, the next request is
   *prefilled* into that slot: its prompt, right padded to a length bucket (powers of two from 16,
   capped at ``max_length``), runs through ``model.decode`` with a fresh one-row cache at positions
   ``0 .. Pb-1``; that row is written into the slot (a jitted update that donates the big cache)
   and the first new token is chosen from the logits at the last real prompt token. One compiled
   program per bucket.
2. **Decode a chunk**: one compiled program runs up to ``chunk_steps`` decoding steps over *all*
   slots inside a ``lax.while_loop`` (it stops early once no slot is active). Each slot feeds its
   last token at its own position (``cache_index`` is one slot per row); inactive slots are
   frozen and their tokens discarded. Only a prefix of the cache takes part, the smallest bucket
   that holds every active slot's positions for the chunk (one program per bucket), so attention
   costs what the longest running sequence needs rather than ``max_length``. Sampling settings
   are per-slot arrays (greedy flag, temperature, top-k, top-p, PRNG key), as are the stop ids and
   the remaining budget, so one program serves every mix of requests.
3. **Publish**: the chunk's tokens go to their handles (streaming granularity = one chunk; the
   first token is published right after prefill). Finished slots (stop token, budget, cancel) are
   freed and refilled at step 1: requests join and leave between chunks.

On a mesh (``Engine(model, mesh=..., rules="tp")``, or a model placed by ``model.shard``) the same programs
run sharded: params split by the rules, the cache's rows (slots) over the batch axes (``data``, ``fsdp``)
and its KV heads over ``tensor``, traced under the placement's ``logical_sharding``; the tokens are those
of one device.

Nothing recompiles after :meth:`Engine.warmup` (called by :meth:`Engine.start`; it compiles the
prefill of every prompt bucket and the chunk of every window bucket up to ``max_length``);
host-side state is kept in NumPy and handed to the compiled programs.

Semantics
---------
* Greedy when ``temperature == 0`` or ``do_sample is False``; otherwise (``do_sample`` None or
  True with ``temperature > 0``) multinomial sampling after temperature, top-k (``0`` = off) and
  top-p (``1.0`` = off), in Hugging Face's order, through ``generation.sampling.choose_tokens``
  (the token choice ``generate`` uses).
  Greedy output is token-identical to ``model.generate(prompt[None], do_sample=False,
  max_new_tokens=n)`` (the same EOS handling: generation stops after the first EOS).
* Sampling is reproducible per request: the token at sequence position ``p`` is drawn with
  ``fold_in(PRNGKey(seed), p)``, independent of which slot or which other requests run.
* Stop ids are ``params.stop_token_ids`` plus the model's EOS ids (``model.generation_config``).
  The stop token *is* yielded (it is the last token, ``finish_reason == "stop"``), as
  ``generate`` returns it; callers that render text skip special tokens.
* ``finish_reason``: ``"stop"`` (a stop id was generated), ``"length"`` (``max_tokens`` reached),
  ``"cancelled"`` (``cancel()``, or ``shutdown(drain=False)``).
"""
from __future__ import annotations

import asyncio
import collections
import functools
import threading
import time
from dataclasses import dataclass

import jax
import jax.numpy as jnp
import numpy as np

from transformers_jax.generation.buckets import bucket_size, bucket_sizes
from transformers_jax.generation.configuration_utils import resolve_eos_token_ids
from transformers_jax.generation.sampling import choose_tokens, fold_in_rows, host_prng_key, validate_sampling_args
from transformers_jax.layers import kv_cache
from transformers_jax.partitioning import activate, mesh_rules

MAX_STOP_IDS = 16  # per request, EOS ids included (a static width of the per-slot stop table)
_DONE = object()


class QueueFull(Exception):
    """The engine's request queue holds ``max_queue`` requests already; retry later (HTTP 503/429)."""


class EngineClosed(RuntimeError):
    """The engine is shutting down (or has shut down) and accepts no new requests."""


@dataclass(frozen=True)
class SamplingParams:
    """Per-request settings.

    Greedy when ``temperature == 0`` or ``do_sample is False``; otherwise sampling (``do_sample``
    None means "sample iff temperature > 0", as in OpenAI-style APIs). ``top_k == 0`` and
    ``top_p == 1.0`` switch those filters off. ``stop_token_ids`` come on top of the model's EOS ids.
    """

    max_tokens: int = 16
    temperature: float = 1.0
    top_p: float = 1.0
    top_k: int = 0
    do_sample: bool | None = None
    stop_token_ids: tuple[int, ...] = ()
    seed: int = 0

    @property
    def greedy(self) -> bool:
        return self.do_sample is False or self.temperature == 0


class RequestHandle:
    """A submitted request: iterate (blocking) or ``async for`` over :meth:`stream` to get new
    token ids as they are produced, or wait for all of them with :meth:`result`."""

    def __init__(self, request_id: int, prompt_ids: list[int], params: SamplingParams):
        self.request_id = request_id
        self.prompt_ids = prompt_ids
        self.params = params
        self.num_prompt_tokens = len(prompt_ids)
        self.finish_reason: str | None = None
        self.error: BaseException | None = None
        self.submitted_at = time.monotonic()
        self.first_token_at: float | None = None
        self.finished_at: float | None = None
        self._tokens: list[int] = []
        self._cond = threading.Condition()
        self._done = False
        self._cancel_requested = False
        self._subscribers: list[tuple[asyncio.AbstractEventLoop, asyncio.Queue]] = []

    # -- consumer side ---------------------------------------------------------------------------
    @property
    def done(self) -> bool:
        return self._done

    @property
    def tokens(self) -> list[int]:
        """The tokens produced so far (a copy)."""
        with self._cond:
            return list(self._tokens)

    def __iter__(self):
        index = 0
        while True:
            with self._cond:
                while index >= len(self._tokens) and not self._done:
                    self._cond.wait()
                new = self._tokens[index:]
                done = self._done
            yield from new
            index += len(new)
            if done and index >= len(self._tokens):
                if self.error is not None:
                    raise self.error
                return

    async def stream(self):
        """Async iterator of new token ids (for asyncio servers)."""
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue = asyncio.Queue()
        with self._cond:
            backlog = list(self._tokens)
            done = self._done
            if not done:
                self._subscribers.append((loop, queue))
        for token in backlog:
            yield token
        if done:
            if self.error is not None:
                raise self.error
            return
        while True:
            item = await queue.get()
            if item is _DONE:
                if self.error is not None:
                    raise self.error
                return
            for token in item:
                yield token

    def result(self, timeout: float | None = None) -> list[int]:
        """All new tokens, once the request is done (raises TimeoutError after ``timeout`` s)."""
        with self._cond:
            if not self._cond.wait_for(lambda: self._done, timeout):
                raise TimeoutError(f"request {self.request_id} not finished after {timeout} s")
        if self.error is not None:
            raise self.error
        return list(self._tokens)

    def cancel(self) -> None:
        """Stop generating: a queued request never runs; a running one frees its slot at the next
        chunk boundary. ``finish_reason`` becomes "cancelled" (unless it finished before)."""
        self._cancel_requested = True

    # -- engine side -----------------------------------------------------------------------------
    def _push(self, tokens: list[int]) -> None:
        if not tokens:
            return
        with self._cond:
            if self.first_token_at is None:
                self.first_token_at = time.monotonic()
            self._tokens.extend(tokens)
            self._cond.notify_all()
            for loop, queue in self._subscribers:
                _post(loop, queue, list(tokens))

    def _finish(self, reason: str | None, error: BaseException | None = None) -> None:
        with self._cond:
            if self._done:
                return
            self.finish_reason = reason
            self.error = error
            self.finished_at = time.monotonic()
            self._done = True
            self._cond.notify_all()
            for loop, queue in self._subscribers:
                _post(loop, queue, _DONE)
            self._subscribers.clear()


def _post(loop, queue, item):
    try:
        loop.call_soon_threadsafe(queue.put_nowait, item)
    except RuntimeError:  # the consumer's loop is closed: nobody listens any more
        pass


# ---------------------------------------------------------------------------------------------
# compiled pieces
# ---------------------------------------------------------------------------------------------
def _choose(logits, greedy, sampling, positions):
    """One token per row from float32 ``logits`` [B, V] with the per-row ``sampling`` arrays ([B]
    each; ``key`` [B, 2] raw PRNG keys); the sequence ``positions`` [B] are folded into the keys."""
    return choose_tokens(logits, fold_in_rows(sampling["key"], positions), greedy=greedy,
                         temperature=sampling["temperature"], top_k=sampling["top_k"], top_p=sampling["top_p"])


def _prefill(params, cache, ids, length, slot, sampling, *, decode, init_cache, config, sharding=None):
    """ids [1, Pb] right padded, ``length`` real tokens; writes the prompt's keys/values into cache
    row ``slot`` and returns (cache, first new token). ``sharding``: see :func:`_decode_chunk`."""
    with activate(sharding):
        cache, token = _prefill_row(params, cache, ids, length, slot, sampling, decode=decode, init_cache=init_cache,
                                    config=config)
        return kv_cache.constrain(cache), token


def _prefill_row(params, cache, ids, length, slot, sampling, *, decode, init_cache, config):
    bucket = ids.shape[1]
    row = init_cache(config, 1, bucket)
    mask = (jnp.arange(bucket)[None] < length).astype(jnp.int32)
    logits, row = decode(params, config, ids, jnp.arange(bucket)[None], mask, row, 0, logits_index=length - 1)
    last = logits[0].astype(jnp.float32)  # [1, V]: the last real token's
    batch_of_one = {name: value[None] for name, value in sampling.items()}
    token = _choose(last, batch_of_one["greedy"], batch_of_one, length[None])[0]
    cache = kv_cache.write_row(cache, row, slot)
    return cache, token


def _decode_chunk(params, cache, state, *, decode, config, steps: int, window: int, sharding=None):
    """Up to ``steps`` decoding steps over every slot (:func:`_run_chunk`). Under ``sharding`` (a
    ``partitioning.MeshRules``) the program is traced inside its ``logical_sharding``: the activations carry
    their constraints and the cache stays split, rows (slots) over the batch axes and KV heads over the tensor
    axes. The compiled serving decode step: ``train.aot.compile_decode_step`` compiles this for TPU slices."""
    with activate(sharding):
        cache, state, out = _run_chunk(params, cache, state, decode=decode, config=config, steps=steps, window=window,
                                       sharding=sharding)
        return kv_cache.constrain(cache), state, out


def _run_chunk(params, cache, state, *, decode, config, steps: int, window: int, sharding=None):
    """Up to ``steps`` decoding steps over every slot. state (all [B] unless noted): ``token`` (the
    last token, not yet in the cache), ``position`` (its position), ``remaining`` (tokens still
    allowed), ``active``, ``stop`` [B, MAX_STOP_IDS] (-1 = none) and the sampling arrays.
    Only the first ``window`` cache positions take part (every active slot stays below it during
    the chunk), so attention costs what the longest running sequence needs, not ``max_length``.
    The loop holds the window as generate's loop does (``kv_cache.loop_form``: one buffer per layer on XLA:CPU).
    Returns (cache, state, tokens [B, steps] with -1 where a slot emitted nothing)."""
    num_slots, total = kv_cache.cache_rows(cache), kv_cache.cache_length(cache)
    full = cache
    if window < total:
        cache = kv_cache.prefix(cache, window)
    stacked, cache = cache, kv_cache.loop_form(cache, params, sharding)
    slots = jnp.arange(window)[None]
    out = jnp.full((num_slots, steps), -1, jnp.int32)

    def cond(carry):
        step, _, st, _ = carry
        return (step < steps) & jnp.any(st["active"])

    def body(carry):
        step, cache, st, out = carry
        active, position = st["active"], st["position"]
        cache_mask = (slots <= position[:, None]).astype(jnp.int32)
        logits, cache = decode(params, config, st["token"][:, None], position[:, None], cache_mask, cache, position)
        cache = kv_cache.constrain(cache)  # (a no-op off a mesh)
        token = _choose(logits[:, -1].astype(jnp.float32), st["greedy"] | ~active, st, position + 1)
        out = jax.lax.dynamic_update_slice_in_dim(out, jnp.where(active, token, -1)[:, None], step, axis=1)
        remaining = st["remaining"] - active.astype(jnp.int32)
        stopped = jnp.any(token[:, None] == st["stop"], axis=-1)
        still = active & ~stopped & (remaining > 0)
        st = {**st,
              "token": jnp.where(active, token, st["token"]),
              "position": jnp.where(active, position + 1, position),
              "remaining": remaining,
              "active": still}
        return step + 1, cache, st, out

    _, cache, state, out = jax.lax.while_loop(cond, body, (jnp.int32(0), cache, state, out))
    if kv_cache.is_split(cache):
        cache = kv_cache.stack_layers(cache, stacked)
    if window < total:
        cache = kv_cache.restore_prefix(full, cache)
    return cache, state, out


def empty_state(num_slots: int) -> dict:
    """The decode chunk's per-slot state with every slot free (see :func:`_decode_chunk`): NumPy arrays."""
    b = num_slots
    return {
        "token": np.zeros(b, np.int32), "position": np.zeros(b, np.int32), "remaining": np.zeros(b, np.int32),
        "active": np.zeros(b, bool), "stop": np.full((b, MAX_STOP_IDS), -1, np.int32),
        "greedy": np.ones(b, bool), "temperature": np.ones(b, np.float32), "top_k": np.zeros(b, np.int32),
        "top_p": np.ones(b, np.float32), "key": np.zeros((b, 2), np.uint32),
    }


@functools.cache
def programs(decode, init_cache, config, steps: int):
    """The jitted prefill and decode chunk (shared by engines over the same model class/config, so
    a second engine reuses the first one's compilations). Both donate the cache (argument 1) and take
    ``sharding`` (a ``partitioning.MeshRules`` or None) as a static argument; the chunk also ``window``."""
    prefill = jax.jit(functools.partial(_prefill, decode=decode, init_cache=init_cache, config=config), donate_argnums=(1,),
                      static_argnames=("sharding",))
    chunk = jax.jit(functools.partial(_decode_chunk, decode=decode, config=config, steps=steps), donate_argnums=(1,),
                    static_argnames=("window", "sharding"))
    return prefill, chunk


# ---------------------------------------------------------------------------------------------
# the engine
# ---------------------------------------------------------------------------------------------
@dataclass
class _Slot:
    handle: RequestHandle


class Engine:
    """Continuous batching over ``num_slots`` slots of one KV cache of ``max_length`` positions.

    ``model`` is a causal LM of this library (``init_cache``/``decode``/``params``/``config``/
    ``generation_config``). ``chunk_steps`` decoding steps run per compiled call (also the
    streaming granularity and how often requests can join or leave); ``max_queue`` bounds the
    requests waiting for a slot (:class:`QueueFull` beyond).

    On a mesh (``mesh`` with ``rules``, a preset name such as ``"tp"`` (the default) or ``"fsdp_tp"``, or a
    rules table; or a model placed by ``model.shard``/``from_pretrained(mesh=...)``) the params are split by
    the rules and the KV cache by slots over the batch axes (``data``, ``fsdp``) and by KV heads over
    ``tensor``: a model larger than one device serves, with the tokens one device gives. ``num_slots`` must
    split evenly over the batch axes and the KV heads over the tensor axes (errors name both numbers).
    """

    def __init__(self, model, *, num_slots: int = 8, max_length: int = 512, chunk_steps: int = 8,
                 max_queue: int = 256, params=None, mesh=None, rules=None):
        if num_slots < 1 or max_length < 2 or chunk_steps < 1 or max_queue < 0:
            raise ValueError(f"bad engine sizes: num_slots={num_slots}, max_length={max_length}, "
                             f"chunk_steps={chunk_steps}, max_queue={max_queue}")
        if getattr(model.config, "is_encoder_decoder", False):
            raise ValueError(f"the serving engine runs causal LMs; {type(model).__name__} is an encoder-decoder: "
                             "use model.generate, the batch runner (transformers-jax generate) or a pipeline")
        self.model = model
        self.config = model.config
        self.params = model.params if params is None else params
        self.num_slots, self.max_length, self.chunk_steps, self.max_queue = num_slots, max_length, chunk_steps, max_queue
        self.vocab_size = int(self.config.vocab_size)
        limit = getattr(self.config, "max_position_embeddings", None)
        self.max_positions = min(max_length, int(limit)) if limit else max_length
        self.eos_token_ids = resolve_eos_token_ids(model)
        cls = type(model)
        if rules is not None and mesh is None:
            raise ValueError("rules needs a mesh: pass mesh= too (or shard the model: model.shard(mesh, rules))")
        self.mesh_rules = model.mesh_rules if mesh is None else mesh_rules(mesh, "tp" if rules is None else rules)
        self._prefill, self._chunk = programs(cls.decode, cls.init_cache, self.config, chunk_steps)
        if self.mesh_rules is None:
            self._cache = cls.init_cache(self.config, num_slots, max_length)
        else:
            cls.check_placement(self.config, self.mesh_rules)
            self._cache = kv_cache.init_placed(cls.init_cache, self.config, num_slots, max_length, self.mesh_rules,
                                               rows="num_slots")
            self.params = self.mesh_rules.place_params(self.params, cls.param_specs(self.config))
        # The decode chunks read the params as the model class lays them out for decoding loops, made
        # once here rather than in every chunk (on CPU: the layers unstacked, a second copy of the weights).
        # The model keeps that layout, so an engine over the model's own params shares generate's copy.
        self._decode_params = model.decoding_params(self.params)
        self._state = empty_state(num_slots)
        self._slots: list[_Slot | None] = [None] * num_slots
        self._queue: collections.deque[RequestHandle] = collections.deque()
        self._lock = threading.Condition()
        self._thread: threading.Thread | None = None
        self._accepting = True
        self._stop = False
        self._drain = True
        self._error: BaseException | None = None
        self._next_id = 0
        self._requests_total = 0
        self._requests_finished = collections.Counter()
        self._tokens_total = 0
        self._recent: collections.deque[tuple[float, int]] = collections.deque()  # (time, tokens)
        self._ttft: collections.deque[float] = collections.deque(maxlen=1000)
        self._warm_buckets: set[int] = set()

    # -- public API ------------------------------------------------------------------------------
    def buckets(self) -> list[int]:
        """The prompt-length buckets (one prefill program each)."""
        return bucket_sizes(self.max_length)

    def warmup(self, buckets=None) -> None:
        """Compile the decode chunk and the prefill of each bucket (all by default) now."""
        if self._thread is not None and self._thread.is_alive():
            raise RuntimeError("warmup() must run before start() (the cache belongs to the loop thread then)")
        for bucket in sorted(set(self.buckets() if buckets is None else buckets)):
            ids = np.zeros((1, bucket), np.int32)
            self._cache, token = self._prefill(self._decode_params, self._cache, ids, np.int32(1), np.int32(0),
                                               self._sampling_row(SamplingParams(temperature=0.0)),
                                               sharding=self.mesh_rules)
            jax.block_until_ready(token)
            self._warm_buckets.add(bucket)
        for window in self.buckets():  # nothing active: no step runs
            self._cache, _, out = self._chunk(self._decode_params, self._cache, self._state, window=window,
                                              sharding=self.mesh_rules)
            jax.block_until_ready(out)

    def start(self, warmup: bool = True) -> None:
        """Start the scheduling loop in a background thread (after compiling, unless warmup=False)."""
        if self._thread is not None:
            raise RuntimeError("the engine was started already")
        if warmup:
            self.warmup()
        self._thread = threading.Thread(target=self._loop, name="serving-engine", daemon=True)
        self._thread.start()

    def submit(self, prompt_ids, params: SamplingParams | None = None) -> RequestHandle:
        """Queue a request; returns its handle at once. Raises QueueFull, ValueError (bad request)
        or EngineClosed."""
        params = SamplingParams() if params is None else params
        ids = self._validate(prompt_ids, params)
        with self._lock:
            if not self._accepting or self._error is not None:
                raise EngineClosed("the engine is shutting down or stopped; no new requests"
                                   + (f" (loop failed: {self._error!r})" if self._error is not None else ""))
            if len(self._queue) >= self.max_queue:
                raise QueueFull(f"request queue is full ({self.max_queue} waiting); retry later")
            handle = RequestHandle(self._next_id, ids, params)
            self._next_id += 1
            self._requests_total += 1
            self._queue.append(handle)
            self._lock.notify_all()
        return handle

    def shutdown(self, drain: bool = True, timeout: float | None = None) -> None:
        """Stop accepting requests; with ``drain`` finish every queued and running request first,
        otherwise cancel them. Waits up to ``timeout`` s for the loop thread to end."""
        with self._lock:
            self._accepting = False
            self._stop = True
            self._drain = self._drain and drain
            self._lock.notify_all()
        if self._thread is not None:
            self._thread.join(timeout)
        else:  # never started: nothing will run the queue
            self._cancel_all()

    def metrics(self) -> dict:
        now = time.monotonic()
        with self._lock:
            window = 10.0
            while self._recent and self._recent[0][0] < now - window:
                self._recent.popleft()
            recent = sum(n for _, n in self._recent)
            span = min(window, now - self._recent[0][0]) if self._recent else 0.0
            ttft = sorted(self._ttft)
            return {
                "queue_depth": len(self._queue),
                "active_slots": sum(s is not None for s in self._slots),
                "num_slots": self.num_slots,
                "max_length": self.max_length,
                "tokens_generated_total": self._tokens_total,
                "tokens_per_second": recent / max(span, 1e-3) if recent else 0.0,
                "requests_total": self._requests_total,
                "requests_finished": dict(self._requests_finished),
                "ttft_seconds": _summary(ttft),
                "running": self._thread is not None and self._thread.is_alive(),
                "error": repr(self._error) if self._error is not None else None,
            }

    # -- validation ------------------------------------------------------------------------------
    def _validate(self, prompt_ids, params: SamplingParams) -> list[int]:
        ids = np.asarray(prompt_ids)
        if ids.ndim != 1 or ids.size == 0:
            raise ValueError(f"prompt_ids must be a non-empty list of token ids, got shape {ids.shape}")
        if not np.issubdtype(ids.dtype, np.integer):
            raise ValueError(f"prompt_ids must be integers, got dtype {ids.dtype}")
        bad = ids[(ids < 0) | (ids >= self.vocab_size)]
        if bad.size:
            raise ValueError(f"prompt_ids contain {bad.size} id(s) outside the vocabulary [0, {self.vocab_size}), "
                             f"e.g. {int(bad[0])}")
        validate_sampling_args(max_new_tokens=params.max_tokens, do_sample=params.do_sample,
                               temperature=params.temperature, top_k=params.top_k, top_p=params.top_p,
                               names={"max_new_tokens": "max_tokens"})
        n = int(ids.size)
        if n + params.max_tokens > self.max_positions:
            raise ValueError(
                f"prompt length {n} plus max_tokens {params.max_tokens} = {n + params.max_tokens} exceeds the "
                f"engine's max_length {self.max_positions}; shorten the prompt or lower max_tokens")
        stop = set(int(t) for t in params.stop_token_ids) | set(self.eos_token_ids)
        if any(not 0 <= t < self.vocab_size for t in stop):
            raise ValueError(f"stop_token_ids must lie in the vocabulary [0, {self.vocab_size}), got {sorted(stop)}")
        if len(stop) > MAX_STOP_IDS:
            raise ValueError(f"at most {MAX_STOP_IDS} stop ids (EOS included) per request, got {len(stop)}")
        return [int(t) for t in ids]

    # -- state -----------------------------------------------------------------------------------
    @staticmethod
    def _sampling_row(p: SamplingParams) -> dict:
        return {"greedy": np.bool_(p.greedy), "temperature": np.float32(p.temperature if p.temperature > 0 else 1.0),
                "top_k": np.int32(p.top_k), "top_p": np.float32(p.top_p), "key": host_prng_key(p.seed)}

    def _stop_ids(self, p: SamplingParams) -> set[int]:
        return set(int(t) for t in p.stop_token_ids) | set(self.eos_token_ids)

    # -- the loop --------------------------------------------------------------------------------
    def _loop(self) -> None:
        try:
            while True:
                with self._lock:
                    while not self._stop and not self._queue and not any(self._slots):
                        self._lock.wait()
                    if self._stop and not self._drain:
                        break
                    if self._stop and not self._queue and not any(self._slots):
                        break
                self._reap_cancelled()
                self._admit()
                if any(s is not None for s in self._slots):
                    self._run_chunk()
        except BaseException as error:  # noqa: BLE001 - every waiter must hear about it
            with self._lock:
                self._error = error
                self._accepting = False
            self._fail_all(error)
            raise
        self._cancel_all()

    def _take_next(self) -> RequestHandle | None:
        with self._lock:
            while self._queue:
                handle = self._queue.popleft()
                if handle._cancel_requested:
                    self._finished(handle, "cancelled")
                    continue
                return handle
        return None

    def _admit(self) -> None:
        for slot in range(self.num_slots):
            if self._slots[slot] is not None:
                continue
            handle = self._take_next()
            if handle is None:
                return
            self._start_request(slot, handle)

    def _start_request(self, slot: int, handle: RequestHandle) -> None:
        p, n = handle.params, handle.num_prompt_tokens
        bucket = bucket_size(n, maximum=self.max_length)
        ids = np.zeros((1, bucket), np.int32)
        ids[0, :n] = handle.prompt_ids
        sampling = self._sampling_row(p)
        self._cache, token = self._prefill(self._decode_params, self._cache, ids, np.int32(n), np.int32(slot), sampling,
                                           sharding=self.mesh_rules)
        token = int(token)
        stop = self._stop_ids(p)
        handle._push([token])
        self._count_tokens(1)
        with self._lock:
            self._ttft.append(handle.first_token_at - handle.submitted_at)
        if token in stop:
            self._finished(handle, "stop")
            return
        if p.max_tokens <= 1:
            self._finished(handle, "length")
            return
        st = self._state
        st["token"][slot], st["position"][slot], st["remaining"][slot], st["active"][slot] = token, n, p.max_tokens - 1, True
        st["stop"][slot] = -1
        st["stop"][slot, : len(stop)] = sorted(stop)
        for name, value in sampling.items():
            st[name][slot] = value
        with self._lock:
            self._slots[slot] = _Slot(handle)

    def _window(self) -> int:
        """The cache prefix the next chunk needs: a bucket above every active slot's last position."""
        st = self._state
        need = int(st["position"][st["active"]].max()) + self.chunk_steps if st["active"].any() else 1
        return bucket_size(need, maximum=self.max_length)

    def _run_chunk(self) -> None:
        self._cache, state, out = self._chunk(self._decode_params, self._cache, self._state, window=self._window(),
                                              sharding=self.mesh_rules)
        out = np.asarray(out)
        state = {name: np.array(value) for name, value in state.items()}  # writable host copies
        emitted = 0
        for slot, entry in enumerate(self._slots):
            if entry is None:
                continue
            row = out[slot]
            tokens = [int(t) for t in row[row >= 0]]
            emitted += len(tokens)
            entry.handle._push(tokens)
            if not state["active"][slot]:
                last = tokens[-1] if tokens else int(state["token"][slot])
                reason = "stop" if last in self._stop_ids(entry.handle.params) else "length"
                self._release(slot, reason)
        self._state = state
        self._count_tokens(emitted)
        self._reap_cancelled()

    def _reap_cancelled(self) -> None:
        for slot, entry in enumerate(self._slots):
            if entry is not None and entry.handle._cancel_requested:
                self._release(slot, "cancelled")

    def _release(self, slot: int, reason: str) -> None:
        self._state["active"][slot] = False
        with self._lock:
            handle = self._slots[slot].handle
            self._slots[slot] = None
            self._finished(handle, reason)

    def _finished(self, handle: RequestHandle, reason: str, error=None) -> None:
        handle._finish(reason, error)
        with self._lock:
            self._requests_finished[reason if error is None else "error"] += 1

    def _count_tokens(self, n: int) -> None:
        if n:
            with self._lock:
                self._tokens_total += n
                self._recent.append((time.monotonic(), n))

    def _cancel_all(self) -> None:
        for slot, entry in enumerate(self._slots):
            if entry is not None:
                self._release(slot, "cancelled")
        while True:
            with self._lock:
                if not self._queue:
                    return
                handle = self._queue.popleft()
            self._finished(handle, "cancelled")

    def _fail_all(self, error: BaseException) -> None:
        with self._lock:
            handles = [s.handle for s in self._slots if s is not None] + list(self._queue)
            self._slots = [None] * self.num_slots
            self._queue.clear()
        for handle in handles:
            self._finished(handle, None, error)


def _summary(values: list[float]) -> dict:
    if not values:
        return {"count": 0}
    arr = np.asarray(values)
    return {"count": int(arr.size), "mean": float(arr.mean()), "p50": float(np.percentile(arr, 50)),
            "p90": float(np.percentile(arr, 90)), "max": float(arr.max())}


__all__ = ["Engine", "EngineClosed", "MAX_STOP_IDS", "QueueFull", "RequestHandle", "SamplingParams"]
