"""Mixtral through the shared family tests: 8 experts, top-2 (renormalised), a sliding window shorter
than the prompts, GQA; router logits and the load-balancing loss requested (``output_router_logits``)
so they are compared too; and a tied config without them (Hugging Face's ``generate`` cannot run
with router logits requested on a padded batch), used for generation and training."""
import transformers as hf

from family_cases import Family

BASE = dict(vocab_size=101, hidden_size=32, intermediate_size=24, num_hidden_layers=2, num_attention_heads=4,
            num_key_value_heads=2, max_position_embeddings=64, pad_token_id=0, bos_token_id=1, eos_token_id=2,
            num_local_experts=8, num_experts_per_tok=2)
HEADS = ("Model", "ForCausalLM", "ForSequenceClassification", "ForTokenClassification", "ForQuestionAnswering")

FAMILY = Family(
    name="mixtral",
    hf_config_class=hf.MixtralConfig,
    heads={f"Mixtral{h}": getattr(hf, f"Mixtral{h}") for h in HEADS},
    configs={"top2_of_8_window6": dict(BASE, sliding_window=6, output_router_logits=True, router_aux_loss_coef=0.02),
             "top2_of_8_window6_tied": dict(BASE, sliding_window=6, tie_word_embeddings=True)},
    parity=[*((f"Mixtral{h}", "top2_of_8_window6") for h in HEADS), ("MixtralForCausalLM", "top2_of_8_window6_tied")],
    generation_config="top2_of_8_window6_tied",
)
