"""Model families: one package per family (``bert/``, ``llama/``, ...), found by ``auto.load_families``.

Shared skeletons live in modules starting with ``_`` (``_decoder.py``).
"""
