"""T5: pre-norm RMS layers without biases, a relative position bias (8 buckets up to distance 6, shorter
than the test inputs) shared by each stack's layers. ``base`` is v1.0 (ReLU MLP, a tied LM head over
decoder outputs scaled by d_model ** -0.5; heads 6 wide, so the attention's inner width 24 is not
d_model 32); ``asymmetric`` has 3 decoder layers to the encoder's 2 (HF's ``generate`` cannot run it:
its cache has ``num_layers`` layers, so only the bare model is compared); ``v1_1`` is v1.1 (gated GELU,
``tie_word_embeddings=False``, which Hugging Face v5 reads as an unscaled head tied to ``shared``)."""
import transformers as hf

from seq2seq_cases import Seq2SeqFamily

BASE = dict(vocab_size=99, d_model=32, d_kv=6, d_ff=37, num_layers=2, num_decoder_layers=2, num_heads=4,
            relative_attention_num_buckets=8, relative_attention_max_distance=6, feed_forward_proj="relu",
            pad_token_id=0, eos_token_id=1, decoder_start_token_id=0)
V1_1 = dict(BASE, d_kv=8, feed_forward_proj="gated-gelu", tie_word_embeddings=False)
HEADS = ("Model", "ForConditionalGeneration", "EncoderModel", "ForSequenceClassification", "ForQuestionAnswering",
         "ForTokenClassification")

FAMILY = Seq2SeqFamily(
    name="t5", hf_config_class=hf.T5Config,
    heads={f"T5{h}": getattr(hf, f"T5{h}") for h in HEADS},
    configs={"base": BASE, "asymmetric": dict(BASE, num_decoder_layers=3), "v1_1": V1_1},
    # v1.1's LM head is compared both ways in test_t5_untied_lm_head_checkpoints (tied here, untied there).
    parity=[(f"T5{h}", "base") for h in HEADS] + [("T5Model", "asymmetric"), ("T5Model", "v1_1")],
)
