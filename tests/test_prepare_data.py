"""scripts/prepare_data.py (train/prepare_data.py): a corpus tokenized into packed token shards.

* a run SIGKILLed at three points of writing a shard (half a temporary file written; a shard renamed into place but
  not yet in the journal; just after the journal), each time restarted, ends with shards and index byte-identical
  to an uninterrupted run, and one of the killed runs used 2 worker processes (the output does not depend on
  their number); nothing half-written is ever visible under a shard's name, and the killed run's workers exit;
* a restart with other arguments or a changed input is refused, naming what differs;
* .txt, .jsonl, .parquet, a save_to_disk directory and a load_dataset directory give the same tokens;
* bad inputs fail naming the file (and line), the argument or the token.

The tokenizer is the shipped MiniLM WordPiece (no EOS token: "[SEP]" ends each document).
"""
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import transformers_jax_cli
from test_scripts import WORDS

from train.prepare_data import main, prepare
from train.shards import ShardDataset

ROOT = Path(__file__).resolve().parents[1]
SETTINGS = dict(shard_tokens=1000, chunk_documents=40, eos_token="[SEP]", progress=False)
ARGS = ["--tokenizer", "minilm", "--shard-tokens", "1000", "--chunk-documents", "40", "--eos-token", "[SEP]",
        "--no-progress"]


def documents(n, seed=0):
    rng = np.random.RandomState(seed)
    return [" ".join(WORDS[(s + j) % len(WORDS)] for j in range(k))
            for s, k in zip(rng.randint(len(WORDS), size=n), rng.randint(3, 20, size=n))]


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("corpus") / "corpus.txt"
    path.write_text("\n".join(documents(600)) + "\n")
    return path


@pytest.fixture(scope="module")
def reference(corpus, tmp_path_factory) -> Path:
    """The uninterrupted run, in this process with one worker."""
    out = tmp_path_factory.mktemp("reference") / "shards"
    prepare([str(corpus)], "minilm", out, **SETTINGS)
    return out


def files(directory: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(directory.iterdir())}


def killed_run(corpus: Path, out: Path, kill: str, num_proc: int) -> None:
    """scripts/prepare_data.py SIGKILLed by its test hook at ``kill``; checks its worker processes are gone too."""
    env = {**os.environ, "TRANSFORMERS_JAX_PREPARE_KILL": kill, "JAX_PLATFORMS": "cpu"}
    proc = subprocess.Popen([sys.executable, str(ROOT / "scripts" / "prepare_data.py"), str(corpus), *ARGS,
                             "--output-dir", str(out), "--num-proc", str(num_proc)], env=env, cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)
    stdout, stderr = proc.communicate(timeout=120)
    assert proc.returncode == -signal.SIGKILL, (kill, proc.returncode, stderr[-2000:])
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:  # workers notice their parent is gone within ~0.5 s
        try:
            os.killpg(proc.pid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.1)
    os.killpg(proc.pid, signal.SIGKILL)
    pytest.fail(f"worker processes of the run killed at {kill} were still alive 10 s later")


def test_killed_and_restarted_runs_write_byte_identical_shards(corpus, reference, tmp_path):
    expected = files(reference)
    index = json.loads(expected["index.json"])
    assert len(index["shards"]) == 8 and index["num_documents"] == 600  # 7 full shards, a shorter last one
    out = tmp_path / "shards"

    killed_run(corpus, out, "writing:1", num_proc=1)
    present = files(out)
    assert [n for n in present if n.endswith(".tmp")], present.keys()  # the half-written shard: a temporary name
    assert sorted(n for n in present if not n.endswith(".tmp")) == ["journal.json", "shard-00000.bin"]
    assert present["shard-00000.bin"] == expected["shard-00000.bin"]
    with pytest.raises(ValueError, match=r"(?s)journal.json was written with other arguments.*\n  chunk_documents: "
                                         r"40 there, 41 now"):
        prepare([str(corpus)], "minilm", out, **{**SETTINGS, "chunk_documents": 41})

    killed_run(corpus, out, "renamed:3", num_proc=2)  # shard 3 in place, the journal still at 3 shards
    assert "shard-00003.bin" in files(out)
    assert len(json.loads((out / "journal.json").read_text())["shards"]) == 3
    killed_run(corpus, out, "journaled:5", num_proc=1)
    assert len(json.loads((out / "journal.json").read_text())["shards"]) == 6

    for name, content in files(out).items():  # whatever carries a shard's name is complete and right
        assert name.endswith((".tmp", "journal.json")) or content == expected[name], name
    prepare([str(corpus)], "minilm", out, **SETTINGS)
    assert files(out) == expected  # the same names (no journal, no temporaries) and bytes


def test_finished_directory_is_kept_and_other_arguments_refused(corpus, reference, tmp_path):
    before = files(reference)
    assert prepare([str(corpus)], "minilm", reference, **SETTINGS) == json.loads(before["index.json"])
    assert files(reference) == before
    with pytest.raises(ValueError, match=r"(?s)index.json was written with other arguments.*shard_tokens: 1000 there, "
                                         r"999 now"):
        prepare([str(corpus)], "minilm", reference, **{**SETTINGS, "shard_tokens": 999})
    changed = tmp_path / "corpus.txt"
    changed.write_text(corpus.read_text())
    prepare([str(changed)], "minilm", tmp_path / "out", **SETTINGS)
    changed.write_text(corpus.read_text() + "one more document\n")
    with pytest.raises(ValueError, match=r"sources: .*'size': \d+"):
        prepare([str(changed)], "minilm", tmp_path / "out", **SETTINGS)


