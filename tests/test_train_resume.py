"""A run killed with SIGKILL and resumed logs the same losses as an uninterrupted run, step for
step (params, optimizer state, step, dropout RNG, data position and MLM masking all restored)."""
import json
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

SCRIPT = textwrap.dedent('''
    import os, signal, sys
    import numpy as np
    import transformers_jax as tj
    from transformers_jax.compilation_cache import enable_compilation_cache
    from train.collators import DataCollatorForLanguageModeling
    from train.trainer import Trainer, TrainerCallback
    from train.training_args import TrainingArguments

    enable_compilation_cache()  # the test session's own folder (conftest): later runs load the compiled step
    out, max_steps, kill_at, resume = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4] == "resume"
    kill_in_save = sys.argv[5] == "in_save"

    class Tokenizer:  # what the MLM collator needs of a tokenizer
        pad_token_id, mask_token_id, all_special_ids, padding_side = 0, 1, [0, 1, 2], "right"
        def __len__(self):
            return 64

    class KillAt(TrainerCallback):
        def on_step_end(self, args, state, control, **kwargs):
            if state.global_step == kill_at and not kill_in_save:
                os.kill(os.getpid(), signal.SIGKILL)

        def on_save(self, args, state, control, **kwargs):  # called as soon as the async save is started
            if state.global_step == kill_at and kill_in_save:
                directory = kwargs["trainer"]._checkpoint_dir()
                print("in flight:", sorted(p.name for p in directory.iterdir()), flush=True)
                os.kill(os.getpid(), signal.SIGKILL)

    config = tj.BertConfig.from_dict(dict(vocab_size=64, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                                          intermediate_size=64, max_position_embeddings=32))  # dropout 0.1
    rng = np.random.RandomState(0)
    data = [{"input_ids": [2] + list(rng.randint(3, 64, 15))} for _ in range(40)]
    args = TrainingArguments(output_dir=out, max_steps=max_steps, per_device_train_batch_size=1, learning_rate=1e-3,
                             logging_steps=1, save_steps=3, report_to="jsonl", disable_tqdm=True, seed=3)
    trainer = Trainer(tj.BertForMaskedLM(config, seed=0), args, train_dataset=data,
                      data_collator=DataCollatorForLanguageModeling(Tokenizer()), callbacks=[KillAt()])
    trainer.train(resume_from_checkpoint=resume or None)
''')


def run(tmp_path: Path, out: Path, max_steps: int, kill_at: int = -1, resume: bool = False, in_save: bool = False):
    script = tmp_path / "run.py"
    script.write_text(SCRIPT)
    env = dict(os.environ, XLA_FLAGS="--xla_force_host_platform_device_count=8", JAX_PLATFORMS="cpu",
               PYTHONPATH=str(Path(__file__).resolve().parents[1]))
    return subprocess.run([sys.executable, str(script), str(out), str(max_steps), str(kill_at),
                           "resume" if resume else "fresh", "in_save" if in_save else "after_step"],
                          env=env, capture_output=True, text=True, timeout=300)


def losses(out: Path) -> dict:
    """{step: loss} from the JSONL log (a resumed run appends; the later line wins)."""
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    return {r["step"]: r["loss"] for r in rows if "loss" in r}


@pytest.fixture(scope="module")
def expected(tmp_path_factory):
    """Losses of the uninterrupted run: 12 steps over 40 rows at global batch 8 (5 batches per
    epoch, so the run crosses two epoch boundaries)."""
    tmp_path = tmp_path_factory.mktemp("full")
    done = run(tmp_path, tmp_path / "full", 12)
    assert done.returncode == 0, done.stderr[-3000:]
    result = losses(tmp_path / "full")
    assert sorted(result) == list(range(1, 13))
    return result


def test_sigkill_and_resume_gives_the_uninterrupted_losses(tmp_path, expected):
    killed = run(tmp_path, tmp_path / "cut", 12, kill_at=8)
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-3000:]
    before = losses(tmp_path / "cut")
    assert max(before) == 7  # step 8 was killed before it was logged
    saved = sorted(int(p.name) for p in (tmp_path / "cut" / "checkpoints").iterdir() if p.name.isdigit())
    assert saved and max(saved) <= 6

    resumed = run(tmp_path, tmp_path / "cut", 12, resume=True)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    after = losses(tmp_path / "cut")
    assert sorted(after) == list(range(1, 13))
    resumed_from = max(saved)
    for step in range(resumed_from + 1, 13):
        assert after[step] == expected[step], f"step {step}"  # the same program on the same data: bit for bit
    # the losses change from step to step: equality above is not trivial
    assert len({round(v, 6) for v in expected.values()}) > 6


def test_sigkill_during_a_save_resumes_from_the_previous_checkpoint(tmp_path, expected):
    """Killed while the step-6 checkpoint is being written: it never counts, step 3 is restored,
    and the resumed run still logs the uninterrupted losses."""
    killed = run(tmp_path, tmp_path / "cut", 12, kill_at=6, in_save=True)
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-3000:]
    assert "6.orbax-checkpoint-tmp" in killed.stdout  # the save was in flight when the process died
    checkpoints = tmp_path / "cut" / "checkpoints"
    assert sorted(int(p.name) for p in checkpoints.iterdir() if p.name.isdigit()) == [3]
    resumed = run(tmp_path, tmp_path / "cut", 12, resume=True)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    after = losses(tmp_path / "cut")
    for step in range(4, 13):
        assert after[step] == expected[step], f"step {step}"  # the same program on the same data: bit for bit
    assert 6 in [int(p.name) for p in checkpoints.iterdir() if p.name.isdigit()]
