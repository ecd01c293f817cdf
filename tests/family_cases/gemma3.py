"""Gemma 3 (text) through the shared family tests: q/k norms, a sliding window (6) shorter than the
prompts on local layers (sliding_window_pattern 3: local, local, global, local), a local RoPE base
different from the global one, linearly scaled global RoPE, query_pre_attn_scalar != head_dim, and
final logit soft-capping; its attn_logit_softcapping is set too, and must be ignored as HF ignores it."""
import transformers as hf

from family_cases import Family

ROPE = {"full_attention": {"rope_type": "linear", "factor": 2.0, "rope_theta": 500.0},
        "sliding_attention": {"rope_type": "default", "rope_theta": 20.0}}
BASE = dict(vocab_size=101, hidden_size=32, intermediate_size=48, num_hidden_layers=4, num_attention_heads=4,
            num_key_value_heads=1, head_dim=16, hidden_activation="gelu_pytorch_tanh", max_position_embeddings=64,
            rope_parameters=ROPE, query_pre_attn_scalar=20, sliding_window=6, sliding_window_pattern=3,
            pad_token_id=0, bos_token_id=2, eos_token_id=1)

FAMILY = Family(
    name="gemma3",
    hf_config_class=hf.Gemma3TextConfig,
    heads={
        "Gemma3TextModel": hf.Gemma3TextModel,
        "Gemma3ForCausalLM": hf.Gemma3ForCausalLM,
        "Gemma3TextForSequenceClassification": hf.Gemma3TextForSequenceClassification,
    },
    configs={"local_global": BASE,
             "capped": dict(BASE, tie_word_embeddings=False, attn_logit_softcapping=5.0, final_logit_softcapping=3.0)},
    parity=[("Gemma3TextModel", "local_global"), ("Gemma3ForCausalLM", "local_global"), ("Gemma3ForCausalLM", "capped"),
            ("Gemma3TextForSequenceClassification", "local_global")],
    generation_config="local_global",
)
