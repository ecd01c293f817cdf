"""Reading prepared token shards for training (train/shards.py): the keyed Feistel permutation, rows cut from the
stream across shard boundaries, per-host reads, memory that stays flat as the corpus grows, resuming through the
orbax checkpoint, the pretrain recipe's ``data.shards``, and errors naming the broken file."""
import json
import tracemalloc
from pathlib import Path

import numpy as np
import pytest

from train import cli, pretrain
from train.data import DataLoader, default_data_collator
from train.prepare_data import ShardWriter, fresh_state
from train.shards import FORMAT, VERSION, ShardDataset, ShardLoader, index_shuffle, token_dtype

VOCAB = 30522
ROOT = Path(__file__).resolve().parents[1]


def make_shards(directory, tokens, shard_tokens, vocab_size=VOCAB, pieces=7):
    """``tokens`` written as a shard directory by the real writer (in ``pieces`` chunks); returns the directory."""
    directory.mkdir()
    settings = {"format": FORMAT, "version": VERSION, "dtype": "uint16", "vocab_size": vocab_size,
                "shard_tokens": shard_tokens}
    writer = ShardWriter(directory, fresh_state(settings))
    for chunk, piece in enumerate(np.array_split(np.asarray(tokens, np.uint16), pieces)):
        writer.add(chunk, 0, piece)
    writer.finish(documents=pieces)
    return directory


def stream(n, seed=0):
    return np.random.default_rng(seed).integers(0, VOCAB, n).astype(np.uint16)


def batches(loader, count):
    it = iter(loader)
    return [next(it)["input_ids"] for _ in range(count)]


