"""MPNet through the shared encoder tests: the relative position bias (32 buckets, max distance 128)
shared by all layers, padding-offset positions counted from HF's fixed padding id 1 (also with
``pad_token_id=0``, where the padded tokens count as real ones, as in HF), no token types, the
``lm_head`` MLM head tied or not, ``classifier.dense``/``out_proj`` sequence head, pooler-based
multiple choice. The ``long`` config runs 150-token batches: distances past the exact buckets
(8) and past ``max_distance`` (128), so the log-spaced buckets and the last one are all used."""
import transformers as hf

from encoder_cases import EncoderFamily

BASE = dict(vocab_size=99, hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=37,
            max_position_embeddings=40, pad_token_id=1, bos_token_id=0, eos_token_id=2, hidden_act="gelu_new",
            relative_attention_num_buckets=32)
HEADS = ("Model", "ForMaskedLM", "ForSequenceClassification", "ForTokenClassification", "ForQuestionAnswering",
         "ForMultipleChoice")

FAMILY = EncoderFamily(
    name="mpnet", hf_config_class=hf.MPNetConfig,
    heads={f"MPNet{h}": getattr(hf, f"MPNet{h}") for h in HEADS},
    configs={
        "base": BASE,
        "untied_more_buckets": dict(BASE, tie_word_embeddings=False, relative_attention_num_buckets=40),
        "pad0": dict(BASE, pad_token_id=0),
        "long": dict(BASE, max_position_embeddings=160),
    },
    parity=[(f"MPNet{h}", "base") for h in HEADS]
    + [("MPNetForMaskedLM", "untied_more_buckets"), ("MPNetModel", "pad0"), ("MPNetModel", "long"),
       ("MPNetForSequenceClassification", "long")],
    train_config="base",
    lengths={"long": 150},
    config_errors=[(dict(BASE, relative_attention_num_buckets=16), "relative_attention_num_buckets=16 is too small")],
)
