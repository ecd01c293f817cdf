"""Fine-tuning the real all-MiniLM-L6-v2 weights on a small labelled set reaches >= 90% accuracy."""
import numpy as np

import transformers_jax as tj
from train.collators import DataCollatorWithPadding
from train.data import tokenize_rows
from train.trainer import Trainer
from train.training_args import TrainingArguments

SPORT = ["football", "tennis match", "marathon", "goalkeeper", "basketball team", "swimming race", "the referee",
         "a penalty kick", "the championship", "cycling stage", "the final whistle", "a slam dunk"]
FOOD = ["the soup", "fresh bread", "a chocolate cake", "the pasta sauce", "roasted vegetables", "the omelette",
        "a spicy curry", "grilled salmon", "the salad dressing", "a pot of rice", "the pancakes", "lemon pie"]
FRAMES = ["I really enjoyed {} yesterday.", "Everyone talked about {} all evening.", "My brother cannot stop thinking about {}.",
          "We watched closely as {} came together.", "Nobody expected {} to be like that.", "Tell me more about {}."]


def labelled_rows(count: int, seed: int):
    rng = np.random.RandomState(seed)
    rows = []
    for _ in range(count):
        label = int(rng.randint(2))
        topic = (SPORT, FOOD)[label]
        rows.append({"text": FRAMES[rng.randint(len(FRAMES))].format(topic[rng.randint(len(topic))]),
                     "label": ("sport", "food")[label]})
    return rows


def test_minilm_fine_tuning_reaches_90_percent(minilm_dir, tmp_path):
    tokenizer = tj.AutoTokenizer.from_pretrained(minilm_dir)
    label2id = {"sport": 0, "food": 1}
    model = tj.AutoModelForSequenceClassification.from_pretrained(
        minilm_dir, num_labels=2, label2id=label2id, id2label={0: "sport", 1: "food"})
    train = tokenize_rows(labelled_rows(96, 0), tokenizer, label_field="label", label2id=label2id, max_length=16)
    held_out = tokenize_rows(labelled_rows(64, 1), tokenizer, label_field="label", label2id=label2id, max_length=16)

    def accuracy(pred):
        return {"accuracy": float((pred.predictions.argmax(-1) == pred.label_ids).mean())}

    args = TrainingArguments(output_dir=str(tmp_path), num_train_epochs=1, per_device_train_batch_size=2,
                             per_device_eval_batch_size=8, learning_rate=3e-4, warmup_ratio=0.1, weight_decay=0.01,
                             logging_steps=4, save_strategy="no", report_to="none", disable_tqdm=True)
    trainer = Trainer(model, args, train_dataset=train, eval_dataset=held_out,
                      data_collator=DataCollatorWithPadding(tokenizer, padding="max_length", max_length=16),
                      compute_metrics=accuracy, processing_class=tokenizer)
    before = trainer.evaluate()["eval_accuracy"]
    trainer.train()
    after = trainer.evaluate()
    assert after["eval_accuracy"] >= 0.9, (before, after)
    assert after["eval_loss"] < 0.5
