"""JSONL-in / JSONL-out batch inference for every ``pipeline`` task, resumable: ``transformers-jax pipeline`` and
``scripts/run_pipeline.py``.

Input, one JSON value per line (blank lines are skipped): a plain JSON string (the task's text), or an object
with an optional ``id`` (a string or an integer) and the task's input fields (:data:`TASK_FIELDS`)::

    "I love this movie!"
    {"id": "r1", "text": "I love this movie!"}
    {"id": 2, "text": "It rains.", "text_pair": "The weather is dry."}          (text-classification)
    {"id": "q", "question": "Who?", "context": "Ada wrote it."}                   (question-answering)
    {"id": "c", "messages": [{"role": "user", "content": "Hi"}]}                 (text-generation)

Output, one line per input line, in input order once a run completes::

    {"id": "r1", "line": 2, "output": <the pipeline's result for that input>}

``id`` is the line's ``id`` (null when it has none) and ``line`` its 1-based line number, which is what a
result is keyed by (ids need not be unique). ``output`` is the line's result as an item of a batched call
(``pipe([...])[i]``: for text-classification without ``top_k`` the ``{"label", "score"}`` dict itself). The task's parameters (``top_k``, ``max_new_tokens``...) are
given once for the whole run (``--set key=value``, ``--kwargs JSON``) and go to ``pipeline(...)``, so a bad one
fails before any line runs. Numpy values in results are written as JSON numbers and lists.

Bad lines: a line that is not JSON, not a string or an object, lacks a required field, has an unknown or
ill-typed field, or that the pipeline refuses (a ``ValueError``/``TypeError`` raised for that input alone:
a batch that fails is rerun line by line to find it) is reported on stderr as ``line N: ...`` and written to
the errors file (default ``<output>.errors.jsonl``) as ``{"line": N, "id": ..., "error": "line N: ..."}``; the
other lines run. Errors never go into the output; the errors file is rewritten on every run (a resumed run
reruns the lines that failed, so it reports them again).

Crash safety and resume are those of the generation runner (``serving/batch.py``), through the same store
(``serving/jsonl_store.py``): each batch of results is committed as an atomically renamed part file, a run
merges what a killed run committed and computes only the lines not in the output yet, and a lock refuses a
second runner on the same output. A run over an output written from a different input (a committed line
whose ``id`` is not the ``id`` of that line now) is refused. Batches hold ``batch_size`` lines in input order
and the pipeline pads each to ``batch_size`` rows and to its length buckets, so a long run compiles once per
bucket.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
import time
from pathlib import Path
from typing import Any, Callable, Iterable

import numpy as np

from serving.jsonl_store import ResultStore, error_record, exclusive_lock, id_key, write_jsonl

__all__ = ["PipelineRunSummary", "TASK_FIELDS", "line_input", "main", "parse_lines", "run_pipeline_batch"]

# task -> the input forms a line may take: (required fields, optional fields) each; the first form whose
# required fields are all present is used. Tasks not listed take {"text": ...} (or a plain string).
TASK_FIELDS: dict[str, list[tuple[tuple[str, ...], tuple[str, ...]]]] = {
    "text-classification": [(("text",), ("text_pair",))],
    "question-answering": [(("question", "context"), ())],
    "text-generation": [(("messages",), ()), (("text",), ())],
}
DEFAULT_FIELDS = [(("text",), ())]
# What a plain JSON string stands for, per task (None: a string is not a complete input).
STRING_INPUT = {"question-answering": None}


class InputError(ValueError):
    """A bad input line (the message does not carry the line number)."""


@dataclasses.dataclass
class Line:
    """One valid input line."""

    line: int
    id: Any
    input: Any

    @property
    def key(self) -> str:
        return id_key(self.line)


@dataclasses.dataclass
class PipelineRunSummary:
    """What a :func:`run_pipeline_batch` call did."""

    num_lines: int      # valid input lines
    num_skipped: int    # already in the output when the run started
    num_done: int       # results written by this run
    num_errors: int     # bad lines (input errors and inputs the pipeline refused)
    num_batches: int    # pipeline calls made for batches by this run
    seconds: float
    output_path: str
    errors_path: str


def line_input(obj: Any, task: str) -> tuple[Any, Any]:
    """(id, pipeline input) of one parsed line of a ``task`` run; an :class:`InputError` naming the problem."""
    if isinstance(obj, str):
        if task in STRING_INPUT and STRING_INPUT[task] is None:
            raise InputError(f"a plain string is not a {task} input: give an object with the fields "
                             f"{_forms_text(task)}")
        return None, obj
    if not isinstance(obj, dict):
        raise InputError(f"expected a JSON object or string, got {_json_type(obj)}")
    ident = obj.get("id")
    if "id" in obj and not (isinstance(ident, str) or (isinstance(ident, int) and not isinstance(ident, bool))):
        raise InputError(f"'id' must be a string or an integer, got {_json_type(ident)}")
    fields = {k: v for k, v in obj.items() if k != "id"}
    forms = TASK_FIELDS.get(task, DEFAULT_FIELDS)
    for required, optional in forms:
        if all(k in fields for k in required):
            break
    else:
        missing = [k for k in forms[0][0] if k not in fields]
        raise InputError(f"missing field {', '.join(map(repr, missing))}: a {task} line has the fields "
                         f"{_forms_text(task)}")
    unknown = sorted(set(fields) - set(required) - set(optional))
    if unknown:
        raise InputError(f"unknown field(s) {', '.join(map(repr, unknown))}: a {task} line has the fields "
                         f"{_forms_text(task)} (and an optional 'id')")
    if required == ("messages",):
        return ident, _check_messages(fields["messages"])
    for key, value in fields.items():
        if not isinstance(value, str):
            raise InputError(f"{key!r} must be a string, got {_json_type(value)}")
    if set(fields) == {"text"}:
        return ident, fields["text"]
    return ident, dict(fields)


def _check_messages(messages: Any) -> list:
    if not isinstance(messages, list) or not messages:
        raise InputError(f"'messages' must be a non-empty list of {{'role', 'content'}} objects, got "
                         f"{_json_type(messages)}")
    for i, message in enumerate(messages):
        if not isinstance(message, dict) or "role" not in message or "content" not in message:
            raise InputError(f"'messages[{i}]' must be an object with 'role' and 'content'")
    return messages


def _forms_text(task: str) -> str:
    forms = TASK_FIELDS.get(task, DEFAULT_FIELDS)
    return " or ".join("{" + ", ".join([*map(repr, req), *(f"{o!r} (optional)" for o in opt)]) + "}"
                       for req, opt in forms)


def _json_type(value: Any) -> str:
    names = {dict: "object", list: "array", str: "string", bool: "boolean", int: "integer", float: "number",
             type(None): "null"}
    return names.get(type(value), type(value).__name__)


def parse_lines(lines: Iterable[str], task: str) -> tuple[list[Line], list[dict]]:
    """Valid lines and error records ``{"line", "id", "error"}`` of a JSONL input for ``task``."""
    valid, errors = [], []
    for number, raw in enumerate(lines, start=1):
        if not raw.strip():
            continue
        ident = None
        try:
            try:
                obj = json.loads(raw)
            except json.JSONDecodeError as exc:
                raise InputError(f"invalid JSON: {exc.msg} at column {exc.colno}") from None
            if isinstance(obj, dict) and isinstance(obj.get("id"), (str, int)):
                ident = obj["id"]
            ident, value = line_input(obj, task)
            valid.append(Line(number, ident, value))
        except InputError as exc:
            errors.append(error_record("line", number, ident, str(exc)))
    return valid, errors


def to_jsonable(value: Any) -> Any:
    """``json.dumps``'s ``default``: numpy arrays as lists, numpy scalars as Python numbers."""
    if isinstance(value, np.ndarray) or hasattr(value, "__array__"):
        return np.asarray(value).tolist()
    if isinstance(value, np.generic):
        return value.item()
    raise TypeError(f"a pipeline result holds a {type(value).__name__}, which cannot be written as JSON")


