"""T5 span corruption: compute_input_and_target_lengths (T5's values), the invariants of DataCollatorForT5MLM's
batches (every token exactly once across inputs and targets, in order; sentinels counting down from the last id;
the computed lengths; EOS appended), and the objective end to end through ``transformers-jax pretrain``."""
import json

import numpy as np
import pytest

import transformers_jax as tj
from test_tokenization_seq2seq import _t5
from train import pretrain
from train.collators import DataCollatorForT5MLM, compute_input_and_target_lengths, group_texts
from transformers_jax.losses import IGNORE_INDEX

VOCAB = 1000
EOS = 1


class Tokenizer:
    """The two things the collator reads: ``len`` (sentinels count down from len - 1) and ``eos_token_id``."""

    eos_token_id = EOS

    def __len__(self):
        return VOCAB


def test_lengths_formula_gives_t5s_values():
    # T5's published setting: 512 encoder tokens, 15% noise, spans of 3 -> 568-token rows, 114 target tokens
    assert compute_input_and_target_lengths(512, 0.15, 3.0) == (568, 114)
    for length in (16, 64, 100, 512, 1024):
        tokens, targets = compute_input_and_target_lengths(length, 0.15, 3.0)
        noise = round(tokens * 0.15)
        spans = round(noise / 3.0)
        assert tokens - noise + spans + 1 == length  # the inputs come out exactly `length` long
        assert noise + spans + 1 == targets
        more = round((tokens + 1) * 0.15)
        assert (tokens + 1) - more + round(more / 3.0) + 1 > length  # and the rows are as long as they can be
    with pytest.raises(ValueError, match=r"noise_density must be in \(0, 1\), got 1.5"):
        compute_input_and_target_lengths(64, 1.5, 3.0)


def split_at_sentinels(ids, first_sentinel, count):
    """{sentinel: the tokens after it up to the next sentinel or the end}, and the sentinels in order."""
    sentinels = set(range(first_sentinel - count + 1, first_sentinel + 1))
    pieces, order, current = {}, [], None
    for token in ids:
        if token in sentinels:
            current = token
            order.append(token)
            pieces[token] = []
        elif current is not None:
            pieces[current].append(token)
    return pieces, order


@pytest.mark.parametrize("input_length", [16, 64, 100])
def test_span_corruption_invariants(input_length):
    collator = DataCollatorForT5MLM(Tokenizer(), input_length=input_length)
    tokens_length, target_length = compute_input_and_target_lengths(input_length, 0.15, 3.0)
    assert (collator.tokens_length, collator.target_length) == (tokens_length, target_length)
    noise, spans = round(tokens_length * 0.15), round(round(tokens_length * 0.15) / 3.0)
    rng = np.random.default_rng(0)
    rows = [rng.permutation(np.arange(2, 800))[:tokens_length] for _ in range(6)]  # distinct ids, no sentinel
    batch = collator([{"input_ids": row, "attention_mask": np.ones(tokens_length)} for row in rows],
                     rng=np.random.default_rng(1))
    assert sorted(batch) == ["input_ids", "labels"]
    assert batch["input_ids"].shape == (6, input_length) and batch["labels"].shape == (6, target_length)
    assert batch["input_ids"].dtype == batch["labels"].dtype == np.int32
    first = VOCAB - 1
    masks = []
    for row, inputs, targets in zip(rows, batch["input_ids"], batch["labels"]):
        assert inputs[-1] == EOS and targets[-1] == EOS  # EOS appended to both
        inputs, targets = inputs[:-1].tolist(), targets[:-1].tolist()
        sentinels_in = [t for t in inputs if t > first - spans]
        sentinels_out = [t for t in targets if t > first - spans]
        # one sentinel per span, counting down from the last id, the same ones on both sides
        assert sentinels_in == sentinels_out == list(range(first, first - spans, -1))
        assert targets[0] == first  # the row starts with a non-noise run, so the targets start with its sentinel
        # every token exactly once across inputs and targets
        plain = [t for t in inputs + targets if t <= first - spans]
        assert sorted(plain) == sorted(row.tolist())
        assert len([t for t in targets if t <= first - spans]) == noise
        # in order: each input sentinel spliced with its target span gives the row back
        pieces, _ = split_at_sentinels(targets, first, spans)
        rebuilt = [x for t in inputs for x in (pieces[t] if t in pieces else [t])]
        assert rebuilt == row.tolist()
        # runs alternate, starting with non-noise and (as many noise spans as non-noise runs) ending with noise
        assert targets[-1] == row[-1] and inputs[0] == row[0]
        masks.append(tuple(np.isin(row, targets)))
    if spans > 1:
        assert len(set(masks)) > 1  # each row draws its own spans


def test_span_corruption_is_a_function_of_rng_and_builds_decoder_inputs():
    config = tj.BartConfig(vocab_size=VOCAB, pad_token_id=0, eos_token_id=EOS, decoder_start_token_id=0)
    collator = DataCollatorForT5MLM(Tokenizer(), input_length=32, model=config)
    rows = [{"input_ids": np.arange(2, 2 + collator.tokens_length)} for _ in range(3)]
    a = collator(rows, rng=np.random.default_rng(5))
    b = collator(rows, rng=np.random.default_rng(5))
    c = collator(rows, rng=np.random.default_rng(6))
    for key in a:
        np.testing.assert_array_equal(a[key], b[key])
    assert not np.array_equal(a["input_ids"], c["input_ids"])
    # the decoder reads the labels shifted right behind decoder_start_token_id, as the model itself builds them
    np.testing.assert_array_equal(a["decoder_input_ids"][:, 0], 0)
    np.testing.assert_array_equal(a["decoder_input_ids"][:, 1:], a["labels"][:, :-1])
    np.testing.assert_array_equal(a["decoder_input_ids"], np.asarray(config.decoder_inputs_from_labels(a["labels"])))
    assert (a["labels"] != IGNORE_INDEX).all()  # fixed lengths: nothing to ignore


