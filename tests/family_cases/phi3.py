"""Phi-3 through the shared family tests: fused qkv_proj/gate_up_proj in the checkpoint, partial
rotary embeddings, a sliding window on every layer, and LongRoPE in both regimes.

LongRoPE picks its long factors when a pass's length (max position + 1) exceeds
``original_max_position_embeddings``. ``longrope_long`` (original 3) is in the long regime for the
parity batch (T=16) and for every generate, engine and training run (prompts of 4 or more tokens);
``longrope_short`` (original 32) stays in the short regime for T=16. A generate that crosses the
switch mid-way is not a shared test: HF then drops its cache and recomputes the whole sequence with
the long factors (``Phi3ForCausalLM.prepare_inputs_for_generation``); see tests/test_phi3_rope.py.
"""
import transformers as hf

from family_cases import Family

BASE = dict(vocab_size=101, hidden_size=32, intermediate_size=48, num_hidden_layers=2, num_attention_heads=4,
            num_key_value_heads=2, max_position_embeddings=64, pad_token_id=0, bos_token_id=1, eos_token_id=2)


def longrope(original: int, pairs: int) -> dict:
    """LongRoPE parameters with ``pairs`` (rotary_dim / 2) distinct short and long factors."""
    return {"rope_type": "longrope", "rope_theta": 10000.0, "short_factor": [1.0 + 0.15 * i for i in range(pairs)],
            "long_factor": [1.5 + 0.7 * i for i in range(pairs)], "original_max_position_embeddings": original}


FAMILY = Family(
    name="phi3",
    hf_config_class=hf.Phi3Config,
    heads={
        "Phi3Model": hf.Phi3Model,
        "Phi3ForCausalLM": hf.Phi3ForCausalLM,
        "Phi3ForSequenceClassification": hf.Phi3ForSequenceClassification,
        "Phi3ForTokenClassification": hf.Phi3ForTokenClassification,
    },
    configs={
        # head_dim 8, half of it rotated; every layer sees the last 6 tokens
        "partial_window": dict(BASE, partial_rotary_factor=0.5, sliding_window=6),
        # long factors at T=16 (and in generation); the window is shorter than the prompts
        "longrope_long": dict(BASE, original_max_position_embeddings=3, sliding_window=6,
                              rope_parameters=longrope(3, 4)),
        # short factors at T=16, partial rotary (2 factors for 4 rotated features)
        "longrope_short": dict(BASE, original_max_position_embeddings=32, partial_rotary_factor=0.5,
                               rope_parameters=dict(longrope(32, 2), partial_rotary_factor=0.5)),
    },
    parity=[("Phi3Model", "partial_window"), ("Phi3ForCausalLM", "longrope_long"),
            ("Phi3ForCausalLM", "longrope_short"), ("Phi3ForSequenceClassification", "longrope_short"),
            ("Phi3ForTokenClassification", "partial_window")],
    generation_config="longrope_long",
)
