"""OpenAI-compatible HTTP server over the serving engine (``serving/engine.py``).

Endpoints
---------
``POST /v1/completions``        prompt (a string, a list of one string, or token ids) -> text
``POST /v1/chat/completions``   messages, rendered with the tokenizer's chat template -> assistant message
    Both take ``model``, ``max_tokens`` (chat: also ``max_completion_tokens``), ``temperature`` (0 = greedy),
    ``top_p``, ``top_k`` (extension), ``stop`` (a string or up to 4 strings, matched in the decoded text and
    left out of it), ``stream`` (server-sent events in OpenAI's chunk format, ending with ``data: [DONE]``;
    ``stream_options.include_usage`` adds a usage chunk), ``n`` (only 1) and ``seed``. Responses carry
    ``usage`` and ``finish_reason`` (``"stop"``: end-of-sequence token or stop string; ``"length"``).
``GET /v1/models``              the one served model.
``GET /health``                 200 ``{"status": "ok"}``; 503 while draining for shutdown.
``GET /metrics``                Prometheus text format: engine queue depth, active/total slots, tokens
                                generated and tokens/s, time to first token (a server-side histogram),
                                requests by endpoint and HTTP status, finish reasons, in-flight requests.

Errors are OpenAI-shaped, ``{"error": {"message", "type", "param", "code"}}``: 400 for malformed JSON,
wrong types, missing or out-of-range fields, unsupported options, prompts that do not fit the context;
404 for an unknown model or path; 405 for a wrong method; 413 for a body over 1 MiB; 429 when the
engine's queue is full; 503 while shutting down. A 500 means a bug in this server: every request runs
inside a catch-all, so no request can take the server down. The server never touches the file system.

Why aiohttp
-----------
One dependency (plus its small C-accelerated helpers) that is both the HTTP server and a real asyncio
stack: handlers are coroutines on one event loop, responses can be streamed chunk by chunk
(``web.StreamResponse``) with back-pressure, and with ``handler_cancellation=True`` a client that
disconnects cancels its handler task, which is how a disconnect mid-stream (or while waiting for a
non-streamed answer) cancels the engine request and frees its slot at once. It needs no ASGI layer
(FastAPI/Starlette + uvicorn would be three or more packages for the same thing), and its runner API
(``AppRunner``/``TCPSite``) lets the server run in a background thread in tests, bind port 0, and shut
down in order: stop listening, let in-flight requests finish, then drain the engine.

Threading model: the engine runs its own thread; this server's event loop calls ``engine.submit`` and
consumes ``RequestHandle.stream()`` (an async iterator). Tokenization and detokenization happen on the
event loop (they are fast Rust calls).
"""
from __future__ import annotations

import asyncio
import json
import logging
import secrets
import threading
import time
import uuid
from collections import defaultdict
from dataclasses import dataclass
from typing import Any, AsyncIterator, Sequence

from aiohttp import web

from serving.detokenizer import Detokenizer
from transformers_jax.generation.sampling import SamplingArgumentError, validate_sampling_args
from transformers_jax.tokenization.chat_template import MessagesError, normalize_messages

logger = logging.getLogger(__name__)

MAX_BODY_BYTES = 1 << 20
MAX_STOP_SEQUENCES = 4
MAX_TEMPERATURE = 2.0  # OpenAI's limit
CHAT_ROLES = ("system", "developer", "user", "assistant")
TTFT_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)

# Fields a client may send that change nothing here (OpenAI's bookkeeping fields).
_IGNORED_FIELDS = {"user", "metadata", "store", "service_tier", "parallel_tool_calls"}


class APIError(Exception):
    """An error answered to the client as ``{"error": {...}}`` with an HTTP status."""

    def __init__(self, status: int, message: str, *, param: str | None = None, code: str | None = None,
                 type: str | None = None):
        super().__init__(message)
        self.status = status
        self.message = message
        self.param = param
        self.code = code
        self.type = type or {
            400: "invalid_request_error", 404: "invalid_request_error", 405: "invalid_request_error",
            413: "invalid_request_error", 429: "rate_limit_error", 503: "service_unavailable",
        }.get(status, "server_error" if status >= 500 else "invalid_request_error")

    def body(self) -> dict:
        return {"error": {"message": self.message, "type": self.type, "param": self.param, "code": self.code}}

    def response(self) -> web.Response:
        return web.json_response(self.body(), status=self.status)


