"""The main job on the real shipped models.

1. all-MiniLM-L6-v2 (BERT): sentence embeddings (mean pooling) and their cosine similarities.
2. SmolLM2-135M-Instruct (Llama, 4-bit GGUF): the most likely next tokens after a chat prompt, and
   the model's answer through the chat template and compiled greedy generate().
3. Gemma 3 270M (base model, Q4_K_M GGUF, assembled by scripts/fetch_gemma3.py): a prompt completed
   through generate(). Gemma is provided under and subject to the Gemma Terms of Use.
4. Fine-tuning all-MiniLM-L6-v2 with the Trainer: a question-vs-statement classifier trained on a
   few generated sentences, evaluated on sentences it has not seen, exported as a PyTorch directory.
"""
import itertools
import tempfile
import sys
from pathlib import Path

import jax
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import transformers_jax as tj  # noqa: E402
from transformers_jax.generation.utils import chat  # noqa: E402
from serving.cli import shipped_smollm2_gguf as smollm2_gguf  # noqa: E402
from train import DataCollatorWithPadding, Trainer, TrainingArguments  # noqa: E402
from train.cli import shipped_minilm_dir as minilm_dir  # noqa: E402


def sentence_embeddings():
    sentences = ["A man is eating food.", "A man is eating a piece of bread.", "The girl is carrying a baby.",
                 "A monkey is playing drums."]
    extractor = tj.pipeline("feature-extraction", model=str(minilm_dir()), batch_size=4)
    token_vectors = extractor(sentences, return_tensors=True)  # one [1, T, D] array per sentence
    embeddings = np.stack([np.asarray(v)[0].mean(axis=0) for v in token_vectors])  # mean pooling
    embeddings /= np.linalg.norm(embeddings, axis=-1, keepdims=True)
    similarity = embeddings @ embeddings.T
    print(f"all-MiniLM-L6-v2 through pipeline('feature-extraction'): {extractor.model.num_parameters():,} "
          f"parameters, sentence embeddings {embeddings.shape}, cosine similarities:")
    for i, sentence in enumerate(sentences):
        print(f"  {sentence:<36}" + " ".join(f"{s:5.2f}" for s in similarity[i]))


def next_tokens():
    path = smollm2_gguf()
    tokenizer = tj.AutoTokenizer.from_pretrained(path.parent, gguf_file=path.name)
    model = tj.AutoModelForCausalLM.from_pretrained(path.parent, gguf_file=path.name)
    messages = [{"role": "user", "content": "What is the capital of France?"}]
    ids = tokenizer.apply_chat_template(messages, add_generation_prompt=True, return_tensors="jax")
    logits = model(ids).logits[0, -1]
    probs = jax.nn.softmax(logits)
    top = np.argsort(-np.asarray(probs))[:5]
    print(f"\nSmolLM2-135M-Instruct ({model.num_parameters():,} parameters, from {path.name})")
    print(f"  prompt: {messages[0]['content']!r}; most likely next tokens:")
    for token in top:
        print(f"  {tokenizer.decode([int(token)])!r:>14}  p={float(probs[token]):.3f}")
    answer = chat(model, tokenizer, messages, max_new_tokens=48, do_sample=False)
    print(f"  generate(): {answer!r}")
    generator = tj.pipeline("text-generation", model=model, tokenizer=tokenizer)
    chats = [[{"role": "user", "content": question}] for question in
             ("What is the capital of France?", "Name three primary colors.")]
    for messages, result in zip(chats, generator(chats, max_new_tokens=32, do_sample=False, batch_size=2)):
        reply = result[0]["generated_text"][-1]["content"]
        print(f"  pipeline('text-generation'): {messages[0]['content']!r} -> {reply!r}")


