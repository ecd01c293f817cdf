"""Text generation: GenerationConfig, jittable logits processors and the compiled decoding loop."""
from transformers_jax.generation.configuration_utils import GENERATION_CONFIG_NAME, GenerationConfig
from transformers_jax.generation.utils import GenerationMixin, bucket_size, chat

__all__ = ["GenerationConfig", "GenerationMixin", "GENERATION_CONFIG_NAME", "bucket_size", "chat"]
