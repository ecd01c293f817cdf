"""Mistral through the shared family tests: every layer slides over a window shorter than the
prompts; GQA; and a config without a window (full attention, tied embeddings)."""
import transformers as hf

from family_cases import Family

BASE = dict(vocab_size=101, hidden_size=32, intermediate_size=48, num_hidden_layers=2, num_attention_heads=4,
            num_key_value_heads=2, max_position_embeddings=64, pad_token_id=0, bos_token_id=1, eos_token_id=2)
HEADS = ("Model", "ForCausalLM", "ForSequenceClassification", "ForTokenClassification", "ForQuestionAnswering")

FAMILY = Family(
    name="mistral",
    hf_config_class=hf.MistralConfig,
    heads={f"Mistral{h}": getattr(hf, f"Mistral{h}") for h in HEADS},
    configs={"window6": dict(BASE, sliding_window=6),
             "no_window_tied": dict(BASE, sliding_window=None, num_key_value_heads=1, tie_word_embeddings=True)},
    parity=[*((f"Mistral{h}", "window6") for h in HEADS), ("MistralForCausalLM", "no_window_tied")],
    generation_config="window6",
)
