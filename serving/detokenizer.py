"""Incremental detokenization: new token ids in, text deltas out (the server's streams and ``chat``)."""
from __future__ import annotations

from typing import Sequence


class Detokenizer:
    """Turns the stream of new token ids into text deltas, applying stop strings to the decoded text.

    The whole generation is decoded each time (stable for byte-level BPE and SentencePiece decoders);
    text that ends in an incomplete UTF-8 character, or that could be the start of a stop string, is held
    back until the next token decides it.
    """

    def __init__(self, tokenizer, stop: Sequence[str]):
        self.tokenizer = tokenizer
        self.stop = tuple(stop)
        self.ids: list[int] = []
        self.sent = 0          # characters of the decoded text already handed out
        self.stopped = False   # a stop string was found

    def _held_back(self, text: str) -> int:
        hold = 0
        for s in self.stop:
            for k in range(min(len(s) - 1, len(text)), hold, -1):
                if text.endswith(s[:k]):
                    hold = k
                    break
        return hold

    def add(self, new_ids: Sequence[int]) -> str:
        self.ids.extend(int(t) for t in new_ids)
        text = self.tokenizer.decode(self.ids, skip_special_tokens=True)
        if self.stop:
            start = max(0, self.sent - max(len(s) for s in self.stop))
            hits = [i for i in (text.find(s, start) for s in self.stop) if i >= 0]
            if hits:
                end = min(hits)
                self.stopped = True
                delta, self.sent = text[self.sent:end], max(self.sent, end)
                return delta
        end = len(text)
        while end > self.sent and text[end - 1] == "\ufffd":
            end -= 1
        end -= self._held_back(text[:end])
        if end <= self.sent:
            return ""
        delta, self.sent = text[self.sent:end], end
        return delta

    def flush(self) -> str:
        """The held-back rest once generation has ended (no stop string can complete any more)."""
        if self.stopped:
            return ""
        text = self.tokenizer.decode(self.ids, skip_special_tokens=True)
        delta, self.sent = text[self.sent:], max(self.sent, len(text))
        return delta