def _line_key(record: dict) -> str:
    return id_key(record["line"])


def _check_same_input(store: ResultStore, lines: dict[str, Line]) -> None:
    """Refuse to resume an output whose committed lines do not belong to this input."""
    for key, raw in store.committed().items():
        record = json.loads(raw)
        line = lines.get(key)
        if line is None or line.id != record.get("id"):
            now = "not a valid line" if line is None else f"id {line.id!r}"
            raise RuntimeError(f"{store.output} holds a result for line {record['line']} with id {record.get('id')!r}, "
                               f"but in this input that line has {now}: it was written from another input; "
                               "use another --output")


class _Progress:
    def __init__(self, total: int, enabled: bool, desc: str):
        self.bar = None
        if enabled and total:
            from tqdm.auto import tqdm

            self.bar = tqdm(total=total, unit="line", desc=desc, file=sys.stderr, dynamic_ncols=True)

    def update(self, n: int) -> None:
        if self.bar is not None:
            self.bar.update(n)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def _run_chunk(pipe, chunk: list[Line], batch_size: int) -> tuple[list[dict], list[dict]]:
    """(result records, error records) of one batch: the whole batch at once, or line by line when the pipeline
    refuses it (to find the lines it refuses)."""
    try:
        # a generator, so that every task streams one result per input (a list of one QA example gives a dict)
        results = list(pipe((line.input for line in chunk), batch_size=batch_size))
        return [{"id": line.id, "line": line.line, "output": result} for line, result in zip(chunk, results)], []
    except (ValueError, TypeError) as batch_error:
        if len(chunk) == 1:
            line = chunk[0]
            return [], [error_record("line", line.line, line.id, f"{type(batch_error).__name__}: {batch_error}")]
    records, errors = [], []
    for line in chunk:
        done, failed = _run_chunk(pipe, [line], batch_size)
        records += done
        errors += failed
    return records, errors


