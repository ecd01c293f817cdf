"""Real weights: SmolLM2-135M-Instruct from its 4-bit GGUF, against Hugging Face's own GGUF load."""
import copy

import numpy as np
import pytest
import torch
import transformers as hf

import transformers_jax as tj

MESSAGES = [{"role": "user", "content": "What is the capital of France?"}]


@pytest.fixture(scope="module")
def models(smollm2_gguf):
    ours = tj.AutoModelForCausalLM.from_pretrained(smollm2_gguf.parent, gguf_file=smollm2_gguf.name)
    theirs = hf.AutoModelForCausalLM.from_pretrained(smollm2_gguf.parent, gguf_file=smollm2_gguf.name).eval()
    tokenizer = hf.AutoTokenizer.from_pretrained(smollm2_gguf.parent, gguf_file=smollm2_gguf.name)
    return ours, theirs, tokenizer


def test_smollm2_logits_equal_hf_gguf_load(models):
    ours, theirs, tokenizer = models
    assert isinstance(ours, tj.LlamaForCausalLM) and ours.config.tie_word_embeddings
    prompt = tokenizer.apply_chat_template(MESSAGES, add_generation_prompt=True, tokenize=False)
    batch = tokenizer([prompt, "The quick brown fox jumps over"], padding=True, return_tensors="np")
    ids, mask = batch["input_ids"], batch["attention_mask"]
    logits = np.asarray(ours(ids, attention_mask=mask).logits)
    with torch.no_grad():
        ref = theirs(torch.tensor(ids), attention_mask=torch.tensor(mask)).logits.numpy()
    valid = mask.astype(bool)
    # Logits reach ~30 and hidden states ~1000 in this model, so float32 rounding alone moves them by
    # ~1e-4: the tolerance is 1e-4 absolute plus 1e-5 relative.
    np.testing.assert_allclose(logits[valid], ref[valid], atol=1e-4, rtol=1e-5)
    # Against the exact (float64) result, our float32 error is of the same size as PyTorch's own
    # (measured: 1.5e-4 vs 8e-5 here; hidden states of later layers are closer to exact than PyTorch's).
    with torch.no_grad():
        exact = copy.deepcopy(theirs).double()(torch.tensor(ids), attention_mask=torch.tensor(mask)).logits.numpy()
    our_error = np.abs(logits[valid] - exact[valid]).max()
    torch_error = np.abs(ref[valid] - exact[valid]).max()
    assert our_error < 2.5 * torch_error, (our_error, torch_error)
    # The next token after the chat prompt is the same.
    last = valid[0].nonzero()[0][-1]
    assert logits[0, last].argmax() == ref[0, last].argmax()


def test_smollm2_tokenizer_and_template_from_gguf(models, smollm2_gguf):
    _, _, reference = models
    ours = tj.AutoTokenizer.from_pretrained(smollm2_gguf.parent, gguf_file=smollm2_gguf.name)
    text = ours.apply_chat_template(MESSAGES, add_generation_prompt=True, tokenize=False)
    assert text == reference.apply_chat_template(MESSAGES, add_generation_prompt=True, tokenize=False)
    assert "<|im_start|>assistant" in text
    assert ours(text)["input_ids"] == reference(text)["input_ids"]
