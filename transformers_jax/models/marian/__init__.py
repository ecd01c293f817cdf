from transformers_jax.models.marian import modeling_marian as _modeling
from transformers_jax.models.marian.configuration_marian import MarianConfig

__all__ = ["MarianConfig", "MarianPreTrainedModel", "MarianModel", "MarianMTModel", "MarianForCausalLM"]
globals().update({name: getattr(_modeling, name) for name in __all__ if name != "MarianConfig"})
