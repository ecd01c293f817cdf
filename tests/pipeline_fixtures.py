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
    config = transformers.BertConfig(**{**TINY_BERT, **overrides})
    torch.manual_seed(sorted(CHECKPOINTS).index(name))
    model = getattr(transformers, class_name)(config).eval()
    directory.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(directory)
    copy_tokenizer_files(tokenizer_dir, directory)
    return directory


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
