"""Training metrics: a JSON-lines file, TensorBoard scalars and a tqdm progress bar.

``MetricsLogger(output_dir, total_steps).log(step, {"train/loss": 2.3, ...})`` appends
``{"step": step, **metrics}`` to ``output_dir/metrics.jsonl`` (flushed every call, so a killed run
keeps what it logged), writes each metric as a TensorBoard scalar under ``output_dir/tensorboard``
with the key as its tag, and moves the progress bar to ``step``. Only the main process writes.
"""
from __future__ import annotations

import json
import math
import operator
from pathlib import Path

REPORTERS = ("jsonl", "tensorboard", "none")
# Progress-bar postfix: metric name (the key's last "/" part) -> (label, formatter).
_POSTFIX = {
    "loss": ("loss", lambda v: f"{v:.4f}"),
    "learning_rate": ("lr", lambda v: f"{v:.2e}"),
    "tokens_per_second": ("tok/s", lambda v: _short_number(v)),
    "mfu": ("mfu", lambda v: f"{v:.1%}"),
}


def _short_number(v: float) -> str:
    for div, suffix in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(v) >= div:
            return f"{v / div:.1f}{suffix}"
    return f"{v:.0f}"


def _validate_report_to(report_to) -> tuple[str, ...]:
    names = (report_to,) if isinstance(report_to, str) else tuple(report_to)
    unknown = [n for n in names if n not in REPORTERS]
    if unknown:
        raise ValueError(f"unknown report_to value(s) {unknown}; known: {', '.join(REPORTERS)}")
    if "none" in names and len(names) > 1:
        raise ValueError(f"report_to 'none' cannot be combined with other reporters, got {list(names)}")
    return tuple(n for n in names if n != "none")


def _as_float(key, value) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        raise ValueError(f"metric {key!r} must be a number, got {type(value).__name__}: {value!r}") from None


class MetricsLogger:
    """Log step metrics to ``metrics.jsonl``, TensorBoard and a progress bar.

    ``report_to`` holds "jsonl", "tensorboard", or just "none". ``initial_step`` starts the bar
    there when resuming (the JSON-lines file is appended to, never truncated). With
    ``is_main_process`` False nothing is written and no bar is shown.
    """

    def __init__(self, output_dir, total_steps: int | None, report_to=("jsonl", "tensorboard"),
                 progress: bool = True, is_main_process: bool = True, initial_step: int = 0):
        self.reporters = _validate_report_to(report_to)
        if total_steps is not None and (not isinstance(total_steps, int) or total_steps <= 0):
            raise ValueError(f"total_steps must be a positive int or None, got {total_steps!r}")
        self.output_dir = Path(output_dir)
        self.is_main_process = is_main_process
        self.closed = False
        self._jsonl = self._writer = self.progress_bar = None
        self._postfix: dict[str, str] = {}
        if not is_main_process:
            return
        if self.reporters:
            self.output_dir.mkdir(parents=True, exist_ok=True)
        if "jsonl" in self.reporters:
            self._jsonl = open(self.output_dir / "metrics.jsonl", "a", encoding="utf-8")
        if "tensorboard" in self.reporters:
            from tensorboardX import SummaryWriter

            self._writer = SummaryWriter(logdir=str(self.output_dir / "tensorboard"), flush_secs=30)
        if progress:
            from tqdm.auto import tqdm

            self.progress_bar = tqdm(total=total_steps, initial=initial_step, dynamic_ncols=True, desc="training")

    def log(self, step: int, metrics: dict) -> None:
        """Record ``metrics`` ({name: number}) at ``step``; tags are the keys as given."""
        if self.closed:
            raise RuntimeError("MetricsLogger.log called after close()")
        try:
            step = operator.index(step)
        except TypeError:
            raise ValueError(f"step must be an int, got {step!r}") from None
        if step < 0:
            raise ValueError(f"step must be non-negative, got {step}")
        values = {str(k): _as_float(k, v) for k, v in metrics.items()}
        if not self.is_main_process:
            return
        if self._jsonl is not None:
            self._jsonl.write(json.dumps({"step": step, **values}) + "\n")
            self._jsonl.flush()
        if self._writer is not None:
            for key, value in values.items():
                self._writer.add_scalar(key, value, global_step=step)
        if self.progress_bar is not None:
            self._update_bar(step, values)

    def _update_bar(self, step: int, values: dict) -> None:
        for key, value in values.items():
            prefix, _, name = key.rpartition("/")
            if name in _POSTFIX:
                label, fmt = _POSTFIX[name]
                text = fmt(value) if math.isfinite(value) else str(value)
                self._postfix[f"eval_{label}" if prefix == "eval" else label] = text
        if step > self.progress_bar.n:
            self.progress_bar.update(step - self.progress_bar.n)
        self.progress_bar.set_postfix(self._postfix, refresh=True)

    def close(self) -> None:
        """Flush and close the file, the TensorBoard writer and the bar (idempotent)."""
        if self.closed:
            return
        self.closed = True
        if self._jsonl is not None:
            self._jsonl.close()
        if self._writer is not None:
            self._writer.close()
        if self.progress_bar is not None:
            self.progress_bar.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
