"""ALBERT through the shared encoder tests: factorised embeddings (embedding_size 16 under hidden
32, projected by ``encoder.embedding_hidden_mapping_in``), layers sharing group params (one group
for 3 layers; 2 groups for 4 layers; 2 groups for 3 layers, where HF's float group formula puts
layers 0-1 in group 0 and layer 2 in group 1), the MLM head at the embedding width tied or not,
and the pre-training head's sentence-order labels."""
import transformers as hf

from encoder_cases import EncoderFamily

BASE = dict(vocab_size=99, embedding_size=16, hidden_size=32, num_hidden_layers=3, num_hidden_groups=1,
            num_attention_heads=4, intermediate_size=37, max_position_embeddings=40, type_vocab_size=2,
            hidden_act="gelu_new", classifier_dropout_prob=0.1)
CONFIGS = {
    "one_group": BASE,
    "two_groups": dict(BASE, num_hidden_layers=4, num_hidden_groups=2),
    "uneven_groups_untied": dict(BASE, num_hidden_layers=3, num_hidden_groups=2, tie_word_embeddings=False,
                                 hidden_act="gelu"),
}
HEADS = ("Model", "ForPreTraining", "ForMaskedLM", "ForSequenceClassification", "ForTokenClassification",
         "ForQuestionAnswering", "ForMultipleChoice")


def sentence_order_labels(rng, ids, mask):
    return {"sentence_order_label": rng.randint(0, 2, ids.shape[0])}


FAMILY = EncoderFamily(
    name="albert", hf_config_class=hf.AlbertConfig,
    heads={f"Albert{h}": getattr(hf, f"Albert{h}") for h in HEADS},
    configs=CONFIGS,
    parity=[(f"Albert{h}", config) for config in ("one_group", "two_groups") for h in HEADS]
    + [("AlbertModel", "uneven_groups_untied"), ("AlbertForPreTraining", "uneven_groups_untied"),
       ("AlbertForMaskedLM", "uneven_groups_untied")],
    train_config="two_groups",
    pretraining_labels=sentence_order_labels,
    config_errors=[(dict(BASE, inner_group_num=2), "inner_group_num=2 is not supported"),
                   (dict(BASE, num_hidden_groups=4), "num_hidden_groups=4 must be between 1 and num_hidden_layers=3")],
)
