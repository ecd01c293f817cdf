"""The ``token-classification`` pipeline (alias ``ner``): a label per token, optionally grouped into entities.

Behaviour follows Hugging Face's ``TokenClassificationPipeline`` (transformers 5.x): softmax scores per token,
the ``aggregation_strategy`` that fuses word pieces and B-/I- tags into entities, ``ignore_labels``, character
offsets into the input, ``stride`` for texts longer than the model (overlapping windows whose entities are
merged), and pre-split input (``is_split_into_words``).
"""
from __future__ import annotations

import enum
import warnings

import numpy as np

from transformers_jax.pipelines.base import ChunkPipeline
from transformers_jax.pipelines.text_classification import softmax


class AggregationStrategy(str, enum.Enum):
    """How tokens are fused into entities (Hugging Face's names and values).

    * ``none``: one result per token (no grouping).
    * ``simple``: adjacent tokens with the same tag (``B-X`` starts a new group) become one entity.
    * ``first`` / ``average`` / ``max``: as ``simple``, after every word gets one label: that of its first
      token, the argmax of its tokens' averaged scores, or that of its most confident token.
    """

    NONE = "none"
    SIMPLE = "simple"
    FIRST = "first"
    AVERAGE = "average"
    MAX = "max"


WORD_STRATEGIES = (AggregationStrategy.FIRST, AggregationStrategy.AVERAGE, AggregationStrategy.MAX)


def aggregation_strategy_of(value) -> AggregationStrategy:
    """``value`` (an :class:`AggregationStrategy` or its name, any case) as a strategy; a ValueError naming the
    valid ones otherwise."""
    if isinstance(value, AggregationStrategy):
        return value
    if isinstance(value, str) and value.lower() in AggregationStrategy._value2member_map_:
        return AggregationStrategy(value.lower())
    valid = [s.value for s in AggregationStrategy]
    raise ValueError(f"aggregation_strategy={value!r} is not a valid strategy; choose one of {valid}")


def split_tag(label: str) -> tuple[str, str]:
    """``"B-PER"`` -> ``("B", "PER")``, ``"I-PER"`` -> ``("I", "PER")``; a label without such a prefix continues
    (``("I", label)``)."""
    if label.startswith(("B-", "I-")):
        return label[0], label[2:]
    return "I", label


def merge_overlapping(entities: list[dict]) -> list[dict]:
    """Entities found in overlapping windows, one per place: of entities whose start falls inside the previous
    kept one, the longer wins (on equal length, the higher score)."""
    if not entities:
        return entities
    ordered = sorted(entities, key=lambda entity: entity["start"])
    merged = []
    kept = ordered[0]
    for entity in ordered:
        if kept["start"] <= entity["start"] < kept["end"]:
            length, kept_length = entity["end"] - entity["start"], kept["end"] - kept["start"]
            if length > kept_length or (length == kept_length and entity["score"] > kept["score"]):
                kept = entity
        else:
            merged.append(kept)
            kept = entity
    merged.append(kept)
    return merged


