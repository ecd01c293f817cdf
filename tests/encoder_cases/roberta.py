"""RoBERTa, XLM-RoBERTa and CamemBERT through the shared encoder tests: padding-offset positions
(pad id 1, so the positions of padded rows differ from BERT's), one token type, the ``lm_head``
MLM head tied or not, ``classifier.dense``/``out_proj`` sequence head, pooler-based multiple choice."""
import transformers as hf

from encoder_cases import EncoderFamily

BASE = dict(vocab_size=99, hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=37,
            max_position_embeddings=40, type_vocab_size=1, pad_token_id=1, bos_token_id=0, eos_token_id=2,
            hidden_act="gelu_new")
HEADS = ("Model", "ForMaskedLM", "ForSequenceClassification", "ForTokenClassification", "ForQuestionAnswering",
         "ForMultipleChoice")


def _family(prefix: str, hf_config_class, name: str, all_heads: bool) -> EncoderFamily:
    heads = {f"{prefix}{h}": getattr(hf, f"{prefix}{h}") for h in HEADS}
    parity = [(f"{prefix}{h}", "base") for h in (HEADS if all_heads else ("ForMaskedLM", "ForSequenceClassification"))]
    if all_heads:
        parity.append((f"{prefix}ForMaskedLM", "untied_two_types"))
    return EncoderFamily(
        name=name, hf_config_class=hf_config_class, heads=heads,
        configs={"base": BASE, "untied_two_types": dict(BASE, type_vocab_size=2, tie_word_embeddings=False)},
        parity=parity, train_config="base" if all_heads else None,
    )


FAMILIES = [
    _family("Roberta", hf.RobertaConfig, "roberta", all_heads=True),
    _family("XLMRoberta", hf.XLMRobertaConfig, "xlm-roberta", all_heads=False),
    _family("Camembert", hf.CamembertConfig, "camembert", all_heads=False),
]
