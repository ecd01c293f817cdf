"""The ``question-answering`` pipeline: extractive answers (spans of the context) with a span-head model.

Hugging Face transformers 5.x removed this pipeline; the behaviour followed here is that of its last 4.x
release (4.57) with a fast tokenizer: the question and the context are encoded as a pair, a context too long for
``max_seq_len`` is cut into windows overlapping by ``doc_stride`` tokens, every window scores its candidate spans
(start probability x end probability, within ``max_answer_len`` tokens), and the best answers over all windows
are returned (the scores of candidates with the same text add up).
"""
from __future__ import annotations

import collections.abc

import numpy as np

from transformers_jax.pipelines.base import ChunkPipeline, check_top_k
from transformers_jax.pipelines.text_classification import softmax

MASKED_LOGIT = -10000.0  # the logit given to tokens that cannot be part of an answer
NULL_SCORE = 1000000.0  # the empty answer's score before any window is seen (large: min() replaces it)


def _check_item(item) -> dict:
    """One ``{"question": ..., "context": ...}`` input, checked."""
    if not isinstance(item, dict):
        raise ValueError(f"each question-answering input must be a dict with keys 'question' and 'context', got "
                         f"{type(item).__name__}: {item!r}")
    for key in ("question", "context"):
        if key not in item:
            raise KeyError(f"the input {item!r} has no {key!r}: pass {{'question': ..., 'context': ...}}")
        if item[key] is None:
            raise ValueError(f"`{key}` cannot be None")
        if not isinstance(item[key], str):
            raise ValueError(f"`{key}` must be a string, got {type(item[key]).__name__}")
        if not item[key]:
            raise ValueError(f"`{key}` cannot be empty")
    return {"question": item["question"], "context": item["context"]}


def examples_from_arguments(args: tuple, kwargs: dict):
    """The examples of a call, as Hugging Face 4.57 reads them: ``question=``/``context=`` (strings, or a list of
    questions with one context or a list of contexts), a dict, a list of dicts, two strings (question, context),
    or any other iterable of dicts (checked lazily). Returns a dict (one example), a list or an iterable."""
    question, context = kwargs.pop("question", None), kwargs.pop("context", None)
    if args:
        if question is not None or context is not None:
            raise ValueError("pass the inputs either positionally or as question=/context=, not both")
        if len(args) == 2 and all(isinstance(a, str) for a in args):
            return _check_item({"question": args[0], "context": args[1]})
        inputs = args[0] if len(args) == 1 else list(args)
    elif question is not None and context is not None:
        if isinstance(question, str) and isinstance(context, str):
            return _check_item({"question": question, "context": context})
        if isinstance(question, list) and isinstance(context, str):
            inputs = [{"question": q, "context": context} for q in question]
        elif isinstance(question, list) and isinstance(context, list):
            if len(question) != len(context):
                raise ValueError(f"Questions and contexts don't have the same lengths: {len(question)} questions, "
                                 f"{len(context)} contexts")
            inputs = [{"question": q, "context": c} for q, c in zip(question, context)]
        else:
            raise ValueError(f"question= and context= must be strings or lists of strings (a list of questions may "
                             f"share one context), got {type(question).__name__} and {type(context).__name__}")
    elif question is not None or context is not None:
        missing = "context" if context is None else "question"
        raise ValueError(f"the question-answering pipeline needs both question= and context=; {missing}= is missing")
    else:
        raise ValueError("the question-answering pipeline needs question= and context= (or a dict "
                         "{'question': ..., 'context': ...}, or a list of such dicts)")
    if isinstance(inputs, dict):
        return _check_item(inputs)
    if isinstance(inputs, (list, tuple)):
        if not inputs:
            raise ValueError("At least one input is required: got an empty list")
        items = [_check_item(item) for item in inputs]
        return items[0] if len(items) == 1 else items
    if isinstance(inputs, collections.abc.Iterable) and not isinstance(inputs, str):
        return inputs  # a generator or dataset: each item is checked in preprocess
    raise ValueError(f"cannot read question-answering inputs from {inputs!r}: pass question= and context=")


