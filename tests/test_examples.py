"""examples/finetune_minilm_optax.py: a hand-written optax loop over the real all-MiniLM-L6-v2 with the
encoder frozen, saved for PyTorch (the README's "writing the training loop yourself")."""
import sys
from pathlib import Path

import jax
import numpy as np
import torch
import transformers as hf

import transformers_jax as tj
from parity import assert_accurate, hf_pair

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "examples"))
import finetune_minilm_optax as example  # noqa: E402


def test_hand_written_loop_trains_the_head_only_and_saves_for_pytorch(minilm_dir, tmp_path):
    result = example.main(str(minilm_dir), str(tmp_path), steps=60)
    losses = result["losses"]
    assert np.mean(losses[-10:]) < 0.5 * losses[0], losses
    assert result["accuracy_before"] <= 0.6 and result["accuracy_after"] >= 0.9, result

    original = tj.BertForSequenceClassification.from_pretrained(minilm_dir, num_labels=2)
    trained = tj.BertForSequenceClassification.from_pretrained(tmp_path)
    for part in ("embeddings", "encoder"):  # frozen: bit for bit what was loaded
        for a, b in zip(jax.tree.leaves(trained.params["bert"][part]), jax.tree.leaves(original.params["bert"][part]),
                        strict=True):
            np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    assert not np.array_equal(np.asarray(trained.params["bert"]["pooler"]["dense"]["kernel"]),
                              np.asarray(original.params["bert"]["pooler"]["dense"]["kernel"]))

    tokenizer = hf.AutoTokenizer.from_pretrained(tmp_path)
    batch = tokenizer(["Does the river look nice?", "The river does look nice."], padding=True, return_tensors="np")
    reference = hf.BertForSequenceClassification.from_pretrained(tmp_path, attn_implementation="eager").eval()
    ours = np.asarray(trained(**batch).logits)
    assert_accurate(ours, *hf_pair(reference, lambda m: m(**{k: torch.tensor(v) for k, v in batch.items()}).logits))
    assert ours[0].argmax() == 1 and ours[1].argmax() == 0  # question, statement
