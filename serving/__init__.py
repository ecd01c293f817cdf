"""Serving: the batch runner, the continuous-batching engine, and the OpenAI-compatible server."""
from serving.batch import BatchRunSummary, Request, parse_input, run_batch
from serving.engine import Engine, EngineClosed, QueueFull, RequestHandle, SamplingParams

__all__ = ["BatchRunSummary", "Request", "parse_input", "run_batch",
           "Engine", "EngineClosed", "QueueFull", "RequestHandle", "SamplingParams"]