def best_spans(start: np.ndarray, end: np.ndarray, allowed: np.ndarray, top_k: int, max_answer_len: int):
    """The ``top_k`` best (start, end) token spans by ``start[s] * end[e]`` with ``s <= e < s + max_answer_len``,
    both in ``allowed``. ``start``/``end`` [T] are probabilities; returns (starts, ends, scores) arrays."""
    outer = start[:, None] * end[None, :]  # [T, T]: the score of each (start, end)
    candidates = np.tril(np.triu(outer), max_answer_len - 1)  # end >= start, end - start < max_answer_len
    flat = candidates.flatten()
    if top_k == 1:
        order = np.array([np.argmax(flat)])
    elif len(flat) < top_k:
        order = np.argsort(-flat)
    else:
        top = np.argpartition(-flat, top_k)[:top_k]
        order = top[np.argsort(-flat[top])]
    starts, ends = np.unravel_index(order, candidates.shape)
    keep = allowed[starts] & allowed[ends]
    starts, ends = starts[keep], ends[keep]
    return starts, ends, candidates[starts, ends]


class QuestionAnsweringPipeline(ChunkPipeline):
    """Extractive question answering with a ``...ForQuestionAnswering`` model (Hugging Face 4.57's behaviour).

    Call it with ``question=`` and ``context=`` (strings; a list of questions and one context; or two lists), a
    dict ``{"question": ..., "context": ...}`` or a list of dicts. One input gives a dict ``{"score", "start",
    "end", "answer"}`` (``start``/``end``: character offsets of ``answer`` in the context), or a list of them when
    ``top_k`` > 1; several inputs give a list of those.

    Parameters (to ``pipeline(...)`` or per call):
        top_k: how many answers to return (default 1; fewer when the context has fewer candidates).
        doc_stride: overlap in tokens between the windows of a long context (default ``min(max_seq_len // 2,
            128)``).
        max_seq_len: tokens per window, question included (default ``min(tokenizer.model_max_length, 384)``).
        max_question_len: the question's length limit of Hugging Face's slow-tokenizer path; as there with a fast
            tokenizer (the only kind this library has), it does not truncate the question.
        max_answer_len: the longest answer in tokens (default 15).
        handle_impossible_answer: also consider the empty answer (score: start x end probability of the CLS
            token, the smallest over the windows).
        align_to_words: extend answers to whole words (default True); False keeps the exact token offsets.
        padding: the tokenizer's padding of each window (default ``"do_not_pad"``).

    A tokenizer that pads on the left puts the context first (as in Hugging Face); there the answer may come
    from the context only (Hugging Face 4.57 let every token of such a pair be an answer).
    """

    token_outputs = ("start_logits", "end_logits")

    def __call__(self, *args, **kwargs):
        """Answer the question(s) from the context(s); see the class docstring for the accepted inputs."""
        inputs = examples_from_arguments(args, kwargs)
        return super().__call__(inputs, **kwargs)

    def _sanitize_parameters(self, padding=None, top_k=None, doc_stride=None, max_answer_len=None, max_seq_len=None,
                             max_question_len=None, handle_impossible_answer=None, align_to_words=None):
        preprocess = {}
        if padding is not None:
            preprocess["padding"] = padding
        for name, value in (("doc_stride", doc_stride), ("max_seq_len", max_seq_len),
                            ("max_question_len", max_question_len)):
            if value is not None:
                if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
                    raise ValueError(f"{name} must be a positive integer, got {value!r}")
                preprocess[name] = int(value)
        postprocess = {}
        if top_k is not None:
            if isinstance(top_k, (int, np.integer)) and not isinstance(top_k, bool) and top_k < 1:
                raise ValueError(f"top_k parameter should be >= 1 (got {top_k})")
            postprocess["top_k"] = check_top_k(top_k)
        if max_answer_len is not None:
            if isinstance(max_answer_len, bool) or not isinstance(max_answer_len, (int, np.integer)) \
                    or max_answer_len < 1:
                raise ValueError(f"max_answer_len parameter should be >= 1 (got {max_answer_len!r})")
            postprocess["max_answer_len"] = int(max_answer_len)
        if handle_impossible_answer is not None:
            postprocess["handle_impossible_answer"] = bool(handle_impossible_answer)
        if align_to_words is not None:
            postprocess["align_to_words"] = bool(align_to_words)
        return preprocess, {}, postprocess

    # ------------------------------------------------------------------ preprocess
    def preprocess(self, example, padding="do_not_pad", doc_stride=None, max_question_len=64, max_seq_len=None):
        """One question/context pair -> one model input per window of the context."""
        example = _check_item(example)
        if max_seq_len is None:
            max_seq_len = min(self.tokenizer.model_max_length, 384)
        if doc_stride is None:
            doc_stride = min(max_seq_len // 2, 128)
        if doc_stride > max_seq_len:
            raise ValueError(f"`doc_stride` ({doc_stride}) is larger than `max_seq_len` ({max_seq_len})")
        question_first = self._padding_side() == "right"
        context_index = 1 if question_first else 0  # which sequence of the pair is the context
        pair = (example["question"], example["context"])
        encoded = self.tokenizer(*(pair if question_first else pair[::-1]), padding=padding,
                                 truncation="only_second" if question_first else "only_first",
                                 max_length=max_seq_len, stride=doc_stride,
                                 return_token_type_ids=True, return_overflowing_tokens=True,
                                 return_offsets_mapping=True)
        windows = len(encoded["input_ids"])
        for i in range(windows):
            sequence_ids = encoded.sequence_ids(i)
            input_ids = np.asarray(encoded["input_ids"][i:i + 1])  # [1, T] (windows differ in length)
            # p_mask: 1 where a token cannot be part of the answer (question, special tokens), except the CLS
            # token, which some models use to say that there is no answer.
            p_mask = np.array([[int(s != context_index) for s in sequence_ids]])
            if self.tokenizer.cls_token_id is not None:
                p_mask[input_ids == self.tokenizer.cls_token_id] = 0
            chunk = {key: np.asarray(encoded[key][i:i + 1]) for key in ("input_ids", "attention_mask", "token_type_ids")
                     if key in encoded}
            chunk.update(p_mask=p_mask, offset_mapping=np.asarray(encoded["offset_mapping"][i:i + 1]),
                         word_ids=encoded.word_ids(i), sequence_ids=sequence_ids, context=example["context"],
                         context_index=context_index, is_last=i == windows - 1)
            yield chunk

    # ------------------------------------------------------------------ forward
    def _forward(self, batch: dict) -> dict:
        output = self.run_model(batch)
        return {**batch, "start_logits": np.asarray(output.start_logits, dtype=np.float32),  # [B, T]
                "end_logits": np.asarray(output.end_logits, dtype=np.float32)}

    # ------------------------------------------------------------------ postprocess
    def postprocess(self, chunks: list[dict], top_k=1, handle_impossible_answer=False, max_answer_len=15,
                    align_to_words=True):
        """The windows' start/end logits -> the best answers over all windows."""
        null_score = NULL_SCORE
        answers: list[dict] = []
        for chunk in chunks:
            allowed = (1 - chunk["p_mask"][0]).astype(bool)  # [T]
            if "attention_mask" in chunk:
                allowed &= chunk["attention_mask"][0].astype(bool)
            start = softmax(np.where(allowed, chunk["start_logits"][0], np.float32(MASKED_LOGIT)))  # [T]
            end = softmax(np.where(allowed, chunk["end_logits"][0], np.float32(MASKED_LOGIT)))
            if handle_impossible_answer:
                null_score = min(null_score, float(start[0] * end[0]))
            start[0] = end[0] = 0.0  # the CLS token itself is never an answer span
            # Hugging Face's filter lets position 0 through whenever any position is allowed.
            allowed[0] |= allowed.any()
            # Spans that vanish when aligned to words are dropped: ask for a few more than top_k.
            wanted = top_k * 2 + 10 if align_to_words else top_k
            for s, e, score in zip(*best_spans(start, end, allowed, wanted, max_answer_len)):
                first, last = self._char_span(chunk, int(s), int(e), align_to_words)
                text = chunk["context"][first:last]
                same = next((a for a in answers if a["answer"].lower() == text.lower()), None)
                if same is not None:
                    same["score"] += float(score)
                else:
                    answers.append({"score": float(score), "start": first, "end": last, "answer": text})
        if handle_impossible_answer:
            answers.append({"score": null_score, "start": 0, "end": 0, "answer": ""})
        answers = sorted(answers, key=lambda answer: answer["score"], reverse=True)[:top_k]
        return answers[0] if len(answers) == 1 else answers

    @staticmethod
    def _char_span(chunk: dict, s: int, e: int, align_to_words: bool) -> tuple[int, int]:
        """Character offsets in the context of the token span ``s..e`` (both included), widened to the words
        they lie in with ``align_to_words`` (where the tokens belong to words)."""
        offsets = chunk["offset_mapping"][0]  # [T, 2]
        word_ids, sequence_ids = chunk["word_ids"], chunk["sequence_ids"]
        if align_to_words and word_ids[s] is not None and word_ids[e] is not None:
            def word_tokens(token):
                return [t for t in range(len(word_ids))
                        if word_ids[t] == word_ids[token] and sequence_ids[t] == chunk["context_index"]]

            start_tokens, end_tokens = word_tokens(s), word_tokens(e)
            if start_tokens and end_tokens:
                return int(offsets[start_tokens[0]][0]), int(offsets[end_tokens[-1]][1])
        return int(offsets[s][0]), int(offsets[e][1])


__all__ = ["QuestionAnsweringPipeline"]
