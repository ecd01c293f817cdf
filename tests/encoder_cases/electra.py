"""ELECTRA through the shared encoder tests: embeddings narrower than the hidden size
(``embeddings_project``) and as wide (no projection), two token types, the discriminator
(ElectraForPreTraining: replaced-token labels [B, T], BCE over attended tokens), the generator
(ElectraForMaskedLM: ``generator_lm_head`` tied or not), the GELU sequence classifier, and multiple
choice through the sequence summary (default "first" + projection + GELU; "mean" without projection
and with tanh; the last position without an activation)."""
import transformers as hf

from encoder_cases import EncoderFamily

BASE = dict(vocab_size=99, embedding_size=16, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
            intermediate_size=37, max_position_embeddings=40, type_vocab_size=2, hidden_act="gelu_new")
HEADS = ("Model", "ForPreTraining", "ForMaskedLM", "ForSequenceClassification", "ForTokenClassification",
         "ForQuestionAnswering", "ForMultipleChoice")


def replaced_token_labels(rng, ids, mask):
    """The discriminator's labels: 1 where a token was replaced, on every position (padding included:
    the loss must leave those out through the attention mask)."""
    return {"labels": rng.randint(0, 2, ids.shape)}


FAMILY = EncoderFamily(
    name="electra", hf_config_class=hf.ElectraConfig,
    heads={f"Electra{h}": getattr(hf, f"Electra{h}") for h in HEADS},
    configs={
        "base": BASE,
        # embedding_size == hidden_size: no embeddings_project; an untied generator head; a summary
        # that averages all positions, has no projection and applies tanh (sequence classification
        # keeps GELU whatever summary_activation says)
        "wide_untied_mean": dict(BASE, embedding_size=32, tie_word_embeddings=False, summary_type="mean",
                                 summary_use_proj=False, summary_activation="tanh", hidden_act="gelu"),
        # the last position without an index (as HF's multiple choice passes none), no activation ("linear"),
        # and summary_first_dropout (a key ElectraConfig does not declare; HF reads it when present)
        "cls_index_summary": dict(BASE, summary_type="cls_index", summary_activation="linear", summary_first_dropout=0.2),
    },
    parity=[*((f"Electra{h}", "base") for h in HEADS),
            *((f"Electra{h}", "wide_untied_mean") for h in ("Model", "ForMaskedLM", "ForSequenceClassification",
                                                            "ForMultipleChoice")),
            ("ElectraForMultipleChoice", "cls_index_summary")],
    train_config="base",
    pretraining_labels=replaced_token_labels, pretraining_has_mlm_labels=False,
)
