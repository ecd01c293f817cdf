"""BART: post-norm, learned positions from row 2, embedding LayerNorm; scaled embeddings in the base
config; the untied config gives each stack its own table next to ``shared`` and an own ``lm_head``."""
import transformers as hf

from seq2seq_cases import Seq2SeqFamily

BASE = dict(vocab_size=99, d_model=32, encoder_layers=2, decoder_layers=3, encoder_attention_heads=4,
            decoder_attention_heads=2, encoder_ffn_dim=37, decoder_ffn_dim=29, max_position_embeddings=40,
            pad_token_id=1, bos_token_id=0, eos_token_id=2, decoder_start_token_id=2, scale_embedding=True)
HEADS = ("Model", "ForConditionalGeneration", "ForSequenceClassification", "ForQuestionAnswering", "ForCausalLM")

FAMILY = Seq2SeqFamily(
    name="bart", hf_config_class=hf.BartConfig,
    heads={f"Bart{h}": getattr(hf, f"Bart{h}") for h in HEADS},
    configs={"base": BASE, "untied": dict(BASE, scale_embedding=False, tie_word_embeddings=False,
                                          activation_function="relu")},
    parity=[(f"Bart{h}", "base") for h in HEADS] + [("BartForConditionalGeneration", "untied"),
                                                    ("BartModel", "untied"), ("BartForCausalLM", "untied")],
)