def gemma3_completion():
    path = Path(__file__).resolve().parents[1] / ".cache" / "real_weights" / "gemma-3-270m-q4_k_m.gguf"
    if not path.is_file():
        print(f"\nGemma 3 270M: {path} is missing (run scripts/fetch_gemma3.py); skipped")
        return
    tokenizer = tj.AutoTokenizer.from_pretrained(path.parent, gguf_file=path.name)
    model = tj.AutoModelForCausalLM.from_pretrained(path.parent, gguf_file=path.name)
    prompt = "The three primary colors are"
    ids = tokenizer(prompt, return_tensors="np")["input_ids"]
    out = np.asarray(model.generate(ids, max_new_tokens=24, do_sample=False))[0, ids.shape[1]:]
    print(f"\nGemma 3 270M base ({model.num_parameters():,} parameters, from {path.name}; "
          "Gemma Terms of Use apply: https://ai.google.dev/gemma/terms)")
    print(f"  prompt: {prompt!r}")
    print(f"  generate(): {tokenizer.decode(out, skip_special_tokens=True)!r}")


def fine_tune():
    subjects = ["the train", "your sister", "this recipe", "the new library", "our teacher", "the weather",
                "that old bridge", "the museum", "his garden", "the river"]
    verbs = ["leave early", "look nice", "work well", "open on Sundays", "need help", "change quickly"]
    rows = []
    for subject, verb in itertools.product(subjects, verbs):
        rows.append((f"Does {subject} {verb}?", 1))
        rows.append((f"{subject.capitalize()} does {verb}.", 0))
    tokenizer = tj.AutoTokenizer.from_pretrained(minilm_dir())
    model = tj.AutoModelForSequenceClassification.from_pretrained(
        minilm_dir(), num_labels=2, id2label={0: "statement", 1: "question"}, label2id={"statement": 0, "question": 1})

    def features(pairs):
        encoded = tokenizer([text for text, _ in pairs], truncation=True, max_length=16)
        return [{"input_ids": ids, "attention_mask": mask, "labels": label}
                for ids, mask, (_, label) in zip(encoded["input_ids"], encoded["attention_mask"], pairs)]

    held_out = [row for row in rows if "garden" in row[0] or "river" in row[0]]  # subjects never trained on
    train = [row for row in rows if row not in held_out]
    with tempfile.TemporaryDirectory() as out:
        args = TrainingArguments(output_dir=out, num_train_epochs=2, per_device_train_batch_size=8,
                                 learning_rate=1e-4, warmup_ratio=0.1, logging_steps=5, save_strategy="no",
                                 report_to="jsonl", disable_tqdm=True, check_memory=False)
        trainer = Trainer(model, args, train_dataset=features(train), eval_dataset=features(held_out),
                          data_collator=DataCollatorWithPadding(tokenizer, padding="max_length", max_length=16),
                          compute_metrics=lambda p: {"accuracy": float((p.predictions.argmax(-1) == p.label_ids).mean())},
                          processing_class=tokenizer)
        before = trainer.evaluate()
        result = trainer.train()
        after = trainer.evaluate()
        trainer.save_model(Path(out) / "final")
        exported = sorted(f.name for f in (Path(out) / "final").iterdir())
        classifier = tj.pipeline("text-classification", model=str(Path(out) / "final"))
        probes = ["Does the museum open on Sundays?", "The museum does open on Sundays."]
        verdicts = classifier(probes)
    print(f"\nFine-tuning all-MiniLM-L6-v2 as a question/statement classifier ({len(train)} training sentences, "
          f"{result.global_step} steps on {trainer.mesh.size} device(s))")
    print(f"  held-out accuracy {before['eval_accuracy']:.2f} -> {after['eval_accuracy']:.2f}, "
          f"eval loss {before['eval_loss']:.3f} -> {after['eval_loss']:.3f}")
    print(f"  exported for PyTorch: {', '.join(exported)}")
    for text, verdict in zip(probes, verdicts):
        print(f"  pipeline('text-classification') on the export: {text!r} -> {verdict['label']} "
              f"({verdict['score']:.2f})")


if __name__ == "__main__":
    sentence_embeddings()
    next_tokens()
    gemma3_completion()
    fine_tune()
