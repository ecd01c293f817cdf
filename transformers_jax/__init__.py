"""transformers_jax: Hugging Face style Transformer models on pure-functional JAX."""
from transformers_jax.configuration_utils import PretrainedConfig
from transformers_jax.generation import GenerationConfig, GenerationMixin
from transformers_jax.modeling_utils import PreTrainedModel
from transformers_jax.models.auto import (
    AutoConfig,
    AutoModel,
    AutoModelForCausalLM,
    AutoModelForMaskedLM,
    AutoModelForMultipleChoice,
    AutoModelForNextSentencePrediction,
    AutoModelForPreTraining,
    AutoModelForQuestionAnswering,
    AutoModelForSequenceClassification,
    AutoModelForTokenClassification,
)
from transformers_jax.models.bert import (
    BertConfig,
    BertForMaskedLM,
    BertForMultipleChoice,
    BertForNextSentencePrediction,
    BertForPreTraining,
    BertForQuestionAnswering,
    BertForSequenceClassification,
    BertForTokenClassification,
    BertModel,
)
from transformers_jax.models.llama import LlamaConfig, LlamaForCausalLM, LlamaForSequenceClassification, LlamaModel


def __getattr__(name):
    # The tokenizer layer is imported lazily so the model core loads without it.
    if name in ("AutoTokenizer", "PreTrainedTokenizerFast", "BatchEncoding"):
        from transformers_jax import tokenization

        return getattr(tokenization, name)
    raise AttributeError(f"module 'transformers_jax' has no attribute {name!r}")


__version__ = "0.1.0"
