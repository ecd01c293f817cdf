"""The command-line entry points: ``transformers-jax finetune`` and ``pretrain`` (and scripts/pretrain.py)
on tiny inputs (as subprocesses, as a user runs them), recipe overrides and their error messages, and the
large recipes parsed and validated without allocating their params."""
import json
import os
import subprocess
import sys
from pathlib import Path

import jax
import numpy as np
import pytest

from train import cli

ROOT = Path(__file__).resolve().parents[1]
CONFIGS = ROOT / "configs"
from train import finetune, pretrain  # noqa: E402

WORDS = "the cat sat on a mat and the dog ran to the park while birds sang in tall green trees".split()
FAST = ["--set", "training.disable_tqdm=true", "--set", "training.check_memory=false"]


def run_script(name: str, *args: str, timeout: int = 300) -> subprocess.CompletedProcess:
    """``transformers-jax <command>`` (the installed console script), or ``scripts/<name>.py`` when ``name``
    ends in .py, in a fresh CPU-only process with 8 simulated devices."""
    env = {**os.environ, "XLA_FLAGS": "--xla_force_host_platform_device_count=8", "JAX_PLATFORMS": "cpu",
           "HF_HUB_OFFLINE": "1"}
    command = ([sys.executable, str(ROOT / "scripts" / name)] if name.endswith(".py")
               else [str(Path(sys.executable).with_name("transformers-jax")), name])
    return subprocess.run([*command, *args], capture_output=True, text=True, env=env, cwd=ROOT, timeout=timeout)


def last_json(stdout: str) -> dict:
    """The last JSON line a script printed."""
    lines = [line for line in stdout.splitlines() if line.startswith("{")]
    assert lines, f"no JSON line in the output:\n{stdout}"
    return json.loads(lines[-1])


def write_corpus(path: Path, lines: int, seed: int = 0) -> Path:
    rng = np.random.RandomState(seed)
    with open(path, "w") as handle:
        for _ in range(lines):
            start, n = rng.randint(len(WORDS)), rng.randint(5, 14)
            handle.write(" ".join(WORDS[(start + j) % len(WORDS)] for j in range(n)) + "\n")
    return path


@pytest.fixture(scope="module")
def tiny_bert_dir(tmp_path_factory, minilm_dir):
    """A tiny random BERT (MiniLM's 30522-id vocabulary) saved with the MiniLM tokenizer."""
    import transformers_jax as tj

    out = tmp_path_factory.mktemp("tiny_bert")
    config = tj.BertConfig(vocab_size=30522, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                           intermediate_size=64, max_position_embeddings=64)
    tj.BertModel(config, seed=0).save_pretrained(out)
    tj.AutoTokenizer.from_pretrained(minilm_dir).save_pretrained(out)
    return out


@pytest.fixture(scope="module")
def sentiment_csv(tmp_path_factory):
    """Train/eval CSVs with string labels the model can learn (the label is in the text)."""
    out = tmp_path_factory.mktemp("csv")
    rng = np.random.RandomState(0)
    labels = {"good": "pos", "bad": "neg", "okay": "neutral"}
    for name, rows in (("train.csv", 48), ("eval.csv", 16)):
        lines = ["text,label"]
        for _ in range(rows):
            word = list(labels)[rng.randint(3)]
            lines.append(f"the movie was {word} {WORDS[rng.randint(len(WORDS))]},{labels[word]}")
        (out / name).write_text("\n".join(lines) + "\n")
    return out


# ----------------------------------------------------------------------------- fine-tuning
def test_finetune_string_labels(tmp_path, tiny_bert_dir, sentiment_csv):
    """The pmap data-parallel path end to end (the jit path runs in the pretrain commands below)."""
    out = tmp_path / "run"
    proc = run_script("finetune", "--set", f"model.name_or_path={tiny_bert_dir}",
                      "--set", f"data.train_file={sentiment_csv / 'train.csv'}",
                      "--set", f"data.eval_file={sentiment_csv / 'eval.csv'}", "--set", "data.max_length=16",
                      "--set", "training.per_device_train_batch_size=1", "--set", "training.learning_rate=1e-3",
                      "--set", "training.save_strategy=no", "--set", "training.report_to=none",
                      "--output_dir", str(out), "--max_steps", "4", "--parallelism", "pmap", *FAST)
    assert proc.returncode == 0, proc.stderr[-3000:]
    metrics = last_json(proc.stdout)
    assert metrics["global_step"] == 4
    assert 0.0 <= metrics["eval_accuracy"] <= 1.0 and "eval_f1_macro" in metrics  # three classes
    assert np.isfinite(metrics["eval_loss"])
    final = out / "final"
    config = json.loads((final / "config.json").read_text())
    assert config["id2label"] == {"0": "neg", "1": "neutral", "2": "pos"}  # sorted label names
    assert config["label2id"] == {"neg": 0, "neutral": 1, "pos": 2}
    assert config["architectures"] == ["BertForSequenceClassification"]
    assert (final / "model.safetensors").is_file() and (final / "tokenizer.json").is_file()