# ----------------------------------------------------------------------------- the permutation
@pytest.mark.parametrize("n", [1, 2, 3, 7, 64, 1000, 4097])
def test_index_shuffle_is_a_deterministic_bijection(n):
    full = index_shuffle(np.arange(n), n, seed=5, epoch=2)
    np.testing.assert_array_equal(np.sort(full), np.arange(n))
    np.testing.assert_array_equal(index_shuffle(np.arange(n), n, seed=5, epoch=2), full)
    positions = np.arange(n)[n // 3:n // 3 + 5]
    np.testing.assert_array_equal(index_shuffle(positions, n, seed=5, epoch=2), full[positions])  # any subset
    if n >= 64:
        assert not np.array_equal(index_shuffle(np.arange(n), n, seed=6, epoch=2), full)
        assert not np.array_equal(index_shuffle(np.arange(n), n, seed=5, epoch=3), full)


def test_index_shuffle_looks_random_and_checks_positions():
    n = 20000
    order = index_shuffle(np.arange(n), n, seed=0)
    assert abs(np.corrcoef(np.arange(n), order)[0, 1]) < 0.05
    assert np.sum(order == np.arange(n)) < 10  # a random permutation has ~1 fixed point
    neighbours = np.abs(np.diff(order))
    assert np.median(neighbours) > n / 10  # consecutive positions land far apart
    with pytest.raises(IndexError, match=r"positions must lie in \[0, 10\)"):
        index_shuffle([3, 10], 10, seed=0)


# ----------------------------------------------------------------------------- rows and hosts
def test_rows_are_the_stream_cut_into_seq_len_across_shards(tmp_path):
    tokens = stream(5000)
    directory = make_shards(tmp_path / "s", tokens, shard_tokens=1000)
    assert sorted(p.name for p in directory.iterdir())[:2] == ["index.json", "shard-00000.bin"]
    dataset = ShardDataset(directory, seq_len=96)  # 96 does not divide 1000: rows span two shards
    assert len(dataset) == 5000 // 96
    for i in (0, 10, 11, len(dataset) - 1):  # row 10 is tokens [960, 1056): shards 0 and 1
        row = dataset[i]
        np.testing.assert_array_equal(row["input_ids"], tokens[i * 96:(i + 1) * 96])
        np.testing.assert_array_equal(row["labels"], row["input_ids"])
        assert row["input_ids"].dtype == np.int32
    assert dataset.bytes_read == 4 * 96 * 2
    dataset.verify()


def test_hosts_together_read_the_global_batch_and_only_their_bytes(tmp_path):
    directory = make_shards(tmp_path / "s", stream(8000), shard_tokens=1500)
    seq_len, G = 32, 8

    def loader(p, count):
        return ShardLoader(ShardDataset(directory, seq_len), G, default_data_collator, seed=3, process_index=p,
                           process_count=count)

    single = loader(0, 1)
    hosts = [loader(0, 2), loader(1, 2)]
    whole = batches(single, 5)
    parts = [batches(host, 5) for host in hosts]
    for b in range(5):
        np.testing.assert_array_equal(np.concatenate([parts[0][b], parts[1][b]]), whole[b])
    rows = len(single.dataset)
    expected = [single.dataset[i]["input_ids"] for i in index_shuffle(np.arange(G), rows, seed=3, epoch=0)]
    np.testing.assert_array_equal(whole[0], np.stack(expected))
    for host in hosts:  # each host read its G/2 rows of each batch, nothing else
        assert host.dataset.bytes_read == 5 * (G // 2) * seq_len * 2
        assert host.rows_read == 5 * G // 2


def test_loader_memory_stays_flat_as_the_corpus_grows_10x(tmp_path):
    """tracemalloc peak of opening the directory and reading 20 shuffled batches, on a corpus and on one 10x larger
    (10x the shards and rows). The materialized permutation of DataLoader grows with it; ShardLoader does not."""
    small = make_shards(tmp_path / "small", stream(200_000), shard_tokens=50_000)
    large = make_shards(tmp_path / "large", stream(2_000_000, seed=1), shard_tokens=50_000)

    def peak(loader_class, directory):
        tracemalloc.start()
        try:
            loader = loader_class(ShardDataset(directory, 16), 32, default_data_collator, seed=0, process_index=0,
                                  process_count=1)
            batches(loader, 20)
            return tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()

    def flat(small_peak, large_peak):
        return large_peak <= 1.2 * small_peak + 64 * 1024

    shard_small, shard_large = peak(ShardLoader, small), peak(ShardLoader, large)
    assert flat(shard_small, shard_large), (shard_small, shard_large)
    dense_small, dense_large = peak(DataLoader, small), peak(DataLoader, large)  # 12.5k vs 125k rows
    assert not flat(dense_small, dense_large), (dense_small, dense_large)
    assert dense_large > 1_000_000 > 4 * shard_large  # 125k int64 positions, vs what the shard loader holds


def test_resume_through_the_orbax_checkpoint_gives_the_same_batches(tmp_path):
    from train.checkpointing import CheckpointManager

    directory = make_shards(tmp_path / "s", stream(3000), shard_tokens=700)
    make = lambda: ShardLoader(ShardDataset(directory, 32), 16, default_data_collator, seed=1,  # noqa: E731
                               process_index=0, process_count=1)
    first = make()
    assert first.batches_per_epoch == 5  # 93 rows
    uninterrupted = batches(first, 12)  # through epochs 0, 1 and into 2
    assert not np.array_equal(uninterrupted[0], uninterrupted[5])  # epoch 1 is shuffled anew

    interrupted = make()
    seen = batches(interrupted, 7)
    with CheckpointManager(tmp_path / "ckpt", async_save=False) as manager:  # as the Trainer saves data_state
        manager.save(7, {"step": np.int32(7)}, {"data_state": interrupted.state_dict()})
    with CheckpointManager(tmp_path / "ckpt", read_only=True) as manager:
        _, metadata = manager.restore(7)
    assert metadata["data_state"] == {"epoch": 1, "batch": 2}
    resumed = make()
    resumed.load_state_dict(metadata["data_state"])
    for got, expected in zip(seen + batches(resumed, 5), uninterrupted):
        np.testing.assert_array_equal(got, expected)
    with pytest.raises(TypeError, match="never holds a whole epoch's order"):
        resumed.epoch_order(0)


# ----------------------------------------------------------------------------- errors
def test_shard_directory_errors_name_the_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="shard directory not found"):
        ShardDataset(tmp_path / "nowhere", 8)
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match=r"empty has no index.json.*run it again with the same arguments"):
        ShardDataset(tmp_path / "empty", 8)
    directory = make_shards(tmp_path / "s", stream(3000), shard_tokens=1000)
    with pytest.raises(ValueError, match="fewer than one row of seq_len=4000"):
        ShardDataset(directory, 4000)
    shard = directory / "shard-00001.bin"
    original = shard.read_bytes()
    shard.write_bytes(original[:-2])
    with pytest.raises(ValueError, match=r"shard-00001.bin: 1998 bytes, but .*index.json lists 1000 uint16 tokens"):
        ShardDataset(directory, 8)
    shard.write_bytes(original[:-2] + b"\xff\xff")  # same size, other bytes
    with pytest.raises(ValueError, match=r"shard-00001.bin: sha256 differs"):
        ShardDataset(directory, 8).verify()
    shard.unlink()
    with pytest.raises(FileNotFoundError, match=r"shard-00001.bin: shard listed in .*index.json is missing"):
        ShardDataset(directory, 8)
    (directory / "index.json").write_text("{not json")
    with pytest.raises(ValueError, match=r"index.json: malformed JSON"):
        ShardDataset(directory, 8)
    assert token_dtype(65536) == np.uint16 and token_dtype(65537) == np.uint32
    with pytest.raises(ValueError, match="a vocabulary of 70000 ids does not fit uint16"):
        token_dtype(70000, "uint16")


