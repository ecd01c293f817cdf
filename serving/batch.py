"""JSONL-in (or a dataset) / JSONL-out batch inference over ``model.generate``.

Input, one JSON object per line (blank lines are ignored)::

    {"id": "a1", "prompt": "Once upon a time"}
    {"id": 7, "messages": [{"role": "user", "content": "Hi"}], "max_new_tokens": 32,
     "do_sample": true, "temperature": 0.7, "top_p": 0.9, "top_k": 50, "seed": 1234}

``id`` is a string or an integer and must be unique in the file. Exactly one of ``prompt`` (a string,
tokenized with the tokenizer's special tokens, e.g. BOS) or ``messages`` (a non-empty list of
``{"role": str, "content": str}``, rendered with the tokenizer's chat template and
``add_generation_prompt=True``, tokenized without extra special tokens, as in Hugging Face). Optional
per-line settings: ``max_new_tokens`` (int >= 1), ``do_sample`` (bool), ``temperature`` (number >= 0, > 0 when
sampling), ``top_p`` (number in (0, 1]), ``top_k`` (int >= 0), ``seed`` (int in [0, 2**32)); they are checked by
``generation.sampling.validate_sampling_args``, as ``generate`` checks them. Any other key is an
error (it is most likely a typo of one of these).

Output, one line per finished request::

    {"id": "a1", "text": "...", "num_prompt_tokens": 5, "num_new_tokens": 12, "finish_reason": "stop"}

``text`` is the decoded new tokens (``skip_special_tokens=True``); ``num_new_tokens`` counts the
generated tokens up to and including the first end-of-sequence token; ``finish_reason`` is ``"stop"``
when an end-of-sequence token was generated and ``"length"`` when ``max_new_tokens`` ran out.
When a run completes, the output file lists the requests in input order (ids from an older run that
are not in the current input are kept, after them).

Bad input lines
---------------
A malformed line (bad JSON, not an object, missing/ill-typed ``id``, duplicate ``id``, neither or
both of ``prompt``/``messages``, wrong types or values, unknown keys, a prompt that tokenizes to
nothing or does not fit the model's context) is reported on stderr as ``line N: ...`` and written
to the errors file (default ``<output>.errors.jsonl``) as
``{"line": N, "id": <id or null>, "error": "line N: ..."}``; the rest of the input proceeds. For a
duplicate id, the first line wins and the later ones are errors. The errors file is derived from
the input alone, so it is rewritten (atomically) on every run: a resumed run reports exactly the
same errors. Errors never go into the output, which therefore holds only results, each id once.

Datasets
--------
``run_batch`` also takes the requests as a dataset instead of a path: a ``datasets.Dataset`` (e.g.
``load_dataset("json", data_files="in.jsonl", split="train")`` or ``Dataset.from_dict``), an
``IterableDataset`` (``streaming=True``), or any iterable of dicts. Each row is a request with the
fields of a JSONL line (numpy / jax formats are read back as python values). A null column counts as
absent, since Arrow stores the keys a row lacks as nulls (a file mixing ``prompt`` and ``messages``
lines loads as both columns). Errors are numbered by row index (``dataset[i]``):
``{"row": i, "id": ..., "error": "row i: ..."}``. Output, errors file, order and resume are those of a
JSONL input: a dataset holding the lines of a file gives the same output file.

Crash safety and resume
-----------------------
The output is committed in per-batch *part files*: each finished batch is written to
a temporary file in ``<output>.parts/`` (``*.tmp``), fsync'ed, renamed to ``part-NNNNNNNN.jsonl`` (and the
directory fsync'ed). A rename is atomic, so at any moment a part file is either absent or complete.
The committed results are ``<output>`` followed by the part files. A *merge* folds them into
``<output>``: it writes every committed line, deduplicated by id (first occurrence wins) and sorted
in input order, to a temporary sibling of ``<output>``, fsyncs it, renames it over ``<output>``, and only then deletes
the part files. The runner merges on start (folding in whatever a killed run left) and on finish.

Why not append to ``<output>`` directly: even a single ``write(2)`` of a whole batch to a regular
file can be cut short when the process is killed (Linux stops copying pages once a fatal signal is
pending), leaving half a line. With part files and renames, a SIGKILL at any moment leaves
``<output>`` and every ``part-*.jsonl`` holding only complete lines (``*.tmp`` files are partial by
design and are deleted on the next start), and no id is ever committed twice: a batch is computed
only for ids not yet committed (read on start), the run writes each id once, and a merge interrupted
after its rename but before deleting parts is repeated harmlessly because merging deduplicates by
id. A lock file (``<output>.lock``, ``flock``) refuses a second runner on the same output.
While a run is in progress, ``cat <output> <output>.parts/part-*.jsonl`` shows everything done so far.
The store, its merge and the lock live in ``serving/jsonl_store.py``, shared with the pipeline runner.

Determinism
-----------
Greedy decoding is the default. Requests are grouped by (sampling settings, prompt-length bucket);
each group is cut into batches of ``batch_size`` in input order, left-padded, and every batch is
padded to exactly ``batch_size`` rows (copies of its first row, outputs dropped) so that all batches
of a bucket have the same shape. A row's result does not depend on the other rows (they are masked
out), so a resumed run, whose batches hold different requests, gives the same results as an
uninterrupted one, and each equals ``model.generate`` on that prompt alone (up to float rounding
from different shapes, which does not change greedy picks in practice).

A sampled request (``do_sample: true``) takes its PRNG key from its ``seed``
(``jax.random.PRNGKey(seed)``), or, without one, from a stable hash of ``(run seed, id)``. Since
``model.generate`` takes one key per call and a row's random draw depends on its position in the
batch, sampled requests are generated one per call (batch of one, same padding), so a request's
sample depends only on its prompt, its settings and its key, never on which other requests shared
its batch: a resumed run equals an uninterrupted run with sampling too.
"""
from __future__ import annotations

