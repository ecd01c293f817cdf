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
    AutoModelForSeq2SeqLM,
    AutoModelForSequenceClassification,
    AutoModelForTokenClassification,
)

def __getattr__(name):
    # The tokenizer layer is imported lazily so the model core loads without it.
    if name in ("AutoTokenizer", "PreTrainedTokenizerFast", "BatchEncoding"):
        from transformers_jax import tokenization

        return getattr(tokenization, name)
    # Pipelines too: ``transformers_jax.pipeline("fill-mask", model=...)``.
    if name in ("pipeline", "Pipeline"):
        from transformers_jax import pipelines

        return getattr(pipelines, name)
    # Model and config classes (``LlamaForCausalLM``, ``BertConfig``) come from their family package.
    import importlib

    from transformers_jax.models.auto import family_packages

    for package in family_packages():
        module = importlib.import_module(package)
        if name in getattr(module, "__all__", ()):
            return getattr(module, name)
    raise AttributeError(f"module 'transformers_jax' has no attribute {name!r}")


__version__ = "0.1.0"