def _bad(message: str, param: str | None = None, code: str | None = "invalid_value") -> APIError:
    return APIError(400, message, param=param, code=code)


def _is_queue_full(exc: BaseException) -> bool:
    return any(cls.__name__ == "QueueFull" for cls in type(exc).__mro__)


# ----------------------------------------------------------------------------------------------- parsing

def _reject_constant(name: str):
    raise ValueError(f"{name} is not valid JSON")


def _parse_json(raw: bytes) -> dict:
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise _bad("The request body is not valid UTF-8.", code="invalid_json") from None
    if not text.strip():
        raise _bad("The request body is empty; expected a JSON object.", code="invalid_json")
    try:
        body = json.loads(text, parse_constant=_reject_constant)
    except (ValueError, RecursionError) as exc:
        raise _bad(f"We could not parse the JSON body of your request: {exc}", code="invalid_json") from None
    if not isinstance(body, dict):
        raise _bad(f"The request body must be a JSON object, got {type(body).__name__}.", code="invalid_json")
    return body


def _type_name(value: Any) -> str:
    return {dict: "object", list: "array", str: "string", bool: "boolean", int: "integer", float: "number",
            type(None): "null"}.get(type(value), type(value).__name__)


def _int(body: dict, key: str, default, *, lo: int | None = None, hi: int | None = None):
    value = body.get(key)
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int):
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        else:
            raise _bad(f"'{key}' must be an integer, got {_type_name(value)} {value!r:.50}.", key, "invalid_type")
    if lo is not None and value < lo:
        raise _bad(f"'{key}' must be >= {lo}, got {value}.", key)
    if hi is not None and value > hi:
        raise _bad(f"'{key}' must be <= {hi}, got {value}.", key)
    return value


def _number(body: dict, key: str, default: float) -> float:
    """A JSON number (its range is checked by ``validate_sampling_args``)."""
    value = body.get(key)
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise _bad(f"'{key}' must be a number, got {_type_name(value)} {value!r:.50}.", key, "invalid_type")
    return float(value)


def _bool(body: dict, key: str, default: bool) -> bool:
    value = body.get(key)
    if value is None:
        return default
    if not isinstance(value, bool):
        raise _bad(f"'{key}' must be a boolean, got {_type_name(value)}.", key, "invalid_type")
    return value


def _stop_sequences(body: dict) -> tuple[str, ...]:
    stop = body.get("stop")
    if stop is None:
        return ()
    if isinstance(stop, str):
        stop = [stop]
    if not isinstance(stop, list) or not all(isinstance(s, str) for s in stop):
        raise _bad("'stop' must be a string or a list of strings.", "stop", "invalid_type")
    if len(stop) > MAX_STOP_SEQUENCES:
        raise _bad(f"'stop' takes at most {MAX_STOP_SEQUENCES} sequences, got {len(stop)}.", "stop")
    if any(s == "" for s in stop):
        raise _bad("'stop' sequences must not be empty strings.", "stop")
    return tuple(dict.fromkeys(stop))


def _unsupported(body: dict, key: str, is_default) -> None:
    if key in body and body[key] is not None and not is_default(body[key]):
        raise _bad(f"'{key}' is not supported by this server.", key, "unsupported_parameter")


@dataclass
class _Request:
    endpoint: str
    prompt_ids: list[int]
    max_tokens: int
    params: Any  # SamplingParams
    stop: tuple[str, ...]
    stream: bool
    include_usage: bool


# ----------------------------------------------------------------------------------------------- metrics

class _Metrics:
    def __init__(self):
        self.requests = defaultdict(int)        # (endpoint, status) -> count
        self.finish = defaultdict(int)          # reason -> count
        self.ttft_buckets = [0] * len(TTFT_BUCKETS)
        self.ttft_count = 0
        self.ttft_sum = 0.0
        self.in_flight = 0

    def observe_ttft(self, seconds: float) -> None:
        self.ttft_count += 1
        self.ttft_sum += seconds
        for i, bound in enumerate(TTFT_BUCKETS):
            if seconds <= bound:
                self.ttft_buckets[i] += 1


