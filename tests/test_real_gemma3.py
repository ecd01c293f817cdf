"""Real weights: Gemma 3 270M (google/gemma-3-270m, base model) from its Q4_K_M GGUF, against Hugging Face's
own GGUF load of the same file. Gemma is provided under and subject to the Gemma Terms of Use
(https://ai.google.dev/gemma/terms).

The file (``scripts/fetch_gemma3.py``) holds Q8_0 (the 262144 x 640 embedding), Q5_0, Q4_K and Q6_K
tensors, F32 norms, no output matrix (tied) and no chat template (a base model).
"""
import numpy as np
import pytest
import torch

import transformers_jax as tj
from parity import assert_accurate, hf_pair

PROMPTS = ["The capital of France is", "def fibonacci(n):\n    "]
TEXTS = ["The capital of France is", "Hello  world!\n\n  indented", "Café naïve 🤗 中文 日本語",
         "<start_of_turn>user\nhi<end_of_turn>\n", "   ", "tabs\tand\r\nreturns", ""]


@pytest.fixture(scope="module")
def models(gemma3_model, gemma3_hf):
    theirs, tokenizer = gemma3_hf
    return gemma3_model, theirs, tokenizer


def test_gemma3_config_matches_hf(models):
    ours, theirs, _ = models
    assert isinstance(ours, tj.Gemma3ForCausalLM)
    c, h = ours.config, theirs.config
    assert (c.vocab_size, c.hidden_size, c.num_hidden_layers, c.num_attention_heads, c.num_key_value_heads,
            c.head_dim) == (262144, 640, 18, 4, 1, 256)
    for field in ("vocab_size", "hidden_size", "intermediate_size", "num_hidden_layers", "num_attention_heads",
                  "num_key_value_heads", "head_dim", "sliding_window", "query_pre_attn_scalar", "rms_norm_eps",
                  "layer_types", "tie_word_embeddings", "final_logit_softcapping", "max_position_embeddings"):
        assert getattr(c, field) == getattr(h, field), field
    assert c.rope_parameters["full_attention"]["rope_theta"] == h.rope_parameters["full_attention"]["rope_theta"] == 1e6
    assert c.rope_parameters["sliding_attention"]["rope_theta"] == h.rope_parameters["sliding_attention"]["rope_theta"]
    assert (c.bos_token_id, c.eos_token_id, c.pad_token_id) == (2, 1, 0)


def test_gemma3_logits_equal_hf_gguf_load(models):
    ours, theirs, tokenizer = models
    batch = tokenizer(PROMPTS, padding=True, return_tensors="np")
    ids, mask = batch["input_ids"], batch["attention_mask"]
    logits = np.asarray(ours(ids, attention_mask=mask).logits)
    ref, exact = hf_pair(theirs, lambda m: m(torch.tensor(ids), attention_mask=torch.tensor(mask)).logits)
    valid = mask.astype(bool)
    # Our float32 error against the float64 logits is bounded by PyTorch's own float32 error (parity rules).
    assert_accurate(logits[valid], ref[valid], exact[valid], name="Gemma 3 270M logits")
    for row in range(len(PROMPTS)):
        last = valid[row].nonzero()[0][-1]
        assert logits[row, last].argmax() == ref[row, last].argmax()


def test_gemma3_greedy_32_tokens_equal_hf_generate(models, gemma3_tokenizer):
    model, reference, _ = models
    ids = np.asarray(gemma3_tokenizer(PROMPTS[0], return_tensors="np")["input_ids"])
    got = np.asarray(model.generate(ids, max_new_tokens=32, eos_token_id=None))[0, ids.shape[1]:]
    with torch.no_grad():
        want = reference.generate(torch.tensor(ids, dtype=torch.long), attention_mask=torch.ones(ids.shape, dtype=torch.long),
                                  max_new_tokens=32, do_sample=False, eos_token_id=None)[0, ids.shape[1]:].numpy()
    print("Gemma 3 270M:", repr(gemma3_tokenizer.decode(got)))
    assert len(got) == len(want) == 32
    np.testing.assert_array_equal(got, want)
    assert "France" in gemma3_tokenizer.decode(got)  # the base model rambles on about France


def test_gemma3_tokenizer_equals_hf_gguf_tokenizer(models, gemma3_tokenizer):
    _, _, reference = models
    ours = gemma3_tokenizer
    for text in TEXTS:
        ids = ours(text)["input_ids"]
        assert ids == reference(text)["input_ids"], text
        assert ours.decode(ids) == reference.decode(ids), text
        assert ours.decode(ids, skip_special_tokens=True) == reference.decode(ids, skip_special_tokens=True), text
    assert ours(TEXTS[:3])["input_ids"] == reference(TEXTS[:3])["input_ids"]
    for name in ("bos_token", "eos_token", "unk_token", "pad_token"):
        assert getattr(ours, name) == getattr(reference, name), name
    assert ours.chat_template is None and reference.chat_template is None  # a base model's file has none
    assert ours.model_max_length == 32768  # the file's context length (HF leaves its "no limit" sentinel)