def test_label_mapping_ints_and_strings():
    assert finetune.label_mapping([{"y": "2"}, {"y": "0"}], "y") == (None, {0: "0", 1: "1", 2: "2"})
    assert finetune.label_mapping([{"y": "b"}, {"y": "a"}], "y") == ({"a": 0, "b": 1}, {0: "a", 1: "b"})
    with pytest.raises(cli.RecipeError, match="all integers or all strings"):
        finetune.label_mapping([{"y": 1.5}, {"y": "a"}], "y")


# ----------------------------------------------------------------------------- pretraining
def test_pretrain_cpu_smoke_loss_goes_down(tmp_path):
    corpus = write_corpus(tmp_path / "corpus.txt", 300)
    out = tmp_path / "smoke"
    proc = run_script("pretrain.py", "--config", str(CONFIGS / "cpu_smoke.yaml"),
                      "--set", f"data.train_file={corpus}", "--output_dir", str(out), "--max_steps", "15", *FAST)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert last_json(proc.stdout)["objective"] == "clm"
    losses = [json.loads(line)["loss"] for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert len(losses) == 3  # logging_steps 5
    assert losses[-1] < losses[0] - 1.0, losses
    config = json.loads((out / "final" / "config.json").read_text())
    assert config["architectures"] == ["LlamaForCausalLM"] and config["hidden_size"] == 64


def test_pretrain_bert_mlm_with_eval(tmp_path, tiny_bert_dir):
    train, evaluation = write_corpus(tmp_path / "train.txt", 40), write_corpus(tmp_path / "eval.txt", 16, seed=1)
    out = tmp_path / "mlm"
    proc = run_script("pretrain", "--set", f"model.name_or_path={tiny_bert_dir}",
                      "--set", f"data.train_file={train}", "--set", f"data.eval_file={evaluation}",
                      "--set", "data.max_length=16", "--set", "training.per_device_train_batch_size=1",
                      "--set", "training.learning_rate=1e-3", "--set", "training.save_strategy=no",
                      "--set", "training.report_to=[jsonl]", "--set", "training.logging_steps=1",
                      "--output_dir", str(out), "--max_steps", "3", *FAST)
    assert proc.returncode == 0, proc.stderr[-3000:]
    metrics = last_json(proc.stdout)
    assert metrics["objective"] == "mlm" and metrics["global_step"] == 3
    assert np.isfinite(metrics["eval_loss"]) and metrics["eval_perplexity"] > 1.0
    assert len((out / "metrics.jsonl").read_text().splitlines()) == 3
    config = json.loads((out / "final" / "config.json").read_text())
    assert config["architectures"] == ["BertForMaskedLM"]


# ----------------------------------------------------------------------------- recipes and errors
def test_overrides_apply_in_order(tmp_path):
    recipe = cli.load_recipe(CONFIGS / "cpu_smoke.yaml",
                             ["training.learning_rate=3e-4", "data.max_length=32", "training.mesh.fsdp=2",
                              "model.config.hidden_size=32", "training.report_to=[jsonl]"],
                             pretrain.DATA_DEFAULTS, [(["training", "max_steps"], 7, "--max_steps")])
    assert recipe.training.learning_rate == pytest.approx(3e-4)  # a float, though PyYAML reads "3e-4" as a string
    assert cli.yaml_load("a: no\nb: true\nc: 1e-4") == {"a": "no", "b": True, "c": 1e-4}  # YAML 1.2 scalars
    assert recipe.training.max_steps == 7
    assert recipe.training.mesh == {"data": -1, "fsdp": 2}
    assert recipe.data["max_length"] == 32 and recipe.data["packing"] is True
    assert recipe.model["config"]["hidden_size"] == 32
    assert cli.build_config(recipe.model).hidden_size == 32
    alias = cli.load_recipe(CONFIGS / "cpu_smoke.yaml", ["data.max_length=null", "data.seq_len=48"],
                            pretrain.DATA_DEFAULTS)
    assert alias.data["max_length"] == 48 and "seq_len" not in alias.data


@pytest.mark.parametrize("sets, message", [
    (["training.learning_rat=1e-3"], r"unknown TrainingArguments \['learning_rat'\]"),
    (["trainin.learning_rate=1e-3"], r"unknown section 'trainin'"),
    (["data.train_fil=x.txt"], r"unknown data key\(s\) \['train_fil'\]"),
    (["learning_rate=1e-3"], r"the key must be SECTION.KEY"),
    (["training.max_steps"], r"expected SECTION.KEY=VALUE"),
    (["training.optim=adamm"], r"optim='adamm' is not one of"),
    (["data.max_length=1"], r"data.max_length must be an integer >= 2"),
    (["data.seq_len=32"], r"data.seq_len=32 and data.max_length=64 disagree"),
])
def test_bad_overrides_name_the_problem(sets, message):
    with pytest.raises(cli.RecipeError, match=message):
        cli.load_recipe(CONFIGS / "cpu_smoke.yaml", sets, pretrain.DATA_DEFAULTS)


def test_bad_recipes_name_the_problem(tmp_path):
    bad_section = tmp_path / "bad.yaml"
    bad_section.write_text("model: {config: {model_type: llama}}\ntrainer: {max_steps: 3}\n")
    with pytest.raises(cli.RecipeError, match=r"unknown recipe section\(s\) \['trainer'\]"):
        cli.load_recipe(bad_section, [], pretrain.DATA_DEFAULTS)
    with pytest.raises(cli.RecipeError, match="recipe file not found"):
        cli.load_recipe(tmp_path / "missing.yaml", [], pretrain.DATA_DEFAULTS)
    both = ["model.name_or_path=x", "training.output_dir=o"]
    with pytest.raises(cli.RecipeError, match="exactly one of model.name_or_path"):
        cli.load_recipe(CONFIGS / "cpu_smoke.yaml", both, pretrain.DATA_DEFAULTS)
    typo = cli.load_recipe(CONFIGS / "cpu_smoke.yaml", ["model.config.hiden_size=8"], pretrain.DATA_DEFAULTS)
    with pytest.raises(cli.RecipeError, match=r"unknown LlamaConfig key\(s\) \['hiden_size'\]"):
        cli.build_config(typo.model)


def test_command_line_errors_exit_with_message(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        pretrain.main(["--config", str(CONFIGS / "cpu_smoke.yaml"), "--set", "training.lerning_rate=1"])
    assert exit_info.value.code == 2
    assert "unknown TrainingArguments ['lerning_rate']" in capsys.readouterr().err
    missing = tmp_path / "nope.txt"
    with pytest.raises(SystemExit):
        pretrain.main(["--config", str(CONFIGS / "cpu_smoke.yaml"), "--set", f"data.train_file={missing}",
                       "--output_dir", str(tmp_path)])
    assert f"data.train_file: file not found: {missing}" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        pretrain.main(["--config", str(CONFIGS / "cpu_smoke.yaml"), "--output_dir", str(tmp_path)])
    assert "data.train_file is required" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        finetune.main(["--set", "model.name_or_path=minilm", "--set", f"data.train_file={missing}",
                       "--output_dir", str(tmp_path)])
    assert f"data.train_file: file not found: {missing}" in capsys.readouterr().err


def test_large_recipes_parse_without_allocating():
    from train.flops import param_count
    from transformers_jax import BertForMaskedLM, LlamaForCausalLM

    llama = cli.load_recipe(CONFIGS / "llama_1b_fsdp.yaml", [], pretrain.DATA_DEFAULTS)
    args, config = llama.training, cli.build_config(llama.model)
    assert (args.sharding, args.remat, args.bf16, args.lr_scheduler_type) == ("fsdp", "full", True, "cosine")
    assert args.mesh == {"data": -1, "fsdp": 8}
    assert (config.hidden_size, config.num_hidden_layers, config.num_key_value_heads) == (2048, 16, 8)
    assert 1.0e9 < param_count(LlamaForCausalLM.abstract_params(config)) < 1.5e9  # eval_shape: nothing allocated
    assert llama.data["max_length"] <= config.max_position_embeddings

    bert = cli.load_recipe(CONFIGS / "bert_base_mlm.yaml", [], pretrain.DATA_DEFAULTS)
    args, config = bert.training, cli.build_config(bert.model)
    assert (args.learning_rate, args.weight_decay, args.sharding) == (1e-4, 0.01, "fsdp")
    assert args.warmup_steps > 0 and bert.data["max_length"] == 128
    assert pretrain.objective(config) == "mlm"
    assert 1.05e8 < param_count(BertForMaskedLM.abstract_params(config)) < 1.2e8
    minilm = cli.load_recipe(CONFIGS / "finetune_minilm.yaml", [], finetune.DATA_DEFAULTS)
    assert minilm.training.parallelism == "pmap" and minilm.data["max_length"] == 128
    config = cli.build_config(minilm.model, id2label={0: "a", 1: "b", 2: "c"})
    assert config.num_labels == 3 and config.classifier_dropout == 0.1 and config.num_hidden_layers == 6


def test_mesh_of_llama_recipe_fits_eight_devices():
    """The 1B recipe's mesh and rules resolve on 8 devices (one fsdp group), params split 8 ways."""
    from sharding.mesh import create_mesh
    from sharding.rules import check_rules, rules_for_mesh
    from transformers_jax import LlamaForCausalLM
    from transformers_jax.partitioning import param_shardings

    recipe = cli.load_recipe(CONFIGS / "llama_1b_fsdp.yaml", [], pretrain.DATA_DEFAULTS)
    mesh = create_mesh(recipe.training.mesh, jax.devices()[:8])
    rules = rules_for_mesh(recipe.training.sharding, mesh)
    specs = LlamaForCausalLM.param_specs(cli.build_config(recipe.model))
    check_rules(rules, mesh, specs)
    shardings = param_shardings(specs, mesh, rules)
    kernel = shardings["model"]["layers"]["mlp"]["up_proj"]["kernel"]
    assert "fsdp" in str(kernel.spec)


# ----------------------------------------------------------------------------- benchmark
def test_benchmark_steps_run_and_learn():
    """benchmark_train's two step closures on a tiny Llama: both train (loss falls on a repeated batch)."""
    sys.path.insert(0, str(ROOT / "scripts"))
    import benchmark_train

    tiny = dict(vocab_size=64, hidden_size=32, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
                intermediate_size=64, max_position_embeddings=32, tie_word_embeddings=True)
    batch = np.random.default_rng(0).integers(0, 64, (2, 16)).astype(np.int32)
    ours, _, our_loss = benchmark_train.our_step(tiny, batch)
    hf, hf_loss = benchmark_train.hf_step(tiny, batch, "sdpa")
    for step, loss in ((ours, our_loss), (hf, hf_loss)):
        times = benchmark_train.timed(step, 1, 2)
        first = loss()
        benchmark_train.timed(step, 0, 5)
        assert len(times) == 2 and np.isfinite(first) and loss() < first
    record = benchmark_train.row("x", [0.5, 0.25, 1.0], 1000, 6e6, 2e10, 1.0)
    assert record["ms_per_step"] == 500 and record["tokens_per_second"] == 2000 and record["mfu"] == pytest.approx(0.6)
    assert "ours / HF tokens/s: 2.00x" in benchmark_train.markdown([record, {**record, "tokens_per_second": 1000}], "h")


def test_pretrain_datasets_token_file_and_errors(tmp_path):
    tokens = tmp_path / "tokens.npy"
    np.save(tokens, np.arange(100, dtype=np.uint16))
    data = cli.check_data_section({"token_file": str(tokens), "max_length": 16}, pretrain.DATA_DEFAULTS)
    train, evaluation, collator = pretrain.datasets(data, None, "clm")
    assert len(train) == 6 and evaluation is None  # floor(100 / 16) rows
    batch = collator([train[0], train[1]])
    np.testing.assert_array_equal(batch["input_ids"][1], np.arange(16, 32))
    with pytest.raises(cli.RecipeError, match="data.token_file serves causal-LM rows"):
        pretrain.datasets(data, None, "mlm")
    text = cli.check_data_section({"train_file": str(write_corpus(tmp_path / "c.txt", 4)), "packing": True},
                                  pretrain.DATA_DEFAULTS)
    with pytest.raises(cli.RecipeError, match="data.packing applies to causal LM only"):
        pretrain.datasets(text, None, "mlm")
    bad = cli.check_data_section({"token_file": str(tmp_path / "t.bin"), "max_length": 16}, pretrain.DATA_DEFAULTS)
    with pytest.raises(cli.RecipeError, match="data.token_file: file not found"):
        pretrain.datasets(bad, None, "clm")
