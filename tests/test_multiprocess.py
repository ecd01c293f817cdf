"""Real multi-process training: scripts/pretrain.py as two processes of 4 CPU devices each, joined through
``jax.distributed`` on 127.0.0.1 (a free port chosen at run time), against one process of 8 devices.

* the per-step losses of the two runs agree to float32 rounding;
* each process reads only its rows of every global batch, and tokenizes its share of the corpus plus the documents
  of its rows (the counters every process prints in its final JSON line);
* an orbax checkpoint written by two processes resumes in one process (on another mesh shape), and one written by
  one process resumes in two; the resumed losses are the uninterrupted run's.

The tiny Llama of configs/cpu_smoke.yaml packs a 2000-line text corpus into 64-token rows; global batch 16 rows,
params split over an 8-device fsdp axis (across both processes in the two-process runs). The runs share the test
session's compilation cache, so a program compiled by one run is loaded by a later run of the same shape.
"""
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from test_scripts import write_corpus

ROOT = Path(__file__).resolve().parents[1]
STEPS, SAVE_AT, GLOBAL_BATCH, DOCUMENTS = 4, 2, 16, 2000
MESH_DATA_FSDP = ["--set", "training.mesh={data: 2, fsdp: 4}", "--set", "training.sharding=fsdp"]
MESH_FSDP = ["--set", "training.mesh={fsdp: 8}", "--set", "training.sharding=fsdp"]
TIMEOUT = 240  # seconds for one run (all its processes); a run here takes 10-30 s


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def tail(path: Path, chars: int = 4000) -> str:
    text = path.read_text(errors="replace") if path.exists() else "<nothing>"
    return text[-chars:]


class Run:
    """scripts/pretrain.py started as ``processes`` processes of ``8 / processes`` CPU devices (joined through
    ``jax.distributed`` on a free port of 127.0.0.1 when there are several)."""

    def __init__(self, directory: Path, name: str, processes: int, args: list[str], attempt: int = 0):
        self.directory, self.name, self.processes, self.args, self.attempt = directory, name, processes, args, attempt
        port, self.procs, self.files = free_port(), [], []
        for p in range(processes):
            env = {**os.environ, "XLA_FLAGS": f"--xla_force_host_platform_device_count={8 // processes}",
                   "JAX_PLATFORMS": "cpu", "HF_HUB_OFFLINE": "1", "PYTHONUNBUFFERED": "1"}
            for key in ("JAX_COORDINATOR_ADDRESS", "JAX_NUM_PROCESSES", "JAX_PROCESS_ID"):
                env.pop(key, None)
            if processes > 1:
                env.update(JAX_COORDINATOR_ADDRESS=f"127.0.0.1:{port}", JAX_NUM_PROCESSES=str(processes),
                           JAX_PROCESS_ID=str(p))
            out, err = directory / f"{name}.{attempt}.{p}.out", directory / f"{name}.{attempt}.{p}.err"
            self.files.append((out, err))
            with open(out, "w") as stdout, open(err, "w") as stderr:
                self.procs.append(subprocess.Popen(
                    [sys.executable, str(ROOT / "scripts" / "pretrain.py"), *args], stdout=stdout, stderr=stderr,
                    env=env, cwd=ROOT, start_new_session=True))
        self.deadline = time.monotonic() + TIMEOUT

    def wait(self) -> list[dict]:
        """Each process's final JSON line. A failure (a process exits non-zero, or the run passes TIMEOUT) kills the
        other processes and fails the test with every process's stderr and stdout."""
        failed_at = None
        while any(proc.poll() is None for proc in self.procs) and time.monotonic() < self.deadline:
            if failed_at is None and any(proc.poll() not in (None, 0) for proc in self.procs):
                failed_at = time.monotonic()  # the others would wait for it in a collective: give them a moment
            if failed_at is not None and time.monotonic() - failed_at > 5:
                break
            time.sleep(0.2)
        timed_out = any(proc.poll() is None for proc in self.procs)
        for proc in self.procs:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
        codes = [proc.returncode for proc in self.procs]
        if not timed_out and all(code == 0 for code in codes):
            return [last_json(out.read_text(), out) for out, _ in self.files]
        if self.attempt == 0 and any("address already in use" in tail(err).lower() for _, err in self.files):
            # the free port was taken before the coordinator bound it: once more, on another
            return Run(self.directory, self.name, self.processes, self.args, attempt=1).wait()
        report = [f"run {self.name!r} ({self.processes} process(es)) "
                  + (f"timed out after {TIMEOUT} s" if timed_out else f"exited with codes {codes}")
                  + f"; command: scripts/pretrain.py {' '.join(self.args)}"]
        for p, (out, err) in enumerate(self.files):
            report.append(f"----- process {p} stderr -----\n{tail(err)}\n----- process {p} stdout -----\n{tail(out)}")
        pytest.fail("\n".join(report), pytrace=False)


