"""GPT-2 through the shared family tests: every head class HF has (double heads included), Conv1D
kernels, the fused c_attn, the tied LM head, and the per-layer attention scale."""
import transformers as hf

from family_cases import Family

BASE = dict(vocab_size=101, n_embd=32, n_layer=2, n_head=4, n_positions=64, pad_token_id=0, bos_token_id=1,
            eos_token_id=2)

FAMILY = Family(
    name="gpt2",
    hf_config_class=hf.GPT2Config,
    heads={
        "GPT2Model": hf.GPT2Model,
        "GPT2LMHeadModel": hf.GPT2LMHeadModel,
        "GPT2DoubleHeadsModel": hf.GPT2DoubleHeadsModel,
        "GPT2ForSequenceClassification": hf.GPT2ForSequenceClassification,
        "GPT2ForTokenClassification": hf.GPT2ForTokenClassification,
        "GPT2ForQuestionAnswering": hf.GPT2ForQuestionAnswering,
    },
    configs={
        "tied": BASE,
        # 1 / (layer + 1) on the scores, an explicit n_inner, exact GELU, an untied LM head, a tanh
        # summary. (reorder_and_upcast_attn is tested in test_gpt2.py: HF's path refuses float64.)
        "layer_scaled": dict(BASE, n_layer=3, n_inner=48, activation_function="gelu", tie_word_embeddings=False,
                             scale_attn_by_inverse_layer_idx=True, summary_activation="tanh"),
    },
    parity=[
        ("GPT2Model", "tied"),
        ("GPT2LMHeadModel", "tied"),
        ("GPT2DoubleHeadsModel", "tied"),
        ("GPT2ForSequenceClassification", "tied"),
        ("GPT2ForTokenClassification", "tied"),
        ("GPT2ForQuestionAnswering", "tied"),
        ("GPT2LMHeadModel", "layer_scaled"),
        ("GPT2DoubleHeadsModel", "layer_scaled"),
    ],
    generation_config="tied",
)
