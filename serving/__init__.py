"""Serving: the compiled inference engine, HTTP server and batch runner (issues 3 and 5)."""
from serving.batch import BatchRunSummary, Request, parse_input, run_batch

__all__ = ["BatchRunSummary", "Request", "parse_input", "run_batch"]
