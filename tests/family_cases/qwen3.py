"""Qwen3 through the shared family tests: per-head q/k RMSNorm, an explicit head_dim (12, not
hidden / heads = 8), GQA, ``attention_bias`` on all four projections in one config, and sliding
layers from ``use_sliding_window`` / ``max_window_layers`` over a window shorter than the prompts."""
import transformers as hf

from family_cases import Family

BASE = dict(vocab_size=101, hidden_size=32, intermediate_size=48, num_hidden_layers=2, num_attention_heads=4,
            num_key_value_heads=2, head_dim=12, max_position_embeddings=64, pad_token_id=0, bos_token_id=1,
            eos_token_id=2)
HEADS = ("Model", "ForCausalLM", "ForSequenceClassification", "ForTokenClassification", "ForQuestionAnswering")

FAMILY = Family(
    name="qwen3",
    hf_config_class=hf.Qwen3Config,
    heads={f"Qwen3{h}": getattr(hf, f"Qwen3{h}") for h in HEADS},
    configs={"qk_norm_window": dict(BASE, use_sliding_window=True, sliding_window=6, max_window_layers=1),
             "bias_tied": dict(BASE, attention_bias=True, tie_word_embeddings=True)},
    parity=[*((f"Qwen3{h}", "qk_norm_window") for h in HEADS), ("Qwen3ForCausalLM", "bias_tied")],
    generation_config="qk_norm_window",
)
