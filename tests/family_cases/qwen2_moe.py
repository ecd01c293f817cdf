"""Qwen2-MoE through the shared family tests: 16 experts, top-4, a shared expert behind its sigmoid
gate, q/k/v biases, and a dense layer among the sparse ones (``mlp_only_layers``: the MLPs of each
kind are stacked apart); router logits and the aux loss compared; and ``decoder_sparse_step`` 2 with
``norm_topk_prob`` and sliding layers over a window shorter than the prompts (without router
logits: Hugging Face's ``generate`` cannot run with them requested on a padded batch)."""
import transformers as hf

from family_cases import Family

BASE = dict(vocab_size=101, hidden_size=32, intermediate_size=40, moe_intermediate_size=12,
            shared_expert_intermediate_size=20, num_hidden_layers=3, num_attention_heads=4, num_key_value_heads=2,
            max_position_embeddings=64, pad_token_id=0, bos_token_id=1, eos_token_id=2, num_experts=16,
            num_experts_per_tok=4)
HEADS = ("Model", "ForCausalLM", "ForSequenceClassification", "ForTokenClassification", "ForQuestionAnswering")

FAMILY = Family(
    name="qwen2_moe",
    hf_config_class=hf.Qwen2MoeConfig,
    heads={f"Qwen2Moe{h}": getattr(hf, f"Qwen2Moe{h}") for h in HEADS},
    configs={"top4_of_16_shared_dense1": dict(BASE, mlp_only_layers=[1], output_router_logits=True),
             "step2_norm_window": dict(BASE, decoder_sparse_step=2, norm_topk_prob=True, use_sliding_window=True,
                                       sliding_window=6, max_window_layers=2)},
    parity=[*((f"Qwen2Moe{h}", "top4_of_16_shared_dense1") for h in HEADS), ("Qwen2MoeForCausalLM", "step2_norm_window")],
    generation_config="step2_norm_window",
)
