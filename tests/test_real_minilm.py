"""Real weights: sentence-transformers all-MiniLM-L6-v2 (BERT) against Hugging Face PyTorch."""
import numpy as np
import pytest
import torch
import transformers as hf

import transformers_jax as tj
from parity import assert_accurate, hf_pair

SENTENCES = [
    "A man is eating food.",
    "A man is eating a piece of bread.",
    "The girl is carrying a baby.",
    "Crème brûlée à Zürich 🍮 — 東京で食べた。",
]


def mean_pool(hidden, mask):
    mask = mask[..., None].astype(np.float32)
    emb = (hidden * mask).sum(1) / np.clip(mask.sum(1), 1e-9, None)
    return emb / np.linalg.norm(emb, axis=-1, keepdims=True)


@pytest.fixture(scope="module")
def batch(minilm_dir):
    tokenizer = hf.AutoTokenizer.from_pretrained(minilm_dir)
    return tokenizer(SENTENCES, padding=True, return_tensors="np")


def test_minilm_embeddings_equal_pytorch(minilm_dir, batch):
    ours = tj.AutoModel.from_pretrained(minilm_dir)
    assert isinstance(ours, tj.BertModel)
    out = ours(batch["input_ids"], attention_mask=batch["attention_mask"], token_type_ids=batch["token_type_ids"])
    reference = hf.AutoModel.from_pretrained(minilm_dir).eval()
    ref, exact = hf_pair(reference, lambda m: m(**{k: torch.tensor(v) for k, v in batch.items()}).last_hidden_state)
    mask = batch["attention_mask"].astype(bool)
    assert_accurate(np.asarray(out.last_hidden_state)[mask], ref[mask], exact[mask], name="last_hidden_state")
    ours_emb = mean_pool(np.asarray(out.last_hidden_state), batch["attention_mask"])
    assert_accurate(ours_emb, mean_pool(ref, batch["attention_mask"]), mean_pool(exact, batch["attention_mask"]),
                    name="sentence embeddings")
    similarity = ours_emb @ ours_emb.T
    # The two sentences about eating are closer to each other than to the one about a baby.
    assert similarity[0, 1] > similarity[0, 2] + 0.3


def test_minilm_saved_by_us_loads_in_pytorch(minilm_dir, batch, tmp_path):
    tj.BertModel.from_pretrained(minilm_dir).save_pretrained(tmp_path)
    reloaded = hf.BertModel.from_pretrained(tmp_path).eval()
    original = hf.BertModel.from_pretrained(minilm_dir).eval()
    inputs = {k: torch.tensor(v) for k, v in batch.items()}
    with torch.no_grad():
        np.testing.assert_array_equal(reloaded(**inputs).last_hidden_state.numpy(), original(**inputs).last_hidden_state.numpy())


def test_added_tokens_and_resized_embeddings(minilm_dir):
    ours_tok = tj.AutoTokenizer.from_pretrained(minilm_dir)
    ref_tok = hf.AutoTokenizer.from_pretrained(minilm_dir)
    assert ours_tok.add_tokens(["<jax>", "<xla>"]) == ref_tok.add_tokens(["<jax>", "<xla>"]) == 2
    model = tj.BertModel.from_pretrained(minilm_dir)
    table = model.resize_token_embeddings(len(ours_tok))
    assert table.shape == (30524, 384) and model.config.vocab_size == len(ref_tok) == 30524
    text = "hello <jax> and <xla> world"
    ids = ours_tok(text, return_tensors="np")
    assert ids["input_ids"].tolist() == ref_tok(text, return_tensors="np")["input_ids"].tolist()
    assert ours_tok.convert_tokens_to_ids("<xla>") == 30523 and 30523 in ids["input_ids"][0]
    hidden = model(**ids).last_hidden_state
    assert hidden.shape == (1, ids["input_ids"].shape[1], 384) and np.isfinite(np.asarray(hidden)).all()
