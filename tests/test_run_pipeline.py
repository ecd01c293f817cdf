"""scripts/run_pipeline.py (``transformers-jax pipeline``): JSONL batch inference for any pipeline task.

Over a tiny text classifier (pipeline_fixtures) and the tiny question-answering model of tests/fixtures/qa_oracle:
the script's ``main()`` writes, for each good line, exactly what the pipeline returns for that input when called
directly; bad lines are reported by line number while the rest run; a run killed after some batches and then
resumed gives every line exactly once, in input order, with the results of an uninterrupted run.
"""
import importlib.util
import json
from pathlib import Path

import pytest

import serving.jsonl_store
import transformers_jax as tj
from parity import assert_same_up_to_rounding
from pipeline_fixtures import pipeline_models  # noqa: F401
from serving.pipeline_batch import line_input, parse_settings

ROOT = Path(__file__).resolve().parents[1]
QA_DIR = ROOT / "tests" / "fixtures" / "qa_oracle"
TEXTS = ["I love this movie!", "The plot was thin.", "ok", "A long review " * 6, "Great music, bad acting.",
         "Meh.", "Superb!", "I would not watch it again, although the ending was lovely."]
CONTEXT = "Ada Lovelace wrote the first program in 1843 for the Analytical Engine designed by Charles Babbage."
QUESTIONS = ["Who wrote the first program?", "When was the first program written?", "Who designed the engine?",
             "What was the program for?"]


