"""Training: Trainer, TrainingArguments, optax optimizers, collators, orbax checkpoints (issue 4)."""