import dataclasses
import json
import os
import sys
import time
import zlib
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping, Sequence

import numpy as np

from serving.jsonl_store import ResultStore, error_record, exclusive_lock, id_key, write_jsonl
from transformers_jax.generation.buckets import bucket_size
from transformers_jax.generation.configuration_utils import resolve_eos_token_ids
from transformers_jax.generation.sampling import SamplingArgumentError, validate_sampling_args
from transformers_jax.tokenization.chat_template import MessagesError, normalize_messages

__all__ = ["Request", "BatchRunSummary", "parse_input", "parse_rows", "run_batch", "SAMPLING_KEYS"]

SAMPLING_KEYS = ("max_new_tokens", "do_sample", "temperature", "top_p", "top_k", "seed")
_ALLOWED_KEYS = frozenset(("id", "prompt", "messages", *SAMPLING_KEYS))


@dataclasses.dataclass
class Request:
    """One valid input line."""

    line: int                       # 1-based line number in the input file (a row index for a dataset)
    id: str | int
    prompt: str | None = None
    messages: list | None = None
    max_new_tokens: int | None = None
    do_sample: bool | None = None
    temperature: float | None = None
    top_p: float | None = None
    top_k: int | None = None
    seed: int | None = None
    input_ids: list[int] | None = None   # filled by tokenization
    source: str = "line"                 # what ``line`` counts: "line" (JSONL) or "row" (dataset)

    @property
    def key(self) -> str:
        return id_key(self.id)


@dataclasses.dataclass
class BatchRunSummary:
    """What a :func:`run_batch` call did."""

    num_requests: int          # valid requests in the input
    num_skipped: int           # already in the output when the run started
    num_done: int              # finished by this run
    num_errors: int            # bad input lines
    num_batches: int           # generate calls made by this run
    new_tokens: int            # tokens generated by this run
    seconds: float             # wall time of the generation loop
    output_path: str
    errors_path: str

    @property
    def tokens_per_second(self) -> float:
        return self.new_tokens / self.seconds if self.seconds > 0 else 0.0


