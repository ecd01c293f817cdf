"""Gemma 2 through the shared family tests: sandwich norms, attention and final logit soft-capping at
values that bite, query_pre_attn_scalar != head_dim, and a sliding window (6) shorter than the prompts
on alternating local/global layers."""
import transformers as hf

from family_cases import Family

BASE = dict(vocab_size=101, hidden_size=32, intermediate_size=48, num_hidden_layers=4, num_attention_heads=4,
            num_key_value_heads=2, head_dim=16, hidden_activation="gelu_pytorch_tanh", max_position_embeddings=64,
            rope_parameters={"rope_type": "default", "rope_theta": 100.0}, query_pre_attn_scalar=24,
            sliding_window=6, attn_logit_softcapping=5.0, final_logit_softcapping=3.0, pad_token_id=0,
            bos_token_id=2, eos_token_id=1)

FAMILY = Family(
    name="gemma2",
    hf_config_class=hf.Gemma2Config,
    heads={
        "Gemma2Model": hf.Gemma2Model,
        "Gemma2ForCausalLM": hf.Gemma2ForCausalLM,
        "Gemma2ForSequenceClassification": hf.Gemma2ForSequenceClassification,
        "Gemma2ForTokenClassification": hf.Gemma2ForTokenClassification,
    },
    configs={"capped": BASE,
             "global_first": dict(BASE, tie_word_embeddings=False, num_hidden_layers=3,
                                  layer_types=["full_attention", "sliding_attention", "sliding_attention"])},
    parity=[("Gemma2Model", "global_first"), ("Gemma2ForCausalLM", "capped"), ("Gemma2ForCausalLM", "global_first"),
            ("Gemma2ForSequenceClassification", "capped"), ("Gemma2ForTokenClassification", "capped")],
    generation_config="capped",
)