def _script_main():
    """main() of scripts/run_pipeline.py, loaded from the file as the command line runs it."""
    spec = importlib.util.spec_from_file_location("run_pipeline_script", ROOT / "scripts" / "run_pipeline.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.main


def _write_lines(path, lines):
    path.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    return path


def _read(path):
    return [json.loads(line) for line in Path(path).read_text(encoding="utf-8").splitlines()]


def assert_same_outputs(ours, direct):
    """Results equal as JSON values; scores (the only floats) equal up to float32 rounding (batches hold other
    inputs, so other padded lengths, than in the direct call)."""
    if isinstance(direct, dict):
        assert list(ours) == list(direct), (ours, direct)
        for key in direct:
            assert_same_outputs(ours[key], direct[key])
    elif isinstance(direct, list):
        assert isinstance(ours, list) and len(ours) == len(direct), (ours, direct)
        for a, b in zip(ours, direct):
            assert_same_outputs(a, b)
    elif isinstance(direct, float):
        assert_same_up_to_rounding([ours], [direct], ulps=256)
    else:
        assert ours == direct, (ours, direct)


@pytest.fixture(scope="module")
def classifier_dir(pipeline_models):
    return str(pipeline_models.dir("classifier"))


# ----------------------------------------------------------------------------- outputs equal the pipeline's
def test_text_classification_equals_the_pipeline(classifier_dir, tmp_path):
    lines = [json.dumps({"id": f"t{i}", "text": t}) for i, t in enumerate(TEXTS[:5])]
    lines.insert(2, json.dumps(TEXTS[5]))  # a plain JSON string, no id
    lines.append(json.dumps({"id": 99, "text": "The cat sat.", "text_pair": "A cat is sitting."}))
    source = _write_lines(tmp_path / "in.jsonl", lines)
    out = tmp_path / "out.jsonl"
    status = _script_main()(["--task", "text-classification", "--model", classifier_dir, "--input", str(source),
                             "--output", str(out), "--batch-size", "2", "--set", "top_k=2", "--no-progress",
                             "--no-compilation-cache"])
    assert status == 0
    records = _read(out)
    assert [r["line"] for r in records] == list(range(1, len(lines) + 1))
    assert [r["id"] for r in records] == ["t0", "t1", None, "t2", "t3", "t4", 99]
    inputs = [line_input(json.loads(line), "text-classification")[1] for line in lines]
    assert inputs[-1] == {"text": "The cat sat.", "text_pair": "A cat is sitting."} and inputs[2] == TEXTS[5]
    direct = tj.pipeline("text-classification", model=classifier_dir)
    for record, value in zip(records, inputs):
        expected = json.loads(json.dumps(direct(value, top_k=2)))
        assert_same_outputs(record["output"], expected)
    assert len(records[0]["output"]) == 2 and _read(tmp_path / "out.jsonl.errors.jsonl") == []


def test_question_answering_equals_the_pipeline_and_bad_lines_are_reported(tmp_path):
    good = [{"id": f"q{i}", "question": q, "context": CONTEXT} for i, q in enumerate(QUESTIONS)]
    lines = [json.dumps(good[0]),
             "{not json",                                              # line 2: invalid JSON
             json.dumps({"id": "x", "question": "Who?"}),              # line 3: no context
             json.dumps(good[1]),
             "",                                                       # blank: skipped, still counted
             json.dumps({"id": "y", "question": "Who?", "context": CONTEXT, "extra": 1}),  # line 6: unknown field
             json.dumps("just a string"),                               # line 7: not a QA input
             json.dumps({"id": "z", "question": "", "context": CONTEXT}),  # line 8: the pipeline refuses it
             json.dumps(good[2]),
             json.dumps(good[3])]
    source = _write_lines(tmp_path / "in.jsonl", lines)
    out, errors = tmp_path / "out.jsonl", tmp_path / "bad.jsonl"
    status = _script_main()(["--task", "question-answering", "--model", str(QA_DIR), "--input", str(source),
                             "--output", str(out), "--errors", str(errors), "--batch-size", "2", "--no-progress",
                             "--no-compilation-cache"])
    assert status == 2  # some lines were bad
    records = _read(out)
    assert [(r["line"], r["id"]) for r in records] == [(1, "q0"), (4, "q1"), (9, "q2"), (10, "q3")]
    direct = tj.pipeline("question-answering", model=str(QA_DIR))
    for record, question in zip(records, good):
        expected = json.loads(json.dumps(direct(question=question["question"], context=question["context"])))
        assert_same_outputs(record["output"], expected)
    reported = _read(errors)
    assert [e["line"] for e in reported] == [2, 3, 6, 7, 8]
    assert [e["id"] for e in reported] == [None, "x", "y", None, "z"]
    messages = {e["line"]: e["error"] for e in reported}
    assert messages[2].startswith("line 2: invalid JSON")
    assert "line 3: missing field 'context'" in messages[3]
    assert "unknown field(s) 'extra'" in messages[6]
    assert "plain string is not a question-answering input" in messages[7]
    assert messages[8].startswith("line 8: ") and "question" in messages[8].lower()


def test_text_generation_with_chats_equals_the_pipeline(tmp_path):
    from parity import tiny_bpe_tokenizer

    template = ("{% for m in messages %}<s>{{ m['role'] }}: {{ m['content'] }}</s>{% endfor %}"
                "{% if add_generation_prompt %}<s>assistant: {% endif %}")
    tokenizer = tiny_bpe_tokenizer(TEXTS, 300, template)
    config = tj.LlamaConfig.from_dict({
        "vocab_size": len(tokenizer), "hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 2,
        "num_attention_heads": 4, "num_key_value_heads": 2, "max_position_embeddings": 128,
        "bos_token_id": tokenizer.bos_token_id, "eos_token_id": tokenizer.eos_token_id,
        "pad_token_id": tokenizer.pad_token_id})
    directory = tmp_path / "tiny_llama"
    tj.LlamaForCausalLM(config, seed=0).save_pretrained(directory)
    tokenizer.save_pretrained(directory)
    chat = [{"role": "user", "content": "I love this movie!"}]
    lines = [json.dumps({"id": "c", "messages": chat}), json.dumps("The plot"), json.dumps({"id": "t", "text": "Meh."}),
             json.dumps({"id": "bad", "messages": [{"role": "user"}]})]
    source = _write_lines(tmp_path / "in.jsonl", lines)
    out = tmp_path / "out.jsonl"
    settings = {"max_new_tokens": 5, "do_sample": False}
    status = _script_main()(["--task", "text-generation", "--model", str(directory), "--input", str(source),
                             "--output", str(out), "--batch-size", "2", "--kwargs", json.dumps(settings),
                             "--set", "return_full_text=false", "--no-progress", "--no-compilation-cache"])
    assert status == 2
    records = _read(out)
    direct = tj.pipeline("text-generation", model=str(directory))
    assert [r["id"] for r in records] == ["c", None, "t"]
    for record, value in zip(records, [chat, "The plot", "Meh."]):
        assert record["output"] == direct(value, return_full_text=False, **settings)
        assert record["output"][0]["generated_text"]  # five new tokens, not an empty string
    assert [e["line"] for e in _read(tmp_path / "out.jsonl.errors.jsonl")] == [4]


# ----------------------------------------------------------------------------- resume
class Killed(Exception):
    """Stands for the process being killed between two batches."""


def _args(directory, source, out):
    return ["--task", "text-classification", "--model", directory, "--input", str(source), "--output", str(out),
            "--batch-size", "2", "--no-progress", "--no-compilation-cache"]


def test_killed_run_resumes_every_line_once_in_order(classifier_dir, tmp_path, monkeypatch):
    lines = [json.dumps({"id": i, "text": t}) for i, t in enumerate(TEXTS)] + ["[1, 2]"]  # line 9: bad
    source = _write_lines(tmp_path / "in.jsonl", lines)
    main = _script_main()
    reference = tmp_path / "reference.jsonl"
    assert main(_args(classifier_dir, source, reference)) == 2
    expected = _read(reference)
    assert [r["id"] for r in expected] == list(range(len(TEXTS)))

    # the first run dies after committing 2 batches (4 lines), as a kill between batches would leave it
    out = tmp_path / "out.jsonl"
    commit = serving.jsonl_store.ResultStore.commit
    commits, die_after = [], [2]

    def dying_commit(self, records):
        commit(self, records)
        commits.append([r["line"] for r in records])
        if len(commits) in die_after:
            raise Killed("killed after 2 batches")

    monkeypatch.setattr(serving.jsonl_store.ResultStore, "commit", dying_commit)
    with pytest.raises(Killed):
        main(_args(classifier_dir, source, out))
    committed = [json.loads(line) for part in sorted((tmp_path / "out.jsonl.parts").glob("part-*.jsonl"))
                 for line in part.read_text().splitlines()]
    assert [r["line"] for r in committed] == [1, 2, 3, 4]

    # the resumed run computes only the other lines and merges everything in input order
    commits.clear()
    die_after.clear()
    assert main(_args(classifier_dir, source, out)) == 2
    assert commits == [[5, 6], [7, 8]]
    records = _read(out)
    assert [r["line"] for r in records] == list(range(1, len(TEXTS) + 1))
    for a, b in zip(records, expected):
        assert (a["id"], a["line"]) == (b["id"], b["line"])
        assert_same_outputs(a["output"], b["output"])
    assert not (tmp_path / "out.jsonl.parts").exists()
    assert [e["line"] for e in _read(tmp_path / "out.jsonl.errors.jsonl")] == [9]
    # a third run has nothing left to do, and keeps the output as it is
    before = out.read_bytes()
    commits.clear()
    assert main(_args(classifier_dir, source, out)) == 2
    assert commits == [] and out.read_bytes() == before


def test_resume_refuses_an_output_from_another_input(classifier_dir, tmp_path):
    source = _write_lines(tmp_path / "in.jsonl", [json.dumps({"id": "a", "text": "one"})])
    out = tmp_path / "out.jsonl"
    main = _script_main()
    assert main(_args(classifier_dir, source, out)) == 0
    _write_lines(source, [json.dumps({"id": "b", "text": "two"})])
    with pytest.raises(RuntimeError, match="line 1 with id 'a', but in this input that line has id 'b'"):
        main(_args(classifier_dir, source, out))


# ----------------------------------------------------------------------------- arguments and entry points
def test_settings_and_input_forms():
    assert parse_settings(["top_k=2", "function_to_apply=sigmoid", "labels=[\"a\", \"b\"]"], '{"top_k": 5}') == {
        "top_k": 2, "function_to_apply": "sigmoid", "labels": ["a", "b"]}
    with pytest.raises(ValueError, match="--set takes key=value"):
        parse_settings(["top_k"], None)
    with pytest.raises(ValueError, match="--kwargs must be a JSON object"):
        parse_settings(None, "[1]")
    chat = [{"role": "user", "content": "Hi"}]
    assert line_input({"id": 1, "messages": chat}, "text-generation") == (1, chat)
    assert line_input({"text": "Hi"}, "text-generation") == (None, "Hi")
    assert line_input({"text": "x"}, "token-classification") == (None, "x")
    with pytest.raises(ValueError, match=r"'messages\[0\]' must be an object with 'role' and 'content'"):
        line_input({"messages": [{"role": "user"}]}, "text-generation")
    with pytest.raises(ValueError, match="'text' must be a string, got integer"):
        line_input({"text": 3}, "text-classification")
    with pytest.raises(ValueError, match="'id' must be a string or an integer, got array"):
        line_input({"id": [1], "text": "x"}, "text-classification")


def test_a_pipeline_that_cannot_be_built_is_reported(tmp_path, capsys):
    source = _write_lines(tmp_path / "in.jsonl", [json.dumps("x")])
    assert _script_main()(["--task", "text-clasification", "--model", "unused", "--input", str(source),
                           "--output", str(tmp_path / "out.jsonl"), "--no-compilation-cache"]) == 1
    assert "cannot build the 'text-clasification' pipeline: Unknown task" in capsys.readouterr().err
    assert not (tmp_path / "out.jsonl").exists()


def test_console_command_dispatches_to_the_runner(monkeypatch):
    import serving.pipeline_batch
    from transformers_jax_cli import COMMANDS, main, usage

    assert COMMANDS["pipeline"][:2] == ("serving.pipeline_batch", "main") and "pipeline" in usage()
    seen = []
    monkeypatch.setattr(serving.pipeline_batch, "main", lambda argv: seen.append(argv) or 0)
    assert main(["pipeline", "--task", "ner"]) == 0 and seen == [["--task", "ner"]]


def test_sigkilled_run_resumes_every_line_once_in_order(classifier_dir, tmp_path):
    """A real kill: a runner process SIGKILLed while it hangs after committing its second batch. While it holds
    the output, a second runner is refused; the resumed run then gives the uninterrupted run's lines."""
    import signal
    import subprocess
    import sys
    import time

    lines = [json.dumps({"id": i, "text": t}) for i, t in enumerate(TEXTS)]
    source = _write_lines(tmp_path / "in.jsonl", lines)
    main = _script_main()
    reference = tmp_path / "reference.jsonl"
    assert main(_args(classifier_dir, source, reference)) == 0
    out = tmp_path / "out.jsonl"
    hang = (
        "import sys, time; sys.path.insert(0, %r); import transformers_jax as tj\n"
        "from serving.pipeline_batch import run_pipeline_batch\n"
        "pipe = tj.pipeline('text-classification', model=%r)\n"
        "run_pipeline_batch(pipe, %r, %r, batch_size=2, progress=False,\n"
        "                   on_batch_committed=lambda i, r: time.sleep(600) if i == 1 else None)\n"
    ) % (str(ROOT), classifier_dir, str(source), str(out))
    proc = subprocess.Popen([sys.executable, "-c", hang], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    parts = tmp_path / "out.jsonl.parts"
    try:
        deadline = time.time() + 240
        while len(list(parts.glob("part-*.jsonl"))) < 2 and time.time() < deadline and proc.poll() is None:
            time.sleep(0.05)
        assert proc.poll() is None, proc.stderr.read().decode()
        with pytest.raises(RuntimeError, match="another batch run holds"):
            main(_args(classifier_dir, source, out))
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    assert proc.returncode == -signal.SIGKILL
    committed = [json.loads(line) for part in sorted(parts.glob("part-*.jsonl")) for line in part.read_text().splitlines()]
    assert [r["line"] for r in committed] == [1, 2, 3, 4] and not out.exists()
    assert main(_args(classifier_dir, source, out)) == 0
    records, expected = _read(out), _read(reference)
    assert [(r["id"], r["line"]) for r in records] == [(r["id"], r["line"]) for r in expected]
    for a, b in zip(records, expected):
        assert_same_outputs(a["output"], b["output"])