class InputError(ValueError):
    pass




def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _validate(obj: Any) -> dict:
    """Check one parsed line; returns the normalised fields or raises InputError (no line prefix)."""
    if not isinstance(obj, dict):
        raise InputError(f"expected a JSON object, got {type(obj).__name__}")
    if "id" not in obj:
        raise InputError("missing 'id'")
    ident = obj["id"]
    if not (isinstance(ident, str) or _is_int(ident)):
        raise InputError(f"'id' must be a string or an integer, got {type(ident).__name__}")
    unknown = sorted(set(obj) - _ALLOWED_KEYS)
    if unknown:
        raise InputError(f"unknown key(s) {unknown}; allowed: {sorted(_ALLOWED_KEYS)}")
    has_prompt, has_messages = "prompt" in obj, "messages" in obj
    if has_prompt == has_messages:
        raise InputError("needs exactly one of 'prompt' or 'messages'" + (" (got both)" if has_prompt else ""))
    out: dict[str, Any] = {"id": ident}
    if has_prompt:
        if not isinstance(obj["prompt"], str):
            raise InputError(f"'prompt' must be a string, got {type(obj['prompt']).__name__}")
        out["prompt"] = obj["prompt"]
    else:
        try:  # a non-empty list of messages with a string role and content
            out["messages"] = normalize_messages(obj["messages"], text_only=True)
        except MessagesError as exc:
            raise InputError(str(exc)) from None
    sampling = {k: obj[k] for k in SAMPLING_KEYS if k in obj and k != "seed"}
    try:
        validate_sampling_args(**sampling)
    except SamplingArgumentError as exc:
        raise InputError(str(exc)) from None
    out.update(sampling)
    for k in ("temperature", "top_p"):
        if k in out:
            out[k] = float(out[k])
    if "seed" in obj:
        v = obj["seed"]
        if not _is_int(v) or not 0 <= v < 2**32:
            raise InputError(f"'seed' must be an integer in [0, 2**32), got {v!r}")
        out["seed"] = v
    return out


def _collect(entries: Iterable[tuple[int, Any]], source: str) -> tuple[list[Request], list[dict]]:
    """Validate ``(position, parsed object or InputError)`` pairs into requests and error records; ``source`` names
    a position in messages and records ("line" or "row"). A duplicate id makes the later entry an error."""
    requests: list[Request] = []
    errors: list[dict] = []
    first_seen: dict[str, int] = {}
    for position, obj in entries:
        ident = None
        try:
            if isinstance(obj, InputError):
                raise obj
            if isinstance(obj, dict) and (isinstance(obj.get("id"), str) or _is_int(obj.get("id"))):
                ident = obj["id"]
            fields = _validate(obj)
            key = id_key(fields["id"])
            if key in first_seen:
                raise InputError(f"duplicate id {fields['id']!r} (first seen on {source} {first_seen[key]})")
            first_seen[key] = position
            requests.append(Request(line=position, source=source, **fields))
        except InputError as exc:
            errors.append(error_record(source, position, ident, str(exc)))
    return requests, errors




def parse_input(lines: Iterable[str]) -> tuple[list[Request], list[dict]]:
    """Parse JSONL lines into valid requests and error records ``{"line", "id", "error"}``.

    Blank lines are skipped. A duplicate id makes the later line an error (the first one wins).
    """
    def entries():
        for number, raw in enumerate(lines, start=1):
            if not raw.strip():
                continue
            try:
                yield number, json.loads(raw)
            except json.JSONDecodeError as exc:
                yield number, InputError(f"invalid JSON: {exc.msg} at column {exc.colno}")

    return _collect(entries(), "line")


