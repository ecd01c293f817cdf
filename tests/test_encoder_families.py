"""Every encoder family (tests/encoder_cases/) against Hugging Face PyTorch on CPU.

For each (family, head class, config) in a family's ``parity`` list: HF's checkpoint loaded here
gives HF's outputs (logits, loss, every hidden state and attention map) on a right-padded batch
(with token types where the config has two), and our ``save_pretrained`` loads in ``transformers``
with the same key set and the same outputs. For each family with a ``train_config``: three Trainer
steps of its sequence classifier on one device equal three steps under ``fsdp_tp`` on 8 simulated
devices.
"""

import jax
import numpy as np
import pytest
from jax.sharding import Mesh

import transformers_jax as tj
from encoder_cases import all_families
from family_parity import check_hf_checkpoint_loads_here, check_our_checkpoint_loads_in_hf, hf_checkpoints
from parity import assert_same_up_to_rounding, assert_trees_same_up_to_rounding

FAMILIES = {family.name: family for family in all_families()}
B, T, CHOICES = 3, 12, 2
NUM_LABELS = {"ForSequenceClassification": 3, "ForTokenClassification": 5}


def head_kind(class_name: str) -> str:
    for suffix in ("ForPreTraining", "ForMaskedLM", "ForSequenceClassification", "ForTokenClassification",
                   "ForQuestionAnswering", "ForMultipleChoice"):
        if class_name.endswith(suffix):
            return suffix
    return "Model"


def task_overrides(kind: str) -> dict:
    return {"num_labels": NUM_LABELS[kind]} if kind in NUM_LABELS else {}


def token_batch(cfg: dict, rng, rows: int, length: int = T) -> dict:
    """Right-padded ids (padding is the config's pad id), with token types when the config has two."""
    lengths = np.resize([length, length - 5, 4, length - 2, 6], rows)
    mask = (np.arange(length)[None] < lengths[:, None]).astype(np.int64)
    ids = rng.randint(3, cfg["vocab_size"], (rows, length))
    ids[mask == 0] = cfg.get("pad_token_id", 0) or 0
    inputs = {"input_ids": ids, "attention_mask": mask}
    if cfg.get("type_vocab_size", 0) > 1:
        inputs["token_type_ids"] = (np.arange(length)[None] >= lengths[:, None] // 2).astype(np.int64) * mask
    return inputs


def make_inputs(family, kind: str, config_name: str, seed: int = 0) -> dict:
    """A padded batch with the head's labels; multiple choice gets [B, C, T] inputs (T: the config's
    length in ``family.lengths``, default 12)."""
    rng = np.random.RandomState(seed)
    cfg, length = family.configs[config_name], family.lengths.get(config_name, T)
    if kind == "ForMultipleChoice":
        rows = token_batch(cfg, rng, B * CHOICES, length)
        inputs = {k: v.reshape(B, CHOICES, length) for k, v in rows.items()}
        inputs["labels"] = rng.randint(0, CHOICES, B)
        return inputs
    inputs = token_batch(cfg, rng, B, length)
    ids, mask = inputs["input_ids"], inputs["attention_mask"]
    if kind in ("ForMaskedLM", "ForPreTraining"):
        labels = np.where((rng.rand(B, length) < 0.4) & (mask == 1), ids, -100)
        if kind == "ForMaskedLM" or family.pretraining_has_mlm_labels:
            inputs["labels"] = labels
        if kind == "ForPreTraining" and family.pretraining_labels is not None:
            inputs.update(family.pretraining_labels(rng, ids, mask))
    elif kind == "ForSequenceClassification":
        inputs["labels"] = rng.randint(0, NUM_LABELS[kind], B)
    elif kind == "ForTokenClassification":
        inputs["labels"] = np.where(mask == 1, rng.randint(0, NUM_LABELS[kind], (B, length)), -100)
    elif kind == "ForQuestionAnswering":
        inputs["start_positions"] = rng.randint(0, length, B)
        inputs["end_positions"] = rng.randint(0, length, B)
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
                                   make_inputs(family, kind, config_name), caplog, has_loss=kind != "Model")


@pytest.mark.parametrize("family_name,class_name,config_name", PARITY)
def test_our_checkpoint_loads_in_hf(hf_case, family_name, class_name, config_name, tmp_path):
    family = FAMILIES[family_name]
    check_our_checkpoint_loads_in_hf(hf_case(family, class_name, config_name), family.heads[class_name], class_name,
                                     make_inputs(family, head_kind(class_name), config_name, seed=5), tmp_path)


CONFIG_ERRORS = [pytest.param(f, i, id=f"{f}-{i}") for f, family in FAMILIES.items()
                 for i in range(len(family.config_errors))]


@pytest.mark.parametrize("family_name,index", CONFIG_ERRORS)
def test_unsupported_config_option_raises(family_name, index):
    """A config option the family does not support is refused with a message naming it."""
    family = FAMILIES[family_name]
    cfg, message = family.config_errors[index]
    config_class = getattr(tj, next(iter(family.heads))).config_class
    with pytest.raises(ValueError, match=message):
        config_class.from_dict(cfg)


TRAINED = [name for name, family in FAMILIES.items() if family.train_config is not None]


@pytest.mark.parametrize("family_name", TRAINED)
def test_three_steps_under_fsdp_tp_equal_one_device(family_name, tmp_path):
    from sharding import create_mesh
    from train.data import ArrayDataset
    from train.trainer import Trainer
    from train.training_args import TrainingArguments

    family = FAMILIES[family_name]
    class_name = next(name for name in family.heads if name.endswith("ForSequenceClassification"))
    cls = getattr(tj, class_name)
    config = cls.config_class.from_dict(dict(family.configs[family.train_config], num_labels=3))
    rng = np.random.RandomState(0)
    rows = token_batch(family.configs[family.train_config], rng, 5)
    data = ArrayDataset({k: np.concatenate([v] * 5)[:24].astype(np.int32) for k, v in rows.items()}
                        | {"labels": rng.randint(0, 3, 24).astype(np.int32)})

    def run(mesh, per_device, folder):
        args = TrainingArguments(output_dir=str(tmp_path / folder), max_steps=3, per_device_train_batch_size=per_device,
                                 optim="sgd", learning_rate=0.1, logging_steps=1, save_strategy="no",
                                 report_to="none", disable_tqdm=True,
                                 sharding="fsdp_tp" if mesh.devices.size > 1 else "dp")
        trainer = Trainer(cls(config, seed=3), args, train_dataset=data, mesh=mesh)
        trainer.train()
        return trainer, [r["loss"] for r in trainer.state.log_history if "loss" in r]

    single, single_loss = run(Mesh(np.array(jax.devices()[:1]), ("data",)), 8, "one")
    sharded, sharded_loss = run(create_mesh({"data": 2, "fsdp": 2, "tensor": 2}), 2, "eight")
    assert len(single_loss) == 3 and single_loss[0] != single_loss[-1]
    assert_same_up_to_rounding(sharded_loss, single_loss, ulps=16, name="losses")
    assert_trees_same_up_to_rounding(sharded.model.params, single.model.params, ulps=16, floor=0.1)