# ----------------------------------------------------------------------------- the pretrain recipe
def test_pretrain_recipe_reads_shards(tmp_path):
    directory = make_shards(tmp_path / "s", stream(2000), shard_tokens=600, vocab_size=30522)
    data = cli.check_data_section({"shards": str(directory), "eval_shards": str(directory), "max_length": 64},
                                  pretrain.DATA_DEFAULTS)
    train, evaluation, collator = pretrain.datasets(data, None, "clm")
    assert isinstance(train, ShardDataset) and len(train) == 31 and len(evaluation) == 31
    assert collator is default_data_collator
    with pytest.raises(cli.RecipeError, match="data.shards serves causal-LM rows"):
        pretrain.datasets(data, None, "mlm")
    with pytest.raises(cli.RecipeError, match="set either data.shards or data.token_file"):
        pretrain.datasets({**data, "token_file": "x.npy"}, None, "clm")
    with pytest.raises(cli.RecipeError, match="data.eval_shards needs data.shards for training"):
        pretrain.datasets({**data, "shards": None}, None, "clm")
    with pytest.raises(cli.RecipeError, match=r"data.shards: .*nowhere has no index.json|data.shards: shard dir"):
        pretrain.datasets({**data, "shards": str(tmp_path / "nowhere")}, None, "clm")
    small = type("Config", (), {"vocab_size": 1000})()
    with pytest.raises(cli.RecipeError, match="data.shards was tokenized with 30522 ids .* vocab_size is 1000"):
        pretrain.check_vocab(small, None, train)


def test_pretrain_on_shards_resumes_from_its_checkpoint(tmp_path):
    """configs/cpu_smoke.yaml on data.shards: 4 steps saving at step 2, and a second run resumed from that checkpoint
    logs the same losses for steps 3 and 4 (the data position went through the orbax checkpoint)."""
    directory = make_shards(tmp_path / "s", stream(40 * 64), shard_tokens=1000)  # 40 rows of 64: 2 batches an epoch

    def run(out, *extra):
        metrics = pretrain.main(["--config", str(ROOT / "configs" / "cpu_smoke.yaml"), "--set",
                                 f"data.shards={directory}", "--output_dir", str(out), "--max_steps", "4",
                                 "--set", "training.logging_steps=1", "--set", "training.save_strategy=steps",
                                 "--set", "training.save_steps=2", "--set", "training.disable_tqdm=true",
                                 "--set", "training.check_memory=false", *extra])
        logged = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
        return metrics, {r["step"]: r["loss"] for r in logged if "loss" in r}

    metrics, losses = run(tmp_path / "a")
    assert metrics["global_step"] == 4 and sorted(losses) == [1, 2, 3, 4]
    # 16-row global batches (8 devices x 2): this process read 5 batches (the Trainer reads the first one twice)
    assert metrics["train_rows_read"] == 5 * 16 and metrics["train_bytes_read"] == 5 * 16 * 64 * 2
    resumed, resumed_losses = run(tmp_path / "b", "--resume", str(tmp_path / "a" / "checkpoints" / "2"))
    assert sorted(resumed_losses) == [3, 4]
    for step in (3, 4):
        assert resumed_losses[step] == pytest.approx(losses[step], rel=1e-6), (step, losses, resumed_losses)
