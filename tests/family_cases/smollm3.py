"""SmolLM3 through the shared family tests: NoPE layers among RoPE ones, either derived from
``no_rope_layer_interval`` (2: layers 1 and 3 of 4 are NoPE) with ``use_sliding_window`` making
exactly those NoPE layers slide over 6 tokens (shorter than the prompts), or an explicit
``no_rope_layers`` with an explicit ``layer_types`` where a RoPE layer slides, untied embeddings
and a RoPE base other than the default; or sliding layers from ``layer_types`` alone (no
``use_sliding_window``), which Hugging Face's eager/SDPA attention still slides (its mask reads
``sliding_window`` and ``layer_types`` only); GQA."""
import transformers as hf

from family_cases import Family

BASE = dict(vocab_size=101, hidden_size=32, intermediate_size=48, num_hidden_layers=4, num_attention_heads=4,
            num_key_value_heads=2, max_position_embeddings=64, pad_token_id=0, bos_token_id=1, eos_token_id=2)
HEADS = ("Model", "ForCausalLM", "ForSequenceClassification", "ForTokenClassification", "ForQuestionAnswering")

FAMILY = Family(
    name="smollm3",
    hf_config_class=hf.SmolLM3Config,
    heads={f"SmolLM3{h}": getattr(hf, f"SmolLM3{h}") for h in HEADS},
    configs={"nope_sliding": dict(BASE, no_rope_layer_interval=2, use_sliding_window=True, sliding_window=6),
             "explicit_untied": dict(BASE, num_hidden_layers=3, no_rope_layers=[0, 1, 1], tie_word_embeddings=False,
                                     use_sliding_window=True, sliding_window=5, rope_parameters={
                                         "rope_type": "default", "rope_theta": 50.0},
                                     layer_types=["full_attention", "sliding_attention", "full_attention"]),
             "types_without_flag": dict(BASE, sliding_window=6, no_rope_layers=[1, 0, 0, 1],
                                        layer_types=["sliding_attention", "sliding_attention", "full_attention",
                                                     "full_attention"])},
    parity=[*((f"SmolLM3{h}", "nope_sliding") for h in HEADS), ("SmolLM3ForCausalLM", "explicit_untied"),
            ("SmolLM3Model", "types_without_flag")],
    generation_config="nope_sliding",
)