def run_pipeline_batch(pipe, inputs: str | os.PathLike | Iterable[str], output_path: str | os.PathLike, *,
                       batch_size: int = 8, errors_path: str | os.PathLike | None = None, progress: bool = True,
                       on_batch_committed: Callable[[int, list[dict]], None] | None = None) -> PipelineRunSummary:
    """Run ``pipe`` (a ``transformers_jax`` pipeline) over every line of ``inputs`` (a JSONL path, or its lines)
    not yet in ``output_path``; see the module docstring. ``on_batch_committed(batch_index, records)`` is called
    after each batch is durably committed. Returns a :class:`PipelineRunSummary`."""
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}")
    task = pipe.task
    output_path = Path(output_path)
    errors_path = Path(errors_path) if errors_path is not None else output_path.with_name(output_path.name + ".errors.jsonl")
    output_path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(inputs, (str, os.PathLike)):
        with open(inputs, encoding="utf-8") as f:
            valid, errors = parse_lines(f, task)
    else:
        valid, errors = parse_lines(inputs, task)
    for error in errors:
        print(error["error"], file=sys.stderr)
    by_key = {line.key: line for line in valid}
    order = {line.key: i for i, line in enumerate(valid)}

    store = ResultStore(output_path, key=_line_key, default=to_jsonable)
    with exclusive_lock(output_path.with_name(output_path.name + ".lock")):
        write_jsonl(errors_path, errors)
        store.clean_temporaries()
        _check_same_input(store, by_key)
        done = store.merge(order)
        pending = [line for line in valid if line.key not in done]
        bar = _Progress(len(pending), progress, task)
        start, batches, finished = time.perf_counter(), 0, 0
        try:
            for index in range(0, len(pending), batch_size):
                records, failed = _run_chunk(pipe, pending[index:index + batch_size], batch_size)
                if records:
                    store.commit(records)
                if failed:
                    for error in failed:
                        print(error["error"], file=sys.stderr)
                    errors = sorted(errors + failed, key=lambda e: e["line"])
                    write_jsonl(errors_path, errors)
                batches += 1
                finished += len(records)
                bar.update(len(records) + len(failed))
                if on_batch_committed is not None:
                    on_batch_committed(batches - 1, records)
        finally:
            bar.close()
        seconds = time.perf_counter() - start
        store.merge(order)
    return PipelineRunSummary(num_lines=len(valid), num_skipped=len(valid) - len(pending), num_done=finished,
                              num_errors=len(errors), num_batches=batches, seconds=seconds,
                              output_path=str(output_path), errors_path=str(errors_path))


