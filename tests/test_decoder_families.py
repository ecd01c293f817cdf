"""Every decoder family (tests/family_cases/) against Hugging Face PyTorch on CPU.

For each (family, head class, config) in a family's ``parity`` list: HF's checkpoint loaded here
gives HF's outputs (logits, loss, every hidden state and attention map) on a padded batch, and our
``save_pretrained`` loads in ``transformers`` with the same key set and the same outputs. For each
family: greedy and beam ``generate`` on a left-padded batch are token-identical to HF's (prompts
longer than the sliding window where the family has one), the serving engine's greedy tokens equal
``generate``'s, and three Trainer steps on one device equal three steps under ``fsdp_tp`` on 8
simulated devices.
"""

import jax
import numpy as np
import pytest
import torch
from jax.sharding import Mesh

import transformers_jax as tj
from family_cases import all_families
from family_parity import check_hf_checkpoint_loads_here, check_our_checkpoint_loads_in_hf, hf_checkpoints
from parity import CLOSEST_CALL, BeamMargins, assert_same_up_to_rounding, assert_trees_same_up_to_rounding

FAMILIES = {family.name: family for family in all_families()}
B, T = 3, 16
PAD = 0


def head_kind(class_name: str) -> str:
    for suffix in ("ForCausalLM", "ForSequenceClassification", "ForTokenClassification", "ForQuestionAnswering",
                   "DoubleHeadsModel", "LMHeadModel"):
        if class_name.endswith(suffix):
            return suffix
    return "Model"


def task_overrides(kind: str) -> dict:
    return {"ForSequenceClassification": {"num_labels": 3}, "ForTokenClassification": {"num_labels": 5}}.get(kind, {})


def make_inputs(kind: str, cfg: dict, seed: int = 0) -> dict:
    """A padded batch with the head's labels: right padding for sequence classification (HF pools
    the last non-padding token), left padding otherwise. Double-heads models (LM + multiple choice)
    get [B, choices, T] ids, ``mc_token_ids`` at valid tokens and ``mc_labels``."""
    rng = np.random.RandomState(seed)
    if kind == "DoubleHeadsModel":
        choices = [make_inputs("LMHeadModel", cfg, seed + 100 * c) for c in range(2)]
        inputs = {k: np.stack([c[k] for c in choices], axis=1) for k in choices[0]}
        first_valid = np.argmax(inputs["attention_mask"], axis=-1)  # left padding
        inputs["mc_token_ids"] = rng.randint(first_valid, T)
        inputs["mc_labels"] = rng.randint(0, 2, B)
        return inputs
    lengths = np.array([T, T - 5, 4])
    positions = np.arange(T)[None]
    right = kind == "ForSequenceClassification"
    mask = (positions < lengths[:, None]) if right else (positions >= T - lengths[:, None])
    mask = mask.astype(np.int64)
    ids = rng.randint(3, cfg["vocab_size"], (B, T))
    ids[mask == 0] = PAD
    inputs = {"input_ids": ids, "attention_mask": mask}
    if kind in ("ForCausalLM", "LMHeadModel"):
        labels = np.where(mask == 1, ids, -100)
        labels[rng.rand(B, T) < 0.2] = -100
        inputs["labels"] = labels
    elif kind == "ForSequenceClassification":
        inputs["labels"] = rng.randint(0, 3, B)
    elif kind == "ForTokenClassification":
        inputs["labels"] = np.where(mask == 1, rng.randint(0, 5, (B, T)), -100)
    elif kind == "ForQuestionAnswering":
        inputs["start_positions"] = rng.randint(0, T, B)
        inputs["end_positions"] = rng.randint(0, T, B)
    return inputs


@pytest.fixture(scope="module")
def hf_case(tmp_path_factory):
    """(HF model in eager mode, its save directory, the keys HF saved) per (family, head, config), built once."""
    get, cache = hf_checkpoints(tmp_path_factory, lambda class_name: task_overrides(head_kind(class_name)))
    yield get
    cache.clear()


PARITY = [pytest.param(f, c, n, id=f"{f}-{c}-{n}") for f, family in FAMILIES.items() for c, n in family.parity]


@pytest.mark.parametrize("family_name,class_name,config_name", PARITY)
def test_hf_checkpoint_matches_hf_outputs(hf_case, family_name, class_name, config_name, caplog):
    family = FAMILIES[family_name]
    kind = head_kind(class_name)
    check_hf_checkpoint_loads_here(hf_case(family, class_name, config_name), class_name,
                                   make_inputs(kind, family.configs[config_name]), caplog, has_loss=kind != "Model")


@pytest.mark.parametrize("family_name,class_name,config_name", PARITY)
def test_our_checkpoint_loads_in_hf(hf_case, family_name, class_name, config_name, tmp_path):
    family = FAMILIES[family_name]
    check_our_checkpoint_loads_in_hf(hf_case(family, class_name, config_name), family.heads[class_name], class_name,
                                     make_inputs(head_kind(class_name), family.configs[config_name], seed=5), tmp_path)


def causal_lm_class(family) -> str:
    return next(name for name in family.heads if head_kind(name) in ("ForCausalLM", "LMHeadModel"))