class TokenClassificationPipeline(ChunkPipeline):
    """Named entity recognition (and any per-token labelling) with a ``...ForTokenClassification`` model.

    Call it on a text (-> a list of entity dicts) or a list of texts (-> a list of such lists). Each dict has
    ``entity`` (the label; ``entity_group``, without its B-/I- prefix, when tokens are aggregated), ``score``,
    ``index`` (the token's position; only without aggregation), ``word`` and the character span ``start``/``end``.
    Scores are Python floats (Hugging Face gives numpy float32 scalars of the same value).

    Parameters (to ``pipeline(...)`` or per call):
        aggregation_strategy: ``"none"`` (default), ``"simple"``, ``"first"``, ``"average"``, ``"max"``
            (see :class:`AggregationStrategy`).
        ignore_labels: labels left out of the results (default ``["O"]``).
        stride: run texts longer than ``tokenizer.model_max_length`` as windows overlapping by ``stride``
            tokens, their entities merged (needs an aggregation strategy other than ``"none"``).
        is_split_into_words: the input is a list of words (or a list of such lists); they are joined with
            ``delimiter`` (default ``" "``) for the offsets and ``word`` strings.
        offset_mapping: character offsets per token to use instead of the tokenizer's.
    """

    token_outputs = ("logits",)

    def __call__(self, inputs, *args, **kwargs):
        """Label the tokens of ``inputs`` (a text or a list of texts; words with ``is_split_into_words``)."""
        split = kwargs.get("is_split_into_words", self._preprocess_params.get("is_split_into_words", False))
        if isinstance(inputs, (list, tuple)) and not inputs:
            raise ValueError("At least one input is required: got an empty list")
        if split and isinstance(inputs, (list, tuple)) and not all(isinstance(x, (list, tuple)) for x in inputs):
            inputs = [list(inputs)]  # one pre-split sentence is a batch of one, as in Hugging Face
        offsets = kwargs.get("offset_mapping")
        if offsets is not None:
            batch = 1 if isinstance(inputs, str) else len(inputs)
            if offsets and isinstance(offsets[0], tuple):
                offsets = [offsets]
            if len(offsets) != batch:
                raise ValueError(f"offset_mapping has {len(offsets)} entries but there are {batch} inputs")
            if not isinstance(inputs, str):
                inputs = [(text, rows) for text, rows in zip(inputs, offsets)]
                kwargs = {k: v for k, v in kwargs.items() if k != "offset_mapping"}
            else:
                kwargs["offset_mapping"] = offsets[0]
        return super().__call__(inputs, *args, **kwargs)

    def _sanitize_parameters(self, ignore_labels=None, aggregation_strategy=None, offset_mapping=None,
                             is_split_into_words=None, stride=None, delimiter=None):
        preprocess = {}
        if is_split_into_words is not None:
            preprocess["is_split_into_words"] = bool(is_split_into_words)
        if delimiter is not None:
            if not isinstance(delimiter, str):
                raise ValueError(f"delimiter must be a string, got {delimiter!r}")
            preprocess["delimiter"] = delimiter
        if offset_mapping is not None:
            preprocess["offset_mapping"] = offset_mapping
        postprocess = {}
        if aggregation_strategy is not None:
            aggregation_strategy = aggregation_strategy_of(aggregation_strategy)
            if aggregation_strategy in WORD_STRATEGIES and not self.tokenizer.is_fast:
                raise ValueError(f'aggregation_strategy="{aggregation_strategy.value}" needs word boundaries, which '
                                 'only fast tokenizers give: use "simple" or a fast tokenizer')
            postprocess["aggregation_strategy"] = aggregation_strategy
        if ignore_labels is not None:
            if isinstance(ignore_labels, str) or not all(isinstance(label, str) for label in ignore_labels):
                raise ValueError(f"ignore_labels must be a list of label names, got {ignore_labels!r}")
            postprocess["ignore_labels"] = list(ignore_labels)
        if stride is not None:
            if isinstance(stride, bool) or not isinstance(stride, int) or stride < 0:
                raise ValueError(f"stride must be a non-negative integer, got {stride!r}")
            if stride >= self.tokenizer.model_max_length:
                raise ValueError(f"stride ({stride}) must be less than tokenizer.model_max_length "
                                 f"({self.tokenizer.model_max_length}), minus the special tokens it adds")
            if aggregation_strategy == AggregationStrategy.NONE:
                raise ValueError('stride splits the text into overlapping windows whose entities are merged; that '
                                 'needs an aggregation_strategy other than "none"')
            if not self.tokenizer.is_fast:
                raise ValueError("stride needs a fast tokenizer (for its overflowing windows)")
            preprocess["stride"] = stride
        return preprocess, {}, postprocess

    # ------------------------------------------------------------------ preprocess
    def preprocess(self, sentence, is_split_into_words=False, delimiter=" ", stride=None, offset_mapping=None):
        """One text (or list of words) -> one model input per window (a single one without ``stride``)."""
        if isinstance(sentence, tuple):  # (text, offsets) paired by __call__ for a batch with offset_mapping
            sentence, offset_mapping = sentence
        word_spans = None
        if is_split_into_words:
            if not isinstance(sentence, list) or not all(isinstance(word, str) for word in sentence):
                raise ValueError(f"with is_split_into_words=True each input must be a list of words (str), got "
                                 f"{sentence!r}")
            words = sentence
            sentence = delimiter.join(words)
            word_spans, position = [], 0  # each word's (start, end) in the joined sentence
            for word in words:
                word_spans.append((position, position + len(word)))
                position += len(word) + len(delimiter)
            text = words
        else:
            if not isinstance(sentence, str):
                raise ValueError(f"the input must be a text (str) unless is_split_into_words=True, got "
                                 f"{type(sentence).__name__}: {sentence!r}")
            text = sentence
        options = {}
        if stride is not None:
            options = {"return_overflowing_tokens": True, "padding": True, "stride": stride}
        encoded = self.tokenizer(text, return_tensors="np", truncation=self.tokenizer.model_max_length > 0,
                                 return_special_tokens_mask=True, return_offsets_mapping=self.tokenizer.is_fast,
                                 is_split_into_words=is_split_into_words, **options)
        windows = len(encoded["input_ids"])
        for i in range(windows):
            chunk = {key: np.asarray(encoded[key][i:i + 1]) for key in
                     ("input_ids", "attention_mask", "token_type_ids", "special_tokens_mask", "offset_mapping")
                     if key in encoded}
            if offset_mapping is not None:
                chunk["offset_mapping"] = self._given_offsets(offset_mapping, chunk["input_ids"].shape[1])
            chunk["sentence"] = sentence if i == 0 else None
            chunk["word_ids"] = encoded.word_ids(i) if word_spans is not None else None
            chunk["word_spans"] = word_spans
            chunk["is_last"] = i == windows - 1
            yield chunk

    @staticmethod
    def _given_offsets(offset_mapping, length: int) -> np.ndarray:
        offsets = np.asarray(offset_mapping, dtype=np.int64)
        if offsets.shape != (length, 2):
            raise ValueError(f"offset_mapping must hold one (start, end) pair per token: {length} tokens, got "
                             f"shape {offsets.shape}")
        return offsets[None]

    # ------------------------------------------------------------------ forward
    def _forward(self, batch: dict) -> dict:
        logits = np.asarray(self.run_model(batch).logits, dtype=np.float32)  # [B, T, num_labels]
        return {**batch, "logits": logits}

    # ------------------------------------------------------------------ postprocess
    def postprocess(self, chunks: list[dict], aggregation_strategy=AggregationStrategy.NONE, ignore_labels=None):
        """The windows' logits -> entity dicts, filtered by ``ignore_labels``, merged across windows."""
        ignore_labels = ["O"] if ignore_labels is None else ignore_labels
        sentence = chunks[0]["sentence"]
        entities = []
        for chunk in chunks:
            scores = softmax(chunk["logits"][0])  # [T, num_labels]
            offsets = chunk["offset_mapping"][0] if "offset_mapping" in chunk else None
            tokens = self.token_entities(sentence, chunk["input_ids"][0], scores, offsets,
                                         chunk["special_tokens_mask"][0], aggregation_strategy,
                                         chunk["word_ids"], chunk["word_spans"])
            for entity in self.aggregate(tokens, aggregation_strategy):
                if entity.get("entity", entity.get("entity_group")) not in ignore_labels:
                    entities.append(entity)
        if len(chunks) > 1:
            entities = merge_overlapping(entities)
        return [{k: (float(v) if k == "score" else v) for k, v in entity.items()} for entity in entities]

    def token_entities(self, sentence, input_ids, scores, offsets, special_tokens_mask, aggregation_strategy,
                       word_ids=None, word_spans=None) -> list[dict]:
        """One dict per non-special token: its ``word`` (token string), ``scores`` over the labels, character
        ``start``/``end`` (None without offsets), ``index`` and whether it continues the previous word."""
        prefix = getattr(self.tokenizer.backend_tokenizer.model, "continuing_subword_prefix", None)
        if prefix is None and offsets is not None and aggregation_strategy in WORD_STRATEGIES:
            warnings.warn("the tokenizer marks no word pieces; word boundaries are guessed from spaces", UserWarning)
        tokens = []
        for index, token_scores in enumerate(scores):
            if special_tokens_mask[index]:
                continue
            token_id = int(input_ids[index])
            word = self.tokenizer.convert_ids_to_tokens(token_id)
            start = end = None
            is_subword = False
            if offsets is not None:
                start, end = int(offsets[index][0]), int(offsets[index][1])
                if word_ids is not None and word_ids[index] is not None:  # word offsets -> sentence offsets
                    start += word_spans[word_ids[index]][0]
                    end += word_spans[word_ids[index]][0]
                text = sentence[start:end]
                if prefix:
                    is_subword = len(word) != len(text)  # a piece is shown with its prefix ("##ing")
                else:
                    is_subword = start > 0 and " " not in sentence[start - 1:start + 1]
                if token_id == self.tokenizer.unk_token_id:
                    word, is_subword = text, False
            tokens.append({"word": word, "scores": token_scores, "start": start, "end": end, "index": index,
                           "is_subword": is_subword})
        return tokens

    def _label(self, index) -> str:
        return self.model.config.id2label[int(index)]

    def aggregate(self, tokens: list[dict], aggregation_strategy) -> list[dict]:
        """Token dicts -> results: one per token (``none``), else grouped into entities."""
        if aggregation_strategy in (AggregationStrategy.NONE, AggregationStrategy.SIMPLE):
            entities = []
            for token in tokens:
                best = int(token["scores"].argmax())
                entities.append({"entity": self._label(best), "score": token["scores"][best], "index": token["index"],
                                 "word": token["word"], "start": token["start"], "end": token["end"]})
            if aggregation_strategy == AggregationStrategy.NONE:
                return entities
        else:
            entities = [self.aggregate_word(word, aggregation_strategy) for word in self._words(tokens)]
        return self.group_entities(entities)

    @staticmethod
    def _words(tokens: list[dict]) -> list[list[dict]]:
        """Tokens grouped into words: a token starts a new word unless it continues the previous one."""
        words = []
        for token in tokens:
            if words and token["is_subword"]:
                words[-1].append(token)
            else:
                words.append([token])
        return words

    def aggregate_word(self, tokens: list[dict], aggregation_strategy) -> dict:
        """The tokens of one word -> one labelled word (``first``, ``max`` or ``average`` of their scores)."""
        if aggregation_strategy == AggregationStrategy.FIRST:
            scores = tokens[0]["scores"]
        elif aggregation_strategy == AggregationStrategy.MAX:
            scores = max(tokens, key=lambda token: token["scores"].max())["scores"]
        elif aggregation_strategy == AggregationStrategy.AVERAGE:
            scores = np.nanmean(np.stack([token["scores"] for token in tokens]), axis=0)
        else:
            raise ValueError(f"aggregation_strategy {aggregation_strategy!r} does not label words")
        best = int(scores.argmax())
        return {"entity": self._label(best), "score": scores[best],
                "word": self.tokenizer.convert_tokens_to_string([token["word"] for token in tokens]),
                "start": tokens[0]["start"], "end": tokens[-1]["end"]}

    def group_entities(self, entities: list[dict]) -> list[dict]:
        """Adjacent entities with the same tag -> one ``entity_group`` (a ``B-`` tag always starts a new one)."""
        groups: list[list[dict]] = []
        for entity in entities:
            bi, tag = split_tag(entity["entity"])
            if groups and bi != "B" and tag == split_tag(groups[-1][-1]["entity"])[1]:
                groups[-1].append(entity)
            else:
                groups.append([entity])
        return [self._group(group) for group in groups]

    def _group(self, entities: list[dict]) -> dict:
        return {"entity_group": entities[0]["entity"].split("-", 1)[-1],
                "score": np.nanmean([entity["score"] for entity in entities]),
                "word": self.tokenizer.convert_tokens_to_string([entity["word"] for entity in entities]),
                "start": entities[0]["start"], "end": entities[-1]["end"]}


NerPipeline = TokenClassificationPipeline

__all__ = ["AggregationStrategy", "NerPipeline", "TokenClassificationPipeline"]
