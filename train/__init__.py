"""Training: Trainer, TrainingArguments, optax optimizers and schedules, data collators and
loaders, orbax checkpoints, metrics logging."""
from train.checkpointing import CheckpointManager, export_to_hf  # noqa: F401
from train.collators import (  # noqa: F401
    DataCollatorForLanguageModeling,
    DataCollatorForSeq2Seq,
    DataCollatorForT5MLM,
    DataCollatorWithPadding,
    compute_input_and_target_lengths,
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
from train.shards import ShardDataset, ShardLoader, index_shuffle  # noqa: F401
from train.trainer import (  # noqa: F401
    EvalPrediction,
    PredictionOutput,
    Trainer,
    TrainerCallback,
    TrainerControl,
    TrainerState,
    TrainOutput,
)
from train.trainer_seq2seq import Seq2SeqTrainer  # noqa: F401
from train.training_args import Seq2SeqTrainingArguments, TrainingArguments  # noqa: F401
