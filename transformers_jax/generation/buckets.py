"""Length buckets: the one padding policy of generation, beam search, the batch runner and the engine.

A length ``n`` (a prompt, an output budget, a window of the cache) is padded up to the next power of
two that is at least ``minimum``, so that calls whose lengths fall into the same bucket reuse one
compiled program and the number of programs grows with the logarithm of the longest length. With
``half_steps`` the buckets also include 1.5 times each power (16, 24, 32, 48, 64, 96 ...): at most
half the padding for twice the programs, what one-pass workloads such as pipelines want. Callers
that work inside a fixed-size buffer (the serving engine's KV cache) pass ``maximum``: the bucket is
then capped there, so the largest bucket is the buffer itself.
"""
from __future__ import annotations

import numpy as np

MIN_BUCKET = 16


def bucket_size(n: int, *, minimum: int = MIN_BUCKET, maximum: int | None = None, half_steps: bool = False) -> int:
    """The bucket a length ``n`` falls into: the next power of two times ``minimum`` (``minimum``,
    ``2 * minimum``, ...; with ``half_steps`` also ``1.5`` times each) that is >= ``n``, capped at
    ``maximum`` when one is given."""
    if minimum < 1:
        raise ValueError(f"minimum must be a positive integer, got {minimum}")
    size = minimum
    while size < n:
        if half_steps and size % 2 == 0 and size * 3 // 2 >= n:
            size = size * 3 // 2
            break
        size *= 2
    return size if maximum is None else min(size, maximum)


def bucket_sizes(maximum: int, *, minimum: int = MIN_BUCKET, half_steps: bool = False) -> list[int]:
    """Every bucket :func:`bucket_size` can return with this ``maximum``, smallest first (the last
    one is ``maximum`` itself): what a server compiles up front."""
    out = [bucket_size(1, minimum=minimum, maximum=maximum, half_steps=half_steps)]
    while out[-1] < maximum:
        out.append(bucket_size(out[-1] + 1, minimum=minimum, maximum=maximum, half_steps=half_steps))
    return out


def pad_left(ids: np.ndarray, mask: np.ndarray, length: int, fill: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Left-pad ``ids``/``mask`` ([B, T], T <= ``length``) to ``length`` columns: the new ids are
    ``fill``, the new mask entries 0, so the padding is never attended. Returns int32 arrays."""
    batch, width = ids.shape
    if width > length:
        raise ValueError(f"cannot pad {width} columns to a bucket of {length}")
    padded_ids = np.full((batch, length), fill, np.int32)
    padded_mask = np.zeros((batch, length), np.int32)
    padded_ids[:, length - width:] = ids
    padded_mask[:, length - width:] = mask
    return padded_ids, padded_mask


__all__ = ["MIN_BUCKET", "bucket_size", "bucket_sizes", "pad_left"]