def test_span_corruption_errors():
    collator = DataCollatorForT5MLM(Tokenizer(), input_length=32)
    with pytest.raises(ValueError, match=r"feature 1 has 30 input_ids; .* needs rows of exactly tokens_length=34"):
        collator([{"input_ids": np.arange(2, 36)}, {"input_ids": np.arange(2, 32)}], rng=np.random.default_rng(0))
    with pytest.raises(ValueError, match="needs rng=numpy.random.Generator"):
        collator([{"input_ids": np.arange(2, 36)}])
    with pytest.raises(ValueError, match="input_length=6 .* use a longer input_length"):
        DataCollatorForT5MLM(Tokenizer(), input_length=6)
    no_eos = type("T", (Tokenizer,), {"eos_token_id": None})()
    with pytest.raises(ValueError, match="has no eos_token_id"):
        DataCollatorForT5MLM(no_eos, input_length=32)
    assert group_texts([[1, 2, 3], [4, 5], [6, 7, 8]], 3).tolist() == [[1, 2, 3], [4, 5, 6]]
    with pytest.raises(ValueError, match="hold 5 tokens in all, fewer than one row of 8"):
        group_texts([[1, 2, 3], [4, 5]], 8)


# ----------------------------------------------------------------------------- through `transformers-jax pretrain`
WORDS = "the cat sat on a mat and the dog ran to the park while birds sang in tall green trees".split()


def test_pretrain_span_corruption_end_to_end(tmp_path, capsys):
    """A tiny BART with a T5 tokenizer (sentinels <extra_id_N> at the end of its vocabulary) pretrained with
    objective span_corruption: the datasets are rows that corrupt to data.max_length, the loss goes down."""
    _t5(tmp_path / "tok")
    tokenizer = tj.AutoTokenizer.from_pretrained(tmp_path / "tok")
    assert tokenizer.convert_ids_to_tokens(len(tokenizer) - 1) == "<extra_id_0>"
    rng = np.random.RandomState(0)
    lines = [" ".join(WORDS[(s + j) % len(WORDS)] for j in range(rng.randint(5, 12)))
             for s in rng.randint(0, len(WORDS), 120)]
    (tmp_path / "corpus.txt").write_text("\n".join(lines) + "\n")
    config = {"model_type": "bart", "vocab_size": len(tokenizer), "d_model": 32, "encoder_layers": 1,
              "decoder_layers": 1, "encoder_attention_heads": 2, "decoder_attention_heads": 2, "encoder_ffn_dim": 64,
              "decoder_ffn_dim": 64, "max_position_embeddings": 64, "dropout": 0.0, "pad_token_id": 0,
              "eos_token_id": 1, "bos_token_id": None, "decoder_start_token_id": 0, "forced_eos_token_id": None}
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text(json.dumps({
        "model": {"config": config, "seed": 0},
        "data": {"train_file": str(tmp_path / "corpus.txt"), "eval_file": str(tmp_path / "corpus.txt"),
                 "tokenizer": str(tmp_path / "tok"), "max_length": 32, "objective": "span_corruption"},
        "training": {"output_dir": str(tmp_path / "out"), "max_steps": 30, "per_device_train_batch_size": 1,
                     "per_device_eval_batch_size": 1, "learning_rate": 3e-3, "warmup_steps": 2, "logging_steps": 5,
                     "save_strategy": "no", "report_to": ["jsonl"], "disable_tqdm": True, "check_memory": False}}))
    metrics = pretrain.main(["--config", str(recipe)])
    assert metrics["objective"] == "span_corruption" and metrics["global_step"] == 30
    losses = [json.loads(line)["loss"] for line in (tmp_path / "out" / "metrics.jsonl").read_text().splitlines()
              if "loss" in json.loads(line)]
    assert losses[-1] < 0.8 * losses[0], losses
    assert np.isfinite(metrics["eval_loss"]) and (tmp_path / "out" / "final" / "model.safetensors").is_file()

    # the datasets the run used: rows of tokens_length, corrupted to max_length
    from train import cli

    data = cli.check_data_section({"train_file": str(tmp_path / "corpus.txt"), "max_length": 32},
                                  pretrain.DATA_DEFAULTS)
    model_config = cli.build_config({"config": config})
    train, evaluation, collator = pretrain.datasets(data, tokenizer, "span_corruption", model_config)
    assert evaluation is None and {len(row["input_ids"]) for row in train} == {collator.tokens_length}
    batch = collator(train[:2], rng=np.random.default_rng(0))
    assert batch["input_ids"].shape == (2, 32) and (batch["input_ids"][:, -1] == tokenizer.eos_token_id).all()
    # an objective the model has no head for is refused, naming it
    with pytest.raises(cli.RecipeError, match="data.objective='mlm' needs a masked_lm head"):
        pretrain.objective(model_config, "mlm")
    assert pretrain.objective(model_config) == "span_corruption"
