"""The main job on the real shipped models.

1. all-MiniLM-L6-v2 (BERT): sentence embeddings (mean pooling) and their cosine similarities.
2. SmolLM2-135M-Instruct (Llama, 4-bit GGUF): the most likely next tokens after a chat prompt, and
   the model's answer through the chat template and compiled greedy generate().
"""
import sys
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import transformers_jax as tj  # noqa: E402
from transformers_jax.generation.utils import chat  # noqa: E402
from transformers_jax.utils import minilm_dir, smollm2_gguf  # noqa: E402


def sentence_embeddings():
    sentences = ["A man is eating food.", "A man is eating a piece of bread.", "The girl is carrying a baby.",
                 "A monkey is playing drums."]
    tokenizer = tj.AutoTokenizer.from_pretrained(minilm_dir())
    model = tj.AutoModel.from_pretrained(minilm_dir())
    batch = tokenizer(sentences, padding=True, truncation=True, return_tensors="jax")
    hidden = model(**batch).last_hidden_state  # [B, T, D]
    mask = batch["attention_mask"][..., None].astype(hidden.dtype)
    embeddings = (hidden * mask).sum(1) / mask.sum(1)
    embeddings = embeddings / jnp.linalg.norm(embeddings, axis=-1, keepdims=True)
    similarity = np.asarray(embeddings @ embeddings.T)
    print(f"all-MiniLM-L6-v2: {model.num_parameters():,} parameters, embeddings {tuple(embeddings.shape)}")
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


if __name__ == "__main__":
    sentence_embeddings()
    next_tokens()
