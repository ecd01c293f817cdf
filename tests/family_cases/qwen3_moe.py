"""Qwen3-MoE through the shared family tests: 16 experts, top-4 with ``norm_topk_prob``, q/k RMSNorm,
router logits and the aux loss compared; and a tied config without renormalisation, with
``attention_bias`` and a sliding window in every layer shorter than the prompts, for generation
(without router logits: Hugging Face's ``generate`` cannot run with them on a padded batch)."""
import transformers as hf

from family_cases import Family

BASE = dict(vocab_size=101, hidden_size=32, intermediate_size=40, moe_intermediate_size=12, num_hidden_layers=2,
            num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=64, pad_token_id=0, bos_token_id=1,
            eos_token_id=2, num_experts=16, num_experts_per_tok=4)
HEADS = ("Model", "ForCausalLM", "ForSequenceClassification", "ForTokenClassification", "ForQuestionAnswering")

FAMILY = Family(
    name="qwen3_moe",
    hf_config_class=hf.Qwen3MoeConfig,
    heads={f"Qwen3Moe{h}": getattr(hf, f"Qwen3Moe{h}") for h in HEADS},
    configs={"top4_of_16_norm": dict(BASE, norm_topk_prob=True, output_router_logits=True),
             "no_norm_bias_tied_window": dict(BASE, attention_bias=True, tie_word_embeddings=True,
                                              use_sliding_window=True, sliding_window=6)},
    parity=[*((f"Qwen3Moe{h}", "top4_of_16_norm") for h in HEADS), ("Qwen3MoeForCausalLM", "no_norm_bias_tied_window")],
    generation_config="no_norm_bias_tied_window",
)
