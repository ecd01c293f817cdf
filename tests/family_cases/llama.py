"""Llama through the shared family tests: the heads test_llama.py does not cover (token
classification, question answering) and generate/engine/training on the shared decoder."""
import transformers as hf

from family_cases import Family

BASE = dict(vocab_size=101, hidden_size=32, intermediate_size=48, num_hidden_layers=2, num_attention_heads=4,
            num_key_value_heads=2, max_position_embeddings=64, pad_token_id=0, bos_token_id=1, eos_token_id=2)

FAMILY = Family(
    name="llama",
    hf_config_class=hf.LlamaConfig,
    heads={
        "LlamaModel": hf.LlamaModel,
        "LlamaForCausalLM": hf.LlamaForCausalLM,
        "LlamaForSequenceClassification": hf.LlamaForSequenceClassification,
        "LlamaForTokenClassification": hf.LlamaForTokenClassification,
        "LlamaForQuestionAnswering": hf.LlamaForQuestionAnswering,
    },
    configs={"gqa": dict(BASE, tie_word_embeddings=False)},
    parity=[("LlamaForTokenClassification", "gqa"), ("LlamaForQuestionAnswering", "gqa")],
    generation_config="gqa",
)
