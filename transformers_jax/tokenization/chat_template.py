"""Chat templates: rendering conversations with HF's sandboxed jinja2 set-up, tool schemas from Python functions,
and :func:`normalize_messages`, the one check of a conversation that every caller goes through."""
from __future__ import annotations

import inspect
import json
import re
import typing
from collections.abc import Mapping, Sequence
from datetime import datetime
from functools import lru_cache
from typing import Any

import numpy as np

# --------------------------------------------------------------------------------------------------------------------
# Rendering
# --------------------------------------------------------------------------------------------------------------------


@lru_cache(maxsize=32)
def _compile_chat_template(template: str):
    """Compile a chat template in a sandboxed jinja2 environment configured like HF's."""
    try:
        import jinja2
        import jinja2.ext
        from jinja2.sandbox import ImmutableSandboxedEnvironment
    except ImportError as err:  # pragma: no cover - jinja2 is a dependency
        raise ImportError("apply_chat_template needs jinja2: pip install jinja2") from err

    class GenerationBlock(jinja2.ext.Extension):
        """Accept HF's ``{% generation %}...{% endgeneration %}`` blocks and render their body unchanged."""

        tags = {"generation"}

        def parse(self, parser):
            lineno = next(parser.stream).lineno
            body = parser.parse_statements(["name:endgeneration"], drop_needle=True)
            return jinja2.nodes.CallBlock(self.call_method("_render_body"), [], [], body).set_lineno(lineno)

        def _render_body(self, caller):
            return caller()

    def raise_exception(message):
        raise jinja2.exceptions.TemplateError(message)

    def tojson(value, ensure_ascii=False, indent=None, separators=None, sort_keys=False):
        # Unlike jinja's own filter: no HTML escaping, and the json.dumps options are exposed.
        return json.dumps(value, ensure_ascii=ensure_ascii, indent=indent, separators=separators, sort_keys=sort_keys)

    def strftime_now(fmt):
        return datetime.now().strftime(fmt)

    class TemplateDict:
        """``dict(...)`` for templates without exposing the real type."""

        def __call__(self, *args, **kwargs):
            return dict(*args, **kwargs)

        def fromkeys(self, *args, **kwargs):
            return dict.fromkeys(*args, **kwargs)

    class TemplateNamespace(jinja2.utils.Namespace):
        """``namespace(...)`` that refuses underscore-prefixed attribute names."""

        def __init__(*args, **kwargs):
            self, args = args[0], args[1:]
            attrs = dict(*args, **kwargs)
            for name in attrs:
                TemplateNamespace._check(name)
            jinja2.utils.Namespace.__init__(self, attrs)

        def __setitem__(self, name, value):
            TemplateNamespace._check(name)
            jinja2.utils.Namespace.__setitem__(self, name, value)

        @staticmethod
        def _check(name):
            if isinstance(name, str) and name.startswith("_"):
                raise jinja2.exceptions.SecurityError(
                    f"Chat templates cannot set underscore-prefixed attributes on a namespace (got {name!r})."
                )

    env = ImmutableSandboxedEnvironment(
        trim_blocks=True, lstrip_blocks=True, extensions=[GenerationBlock, jinja2.ext.loopcontrols]
    )
    env.filters["tojson"] = tojson
    env.globals["raise_exception"] = raise_exception
    env.globals["strftime_now"] = strftime_now
    env.globals["dict"] = TemplateDict()
    env.globals["namespace"] = TemplateNamespace
    return env.from_string(template)


