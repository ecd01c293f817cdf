"""umT5: mT5 with a relative bias table in every self-attention layer; heads 6 wide (inner width 24, not
d_model 32). ``scaled`` ties the LM head (HF v5 then scales the decoder output); ``asymmetric`` has 3
decoder layers to the encoder's 2 (each with its own table)."""
import transformers as hf

from seq2seq_cases import Seq2SeqFamily

BASE = dict(vocab_size=99, d_model=32, d_kv=6, d_ff=37, num_layers=2, num_decoder_layers=2, num_heads=4,
            relative_attention_num_buckets=8, relative_attention_max_distance=6, pad_token_id=0, eos_token_id=1,
            decoder_start_token_id=0, tie_word_embeddings=False)
HEADS = ("Model", "ForConditionalGeneration", "EncoderModel", "ForSequenceClassification", "ForQuestionAnswering",
         "ForTokenClassification")

FAMILY = Seq2SeqFamily(
    name="umt5", hf_config_class=hf.UMT5Config,
    heads={f"UMT5{h}": getattr(hf, f"UMT5{h}") for h in HEADS},
    configs={"base": BASE, "scaled": dict(BASE, tie_word_embeddings=True),
             "asymmetric": dict(BASE, num_decoder_layers=3)},
    parity=[("UMT5ForConditionalGeneration", "scaled"), ("UMT5ForSequenceClassification", "asymmetric")],
)