# ----------------------------------------------------------------------------- command line
def parse_settings(sets: list[str] | None, kwargs_json: str | None) -> dict:
    """The task parameters of ``--kwargs JSON`` (an object) with each ``--set key=value`` on top; a value is
    read as JSON when it parses (``3``, ``true``, ``null``, ``["a","b"]``), else kept as a string."""
    settings: dict[str, Any] = {}
    if kwargs_json:
        try:
            settings = json.loads(kwargs_json)
        except json.JSONDecodeError as exc:
            raise ValueError(f"--kwargs is not valid JSON: {exc}") from None
        if not isinstance(settings, dict):
            raise ValueError(f"--kwargs must be a JSON object, got {_json_type(settings)}")
    for item in sets or ():
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ValueError(f"--set takes key=value, got {item!r}")
        try:
            settings[key.strip()] = json.loads(value)
        except json.JSONDecodeError:
            settings[key.strip()] = value
    return settings


def build_parser() -> argparse.ArgumentParser:
    from transformers_jax import compilation_cache

    parser = argparse.ArgumentParser(prog="transformers-jax pipeline", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--task", required=True, help="a pipeline task, e.g. text-classification, question-answering")
    parser.add_argument("--model", help="model directory or hub repo id (default: the task's default model)")
    parser.add_argument("--tokenizer", help="tokenizer directory or hub repo id (default: the model's)")
    parser.add_argument("--revision", help="hub branch, tag or commit of --model")
    parser.add_argument("--dtype", help="compute dtype, e.g. bfloat16")
    parser.add_argument("--input", required=True, help="JSONL file: one JSON string or object per line")
    parser.add_argument("--output", required=True, help="JSONL results, {id, line, output} per line")
    parser.add_argument("--errors", default=None, help="errors file (default: <output>.errors.jsonl)")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--set", action="append", metavar="KEY=VALUE", dest="sets",
                        help="a task parameter (repeatable), e.g. --set top_k=2; the value is JSON or a string")
    parser.add_argument("--kwargs", help="task parameters as a JSON object")
    parser.add_argument("--no-progress", action="store_true")
    compilation_cache.add_arguments(parser)
    return parser


def main(argv=None, pipeline_factory: Callable | None = None) -> int:
    """``transformers-jax pipeline`` / ``scripts/run_pipeline.py``: build the pipeline and run the input file;
    returns 0, 1 when the pipeline cannot be built (a message says why), or 2 when some lines were bad. ``pipeline_factory`` replaces ``transformers_jax.pipeline``."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        settings = parse_settings(args.sets, args.kwargs)
    except ValueError as exc:
        parser.error(str(exc))
    if args.batch_size < 1:
        parser.error(f"--batch-size must be >= 1, got {args.batch_size}")
    from transformers_jax import compilation_cache

    compilation_cache.configure_from_args(args)
    if pipeline_factory is None:
        from transformers_jax import pipeline as pipeline_factory
    extra = {k: v for k, v in (("tokenizer", args.tokenizer), ("revision", args.revision), ("dtype", args.dtype))
             if v is not None}
    try:
        pipe = pipeline_factory(args.task, model=args.model, batch_size=args.batch_size, **extra, **settings)
    except (ValueError, TypeError, OSError, NotImplementedError) as exc:
        print(f"transformers-jax pipeline: cannot build the {args.task!r} pipeline: {exc}", file=sys.stderr)
        return 1
    summary = run_pipeline_batch(pipe, args.input, args.output, batch_size=args.batch_size, errors_path=args.errors,
                                 progress=not args.no_progress)
    print(f"{summary.num_done} done, {summary.num_skipped} already done, {summary.num_errors} bad lines "
          f"({summary.errors_path}) in {summary.seconds:.1f} s -> {summary.output_path}", file=sys.stderr)
    return 2 if summary.num_errors else 0