def _plain_data(value: Any) -> Any:
    """Rebuild template inputs from plain JSON-like types so the sandbox never sees rich objects."""
    if value is None or type(value) in (str, int, float, bool):
        return value
    if isinstance(value, str):
        return str.__str__(value)
    if isinstance(value, bool):
        return bool(value)
    if isinstance(value, int):
        return int.__int__(value)
    if isinstance(value, float):
        return float.__float__(value)
    if isinstance(value, Mapping):
        return {_plain_data(k): _plain_data(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain_data(v) for v in value]
    if isinstance(value, tuple):
        return tuple(_plain_data(v) for v in value)
    if isinstance(value, np.generic):
        return _plain_data(value.item())
    if callable(getattr(value, "model_dump", None)):
        return _plain_data(value.model_dump())
    return f"<{type(value).__name__}>"


_JSON_TYPES = {int: "integer", float: "number", str: "string", bool: "boolean", list: "array", dict: "object"}


def _type_to_schema(hint: Any) -> dict:
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if hint is type(None):
        return {"type": "null"}
    if origin in (typing.Union, getattr(__import__("types"), "UnionType", typing.Union)):
        schemas = [_type_to_schema(a) for a in args]
        types = [s["type"] for s in schemas if "type" in s and isinstance(s["type"], str)]
        if len(types) == len(schemas):
            non_null = [t for t in types if t != "null"]
            out = {"type": non_null[0] if len(non_null) == 1 else non_null}
            if "null" in types:
                out["nullable"] = True
            return out
        return {}
    if origin is typing.Literal:
        return {"type": _JSON_TYPES.get(type(args[0]), "string"), "enum": list(args)}
    if origin in (list, tuple, set):
        out = {"type": "array"}
        if origin is list and args:
            out["items"] = _type_to_schema(args[0])
        return out
    if origin is dict:
        return {"type": "object"}
    if hint in _JSON_TYPES:
        return {"type": _JSON_TYPES[hint]}
    return {}


def _function_to_json_schema(func) -> dict:
    """A JSON schema for a tool function from its type hints and Google-style docstring.

    Every argument needs a type hint; argument descriptions come from the docstring's ``Args:`` section.
    """
    doc = inspect.getdoc(func) or ""
    parts = re.split(r"\n\s*(?:Args|Arguments|Returns|Raises):\s*\n", doc, maxsplit=1)
    description = parts[0].strip()
    arg_docs: dict[str, str] = {}
    args_block = re.search(r"\n?\s*(?:Args|Arguments):\s*\n(.*?)(?:\n\s*(?:Returns|Raises):|\Z)", doc, re.S)
    if args_block:
        current = None
        for line in args_block.group(1).splitlines():
            match = re.match(r"\s*(\w+)\s*(?:\([^)]*\))?\s*:\s*(.*)", line)
            if match:
                current = match.group(1)
                arg_docs[current] = match.group(2).strip()
            elif current and line.strip():
                arg_docs[current] += " " + line.strip()
    hints = typing.get_type_hints(func)
    properties, required = {}, []
    for name, param in inspect.signature(func).parameters.items():
        if name not in hints:
            raise TypeError(f"Tool {func.__name__!r}: argument {name!r} needs a type hint to build its schema.")
        schema = _type_to_schema(hints[name])
        if name in arg_docs:
            schema["description"] = arg_docs[name]
        properties[name] = schema
        if param.default is inspect.Parameter.empty:
            required.append(name)
    parameters: dict[str, Any] = {"type": "object", "properties": properties}
    if required:
        parameters["required"] = required
    function = {"name": func.__name__, "description": description, "parameters": parameters}
    return {"type": "function", "function": function}


_REASONING_FIELDS = ("reasoning_content", "thinking", "reasoning")
_CONTINUE_TAG = "CONTINUE_FINAL_MESSAGE_TAG "


def _render_chat(
    conversations: list[list[dict]],
    template: str,
    *,
    tools=None,
    documents=None,
    add_generation_prompt: bool = False,
    continue_final_message: bool | str = False,
    **template_kwargs,
) -> list[str]:
    """Render each conversation (normalised by :func:`normalize_messages`) with ``template`` the way HF's
    ``render_jinja_template`` does."""
    compiled = _compile_chat_template(template)
    tool_schemas = None
    if tools is not None:
        tool_schemas = []
        for tool in tools:
            if isinstance(tool, dict):
                tool_schemas.append(tool)
            elif inspect.isfunction(tool) or inspect.ismethod(tool):
                tool_schemas.append(_function_to_json_schema(tool))
            else:
                raise ValueError("Tools should be JSON schemas (dicts) or functions with type hints and a docstring.")
    if documents is not None and not all(isinstance(d, dict) for d in documents):
        raise TypeError("Documents should be a list of dicts with 'title' and 'text' keys!")
    tool_schemas = _plain_data(tool_schemas)
    documents = _plain_data(documents)
    template_kwargs = _plain_data(template_kwargs)

    rendered = []
    for chat in conversations:
        chat = _plain_data(chat)  # already checked by normalize_messages: a list of dicts
        aliased = []
        for message in chat:
            reasoning = next((message[k] for k in _REASONING_FIELDS if message.get(k) is not None), None)
            if reasoning is not None:
                message = {"thinking": reasoning, **message, "reasoning_content": reasoning}
            aliased.append(message)
        chat = aliased
        final_message = None
        if continue_final_message:
            field = continue_final_message if isinstance(continue_final_message, str) else "content"
            final_message = chat[-1].get(field)
            if final_message is None:
                raise ValueError(f'continue_final_message is set but the final message has no "{field}" to continue!')
            fields = [field]
            if field in _REASONING_FIELDS:
                fields = [f for f in _REASONING_FIELDS if chat[-1].get(f) == final_message]
            if not any(f in template for f in fields):
                raise ValueError(
                    f'continue_final_message is set to "{field}" but this is not an accepted field in the chat_template'
                )
            if isinstance(final_message, (list, tuple)):
                for block in reversed(final_message):
                    if "text" in block:
                        final_message = block["text"]
                        block["text"] = block["text"] + _CONTINUE_TAG
                        break
                else:
                    raise ValueError("continue_final_message is set but the final message has no text to continue!")
            else:
                for f in fields:
                    chat[-1][f] = chat[-1][f] + _CONTINUE_TAG
        text = compiled.render(
            messages=chat,
            tools=tool_schemas,
            documents=documents,
            add_generation_prompt=add_generation_prompt,
            **template_kwargs,
        )
        if continue_final_message:
            if final_message.strip() not in text or _CONTINUE_TAG.strip() not in text:
                raise ValueError(
                    "continue_final_message is set but the final message does not appear in the rendered chat; "
                    "the chat template removes part of it.\n"
                    f"Final message: {final_message.strip()}\nRendered chat:\n{text}"
                )
            loc = text.rindex(_CONTINUE_TAG.strip())
            text = text[:loc] if text[loc : loc + len(_CONTINUE_TAG)] == _CONTINUE_TAG else text[:loc].rstrip()
        rendered.append(text)
    return rendered

# --------------------------------------------------------------------------------------------------------------------
# Messages: the one check every caller that renders a conversation goes through
# --------------------------------------------------------------------------------------------------------------------


class MessagesError(ValueError):
    """A conversation that cannot be rendered.

    Attributes:
        param: where the problem is (``"messages"``, ``"messages[2].role"``), as an OpenAI-style API reports it.
        code: what kind of problem (``"missing_required_parameter"``, ``"invalid_type"``, ``"empty_array"``,
            ``"invalid_value"``).
    """

    def __init__(self, message: str, param: str = "messages", code: str = "invalid_value"):
        super().__init__(message)
        self.param = param
        self.code = code


_JSON_TYPE_NAMES = {dict: "object", list: "array", tuple: "array", str: "string", bool: "boolean", int: "integer",
                    float: "number", type(None): "null"}


def json_type_name(value: Any) -> str:
    """The JSON name of ``value``'s type (``"object"``, ``"array"``...), else its Python type name."""
    return _JSON_TYPE_NAMES.get(type(value), type(value).__name__)


def _text_of_parts(parts: list, where: str) -> str:
    """OpenAI's content-part list ``[{"type": "text", "text": ...}, ...]`` joined into one string."""
    texts = []
    for j, part in enumerate(parts):
        if not (isinstance(part, Mapping) and part.get("type") == "text" and isinstance(part.get("text"), str)):
            raise MessagesError(f"'{where}.content[{j}]' must be a text part {{\"type\": \"text\", \"text\": ...}}.",
                                f"{where}.content", "invalid_type")
        texts.append(part["text"])
    return "".join(texts)


def _string_field(message: dict, field: str, where: str, allowed: str = "a string") -> str:
    """``message[field]`` when it is a string; else a :class:`MessagesError` saying what it is instead."""
    value = message.get(field)
    if not isinstance(value, str):
        found = "it is missing" if value is None else f"got {json_type_name(value)}"
        raise MessagesError(f"'{where}.{field}' must be {allowed}; {found}.", f"{where}.{field}", "invalid_type")
    return value


def normalize_messages(
    messages: Any,
    *,
    roles: Sequence[str] | None = None,
    text_only: bool = False,
    text_parts: bool = False,
    allow_empty: bool = False,
) -> list[dict]:
    """Check one conversation and return it as a list of new plain dicts, keys whose value is ``None`` left out.

    Every caller that renders messages with a chat template goes through here: ``apply_chat_template``, the HTTP
    server's ``/v1/chat/completions`` and the batch runner's ``messages`` rows.

    Args:
        messages: a list (or tuple) of mappings, non-empty unless ``allow_empty``.
        roles: the allowed values of each message's ``role`` (which must then be a string); ``None``: any.
        text_only: each message needs a string ``role`` and a string ``content`` (other keys are kept).
        text_parts: with ``text_only``, ``content`` may also be a list of ``{"type": "text", "text": str}`` parts;
            they are joined into one string.
        allow_empty: accept an empty list (a batch of conversations may hold one).

    Raises:
        MessagesError: (a ``ValueError``) with a message naming the place, e.g. ``'messages[1].content' must be a
            string; got integer.``, and its ``param`` / ``code``.
    """
    if messages is None:
        raise MessagesError("'messages' is missing: provide a list of messages.", "messages",
                            "missing_required_parameter")
    if not isinstance(messages, (list, tuple)):
        raise MessagesError(f"'messages' must be an array, got {json_type_name(messages)}.", "messages", "invalid_type")
    if not messages and not allow_empty:
        raise MessagesError("'messages' must not be empty.", "messages", "empty_array")
    normalized = []
    for i, message in enumerate(messages):
        where = f"messages[{i}]"
        if not isinstance(message, Mapping):
            raise MessagesError(f"'{where}' must be an object, got {json_type_name(message)}.", where, "invalid_type")
        message = {key: value for key, value in message.items() if value is not None}
        if text_only or roles is not None:
            role = _string_field(message, "role", where)
            if roles is not None and role not in roles:
                raise MessagesError(f"'{where}.role' must be one of {', '.join(roles)}; got {role!r:.50}.",
                                    f"{where}.role")
        if text_only:
            if text_parts and isinstance(message.get("content"), list):
                message["content"] = _text_of_parts(message["content"], where)
            _string_field(message, "content", where, "a string or a list of text parts" if text_parts else "a string")
        normalized.append(message)
    return normalized


class ChatTemplateMixin:
    """``get_chat_template`` / ``apply_chat_template`` for
    :class:`~transformers_jax.tokenization.PreTrainedTokenizerFast` (uses ``chat_template``, ``special_tokens_map``
    and the tokenizer's ``__call__``)."""

    def get_chat_template(self, chat_template: str | None = None, tools: list | None = None) -> str:
        """The template string to use: ``chat_template`` (a template or a template name) or the tokenizer's own."""
        if isinstance(self.chat_template, dict):
            templates = self.chat_template
            if chat_template is not None and chat_template in templates:
                return templates[chat_template]
            if chat_template is None:
                if tools is not None and "tool_use" in templates:
                    return templates["tool_use"]
                if "default" in templates:
                    return templates["default"]
                raise ValueError(
                    "This tokenizer has several chat templates and none is named 'default'; pass `chat_template=` "
                    f"with one of {sorted(templates)}."
                )
            return chat_template
        if chat_template is None:
            if self.chat_template is None:
                raise ValueError(
                    "Cannot use chat template functions because tokenizer.chat_template is not set and no template "
                    "argument was passed."
                )
            return self.chat_template
        return chat_template

    def apply_chat_template(
        self,
        conversation: Sequence[Mapping[str, Any]] | Sequence[Sequence[Mapping[str, Any]]],
        tokenize: bool = True,
        add_generation_prompt: bool = False,
        return_tensors: str | None = None,
        return_dict: bool = False,
        tools: list | None = None,
        chat_template: str | None = None,
        continue_final_message: bool | str = False,
        documents: list[dict] | None = None,
        padding: bool | str = False,
        truncation: bool = False,
        max_length: int | None = None,
        tokenizer_kwargs: dict | None = None,
        **kwargs,
    ):
        """Render a conversation (list of ``{"role", "content"}`` dicts) or a batch of them with the chat template.

        Rendering matches HF: a sandboxed jinja2 environment with ``trim_blocks``/``lstrip_blocks``, the
        ``raise_exception`` and ``strftime_now`` globals, a non-escaping ``tojson`` filter, and the special tokens
        (``bos_token``, ``eos_token``...) plus ``**kwargs`` as template variables. Message keys whose value is
        ``None`` are dropped first (:func:`normalize_messages`).

        Returns the rendered string(s) when ``tokenize=False``; otherwise the ids (``add_special_tokens=False``,
        like HF), or the whole :class:`BatchEncoding` with ``return_dict=True``. Note: ``return_dict`` defaults to
        ``False`` here, while HF v5 defaults it to ``True``.
        """
        template = self.get_chat_template(chat_template, tools)
        if isinstance(conversation, (list, tuple)) and len(conversation) == 0:
            raise ValueError("Cannot apply chat template to an empty conversation. Provide at least one message.")
        first = conversation[0] if isinstance(conversation, (list, tuple)) else None
        if isinstance(first, (list, tuple)) or hasattr(first, "messages"):
            conversations, is_batched = list(conversation), True
        else:
            conversations, is_batched = [conversation], False
        conversations = [
            normalize_messages(getattr(chat, "messages", chat), allow_empty=is_batched) for chat in conversations
        ]
        if continue_final_message and add_generation_prompt:
            raise ValueError(
                "continue_final_message and add_generation_prompt are not compatible: use continue_final_message to "
                "continue the final message, add_generation_prompt to start a new assistant message."
            )
        template_kwargs = {**self.special_tokens_map, **kwargs}
        rendered = _render_chat(
            conversations,
            template,
            tools=tools,
            documents=documents,
            add_generation_prompt=add_generation_prompt,
            continue_final_message=continue_final_message,
            **template_kwargs,
        )
        if not is_batched:
            rendered = rendered[0]
        if not tokenize:
            return rendered
        out = self(
            rendered,
            padding=padding,
            truncation=truncation,
            max_length=max_length,
            add_special_tokens=False,
            return_tensors=return_tensors,
            **(tokenizer_kwargs or {}),
        )
        return out if return_dict else out["input_ids"]
