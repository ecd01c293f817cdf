"""Gemma through the shared family tests: 1 + weight norms, scaled embeddings, GeGLU, explicit head_dim
(heads * head_dim != hidden_size), GQA, tied and untied LM heads."""
import transformers as hf

from family_cases import Family

BASE = dict(vocab_size=101, hidden_size=32, intermediate_size=48, num_hidden_layers=2, num_attention_heads=4,
            num_key_value_heads=2, head_dim=12, hidden_act="gelu_pytorch_tanh", max_position_embeddings=64,
            rope_parameters={"rope_type": "default", "rope_theta": 100.0}, pad_token_id=0, bos_token_id=2,
            eos_token_id=1)

FAMILY = Family(
    name="gemma",
    hf_config_class=hf.GemmaConfig,
    heads={
        "GemmaModel": hf.GemmaModel,
        "GemmaForCausalLM": hf.GemmaForCausalLM,
        "GemmaForSequenceClassification": hf.GemmaForSequenceClassification,
        "GemmaForTokenClassification": hf.GemmaForTokenClassification,
    },
    configs={"tied": dict(BASE, tie_word_embeddings=True), "untied": dict(BASE, tie_word_embeddings=False)},
    parity=[("GemmaModel", "tied"), ("GemmaForCausalLM", "tied"), ("GemmaForCausalLM", "untied"),
            ("GemmaForSequenceClassification", "tied"), ("GemmaForTokenClassification", "untied")],
    generation_config="tied",
)