def _without_nulls(row: Any) -> Any:
    """A dataset row with its null columns left out: Arrow stores a key that a row lacks as null (the null keys of
    its messages are left out by normalize_messages, as for every conversation)."""
    if not isinstance(row, Mapping):
        return row
    return {k: v for k, v in row.items() if v is not None}


def parse_rows(rows: Iterable[Mapping]) -> tuple[list[Request], list[dict]]:
    """Parse the rows of a dataset (a ``datasets.Dataset`` or ``IterableDataset`` in the python format, or any
    iterable of dicts) into valid requests and error records ``{"row", "id", "error"}``; rows are numbered from 0,
    as ``dataset[i]``. A null value counts as an absent key. Otherwise the rules of a JSONL line apply."""
    return _collect(((index, _without_nulls(row)) for index, row in enumerate(rows)), "row")


def _read_requests(inputs) -> tuple[list[Request], list[dict]]:
    """Requests and error records of a JSONL path or of a dataset of rows."""
    if isinstance(inputs, (str, os.PathLike)):
        with open(inputs, encoding="utf-8") as f:
            return parse_input(f)
    if isinstance(inputs, Mapping):
        raise ValueError(f"inputs is a dict with keys {sorted(inputs)} (a DatasetDict?); pass one split, "
                         "e.g. dataset['train']")
    if not hasattr(inputs, "__iter__"):
        raise TypeError(f"inputs must be a JSONL path or a dataset of rows, got {type(inputs).__name__}")
    if hasattr(inputs, "with_format"):  # datasets objects: python values, whatever format they were given in
        inputs = inputs.with_format(None)
    return parse_rows(inputs)


# -- generation ------------------------------------------------------------------------------------------------------


def _settings(request: Request, default_max_new_tokens: int) -> tuple:
    """The generate() settings of a request, normalised so that equal behaviour gives equal tuples."""
    max_new = request.max_new_tokens if request.max_new_tokens is not None else default_max_new_tokens
    if not request.do_sample:
        return (("max_new_tokens", max_new), ("do_sample", False))
    return (
        ("max_new_tokens", max_new),
        ("do_sample", True),
        ("temperature", request.temperature if request.temperature is not None else 1.0),
        ("top_k", request.top_k),
        ("top_p", request.top_p),
    )


def _request_seed(request: Request, run_seed: int) -> int:
    if request.seed is not None:
        return request.seed
    return zlib.crc32(f"{run_seed}:{request.key}".encode("utf-8"))


def _tokenize(request: Request, tokenizer) -> list[int]:
    if request.prompt is not None:
        ids = tokenizer(request.prompt)["input_ids"]
    else:
        ids = tokenizer.apply_chat_template(request.messages, add_generation_prompt=True, tokenize=True)
    ids = [int(i) for i in (ids.tolist() if hasattr(ids, "tolist") else ids)]
    if ids and isinstance(ids[0], list):  # pragma: no cover - defensive (batched return)
        ids = ids[0]
    return ids


def _finish(new_ids: Sequence[int], eos: set[int], tokenizer) -> tuple[str, int, str]:
    """(text, num_new_tokens, finish_reason) from the generated ids (padding after EOS included)."""
    new_ids = [int(t) for t in new_ids]
    for i, t in enumerate(new_ids):
        if t in eos:
            kept, reason = new_ids[: i + 1], "stop"
            break
    else:
        kept, reason = new_ids, "length"
    return tokenizer.decode(kept, skip_special_tokens=True), len(kept), reason


