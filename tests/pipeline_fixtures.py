"""Shared fixtures of the pipeline tests: tiny random Hugging Face BERT checkpoints with REAL tokenizer files.

Each checkpoint is a PyTorch BERT (hidden 32, 2 layers, the full 30522-token vocabulary) built from a config
with a fixed seed and saved with ``save_pretrained``, next to the tokenizer files of all-MiniLM-L6-v2 (an
uncased WordPiece BERT tokenizer), so that Hugging Face's ``transformers.pipeline`` and ours load the very
same directory. Use in a test module with ``from pipeline_fixtures import pipeline_models  # noqa: F401``.
"""
from __future__ import annotations

import functools
import shutil
from pathlib import Path

import pytest

SCORE_REL = 1e-4  # scores within 1e-4 of their size: float32 rounding through 2 tiny layers is ~1e-6 of it
SCORE_FLOOR = 0.1  # ... and within 1e-5 absolute for scores (or raw logits) smaller than 0.1
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "vocab.txt")
TINY_BERT = dict(vocab_size=30522, hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=37,
                 max_position_embeddings=512, type_vocab_size=2, initializer_range=0.2)
# The checkpoints: name -> (HF class, config overrides).
CHECKPOINTS = {
    "base": ("BertModel", {}),
    "masked_lm": ("BertForMaskedLM", {}),
    "classifier": ("BertForSequenceClassification", {"id2label": {0: "negative", 1: "neutral", 2: "positive"}}),
    "regression": ("BertForSequenceClassification", {"num_labels": 1, "problem_type": "regression"}),
    "single_label": ("BertForSequenceClassification", {"num_labels": 1}),
    "multi_label": ("BertForSequenceClassification",
                    {"id2label": {0: "sports", 1: "politics", 2: "art", 3: "food"},
                     "problem_type": "multi_label_classification"}),
    # NLI heads: entailment at a different index in each, so the pipeline must read it from label2id.
    "nli": ("BertForSequenceClassification", {"id2label": {0: "contradiction", 1: "neutral", 2: "entailment"}}),
    "nli_first": ("BertForSequenceClassification", {"id2label": {0: "ENTAILMENT", 1: "NEUTRAL", 2: "CONTRADICTION"}}),
}


def copy_tokenizer_files(source: Path, target: Path) -> None:
    for name in TOKENIZER_FILES:
        if (source / name).is_file():
            shutil.copy(source / name, target / name)


def build_checkpoint(name: str, directory: Path, tokenizer_dir: Path) -> Path:
    """Save the tiny HF checkpoint ``name`` (see CHECKPOINTS; its random weights have a seed of their own)
    with the tokenizer files into ``directory``."""
    import torch
    import transformers

    class_name, overrides = CHECKPOINTS[name]
    if "id2label" in overrides:  # HF's config leaves label2id None unless it is given too
        overrides = {**overrides, "label2id": {v: k for k, v in overrides["id2label"].items()}}
    config = transformers.BertConfig(**{**TINY_BERT, **overrides})
    torch.manual_seed(sorted(CHECKPOINTS).index(name))
    model = getattr(transformers, class_name)(config).eval()
    directory.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(directory)
    copy_tokenizer_files(tokenizer_dir, directory)
    return directory


def assert_same_results(ours, theirs, rel=SCORE_REL, path="result"):
    """Pipeline results equal as structures (same dict keys in the same order, lists of the same length,
    equal labels, tokens, strings and ints) with floats within ``rel * max(|theirs|, SCORE_FLOOR)``."""
    if isinstance(theirs, dict):
        assert isinstance(ours, dict), f"{path}: {type(ours).__name__} where HF has a dict"
        assert list(ours) == list(theirs), f"{path}: keys {list(ours)} != HF's {list(theirs)}"
        for key in theirs:
            assert_same_results(ours[key], theirs[key], rel, f"{path}[{key!r}]")
    elif isinstance(theirs, (list, tuple)):
        assert isinstance(ours, list), f"{path}: {type(ours).__name__} where HF has a list"
        assert len(ours) == len(theirs), f"{path}: {len(ours)} items, HF has {len(theirs)}"
        for i, (a, b) in enumerate(zip(ours, theirs)):
            assert_same_results(a, b, rel, f"{path}[{i}]")
    elif isinstance(theirs, float):
        assert isinstance(ours, float), f"{path}: {ours!r} is not a float"
        bound = rel * max(abs(theirs), SCORE_FLOOR)
        from parity import _report

        _report("pipeline", path, abs(ours - theirs), bound)
        assert abs(ours - theirs) <= bound, f"{path}: {ours} vs HF's {theirs} (bound {bound:.3g})"
    else:
        assert type(ours) is type(theirs) and ours == theirs, f"{path}: {ours!r} != HF's {theirs!r}"


class PipelineModels:
    """The checkpoints of CHECKPOINTS, each built on first use: ``models.dir("classifier")`` is its directory,
    ``models.hf("classifier", task)`` Hugging Face's pipeline over it, ``models.ours(...)`` ours."""

    def __init__(self, root: Path, tokenizer_dir: Path):
        self.root = root
        self.tokenizer_dir = tokenizer_dir

    @functools.cache
    def dir(self, name: str) -> Path:
        return build_checkpoint(name, self.root / name, self.tokenizer_dir)

    @functools.cache
    def hf(self, name: str, task: str):
        import transformers

        return transformers.pipeline(task, model=str(self.dir(name)), device="cpu")

    @functools.cache
    def ours(self, name: str, task: str):
        import transformers_jax as tj

        return tj.pipeline(task, model=str(self.dir(name)))


@pytest.fixture(scope="session")
def pipeline_models(tmp_path_factory, minilm_dir) -> PipelineModels:
    """Tiny HF BERT checkpoints (built on first use) with the all-MiniLM-L6-v2 tokenizer files."""
    return PipelineModels(tmp_path_factory.mktemp("pipeline_models"), minilm_dir)
