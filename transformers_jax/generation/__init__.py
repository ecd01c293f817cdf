"""Text generation: GenerationConfig, jittable logits processors, token choice, length buckets and
the compiled decoding loop."""
from transformers_jax.generation.buckets import bucket_size, bucket_sizes
from transformers_jax.generation.configuration_utils import (
    GENERATION_CONFIG_NAME,
    GenerationConfig,
    resolve_eos_token_ids,
)
from transformers_jax.generation.sampling import SamplingArgumentError, choose_tokens, validate_sampling_args
from transformers_jax.generation.utils import GenerationMixin, chat

__all__ = ["GenerationConfig", "GenerationMixin", "GENERATION_CONFIG_NAME", "SamplingArgumentError", "bucket_size",
           "bucket_sizes", "chat", "choose_tokens", "resolve_eos_token_ids", "validate_sampling_args"]
