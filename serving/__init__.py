"""Serving: the compiled inference engine, HTTP server and batch runner (issues 3 and 5)."""
