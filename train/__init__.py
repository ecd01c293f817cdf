"""Training: Trainer, TrainingArguments, optax optimizers and schedules, data collators and
loaders, orbax checkpoints, metrics logging."""
from train.checkpointing import CheckpointManager, export_to_hf  # noqa: F401
from train.collators import (  # noqa: F401
    DataCollatorForLanguageModeling,
    DataCollatorWithPadding,
    default_data_collator,
    pack_sequences,
)
from train.data import (  # noqa: F401
    ArrayDataset,
    DataLoader,
    StreamingDataLoader,
    TokenFileDataset,
    load_rows,
    tokenize_rows,
)
from train.trainer import (  # noqa: F401
    EvalPrediction,
    PredictionOutput,
    Trainer,
    TrainerCallback,
    TrainerControl,
    TrainerState,
    TrainOutput,
)
from train.training_args import TrainingArguments  # noqa: F401