def test_every_input_kind_gives_the_same_tokens(tmp_path, minilm_dir):
    import datasets
    import pyarrow as pa
    import pyarrow.parquet as pq

    from transformers_jax import AutoTokenizer

    docs = documents(50, seed=1)
    (tmp_path / "c.txt").write_text("\n\n".join(docs) + "\n")  # blank lines are skipped
    (tmp_path / "c.jsonl").write_text("".join(json.dumps({"id": i, "body": d}) + "\n" for i, d in enumerate(docs)))
    pq.write_table(pa.table({"body": docs[:20]}), tmp_path / "a.parquet", row_group_size=7)
    pq.write_table(pa.table({"body": docs[20:]}), tmp_path / "b.parquet", row_group_size=7)
    datasets.Dataset.from_dict({"body": docs}).save_to_disk(str(tmp_path / "saved"))
    (tmp_path / "hub").mkdir()
    (tmp_path / "hub" / "train.jsonl").write_text((tmp_path / "c.jsonl").read_text())

    tokenizer = AutoTokenizer.from_pretrained(str(minilm_dir))
    ids = tokenizer(docs, add_special_tokens=False)["input_ids"]
    expected = np.concatenate([row + [tokenizer.sep_token_id] for row in ids])
    runs = {"txt": ([str(tmp_path / "c.txt")], {}), "jsonl": ([str(tmp_path / "c.jsonl")], {}),
            "parquet": ([str(tmp_path / "a.parquet"), str(tmp_path / "b.parquet")], {}),
            "saved": ([str(tmp_path / "saved")], {}), "load_dataset": ([], {"dataset": str(tmp_path / "hub")})}
    for name, (inputs, extra) in runs.items():
        index = prepare(inputs, "minilm", tmp_path / f"out_{name}", text_field="body", shard_tokens=100_000,
                        eos_token="[SEP]", progress=False, num_proc=1, **extra)
        assert index["num_documents"] == 50 and index["dtype"] == "uint16" and index["vocab_size"] == 30522, name
        dataset = ShardDataset(tmp_path / f"out_{name}", seq_len=1)
        np.testing.assert_array_equal(dataset.tokens(0, dataset.num_tokens), expected, err_msg=name)


def test_bad_inputs_are_named(tmp_path, capsys):
    run = lambda inputs, **kw: prepare(inputs, "minilm", tmp_path / "out", **{**SETTINGS, **kw})  # noqa: E731
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"text": "fine"}\n{"body": "no text"}\n')
    with pytest.raises(ValueError, match=r"bad.jsonl:2: row has no field 'text' \(fields: \['body'\]\)"):
        run([str(bad)])
    bad.write_text('{"text": "fine"}\n\n{"text": 7}\n')
    with pytest.raises(ValueError, match=r"bad.jsonl:3: 'text': the text must be a string, got int"):
        run([str(bad)])
    (tmp_path / "c.docx").write_text("x")
    with pytest.raises(ValueError, match=r"c.docx: unsupported input type '.docx'; supported: .txt, .jsonl"):
        run([str(tmp_path / "c.docx")])
    with pytest.raises(FileNotFoundError, match="input file not found: .*missing.txt"):
        run([str(tmp_path / "missing.txt")])
    (tmp_path / "empty.txt").write_text("\n\n")
    with pytest.raises(ValueError, match=r"no documents in the inputs \(.*empty.txt\)"):
        run([str(tmp_path / "empty.txt")])
    (tmp_path / "c.txt").write_text("a document\n")
    with pytest.raises(ValueError, match="tokenizer 'minilm' has no eos_token; name the separator with --eos-token"):
        run([str(tmp_path / "c.txt")], eos_token=None)
    with pytest.raises(ValueError, match="--eos-token 'NOPE' is not a token of tokenizer 'minilm'"):
        run([str(tmp_path / "c.txt")], eos_token="NOPE")
    (tmp_path / "taken").mkdir()
    (tmp_path / "taken" / "notes.md").write_text("mine")
    with pytest.raises(ValueError, match=r"taken holds files prepare_data did not write: \['notes.md'\]"):
        prepare([str(tmp_path / "c.txt")], "minilm", tmp_path / "taken", **SETTINGS)
    import pyarrow as pa
    import pyarrow.parquet as pq

    pq.write_table(pa.table({"content": ["x"]}), tmp_path / "c.parquet")
    with pytest.raises(ValueError, match=r"c.parquet: no column 'text' \(columns: \['content'\]\); set --text-field"):
        run([str(tmp_path / "c.parquet")])
    assert main([str(tmp_path / "c.docx"), "--tokenizer", "minilm", "--output-dir", str(tmp_path / "o")]) == 2
    assert "prepare-data: error: " in capsys.readouterr().err
    assert transformers_jax_cli.main(["prepare-data", str(tmp_path / "c.txt"), *ARGS, "--output-dir",
                                      str(tmp_path / "o")]) == 0  # the console script's subcommand
    assert json.loads(capsys.readouterr().out)["num_tokens"] == 3  # "a document" [SEP]
