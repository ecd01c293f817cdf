"""Qwen2 through the shared family tests: q/k/v biases without an o_proj bias; sliding layers from
``use_sliding_window`` and ``max_window_layers`` (layer 0 full, layers 1-2 slide over 6 tokens), or
from an explicit ``layer_types`` that the max_window_layers rule would not give; GQA."""
import transformers as hf

from family_cases import Family

BASE = dict(vocab_size=101, hidden_size=32, intermediate_size=48, num_hidden_layers=3, num_attention_heads=4,
            num_key_value_heads=2, max_position_embeddings=64, pad_token_id=0, bos_token_id=1, eos_token_id=2)
HEADS = ("Model", "ForCausalLM", "ForSequenceClassification", "ForTokenClassification", "ForQuestionAnswering")

FAMILY = Family(
    name="qwen2",
    hf_config_class=hf.Qwen2Config,
    heads={f"Qwen2{h}": getattr(hf, f"Qwen2{h}") for h in HEADS},
    configs={"mixed_window": dict(BASE, use_sliding_window=True, sliding_window=6, max_window_layers=1),
             "layer_types_tied": dict(BASE, use_sliding_window=True, sliding_window=5, tie_word_embeddings=True,
                                      layer_types=["sliding_attention", "full_attention", "sliding_attention"])},
    parity=[*((f"Qwen2{h}", "mixed_window") for h in HEADS), ("Qwen2ForCausalLM", "layer_types_tied")],
    generation_config="mixed_window",
)
