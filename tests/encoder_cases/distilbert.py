"""DistilBERT through the shared encoder tests: HF's config names (``dim``, ``n_layers``,
``hidden_dim``, ``activation``...), no token types, DistilBERT's own heads (``vocab_projector``
tied or not, ``pre_classifier`` + ReLU sequence and multiple-choice heads, ``qa_dropout``), and the
sinusoidal position table (``sinusoidal_pos_embds``: a saved, trainable table filled with sin/cos)."""
import transformers as hf

from encoder_cases import EncoderFamily

BASE = dict(vocab_size=99, dim=32, n_layers=2, n_heads=4, hidden_dim=37, max_position_embeddings=40,
            activation="gelu", pad_token_id=0)
HEADS = ("Model", "ForMaskedLM", "ForSequenceClassification", "ForTokenClassification", "ForQuestionAnswering",
         "ForMultipleChoice")

FAMILY = EncoderFamily(
    name="distilbert", hf_config_class=hf.DistilBertConfig,
    heads={f"DistilBert{h}": getattr(hf, f"DistilBert{h}") for h in HEADS},
    configs={
        "base": BASE,
        # sinusoidal positions, ReLU MLPs and an untied vocab_projector
        "sinusoidal_relu_untied": dict(BASE, sinusoidal_pos_embds=True, activation="relu", tie_word_embeddings=False),
    },
    parity=[*((f"DistilBert{h}", "base") for h in HEADS),
            ("DistilBertModel", "sinusoidal_relu_untied"), ("DistilBertForMaskedLM", "sinusoidal_relu_untied")],
    train_config="base",
)
