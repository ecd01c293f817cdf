"""The two checkpoint-parity checks every model family runs (tests/test_decoder_families.py and
tests/test_encoder_families.py): HF's checkpoint loaded here gives HF's outputs, and our
``save_pretrained`` loads in ``transformers`` with HF's key set and the same outputs."""
import logging

import numpy as np
import torch

import transformers_jax as tj
from parity import compare_with_hf, perturb_params, perturb_torch, run_ours, safetensors_keys

FLAGS = {"output_hidden_states": True, "output_attentions": True}


def hf_checkpoints(tmp_path_factory, overrides):
    """A builder of (HF model in eager mode, its save directory, the keys HF saved) per (family, head
    class, config name), each built once; ``overrides(class_name)`` gives the head's config extras
    (``num_labels``). Returns (get, the cache to clear)."""
    cache = {}

    def get(family, class_name, config_name):
        key = (family.name, class_name, config_name)
        if key not in cache:
            config = family.hf_config_class(**family.configs[config_name], **overrides(class_name))
            torch.manual_seed(0)
            model = perturb_torch(family.heads[class_name](config), seed=1).eval()
            if getattr(family, "prepare_hf", None) is not None:  # e.g. Marian's fixed tables, which noise would change
                family.prepare_hf(model)
            model.set_attn_implementation("eager")
            path = tmp_path_factory.mktemp(f"{family.name}_{class_name}_{config_name}")
            model.save_pretrained(path)
            cache[key] = (model, path, safetensors_keys(path))
        return cache[key]

    return get, cache


def check_hf_checkpoint_loads_here(case, class_name, inputs, caplog, has_loss: bool):
    """HF's checkpoint loads here without a warning and gives HF's outputs (every hidden state and
    attention map; the loss where the head has one)."""
    hf_model, path, _ = case
    with caplog.at_level(logging.WARNING, logger="transformers_jax"):
        ours = getattr(tj, class_name).from_pretrained(path)
    assert not [r for r in caplog.records if r.name.startswith("transformers_jax")], caplog.text
    want = compare_with_hf(run_ours(ours, inputs, **FLAGS), hf_model, inputs, **FLAGS)
    layers = hf_model.config.num_hidden_layers
    assert len(want.hidden_states) == layers + 1 and len(want.attentions) == layers
    if has_loss:
        assert np.isfinite(float(want.loss)) and float(want.loss) > 0


def check_our_checkpoint_loads_in_hf(case, hf_class, class_name, inputs, tmp_path):
    """Our randomly initialised model, saved, has HF's key set, loads in HF with nothing missing or
    unexpected, and gives the same outputs there."""
    _, hf_path, hf_keys = case
    ours_cls = getattr(tj, class_name)
    ours = ours_cls(ours_cls.config_class.from_pretrained(hf_path), seed=3)
    ours.params = perturb_params(ours.params, seed=4)
    ours.save_pretrained(tmp_path)
    assert safetensors_keys(tmp_path) == hf_keys
    theirs, info = hf_class.from_pretrained(tmp_path, attn_implementation="eager", output_loading_info=True)
    assert {k: v for k, v in info.items() if v} == {}
    compare_with_hf(run_ours(ours, inputs, **FLAGS), theirs.eval(), inputs, **FLAGS)
