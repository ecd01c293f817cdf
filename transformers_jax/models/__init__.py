"""Model families. Importing this package registers every family with the Auto classes."""
from transformers_jax.models import bert, llama  # noqa: F401
