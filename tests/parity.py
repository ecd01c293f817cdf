"""Shared helpers of the Hugging Face parity tests: perturbing weights, running both libraries,
and comparing every output field."""
import contextlib
import inspect

import jax
import jax.numpy as jnp
import numpy as np
import torch
from safetensors import safe_open

ATOL = 1e-5

def perturb_torch(model, seed, scale=0.1):
    """Add noise to every parameter (tied ones once), so zero biases and unit norms are not special."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn(p.shape, generator=gen) * scale)
    return model



def perturb_params(params, seed, scale=0.1):
    leaves, treedef = jax.tree.flatten(params)
    rng = np.random.RandomState(seed)
    return jax.tree.unflatten(
        treedef, [jnp.asarray(np.asarray(x) + scale * rng.standard_normal(x.shape).astype(np.float32)) for x in leaves]
    )



def safetensors_keys(directory):
    keys = set()
    for file in sorted(directory.glob("*.safetensors")):
        with safe_open(str(file), "np") as f:
            keys |= set(f.keys())
    return keys



def run_hf(model, inputs, **flags):
    """HF forward under no_grad; decoders run without a KV cache (as ours here)."""
    tensors = {k: torch.from_numpy(np.asarray(v)) for k, v in inputs.items()}
    if "use_cache" in inspect.signature(model.forward).parameters:
        flags.setdefault("use_cache", False)
    with torch.no_grad():
        return model(**tensors, **flags)



def run_ours(model, inputs, **flags):
    return model(**inputs, **flags)



def to_np(x):
    return x.detach().numpy() if isinstance(x, torch.Tensor) else np.asarray(x)



def assert_outputs_match(ours, theirs, atol=ATOL, keep=None, subset=False):
    """Every field HF returns, ours returns under the same name in the same order, and equal.

    ``keep`` ([rows, T] 0/1) restricts per-token tensors to the positions where it is 1;
    ``subset`` allows ours to hold more fields than HF's (attentions, which HF's sdpa leaves out)."""
    # HF also returns an empty cross_attentions tuple for encoders; our encoders have no such field.
    their_keys = [k for k in theirs.keys() if k != "past_key_values" and not (k == "cross_attentions" and not theirs[k])]
    if subset:
        assert [k for k in ours.keys() if k in their_keys] == their_keys
    else:
        assert list(ours.keys()) == their_keys
    for key in their_keys:
        a, b = ours[key], theirs[key]
        pairs = list(zip(a, b, strict=True)) if isinstance(b, tuple) else [(a, b)]
        for i, (x, y) in enumerate(pairs):
            x, y = to_np(x), to_np(y)
            assert x.shape == y.shape, (key, i, x.shape, y.shape)
            if keep is not None and x.ndim >= 2 and x.shape[:2] == keep.shape:
                x, y = x[keep.astype(bool)], y[keep.astype(bool)]
            np.testing.assert_allclose(x, y, atol=atol, rtol=0, err_msg=f"{key}[{i}]")


@contextlib.contextmanager
def count_compiles(fun_name=None):
    """Collect XLA backend compilations (optionally of one jitted function) inside the block."""
    compiles = []

    def listener(event, duration, **kwargs):
        if event == "/jax/core/compile/backend_compile_duration" and fun_name in (None, kwargs.get("fun_name")):
            compiles.append(kwargs.get("fun_name"))

    jax.monitoring.register_event_duration_secs_listener(listener)
    try:
        yield compiles
    finally:
        jax.monitoring.unregister_event_duration_listener(listener)


def tiny_bpe_tokenizer(corpus, vocab_size, chat_template=None):
    """A byte-level BPE trained on ``corpus`` (<pad>=0, <s>=1, </s>=2; <s> prepended), wrapped as ours."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers

    import transformers_jax as tj

    backend = Tokenizer(models.BPE())
    backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    backend.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=["<pad>", "<s>", "</s>"],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    backend.train_from_iterator(list(corpus) * 3, trainer)
    backend.post_processor = processors.TemplateProcessing(single="<s> $A", special_tokens=[("<s>", 1)])
    return tj.PreTrainedTokenizerFast(tokenizer_object=backend, bos_token="<s>", eos_token="</s>", pad_token="<pad>",
                                      chat_template=chat_template)