def prompt_batch(family, seed=0):
    rng = np.random.RandomState(seed)
    vocab = family.configs[family.generation_config]["vocab_size"]
    width = max(family.prompt_lengths)
    ids = np.full((len(family.prompt_lengths), width), PAD, np.int64)
    mask = np.zeros_like(ids)
    for row, n in enumerate(family.prompt_lengths):
        ids[row, width - n:] = rng.randint(3, vocab, n)
        mask[row, width - n:] = 1
    return ids, mask


def hf_generate(model, ids, mask, **kwargs):
    with torch.no_grad():
        return model.generate(input_ids=torch.tensor(ids), attention_mask=torch.tensor(mask), do_sample=False,
                              pad_token_id=PAD, eos_token_id=None, **kwargs).numpy()


@pytest.fixture(scope="module")
def causal_pair(hf_case):
    """(HF causal LM, ours loaded from its checkpoint) per family, for generation."""
    cache = {}

    def get(family):
        if family.name not in cache:
            class_name = causal_lm_class(family)
            hf_model, path, _ = hf_case(family, class_name, family.generation_config)
            cache[family.name] = (hf_model, getattr(tj, class_name).from_pretrained(path))
        return cache[family.name]

    return get


@pytest.mark.parametrize("family_name", list(FAMILIES))
def test_greedy_and_beam_generate_equal_hf(causal_pair, family_name):
    family = FAMILIES[family_name]
    hf_model, ours = causal_pair(family)
    ids, mask = prompt_batch(family)
    window = getattr(ours.config, "sliding_window", None)
    if window:
        assert max(family.prompt_lengths) > window, "the prompts must be longer than the sliding window"
    n = family.max_new_tokens
    greedy = np.asarray(ours.generate(ids, attention_mask=mask, max_new_tokens=n, do_sample=False, pad_token_id=PAD,
                                      eos_token_id=None))
    np.testing.assert_array_equal(greedy, hf_generate(hf_model, ids, mask, max_new_tokens=n))
    beams = np.asarray(ours.generate(ids, attention_mask=mask, max_new_tokens=n, num_beams=3, num_return_sequences=2,
                                     do_sample=False, pad_token_id=PAD, eos_token_id=None))
    with BeamMargins(hf_model) as margins:
        want = hf_generate(hf_model, ids, mask, max_new_tokens=n, num_beams=3, num_return_sequences=2)
    assert margins.closest > CLOSEST_CALL, f"HF's search made a call within rounding of a tie ({margins.closest:.1e})"
    np.testing.assert_array_equal(beams, want)


@pytest.mark.parametrize("family_name", list(FAMILIES))
def test_engine_greedy_equals_generate(causal_pair, family_name):
    from serving.engine import Engine, SamplingParams

    family = FAMILIES[family_name]
    _, ours = causal_pair(family)
    ids, mask = prompt_batch(family, seed=1)
    prompts = [row[m == 1].tolist() for row, m in zip(ids, mask)]
    engine = Engine(ours, num_slots=2, max_length=64, chunk_steps=4)
    engine.start(warmup=False)
    try:
        handles = [engine.submit(p, SamplingParams(max_tokens=family.max_new_tokens, temperature=0.0)) for p in prompts]
        got = [h.result(timeout=600) for h in handles]
    finally:
        engine.shutdown()
    eos = set(engine.eos_token_ids)
    for prompt, tokens in zip(prompts, got):
        want = np.asarray(ours.generate(np.asarray(prompt)[None], max_new_tokens=family.max_new_tokens,
                                        do_sample=False))[0, len(prompt):].tolist()
        stop = next((i for i, t in enumerate(want) if t in eos), None)  # generate pads after EOS; the engine stops
        assert list(tokens) == (want if stop is None else want[:stop + 1])


@pytest.mark.parametrize("family_name", list(FAMILIES))
def test_three_steps_under_fsdp_tp_equal_one_device(family_name, tmp_path):
    from sharding import create_mesh
    from train.data import ArrayDataset
    from train.trainer import Trainer
    from train.training_args import TrainingArguments

    family = FAMILIES[family_name]
    class_name = causal_lm_class(family)
    cls = getattr(tj, class_name)
    config = cls.config_class.from_dict(family.configs[family.generation_config])
    rng = np.random.RandomState(0)
    ids = rng.randint(3, config.vocab_size, (24, 16)).astype(np.int32)
    mask = np.ones_like(ids)
    mask[::3, 12:] = 0
    data = ArrayDataset({"input_ids": ids, "attention_mask": mask, "labels": np.where(mask == 1, ids, -100)})

    def run(mesh, rows, folder):
        args = TrainingArguments(output_dir=str(tmp_path / folder), max_steps=3, per_device_train_batch_size=rows,
                                 optim="sgd", learning_rate=0.1, logging_steps=1, save_strategy="no",
                                 report_to="none", disable_tqdm=True,
                                 sharding="fsdp_tp" if mesh.devices.size > 1 else "dp")
        trainer = Trainer(cls(config, seed=3), args, train_dataset=data, mesh=mesh)
        trainer.train()
        return trainer, [r["loss"] for r in trainer.state.log_history if "loss" in r]

    single, single_loss = run(Mesh(np.array(jax.devices()[:1]), ("data",)), 8, "one")
    sharded, sharded_loss = run(create_mesh({"data": 2, "fsdp": 2, "tensor": 2}), 2, "eight")
    assert len(single_loss) == 3
    assert_same_up_to_rounding(sharded_loss, single_loss, ulps=16, name="losses")
    assert_trees_same_up_to_rounding(sharded.model.params, single.model.params, ulps=16, floor=0.1)
