"""DeBERTa-v2/v3 through the shared encoder tests.

``v3``: log-bucketed relative positions (8 buckets, ``max_relative_positions`` -1 = a 10-position
range, so the 12-token batch runs past it and the gathers clamp), ``share_att_key``, both
``p2c`` and ``c2p`` terms, no absolute positions, no token types, ``norm_rel_ebd="layer_norm"``.
``v2``: ``share_att_key=False`` with ``pos_key_proj``/``pos_query_proj``, no buckets and a
5-position range (clamped at T=12), absolute positions, two token types, ``embedding_size`` 24
projected by ``embed_proj`` before the LayerNorm, the tied legacy MLM head transforming to 24.
``v2_conv``: v2 with the ConvLayer (kernel 3, 2 groups, gelu) after the first layer: also the
Trainer config (the conv under ``lax.cond`` in the scan, sharded and differentiated).
``v3_lm_head``: v3 with ``legacy=False`` (the ``lm_predictions.lm_head`` MLM head);
``v2_c2p_untied``: one term only (``c2p``, scale sqrt(2 d)), an untied MLM decoder, dropout in
the ContextPooler options (``pooler_hidden_act`` tanh, ``cls_dropout``).
"""
import transformers as hf

from encoder_cases import EncoderFamily

V3 = dict(vocab_size=99, hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=37,
          max_position_embeddings=10, hidden_act="gelu", relative_attention=True, position_buckets=8,
          max_relative_positions=-1, share_att_key=True, pos_att_type=["p2c", "c2p"], position_biased_input=False,
          type_vocab_size=0, norm_rel_ebd="layer_norm", pad_token_id=0)
V2 = dict(vocab_size=99, hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=37,
          max_position_embeddings=40, hidden_act="gelu", relative_attention=True, position_buckets=-1,
          max_relative_positions=5, share_att_key=False, pos_att_type="c2p|p2c", position_biased_input=True,
          type_vocab_size=2, embedding_size=24, pad_token_id=0)
HEADS = ("Model", "ForMaskedLM", "ForSequenceClassification", "ForTokenClassification", "ForQuestionAnswering",
         "ForMultipleChoice")

FAMILY = EncoderFamily(
    name="deberta-v2", hf_config_class=hf.DebertaV2Config,
    heads={f"DebertaV2{h}": getattr(hf, f"DebertaV2{h}") for h in HEADS},
    configs={
        "v3": V3,
        "v2": V2,
        "v2_conv": dict(V2, conv_kernel_size=3, conv_groups=2, conv_act="gelu"),
        "v3_lm_head": dict(V3, legacy=False),
        "v2_c2p_untied": dict(V2, pos_att_type=["c2p"], tie_word_embeddings=False, pooler_hidden_act="tanh",
                              cls_dropout=0.2, pooler_dropout=0.1),
    },
    parity=[(f"DebertaV2{h}", c) for c in ("v3", "v2") for h in HEADS]
    + [("DebertaV2ForMaskedLM", "v3_lm_head"), ("DebertaV2ForMaskedLM", "v2_c2p_untied"),
       ("DebertaV2ForSequenceClassification", "v2_c2p_untied"),
       ("DebertaV2Model", "v2_conv"), ("DebertaV2ForSequenceClassification", "v2_conv")],
    train_config="v2_conv",
)
