"""The sequence-to-sequence recipe of ``transformers-jax finetune`` (configs/finetune_t5_summarize.yaml) end to end
on a tiny random BART and a tiny BART tokenizer: training, generation-based ROUGE, export; and its data handling and
error messages."""
import json
from pathlib import Path

import numpy as np
import pytest

import transformers_jax as tj
from test_scripts import last_json, run_script
from test_tokenization_seq2seq import _bart
from train import cli, finetune, finetune_seq2seq
from train.training_args import Seq2SeqTrainingArguments

ROOT = Path(__file__).resolve().parents[1]
RECIPE = ROOT / "configs" / "finetune_t5_summarize.yaml"
WORDS = "the cat sat on a mat and the dog ran to the park while birds sang in tall green trees".split()
FAST = ["--set", "training.disable_tqdm=true", "--set", "training.check_memory=false"]


@pytest.fixture(scope="module")
def tiny_bart_dir(tmp_path_factory):
    """A tiny random BART saved with a tiny byte-level BPE tokenizer (400 ids)."""
    out = tmp_path_factory.mktemp("tiny_bart")
    _bart(out)
    tokenizer = tj.AutoTokenizer.from_pretrained(out)
    config = tj.BartConfig(vocab_size=len(tokenizer), d_model=32, encoder_layers=1, decoder_layers=1,
                           encoder_attention_heads=2, decoder_attention_heads=2, encoder_ffn_dim=64,
                           decoder_ffn_dim=64, max_position_embeddings=64)
    tj.BartForConditionalGeneration(config, seed=0).save_pretrained(out)
    return out


def write_pairs(path: Path, rows: int, seed: int) -> Path:
    """Documents of words whose 'summary' is their first three words (learnable by copying)."""
    rng = np.random.RandomState(seed)
    with open(path, "w") as handle:
        for _ in range(rows):
            start, n = rng.randint(len(WORDS)), rng.randint(6, 12)
            words = [WORDS[(start + j) % len(WORDS)] for j in range(n)]
            handle.write(json.dumps({"document": " ".join(words), "summary": " ".join(words[:3])}) + "\n")
    return path


def test_summarization_recipe_end_to_end(tmp_path, tiny_bart_dir):
    """scripts/finetune.py with the recipe, as a user runs it (a subprocess on 8 simulated devices)."""
    train_file = write_pairs(tmp_path / "train.jsonl", 32, seed=0)
    eval_file = write_pairs(tmp_path / "eval.jsonl", 6, seed=1)
    result = run_script(
        "finetune.py", "--config", str(RECIPE), *FAST, "--output_dir", str(tmp_path / "out"), "--max_steps", "4",
        "--set", f"model.name_or_path={tiny_bart_dir}", "--set", f"data.train_file={train_file}",
        "--set", f"data.eval_file={eval_file}", "--set", "data.max_source_length=24",
        "--set", "data.max_target_length=8", "--set", "training.per_device_train_batch_size=1",
        "--set", "training.per_device_eval_batch_size=1", "--set", "training.generation_num_beams=2",
        "--set", "training.learning_rate=1e-3", "--set", "training.label_smoothing_factor=0.1",
        "--set", "training.eval_strategy=no", "--set", "training.save_strategy=no", "--set", "training.logging_steps=1",
    )
    assert result.returncode == 0, result.stderr[-3000:]
    metrics = last_json(result.stdout)
    assert metrics["global_step"] == 4 and np.isfinite(metrics["train_loss"]) and np.isfinite(metrics["eval_loss"])
    for name in ("eval_rouge1", "eval_rouge2", "eval_rougeL", "eval_rougeLsum"):
        assert 0.0 <= metrics[name] <= 1.0, name
    assert 0 < metrics["eval_gen_len"] <= 8  # generation_max_length defaults to data.max_target_length
    final = tmp_path / "out" / "final"
    assert (final / "model.safetensors").is_file() and (final / "tokenizer.json").is_file()
    exported = tj.AutoModelForSeq2SeqLM.from_pretrained(final)
    assert type(exported).__name__ == "BartForConditionalGeneration"


def test_summarization_recipe_parses_and_tokenizes(tmp_path, tiny_bart_dir):
    recipe = cli.load_recipe(RECIPE, [f"data.train_file={tmp_path / 'x.jsonl'}"], finetune.DATA_DEFAULTS)
    assert isinstance(recipe.training, Seq2SeqTrainingArguments)
    assert recipe.training.predict_with_generate and recipe.training.generation_num_beams == 4
    assert finetune.task_of(recipe.data) == "seq2seq"
    data = finetune_seq2seq.seq2seq_data(recipe.data, finetune.CLASSIFICATION_DEFAULTS)
    assert (data["source_prefix"], data["source_field"], data["max_target_length"]) == ("summarize: ", "document", 128)
    data.update(max_source_length=32, max_target_length=12)
    tokenizer = tj.AutoTokenizer.from_pretrained(tiny_bart_dir)
    rows = [{"document": "the cat sat on the mat", "summary": "cat on mat"},
            {"document": " ".join(WORDS), "summary": " ".join(WORDS)}]
    features = finetune_seq2seq.seq2seq_features(rows, tokenizer, data)
    assert [len(f["input_ids"]) for f in features] == [32, 32] and [len(f["labels"]) for f in features] == [12, 12]
    assert tokenizer.decode(features[0]["input_ids"], skip_special_tokens=True) == "summarize: the cat sat on the mat"
    labels = np.asarray(features[0]["labels"])
    assert (labels[-1] == -100) and tokenizer.decode(labels[labels != -100], skip_special_tokens=True) == "cat on mat"
    assert -100 not in features[1]["labels"]  # truncated to max_target_length, nothing padded
    args = finetune_seq2seq.seq2seq_arguments(cli.training_arguments({"output_dir": "x"}), data)
    assert isinstance(args, Seq2SeqTrainingArguments) and args.generation_max_length == 12


@pytest.mark.parametrize("sets, message", [
    (["data.task=translate"], "data.task='translate' is not one of"),
    (["data.task=classification", "data.target_field=summary"], "data.source_field applies to data.task: seq2seq"),
    (["data.label_field=topic"], "data.label_field belongs to sequence classification"),
    (["data.metrics=[meteor]"], r"data.metrics: unknown metric\(s\) \['meteor'\]"),
    (["data.max_target_length=1"], "data.max_target_length must be an integer >= 2"),
])
def test_recipe_errors_name_the_key(tmp_path, sets, message):
    recipe = cli.load_recipe(RECIPE, sets, finetune.DATA_DEFAULTS)
    with pytest.raises(cli.RecipeError, match=message):
        if finetune.task_of(recipe.data) == "seq2seq":
            finetune_seq2seq.seq2seq_data(recipe.data, finetune.CLASSIFICATION_DEFAULTS)


def test_missing_target_column_is_named(tmp_path, tiny_bart_dir, capsys):
    (tmp_path / "train.jsonl").write_text(json.dumps({"document": "a b c", "title": "a"}) + "\n")
    with pytest.raises(SystemExit) as exit_info:
        finetune.main(["--config", str(RECIPE), *FAST, "--output_dir", str(tmp_path / "out"),
                       "--set", f"model.name_or_path={tiny_bart_dir}", "--set", f"data.train_file={tmp_path / 'train.jsonl'}"])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert "data.train_file" in err and "'summary'" in err, err