class _Progress:
    """tqdm when available, else one stderr line per batch."""

    def __init__(self, total: int, enabled: bool):
        self.enabled, self.total, self.done, self.tokens, self.start = enabled, total, 0, 0, time.perf_counter()
        self.bar = None
        if enabled:
            try:
                from tqdm.auto import tqdm

                self.bar = tqdm(total=total, unit="req", desc="batch generate", file=sys.stderr, dynamic_ncols=True)
            except ImportError:
                self.bar = None

    def update(self, requests: int, tokens: int) -> None:
        self.done += requests
        self.tokens += tokens
        rate = self.tokens / max(time.perf_counter() - self.start, 1e-9)
        if self.bar is not None:
            self.bar.update(requests)
            self.bar.set_postfix_str(f"{rate:.1f} new tok/s", refresh=True)
        elif self.enabled:
            print(f"batch generate: {self.done}/{self.total} requests, {rate:.1f} new tok/s", file=sys.stderr, flush=True)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def _call_generate(generate: Callable, input_ids: np.ndarray, attention_mask: np.ndarray, settings: dict,
                   prng_key, eos_ids: list[int], pad_token_id: int) -> np.ndarray:
    import jax.numpy as jnp

    kwargs = {k: v for k, v in settings.items() if v is not None}
    if eos_ids:
        kwargs["eos_token_id"] = eos_ids[0] if len(eos_ids) == 1 else list(eos_ids)
    kwargs["pad_token_id"] = pad_token_id
    out = generate(jnp.asarray(input_ids), attention_mask=jnp.asarray(attention_mask), prng_key=prng_key, **kwargs)
    if hasattr(out, "sequences"):
        out = out.sequences
    return np.asarray(out)