def last_json(stdout: str, where) -> dict:
    lines = [line for line in stdout.splitlines() if line.startswith("{")]
    assert lines, f"no JSON line in {where}:\n{stdout[-2000:]}"
    return json.loads(lines[-1])


def losses(output_dir: Path) -> dict[int, float]:
    """Step -> loss from the run's metrics.jsonl (written by process 0)."""
    records = [json.loads(line) for line in (output_dir / "metrics.jsonl").read_text().splitlines()]
    return {r["step"]: r["loss"] for r in records if "loss" in r}


def assert_same_losses(got: dict, expected: dict, steps) -> None:
    assert sorted(got) == list(steps), f"logged steps {sorted(got)}, expected {list(steps)}"
    for step in steps:
        assert got[step] == pytest.approx(expected[step], rel=1e-5, abs=0), (step, got, expected)


def pretrain_args(corpus: Path, output_dir: Path, mesh: list[str], *extra: str) -> list[str]:
    return ["--config", str(ROOT / "configs" / "cpu_smoke.yaml"), "--set", f"data.train_file={corpus}",
            "--output_dir", str(output_dir), "--max_steps", str(STEPS), "--set", "training.logging_steps=1",
            "--set", "training.save_strategy=steps", "--set", f"training.save_steps={SAVE_AT}",
            "--set", "training.disable_tqdm=true", "--set", "training.check_memory=false", *mesh, *extra]


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    return write_corpus(tmp_path_factory.mktemp("corpus") / "corpus.txt", DOCUMENTS)


@pytest.fixture(scope="module")
def runs(tmp_path_factory, corpus):
    """Every run, two at a time (each pair is independent; the box has few cores and a run is mostly one busy
    thread): the uninterrupted runs of one process x 8 devices and two processes x 4 on the same fsdp mesh, then
    each one's step-SAVE_AT checkpoint resumed with the other process count (one process on a data x fsdp mesh)."""
    directory = tmp_path_factory.mktemp("runs")
    one = Run(directory, "one", 1, pretrain_args(corpus, directory / "one", MESH_FSDP))
    two = Run(directory, "two", 2, pretrain_args(corpus, directory / "two", MESH_FSDP))
    records = {"one": one.wait(), "two": two.wait()}
    two_to_one = Run(directory, "two_to_one", 1, pretrain_args(
        corpus, directory / "two_to_one", MESH_DATA_FSDP, "--resume",
        str(directory / "two" / "checkpoints" / str(SAVE_AT))))
    one_to_two = Run(directory, "one_to_two", 2, pretrain_args(
        corpus, directory / "one_to_two", MESH_FSDP, "--resume", str(directory / "one" / "checkpoints" / str(SAVE_AT))))
    records.update(two_to_one=two_to_one.wait(), one_to_two=one_to_two.wait())
    return {"dir": directory, **records}


def test_two_processes_give_the_losses_of_one(runs):
    one, two = losses(runs["dir"] / "one"), losses(runs["dir"] / "two")
    assert_same_losses(two, one, range(1, STEPS + 1))
    assert one[STEPS] < one[1]  # it trains
    assert [record["process_index"] for record in runs["two"]] == [0, 1]
    assert all(record["process_count"] == 2 and record["global_step"] == STEPS for record in runs["two"])


def test_each_process_reads_only_its_rows(runs):
    # The Trainer loads batch (0, 0) once more before the loop to learn the batch's shapes: STEPS + 1 batches.
    (one,), two = runs["one"], runs["two"]
    assert one["train_rows_read"] == (STEPS + 1) * GLOBAL_BATCH
    assert [r["train_rows_read"] for r in two] == [(STEPS + 1) * GLOBAL_BATCH // 2] * 2
    # Packing needs every document's length: one process tokenizes all of them; of two, each tokenizes its half
    # for the lengths (gathered from the other) and then the documents of its own rows.
    assert one["train_documents_tokenized"] == one["train_documents"] == DOCUMENTS
    for record in two:
        assert DOCUMENTS // 2 <= record["train_documents_tokenized"] < DOCUMENTS, record


def test_checkpoint_of_two_processes_resumes_in_one(runs):
    (record,) = runs["two_to_one"]
    assert record["global_step"] == STEPS and record["process_count"] == 1
    assert_same_losses(losses(runs["dir"] / "two_to_one"), losses(runs["dir"] / "one"), range(SAVE_AT + 1, STEPS + 1))
    assert record["train_rows_read"] == (STEPS - SAVE_AT + 1) * GLOBAL_BATCH


def test_checkpoint_of_one_process_resumes_in_two(runs):
    records = runs["one_to_two"]
    assert [(r["global_step"], r["process_count"]) for r in records] == [(STEPS, 2), (STEPS, 2)]
    assert_same_losses(losses(runs["dir"] / "one_to_two"), losses(runs["dir"] / "one"), range(SAVE_AT + 1, STEPS + 1))
    assert [r["train_rows_read"] for r in records] == [(STEPS - SAVE_AT + 1) * GLOBAL_BATCH // 2] * 2
