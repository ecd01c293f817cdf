"""mT5: T5 v1.1 under its own names and defaults (gated GELU; never scales the decoder output)."""
import transformers as hf

from seq2seq_cases import Seq2SeqFamily

BASE = dict(vocab_size=99, d_model=32, d_kv=8, d_ff=37, num_layers=2, num_decoder_layers=2, num_heads=4,
            relative_attention_num_buckets=8, relative_attention_max_distance=6, pad_token_id=0, eos_token_id=1,
            decoder_start_token_id=0)
HEADS = ("Model", "ForConditionalGeneration", "EncoderModel", "ForSequenceClassification", "ForQuestionAnswering",
         "ForTokenClassification")

FAMILY = Seq2SeqFamily(
    name="mt5", hf_config_class=hf.MT5Config,
    heads={f"MT5{h}": getattr(hf, f"MT5{h}") for h in HEADS},
    configs={"base": BASE},
    parity=[("MT5Model", "base"), ("MT5ForTokenClassification", "base")],
)