def run_batch(
    model,
    tokenizer,
    inputs,
    output_path: str | os.PathLike,
    *,
    batch_size: int = 8,
    max_new_tokens: int = 64,
    errors_path: str | os.PathLike | None = None,
    seed: int = 0,
    progress: bool = True,
    generate_fn: Callable | None = None,
    on_batch_committed: Callable[[int, list[dict]], None] | None = None,
) -> BatchRunSummary:
    """Run every request of ``inputs`` not yet in ``output_path``; see the module docstring.

    ``inputs`` is the path of a JSONL file, or a dataset of rows with the same fields (a ``datasets.Dataset`` or
    ``IterableDataset`` in any format, or an iterable of dicts; see :func:`parse_rows`).

    ``model`` needs ``generate(input_ids, attention_mask=..., prng_key=..., **settings)`` returning prompt + new
    tokens (``generate_fn`` replaces it), or, for an encoder-decoder (``config.is_encoder_decoder``), the
    decoder's start token + new tokens, the prompt going to the encoder; ``tokenizer`` is a ``transformers_jax`` tokenizer. ``max_new_tokens`` is
    the default for lines that do not set their own; ``seed`` is the run seed used for sampled lines without a
    ``seed``. ``on_batch_committed(batch_index, records)`` is called after each batch is durably committed.
    Returns a :class:`BatchRunSummary`.
    """
    import jax

    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    if max_new_tokens < 1:
        raise ValueError(f"max_new_tokens must be >= 1, got {max_new_tokens}")
    output_path = Path(output_path)
    errors_path = Path(errors_path) if errors_path is not None else output_path.with_name(output_path.name + ".errors.jsonl")
    generate = generate_fn if generate_fn is not None else model.generate
    output_path.parent.mkdir(parents=True, exist_ok=True)

    requests, errors = _read_requests(inputs)

    # Tokenize and check lengths: errors found here are input errors too (they depend on the input alone).
    limit = getattr(model.config, "max_position_embeddings", None)
    encoder_decoder = bool(getattr(model.config, "is_encoder_decoder", False))
    valid: list[Request] = []
    for request in requests:
        try:
            request.input_ids = _tokenize(request, tokenizer)
        except Exception as exc:  # a chat template may raise on odd roles
            errors.append(error_record(request.source, request.line, request.id, f"cannot tokenize: {exc}"))
            continue
        budget = request.max_new_tokens if request.max_new_tokens is not None else max_new_tokens
        if not request.input_ids:
            errors.append(error_record(request.source, request.line, request.id,
                                        "the prompt is empty after tokenization"))
        elif encoder_decoder and limit is not None and max(len(request.input_ids), budget + 1) > limit:
            errors.append(error_record(request.source, request.line, request.id, (
                f"{len(request.input_ids)} input tokens or {budget} new tokens (after the decoder's start token) "
                f"exceed the model's {limit} positions")))
        elif not encoder_decoder and limit is not None and len(request.input_ids) + budget > limit:
            errors.append(error_record(request.source, request.line, request.id, (
                f"{len(request.input_ids)} prompt tokens + {budget} new tokens exceed the model's {limit} positions")))
        else:
            valid.append(request)
    errors.sort(key=lambda e: e.get("line", e.get("row")))
    for error in errors:
        print(error["error"], file=sys.stderr)

    order = {r.key: i for i, r in enumerate(valid)}
    eos_ids = list(resolve_eos_token_ids(model, tokenizer))
    eos = set(eos_ids)
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else (eos_ids[0] if eos_ids else 0)

    store = ResultStore(output_path)
    lock_path = output_path.with_name(output_path.name + ".lock")
    with exclusive_lock(lock_path):
        write_jsonl(errors_path, errors)
        store.clean_temporaries()
        done_ids = store.merge(order)
        pending = [r for r in valid if r.key not in done_ids]

        # Group by (settings, prompt bucket: the one generate compiles for, so a batch never straddles two
        # programs) in order of first appearance; sampled requests go one per call.
        groups: dict[tuple, list[Request]] = {}
        for r in pending:
            groups.setdefault((_settings(r, max_new_tokens), bucket_size(len(r.input_ids))), []).append(r)
        batches: list[tuple[dict, list[Request]]] = []
        for (settings, _), members in groups.items():
            size = 1 if dict(settings)["do_sample"] else batch_size
            for i in range(0, len(members), size):
                batches.append((dict(settings), members[i: i + size]))

        bar = _Progress(len(pending), progress)
        new_tokens, start = 0, time.perf_counter()
        try:
            for index, (settings, members) in enumerate(batches):
                rows = members + [members[0]] * ((batch_size if not settings["do_sample"] else 1) - len(members))
                width = max(len(r.input_ids) for r in rows)
                input_ids = np.full((len(rows), width), pad_id, dtype=np.int32)
                attention_mask = np.zeros((len(rows), width), dtype=np.int32)
                for row, r in enumerate(rows):  # a decoder's prompt is left padded, an encoder's input right padded
                    first = 0 if encoder_decoder else width - len(r.input_ids)
                    input_ids[row, first:first + len(r.input_ids)] = r.input_ids
                    attention_mask[row, first:first + len(r.input_ids)] = 1
                prng_key = jax.random.PRNGKey(_request_seed(members[0], seed)) if settings["do_sample"] else None
                sequences = _call_generate(generate, input_ids, attention_mask, settings, prng_key, eos_ids, pad_id)
                first_new = 1 if encoder_decoder else width  # an encoder-decoder returns the decoder's start token first
                records = []
                for row, r in enumerate(members):
                    text, n_new, reason = _finish(sequences[row, first_new:], eos, tokenizer)
                    new_tokens += n_new
                    records.append({"id": r.id, "text": text, "num_prompt_tokens": len(r.input_ids),
                                    "num_new_tokens": n_new, "finish_reason": reason})
                store.commit(records)
                bar.update(len(members), sum(rec["num_new_tokens"] for rec in records))
                if on_batch_committed is not None:
                    on_batch_committed(index, records)
        finally:
            bar.close()
        seconds = time.perf_counter() - start
        store.merge(order)

    return BatchRunSummary(
        num_requests=len(valid), num_skipped=len(valid) - len(pending), num_done=len(pending), num_errors=len(errors),
        num_batches=len(batches), new_tokens=new_tokens, seconds=seconds, output_path=str(output_path),
        errors_path=str(errors_path),
    )
