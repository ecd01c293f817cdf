"""mBART: pre-norm layers and a final ``layer_norm`` after each stack; decoder inputs start with each
row's last non-padding token (no decoder_start_token_id)."""
import transformers as hf

from seq2seq_cases import Seq2SeqFamily

BASE = dict(vocab_size=99, d_model=32, encoder_layers=2, decoder_layers=2, encoder_attention_heads=4,
            decoder_attention_heads=4, encoder_ffn_dim=37, decoder_ffn_dim=37, max_position_embeddings=40,
            pad_token_id=1, bos_token_id=0, eos_token_id=2)
HEADS = ("Model", "ForConditionalGeneration", "ForSequenceClassification", "ForQuestionAnswering", "ForCausalLM")

FAMILY = Seq2SeqFamily(
    name="mbart", hf_config_class=hf.MBartConfig,
    heads={f"MBart{h}": getattr(hf, f"MBart{h}") for h in HEADS},
    configs={"base": BASE},
    parity=[(f"MBart{h}", "base") for h in HEADS],
)