def _prom_number(value: Any) -> str | None:
    if isinstance(value, bool):
        return str(int(value))
    if isinstance(value, (int, float)):
        return repr(float(value)) if isinstance(value, float) else str(value)
    try:
        return repr(float(value))
    except (TypeError, ValueError):
        return None


# ----------------------------------------------------------------------------------------------- server

class OpenAIServer:
    """The HTTP application around one engine and its tokenizer.

    ``model_name`` is the id clients pass as ``model`` (``/v1/models`` lists it). ``max_length`` is the
    engine's context (prompt + completion) and defaults to the engine's (``max_positions``: its
    ``max_length`` capped by the model's position limit). ``eos_token_ids`` are extra stop token ids on top
    of the model's EOS ids, which the engine always stops on (``finish_reason="stop"``); ``vocab_size``
    bounds token-id prompts (default: the engine's).
    """

    def __init__(self, engine, tokenizer, *, model_name: str, max_length: int | None = None,
                 eos_token_ids: Sequence[int] = (), vocab_size: int | None = None,
                 default_max_tokens: int = 16, shutdown_timeout: float = 60.0):
        self.engine = engine
        self.tokenizer = tokenizer
        self.model_name = model_name
        if max_length is None:
            max_length = getattr(engine, "max_positions", None) or engine.max_length
        self.max_length = int(max_length)
        self.eos_token_ids = tuple(int(e) for e in eos_token_ids)
        self.vocab_size = int(vocab_size if vocab_size is not None else getattr(engine, "vocab_size", len(tokenizer)))
        self.default_max_tokens = default_max_tokens
        self.shutdown_timeout = shutdown_timeout
        self.created = int(time.time())
        self.metrics = _Metrics()
        self.draining = False
        self._runner: web.AppRunner | None = None
        self._idle: asyncio.Event | None = None
        from serving.engine import SamplingParams  # the engine module, imported when a server is built
        self._SamplingParams = SamplingParams

    # -- application ----------------------------------------------------------------------------------
    def make_app(self) -> web.Application:
        app = web.Application(middlewares=[self._middleware], client_max_size=MAX_BODY_BYTES)
        app.router.add_post("/v1/completions", self._completions)
        app.router.add_post("/v1/chat/completions", self._chat_completions)
        app.router.add_get("/v1/models", self._models)
        app.router.add_get("/v1/models/{model}", self._model)
        app.router.add_get("/health", self._health)
        app.router.add_get("/metrics", self._metrics)
        return app

    @web.middleware
    async def _middleware(self, request: web.Request, handler):
        endpoint = {"/v1/completions": "completions", "/v1/chat/completions": "chat_completions"}.get(request.path)
        counted = endpoint is not None
        if counted:
            self.metrics.in_flight += 1
            if self._idle is not None:
                self._idle.clear()
        status = 500
        try:
            if counted and self.draining:
                raise APIError(503, "The server is shutting down.", code="shutting_down")
            response = await handler(request)
            status = response.status
            return response
        except APIError as exc:
            status = exc.status
            return exc.response()
        except web.HTTPException as exc:
            status = exc.status
            if exc.status == 413:
                message = f"The request body is larger than {MAX_BODY_BYTES} bytes."
            elif exc.status == 404:
                message = f"Unknown path {request.path!r}."
            elif exc.status == 405:
                message = f"Method {request.method} is not allowed on {request.path!r}."
            else:
                message = exc.reason or "HTTP error"
            return APIError(exc.status, message, code=str(exc.status)).response()
        except asyncio.CancelledError:  # the client went away: nothing to answer
            status = 499
            raise
        except ConnectionResetError:  # the client went away while we were writing
            status = 499
            raise
        except Exception:
            logger.exception("internal error serving %s %s", request.method, request.path)
            status = 500
            return APIError(500, "Internal server error.", code="internal_error").response()
        finally:
            if counted:
                self.metrics.requests[(endpoint, status)] += 1
                self.metrics.in_flight -= 1
                if self.metrics.in_flight == 0 and self._idle is not None:
                    self._idle.set()

    # -- simple endpoints -----------------------------------------------------------------------------
    def _model_card(self) -> dict:
        return {"id": self.model_name, "object": "model", "created": self.created, "owned_by": "transformers_jax",
                "max_model_len": self.max_length}

    async def _models(self, request: web.Request) -> web.Response:
        return web.json_response({"object": "list", "data": [self._model_card()]})

    async def _model(self, request: web.Request) -> web.Response:
        if request.match_info["model"] != self.model_name:
            raise APIError(404, f"The model {request.match_info['model']!r} does not exist.", param="model",
                           code="model_not_found")
        return web.json_response(self._model_card())

    async def _health(self, request: web.Request) -> web.Response:
        if self.draining:
            return web.json_response({"status": "draining"}, status=503)
        return web.json_response({"status": "ok"})

    async def _metrics(self, request: web.Request) -> web.Response:
        return web.Response(text=self.prometheus_text(), content_type="text/plain", charset="utf-8",
                            headers={"X-Content-Format": "prometheus-0.0.4"})

    def prometheus_text(self) -> str:
        lines: list[str] = []

        def metric(name: str, kind: str, help_: str, samples: list[tuple[str, Any]]):
            lines.append(f"# HELP {name} {help_}")
            lines.append(f"# TYPE {name} {kind}")
            for labels, value in samples:
                number = _prom_number(value)
                if number is not None:
                    lines.append(f"{name}{labels} {number}")

        try:
            em = dict(self.engine.metrics())
        except Exception:  # metrics must answer even if the engine is gone
            logger.exception("engine.metrics() failed")
            em = {}
        p = "transformers_jax"
        metric(f"{p}_queue_depth", "gauge", "Requests waiting for an engine slot.", [("", em.get("queue_depth"))])
        metric(f"{p}_active_slots", "gauge", "Engine slots generating now.", [("", em.get("active_slots"))])
        metric(f"{p}_num_slots", "gauge", "Engine slots in all.", [("", em.get("num_slots"))])
        metric(f"{p}_tokens_generated_total", "counter", "Tokens generated by the engine.",
               [("", em.get("tokens_generated_total"))])
        metric(f"{p}_tokens_per_second", "gauge", "Recent engine generation throughput.",
               [("", em.get("tokens_per_second"))])
        metric(f"{p}_engine_requests_total", "counter", "Requests the engine accepted.",
               [("", em.get("requests_total"))])
        ttft = em.get("ttft_seconds")
        if isinstance(ttft, dict):  # the engine's summary of recent requests: count, mean, p50, p90, max
            metric(f"{p}_engine_time_to_first_token_seconds", "gauge",
                   "Time to first token over the engine's recent requests (submit to first token), by statistic.",
                   [(f'{{stat="{k}"}}', v) for k, v in sorted(ttft.items())])
        else:
            metric(f"{p}_engine_time_to_first_token_seconds", "gauge",
                   "Time to first token as the engine reports it.", [("", ttft)])
        m = self.metrics
        cumulative = [(f'{{le="{b:g}"}}', c) for b, c in zip(TTFT_BUCKETS, m.ttft_buckets)]
        lines.append(f"# HELP {p}_time_to_first_token_seconds Seconds from receiving a request to its first generated token.")
        lines.append(f"# TYPE {p}_time_to_first_token_seconds histogram")
        for labels, count in cumulative:
            lines.append(f"{p}_time_to_first_token_seconds_bucket{labels} {count}")
        lines.append(f'{p}_time_to_first_token_seconds_bucket{{le="+Inf"}} {m.ttft_count}')
        lines.append(f"{p}_time_to_first_token_seconds_sum {m.ttft_sum!r}")
        lines.append(f"{p}_time_to_first_token_seconds_count {m.ttft_count}")
        metric(f"{p}_http_requests_total", "counter", "Generation requests by endpoint and HTTP status.",
               [(f'{{endpoint="{e}",status="{s}"}}', c) for (e, s), c in sorted(m.requests.items())])
        metric(f"{p}_finish_reason_total", "counter", "Finished generations by finish reason.",
               [(f'{{reason="{r}"}}', c) for r, c in sorted(m.finish.items())])
        metric(f"{p}_http_requests_in_flight", "gauge", "Generation requests being served now.",
               [("", m.in_flight)])
        return "\n".join(lines) + "\n"

    # -- request parsing ------------------------------------------------------------------------------
    async def _read_body(self, request: web.Request) -> dict:
        return _parse_json(await request.read())

    def _common(self, body: dict, endpoint: str, prompt_ids: list[int], allowed: set[str]) -> _Request:
        unknown = sorted(set(body) - allowed - _IGNORED_FIELDS)
        if unknown:
            raise _bad(f"Unrecognized request argument supplied: {unknown[0]}", unknown[0], "unknown_parameter")
        _unsupported(body, "logprobs", lambda v: v is False or v == 0)
        _unsupported(body, "top_logprobs", lambda v: v == 0)
        _unsupported(body, "echo", lambda v: v is False)
        _unsupported(body, "best_of", lambda v: v == 1)
        _unsupported(body, "suffix", lambda v: v == "")
        _unsupported(body, "logit_bias", lambda v: v == {})
        _unsupported(body, "presence_penalty", lambda v: v == 0)
        _unsupported(body, "frequency_penalty", lambda v: v == 0)
        for key in ("tools", "tool_choice", "functions", "function_call", "response_format"):
            _unsupported(body, key, lambda v: False)
        n = _int(body, "n", 1)
        if n != 1:
            raise _bad(f"Only n=1 is supported, got n={n}.", "n")
        stream = _bool(body, "stream", False)
        include_usage = False
        options = body.get("stream_options")
        if options is not None:
            if not isinstance(options, dict):
                raise _bad("'stream_options' must be an object.", "stream_options", "invalid_type")
            if not stream:
                raise _bad("'stream_options' is only allowed when 'stream' is true.", "stream_options")
            include_usage = _bool(options, "include_usage", False)
        temperature = _number(body, "temperature", 1.0)
        top_p = _number(body, "top_p", 1.0)
        top_k = _int(body, "top_k", 0)
        top_k = 0 if top_k == -1 else top_k  # -1 = off, as in vLLM
        seed = _int(body, "seed", None, lo=-(2**63), hi=2**64 - 1)
        stop = _stop_sequences(body)

        if not prompt_ids:
            raise _bad("The prompt is empty after tokenization.", "messages" if endpoint == "chat" else "prompt")
        bad_ids = [t for t in prompt_ids if not 0 <= t < self.vocab_size]
        if bad_ids:
            raise _bad(f"Token id {bad_ids[0]} is out of range [0, {self.vocab_size}).", "prompt")
        room = self.max_length - len(prompt_ids)
        if room <= 0:
            raise _bad(f"This model's maximum context length is {self.max_length} tokens; your prompt has "
                       f"{len(prompt_ids)} tokens. Please shorten it.", "messages" if endpoint == "chat" else "prompt",
                       "context_length_exceeded")
        key = "max_tokens"
        if endpoint == "chat" and body.get("max_completion_tokens") is not None:
            key = "max_completion_tokens"
        default = room if endpoint == "chat" else min(self.default_max_tokens, room)
        max_tokens = _int(body, key, default)
        try:
            validate_sampling_args(max_new_tokens=max_tokens, temperature=temperature, top_k=top_k, top_p=top_p,
                                   max_temperature=MAX_TEMPERATURE, names={"max_new_tokens": key})
        except SamplingArgumentError as exc:
            raise _bad(f"{exc}.", exc.argument) from None
        if max_tokens > room:
            raise _bad(f"This model's maximum context length is {self.max_length} tokens. However, you requested "
                       f"{len(prompt_ids) + max_tokens} tokens ({len(prompt_ids)} in the prompt, {max_tokens} for "
                       f"the completion). Please reduce the prompt or '{key}'.", key, "context_length_exceeded")
        greedy = temperature == 0.0
        params = self._SamplingParams(
            max_tokens=max_tokens,
            temperature=temperature,
            top_p=top_p,
            top_k=top_k,
            do_sample=not greedy,
            stop_token_ids=self.eos_token_ids,
            seed=(seed if seed is not None else secrets.randbits(32)) % (2**32),
        )
        return _Request(endpoint, prompt_ids, max_tokens, params, stop, stream, include_usage)

    def _check_model(self, body: dict) -> None:
        model = body.get("model")
        if model is None:
            raise _bad("You must provide a model parameter.", "model", "missing_required_parameter")
        if not isinstance(model, str):
            raise _bad(f"'model' must be a string, got {_type_name(model)}.", "model", "invalid_type")
        if model != self.model_name:
            raise APIError(404, f"The model {model!r} does not exist; this server serves {self.model_name!r}.",
                           param="model", code="model_not_found")

    def _prompt_ids(self, body: dict) -> list[int]:
        if "prompt" not in body or body["prompt"] is None:
            raise _bad("You must provide a prompt parameter.", "prompt", "missing_required_parameter")
        prompt = body["prompt"]
        if isinstance(prompt, list) and len(prompt) == 1 and isinstance(prompt[0], (str, list)):
            prompt = prompt[0]
        if isinstance(prompt, str):
            return [int(t) for t in self.tokenizer(prompt)["input_ids"]]
        if isinstance(prompt, list) and prompt and all(isinstance(t, int) and not isinstance(t, bool) for t in prompt):
            return list(prompt)
        if isinstance(prompt, list) and len(prompt) > 1 and all(isinstance(p, (str, list)) for p in prompt):
            raise _bad(f"Only one prompt per request is supported, got {len(prompt)}.", "prompt")
        raise _bad("'prompt' must be a string, a list of one string, or a list of token ids.", "prompt",
                   "invalid_type")

    def _chat_ids(self, body: dict) -> list[int]:
        try:  # role, and content as a string or text parts; other message keys are not passed to the template
            messages = normalize_messages(body.get("messages"), roles=CHAT_ROLES, text_only=True, text_parts=True)
        except MessagesError as exc:
            raise _bad(str(exc), exc.param, exc.code) from None
        conversation = [{"role": message["role"], "content": message["content"]} for message in messages]
        try:
            ids = self.tokenizer.apply_chat_template(conversation, add_generation_prompt=True, tokenize=True)
        except Exception as exc:  # the template itself refuses the conversation (raise_exception, ...)
            import jinja2
            if isinstance(exc, (jinja2.TemplateError, ValueError, TypeError, KeyError)):
                raise _bad(f"The chat template could not render these messages: {exc}", "messages") from None
            raise
        ids = ids.tolist() if hasattr(ids, "tolist") else ids
        if isinstance(ids, dict) or hasattr(ids, "keys"):
            ids = ids["input_ids"]
        if ids and isinstance(ids[0], list):
            ids = ids[0]
        return [int(t) for t in ids]

    # -- generation -----------------------------------------------------------------------------------
    async def _completions(self, request: web.Request) -> web.StreamResponse:
        body = await self._read_body(request)
        self._check_model(body)
        allowed = {"model", "prompt", "max_tokens", "temperature", "top_p", "top_k", "stop", "stream",
                   "stream_options", "n", "seed", "logprobs", "echo", "best_of", "suffix", "logit_bias",
                   "presence_penalty", "frequency_penalty"}
        req = self._common(body, "completions", self._prompt_ids(body), allowed)
        return await self._serve(request, req)

    async def _chat_completions(self, request: web.Request) -> web.StreamResponse:
        body = await self._read_body(request)
        self._check_model(body)
        allowed = {"model", "messages", "max_tokens", "max_completion_tokens", "temperature", "top_p", "top_k",
                   "stop", "stream", "stream_options", "n", "seed", "logprobs", "top_logprobs", "logit_bias",
                   "presence_penalty", "frequency_penalty", "tools", "tool_choice", "functions", "function_call",
                   "response_format"}
        req = self._common(body, "chat", self._chat_ids(body), allowed)
        return await self._serve(request, req)

    def _submit(self, req: _Request):
        try:
            return self.engine.submit(req.prompt_ids, req.params)
        except ValueError as exc:
            raise _bad(str(exc), "prompt") from None
        except Exception as exc:
            if _is_queue_full(exc):
                raise APIError(429, "The server is busy: the request queue is full. Retry later.",
                               code="queue_full") from None
            if type(exc).__name__ == "EngineClosed":
                raise APIError(503, "The server is shutting down.", code="shutting_down") from None
            raise

    async def _events(self, handle, req: _Request, started: float) -> AsyncIterator[tuple[str, str | None, int]]:
        """(text delta, finish_reason or None, completion tokens so far) until the generation ends."""
        detok = Detokenizer(self.tokenizer, req.stop)
        first = True
        stream = handle.stream()
        finish = None
        try:
            async for token in stream:
                tokens = token if isinstance(token, (list, tuple)) else [token]
                if first and tokens:
                    first = False
                    self.metrics.observe_ttft(time.perf_counter() - started)
                delta = detok.add(tokens)
                if detok.stopped:
                    finish = "stop"
                    handle.cancel()
                    yield delta, finish, len(detok.ids)
                    return
                if delta:
                    yield delta, None, len(detok.ids)
        finally:
            aclose = getattr(stream, "aclose", None)
            if aclose is not None:
                await aclose()
        reason = getattr(handle, "finish_reason", None) or "length"
        if reason == "cancelled":
            raise APIError(503, "The request was cancelled by the server (shutting down).", code="cancelled")
        yield detok.flush(), reason, len(detok.ids)

    async def _serve(self, request: web.Request, req: _Request) -> web.StreamResponse:
        started = time.perf_counter()
        handle = self._submit(req)
        finished = False
        reason = "cancelled"
        try:
            prompt_tokens = int(getattr(handle, "num_prompt_tokens", None) or len(req.prompt_ids))
            rid = ("chatcmpl-" if req.endpoint == "chat" else "cmpl-") + uuid.uuid4().hex
            created = int(time.time())
            if req.stream:
                response, reason = await self._stream(request, req, handle, rid, created, prompt_tokens, started)
                finished = True
                return response
            text, reason, completion_tokens = [], None, 0
            async for delta, finish, count in self._events(handle, req, started):
                text.append(delta)
                reason, completion_tokens = finish or reason, count
            finished = True
            usage = {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
                     "total_tokens": prompt_tokens + completion_tokens}
            content = "".join(text)
            if req.endpoint == "chat":
                choice = {"index": 0, "message": {"role": "assistant", "content": content}, "logprobs": None,
                          "finish_reason": reason}
                obj = "chat.completion"
            else:
                choice = {"index": 0, "text": content, "logprobs": None, "finish_reason": reason}
                obj = "text_completion"
            return web.json_response({"id": rid, "object": obj, "created": created, "model": self.model_name,
                                      "system_fingerprint": None, "choices": [choice], "usage": usage})
        finally:
            if not finished:
                handle.cancel()  # client gone or an error: free the slot
            self.metrics.finish[reason if finished and reason else "cancelled"] += 1

    async def _stream(self, request, req: _Request, handle, rid: str, created: int, prompt_tokens: int,
                      started: float):
        response = web.StreamResponse(status=200, headers={
            "Content-Type": "text/event-stream; charset=utf-8", "Cache-Control": "no-cache",
            "X-Accel-Buffering": "no"})
        chat = req.endpoint == "chat"
        obj = "chat.completion.chunk" if chat else "text_completion"

        def chunk(delta: str | None, finish: str | None, *, role: bool = False, usage=None) -> bytes:
            if usage is not None:
                choices = []
            elif chat:
                d = {"role": "assistant", "content": ""} if role else ({} if delta is None else {"content": delta})
                choices = [{"index": 0, "delta": d, "logprobs": None, "finish_reason": finish}]
            else:
                choices = [{"index": 0, "text": delta or "", "logprobs": None, "finish_reason": finish}]
            payload = {"id": rid, "object": obj, "created": created, "model": self.model_name,
                       "system_fingerprint": None, "choices": choices}
            if usage is not None or req.include_usage:
                payload["usage"] = usage
            return b"data: " + json.dumps(payload, ensure_ascii=False).encode("utf-8") + b"\n\n"

        await response.prepare(request)
        if chat:
            await response.write(chunk(None, None, role=True))
        reason, completion_tokens = "length", 0
        try:
            async for delta, finish, count in self._events(handle, req, started):
                completion_tokens = count
                if finish is not None:
                    reason = finish
                    if delta:
                        await response.write(chunk(delta, None))
                    await response.write(chunk(None, finish))
                elif delta:
                    await response.write(chunk(delta, None))
        except APIError as exc:  # headers are sent: the error goes into the stream, as OpenAI does
            await response.write(b"data: " + json.dumps(exc.body()).encode("utf-8") + b"\n\n")
            reason = "cancelled"
        except (asyncio.CancelledError, ConnectionResetError):
            raise
        except Exception:
            logger.exception("internal error while streaming")
            error = APIError(500, "Internal server error while generating.", code="internal_error")
            await response.write(b"data: " + json.dumps(error.body()).encode("utf-8") + b"\n\n")
            reason = "cancelled"
        if req.include_usage:
            await response.write(chunk(None, None, usage={
                "prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
                "total_tokens": prompt_tokens + completion_tokens}))
        await response.write(b"data: [DONE]\n\n")
        await response.write_eof()
        return response, reason

    # -- lifecycle ------------------------------------------------------------------------------------
    async def start(self, host: str = "127.0.0.1", port: int = 8000, *, start_engine: bool = True) -> int:
        """Start the engine (unless already started by the caller) and listen; returns the bound port."""
        if start_engine:
            self.engine.start()
        self._idle = asyncio.Event()
        self._idle.set()
        self._runner = web.AppRunner(self.make_app(), handler_cancellation=True, access_log=None,
                                     shutdown_timeout=self.shutdown_timeout)
        await self._runner.setup()
        site = web.TCPSite(self._runner, host, port)
        await site.start()
        return int(self._runner.addresses[0][1])

    async def shutdown(self, timeout: float | None = None) -> None:
        """Graceful: refuse new generation requests (503), let in-flight ones finish, close, drain the engine."""
        timeout = self.shutdown_timeout if timeout is None else timeout
        self.draining = True
        if self._idle is not None:
            try:
                await asyncio.wait_for(self._idle.wait(), timeout)
            except asyncio.TimeoutError:
                logger.warning("shutdown: %d requests still running after %.0fs", self.metrics.in_flight, timeout)
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
        await asyncio.get_running_loop().run_in_executor(None, lambda: self.engine.shutdown(drain=True,
                                                                                            timeout=timeout))


class ServerThread:
    """Runs an :class:`OpenAIServer` on its own event loop in a background thread (tests, notebooks).

    ``start()`` returns once the port is bound (``port=0`` picks a free one; see ``.port``/``.url``);
    ``stop()`` shuts down gracefully (in-flight requests finish, then the engine drains).
    """

    def __init__(self, server: OpenAIServer, host: str = "127.0.0.1", port: int = 0, *, start_engine: bool = True):
        self.server, self.host, self.requested_port, self.start_engine = server, host, port, start_engine
        self.port: int | None = None
        self.loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self._stop: asyncio.Event | None = None

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self, timeout: float = 1800.0) -> "ServerThread":
        """Start the server thread and return once it is ready: the engine's programs compiled (its
        warm-up) and the port bound. How long that takes depends on the machine and its load, so
        ``timeout`` is only a safety net against a hang; a start that fails raises at once."""
        self._thread = threading.Thread(target=self._run, name="openai-server", daemon=True)
        self._thread.start()
        deadline = time.monotonic() + timeout
        while not self._ready.wait(1.0):
            if not self._thread.is_alive():
                break
            if time.monotonic() > deadline:
                raise TimeoutError(f"the server did not become ready within {timeout:.0f} s (engine warm-up or "
                                   "port binding hung)")
        if self._error is not None:
            raise RuntimeError("the server failed to start") from self._error
        if not self._ready.is_set():
            raise RuntimeError("the server thread ended before the server was ready")
        return self

    def _run(self) -> None:
        self.loop = asyncio.new_event_loop()
        asyncio.set_event_loop(self.loop)
        try:
            self.loop.run_until_complete(self._main())
        finally:
            self.loop.close()

    async def _main(self) -> None:
        self._stop = asyncio.Event()
        try:
            self.port = await self.server.start(self.host, self.requested_port, start_engine=self.start_engine)
        except BaseException as exc:  # reported to start()
            self._error = exc
            self._ready.set()
            return
        self._ready.set()
        await self._stop.wait()
        await self.server.shutdown(self._shutdown_timeout)

    def stop(self, timeout: float = 60.0) -> None:
        if self.loop is None or self._thread is None:
            return
        self._shutdown_timeout = timeout
        self.loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(timeout + 30)

    def __enter__(self) -> "ServerThread":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


async def serve_forever(server: OpenAIServer, host: str = "127.0.0.1", port: int = 8000) -> None:
    """Run until SIGINT/SIGTERM, then shut down gracefully."""
    import signal

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        try:
            loop.add_signal_handler(sig, stop.set)
        except (NotImplementedError, RuntimeError):  # pragma: no cover - non-Unix
            pass
    bound = await server.start(host, port)
    logger.info("serving %s on http://%s:%d", server.model_name, host, bound)
    print(f"serving {server.model_name!r} on http://{host}:{bound} (Ctrl-C to stop)", flush=True)
    await stop.wait()
    print("shutting down: finishing in-flight requests", flush=True)
    await server.shutdown()
