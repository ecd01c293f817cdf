"""Every encoder-decoder family (tests/seq2seq_cases/) against Hugging Face PyTorch on CPU.

For each (family, head class, config) in a family's ``parity`` list: HF's checkpoint loaded here
gives HF's outputs (logits, loss, every encoder and decoder hidden state, self-attention and
cross-attention map) on right-padded batches, and our ``save_pretrained`` loads in ``transformers``
with the same key set and the same outputs. Then the seq2seq specifics: decoder inputs built from
labels or input_ids (and the errors when they cannot be), ``encoder_outputs=``, eos pooling,
Marian's fixed position tables, T5's relative position bias at any (traced) positions, its config
parsing and LM-head tying, checkpoints read across T5's classes, the Auto classes, and three Trainer
steps of BartForConditionalGeneration on one device against ``fsdp_tp`` on 8 simulated devices.
"""
import logging

import jax
import numpy as np
import pytest
import transformers as hf
from jax.sharding import Mesh

import transformers_jax as tj
from family_parity import FLAGS, check_our_checkpoint_loads_in_hf, hf_checkpoints
from parity import assert_same_up_to_rounding, assert_trees_same_up_to_rounding, compare_with_hf, run_ours
from seq2seq_cases import all_families

FAMILIES = {family.name: family for family in all_families()}
B, T, TD = 3, 11, 7  # rows, encoder length, decoder length
NUM_LABELS = 3


ENCODER_ONLY = ("EncoderModel", "ForTokenClassification")  # T5's heads over the encoder alone


def head_kind(class_name: str) -> str:
    for suffix in ("ForConditionalGeneration", "MTModel", "ForSequenceClassification", "ForQuestionAnswering",
                   "ForCausalLM", "ForTokenClassification", "EncoderModel"):
        if class_name.endswith(suffix):
            return "ForConditionalGeneration" if suffix == "MTModel" else suffix
    return "Model"


def overrides(class_name: str) -> dict:
    labelled = ("ForSequenceClassification", "ForTokenClassification")
    return {"num_labels": NUM_LABELS} if head_kind(class_name) in labelled else {}


def stack_layers(cfg) -> tuple[int, int]:
    """(encoder layers, decoder layers) of a Hugging Face config, under BART's names or T5's."""
    if hasattr(cfg, "encoder_layers"):
        return cfg.encoder_layers, cfg.decoder_layers
    return cfg.num_layers, cfg.num_decoder_layers


def padded(rng, cfg, rows, length, lengths, vocab=None):
    """Right-padded ids in [3, vocab) (never a special id: every case keeps pad and eos below 3) and their mask."""
    assert cfg["pad_token_id"] < 3 and cfg["eos_token_id"] < 3
    mask = (np.arange(length)[None] < np.asarray(lengths)[:, None]).astype(np.int64)
    ids = rng.randint(3, vocab or cfg["vocab_size"], (rows, length))
    ids[mask == 0] = cfg["pad_token_id"]
    return ids, mask


def make_inputs(family, class_name: str, config_name: str, seed: int = 0) -> dict:
    rng = np.random.RandomState(seed)
    cfg = family.configs[config_name]
    target_vocab = cfg.get("decoder_vocab_size") or cfg["vocab_size"]
    kind = head_kind(class_name)
    if kind == "ForCausalLM":
        ids, mask = padded(rng, cfg, B, TD, [TD, 4, TD - 2], min(cfg["vocab_size"], target_vocab))
        return {"input_ids": ids, "attention_mask": mask, "labels": np.where(mask == 1, np.roll(ids, -1, 1), -100)}
    ids, mask = padded(rng, cfg, B, T, [T, T - 4, 5])
    inputs = {"input_ids": ids, "attention_mask": mask}
    if kind == "Model":
        dec, dec_mask = padded(rng, cfg, B, TD, [TD - 2, TD, 3], target_vocab)
        inputs.update(decoder_input_ids=dec, decoder_attention_mask=dec_mask)
    elif kind == "ForConditionalGeneration":
        labels, label_mask = padded(rng, cfg, B, TD, [TD, 4, TD - 1], target_vocab)
        inputs["labels"] = np.where(label_mask == 1, labels, -100)
    elif kind == "ForSequenceClassification":
        ids[np.arange(B), mask.sum(1) - 1] = cfg["eos_token_id"]  # one eos per row, at its last real token
        ids[0, 2] = cfg["eos_token_id"]  # ... and an earlier one in every row: the last one is pooled
        ids[1, 3] = ids[2, 1] = cfg["eos_token_id"]
        inputs["labels"] = rng.randint(0, NUM_LABELS, B)
    elif kind == "ForQuestionAnswering":
        inputs["start_positions"] = rng.randint(0, T, B)
        inputs["end_positions"] = rng.randint(0, T, B)
    elif kind == "ForTokenClassification":
        inputs["labels"] = np.where(mask == 1, rng.randint(0, NUM_LABELS, (B, T)), -100)
    return inputs


@pytest.fixture(scope="module")
def hf_case(tmp_path_factory):
    """(HF model in eager mode, its save directory, the keys HF saved) per (family, head, config), built once."""
    get, cache = hf_checkpoints(tmp_path_factory, overrides)
    yield get
    cache.clear()


PARITY = [pytest.param(f, c, n, id=f"{f}-{c}-{n}") for f, family in FAMILIES.items() for c, n in family.parity]


@pytest.mark.parametrize("family_name,class_name,config_name", PARITY)
def test_hf_checkpoint_matches_hf_outputs(hf_case, family_name, class_name, config_name, caplog):
    family = FAMILIES[family_name]
    hf_model, path, _ = hf_case(family, class_name, config_name)
    with caplog.at_level(logging.WARNING, logger="transformers_jax"):
        ours = getattr(tj, class_name).from_pretrained(path)
    assert not [r for r in caplog.records if r.name.startswith("transformers_jax")], caplog.text
    inputs = make_inputs(family, class_name, config_name)
    want = compare_with_hf(run_ours(ours, inputs, **FLAGS), hf_model, inputs, **FLAGS)
    encoder_layers, decoder_layers = stack_layers(hf_model.config)
    kind = head_kind(class_name)
    if kind == "ForCausalLM":
        assert len(want.hidden_states) == decoder_layers + 1 and len(want.attentions) == decoder_layers
    elif kind in ENCODER_ONLY:
        assert len(want.hidden_states) == encoder_layers + 1 and len(want.attentions) == encoder_layers
    else:
        assert len(want.encoder_hidden_states) == encoder_layers + 1
        assert len(want.decoder_hidden_states) == decoder_layers + 1
        assert len(want.cross_attentions) == decoder_layers and want.cross_attentions[0].shape[-1] == T
    if kind not in ("Model", "EncoderModel"):
        assert np.isfinite(float(want.loss)) and float(want.loss) > 0


@pytest.mark.parametrize("family_name,class_name,config_name", PARITY)
def test_our_checkpoint_loads_in_hf(hf_case, family_name, class_name, config_name, tmp_path):
    family = FAMILIES[family_name]
    check_our_checkpoint_loads_in_hf(hf_case(family, class_name, config_name), family.heads[class_name], class_name,
                                     make_inputs(family, class_name, config_name, seed=5), tmp_path)


# ----------------------------------------------------------------------------- decoder inputs
def _tiny(family_name: str, class_name: str, **changes):
    cls = getattr(tj, class_name)
    return cls(cls.config_class.from_dict(dict(FAMILIES[family_name].configs["base"], **changes)), seed=0)


def test_missing_decoder_start_token_id_is_named():
    model = _tiny("bart", "BartForConditionalGeneration", decoder_start_token_id=None)
    inputs = make_inputs(FAMILIES["bart"], "BartForConditionalGeneration", "base")
    with pytest.raises(ValueError, match="decoder_start_token_id"):
        model(**inputs)
    # Given decoder inputs, no start token is needed.
    out = model(**inputs, decoder_input_ids=np.full((B, TD), 2))
    assert out.logits.shape == (B, TD, 99)


def test_marian_model_needs_decoder_input_ids():
    model = _tiny("marian", "MarianModel")
    with pytest.raises(ValueError, match="MarianModel needs decoder_input_ids"):
        model(input_ids=np.full((1, 4), 5))


def test_decoder_inputs_are_labels_shifted_right():
    """BART puts decoder_start_token_id first; mBART the row's last non-padding label; -100 reads as padding."""
    labels = np.array([[5, 6, 7, -100], [8, 9, -100, -100]])
    bart = tj.BartConfig.from_dict(dict(FAMILIES["bart"].configs["base"], decoder_start_token_id=4))
    np.testing.assert_array_equal(bart.decoder_inputs_from_labels(labels), [[4, 5, 6, 7], [4, 8, 9, 1]])
    mbart = tj.MBartConfig.from_dict(FAMILIES["mbart"].configs["base"])
    np.testing.assert_array_equal(mbart.decoder_inputs_from_labels(labels), [[7, 5, 6, 7], [9, 8, 9, 1]])


def test_encoder_outputs_are_reused(hf_case):
    """``encoder_outputs=`` (ours, or a tuple) skips the encoder and gives the same logits as HF's run."""
    family = FAMILIES["bart"]
    hf_model, path, _ = hf_case(family, "BartForConditionalGeneration", "base")
    ours = tj.BartForConditionalGeneration.from_pretrained(path)
    inputs = make_inputs(family, "BartForConditionalGeneration", "base")
    full = ours(**inputs)
    encoded = tj.BartModel.from_pretrained(path)(input_ids=inputs["input_ids"], attention_mask=inputs["attention_mask"],
                                                 decoder_input_ids=inputs["input_ids"][:, :2])
    for given in ((encoded.encoder_last_hidden_state,), encoded.encoder_last_hidden_state):
        again = ours(attention_mask=inputs["attention_mask"], labels=inputs["labels"], encoder_outputs=given)
        assert_same_up_to_rounding(again.logits, full.logits, ulps=8, name="logits")
        assert_same_up_to_rounding(again.loss, full.loss, ulps=8, name="loss")
    import torch

    from parity import assert_accurate, hf_pair

    def run(model):
        dtype = next(model.parameters()).dtype
        given = torch.tensor(np.asarray(encoded.encoder_last_hidden_state)).to(dtype)
        return model(attention_mask=torch.tensor(inputs["attention_mask"]), labels=torch.tensor(inputs["labels"]),
                     encoder_outputs=(given,)).logits

    reference, exact = hf_pair(hf_model, run)
    assert_accurate(again.logits, reference, exact, name="logits from encoder_outputs")


def test_sequence_classifier_refuses_rows_with_different_eos_counts():
    model = _tiny("bart", "BartForSequenceClassification")
    ids = np.array([[5, 6, 2, 2], [5, 6, 7, 2]])
    with pytest.raises(ValueError, match="same number of <eos> tokens"):
        model(input_ids=ids)
    with pytest.raises(ValueError, match="at least one <eos> token"):
        model(input_ids=np.array([[5, 6, 7, 8]]))


def test_marian_positions_are_fixed_tables(hf_case, tmp_path):
    """Marian's positions are not params; a checkpoint's tables must equal the sinusoids (HF's own values)."""
    from safetensors.numpy import load_file, save_file

    family = FAMILIES["marian"]
    hf_model, path, keys = hf_case(family, "MarianModel", "base")
    assert "encoder.embed_positions.weight" in keys  # HF's MarianModel writes them (MarianMTModel does not)
    ours = tj.MarianModel.from_pretrained(path)
    assert "embed_positions" not in ours.params["encoder"]
    np.testing.assert_array_equal(tj.MarianModel.static_weights(ours.config)["encoder.embed_positions.weight"],
                                  hf_model.encoder.embed_positions.weight.detach().numpy())
    state = load_file(str(path / "model.safetensors"))
    state["decoder.embed_positions.weight"] = state["decoder.embed_positions.weight"] + 0.01
    (tmp_path / "config.json").write_text((path / "config.json").read_text())
    save_file(state, str(tmp_path / "model.safetensors"))
    with pytest.raises(ValueError, match="decoder.embed_positions.weight"):
        tj.MarianModel.from_pretrained(tmp_path)


def test_auto_model_for_seq2seq_lm(hf_case):
    for family_name, class_name in (("bart", "BartForConditionalGeneration"), ("marian", "MarianMTModel"),
                                    ("t5", "T5ForConditionalGeneration"), ("mt5", "MT5ForConditionalGeneration"),
                                    ("umt5", "UMT5ForConditionalGeneration")):
        _, path, _ = hf_case(FAMILIES[family_name], class_name, "base")
        assert type(tj.AutoModelForSeq2SeqLM.from_pretrained(path)).__name__ == class_name
    with pytest.raises(ValueError, match="AutoModelForSeq2SeqLM does not support model_type 'llama'"):
        tj.AutoModelForSeq2SeqLM.from_config(tj.AutoConfig.for_model("llama", hidden_size=8, num_attention_heads=2,
                                                                     num_hidden_layers=1, intermediate_size=8))


def test_unsupported_switches_are_refused():
    import dataclasses

    @dataclasses.dataclass(frozen=True, eq=False)
    class GroupNormConfig(tj.BartConfig):
        norm_type = "group"

    with pytest.raises(ValueError, match="norm_type='group' is not supported"):
        GroupNormConfig()

    @dataclasses.dataclass(frozen=True, eq=False)
    class RotaryConfig(tj.BartConfig):
        position_type = "rotary"

    with pytest.raises(ValueError, match="position_type='rotary' is not supported"):
        RotaryConfig()
    with pytest.raises(ValueError, match=r"d_model \(32\) is not a multiple of encoder_attention_heads \(5\)"):
        tj.BartConfig.from_dict(dict(FAMILIES["bart"].configs["base"], encoder_attention_heads=5))


# ----------------------------------------------------------------------------- training
def test_three_steps_under_fsdp_tp_equal_one_device(tmp_path):
    from sharding import create_mesh
    from train.data import ArrayDataset
    from train.trainer import Trainer
    from train.training_args import TrainingArguments

    family = FAMILIES["bart"]
    config = tj.BartConfig.from_dict(family.configs["base"])
    rows = [make_inputs(family, "BartForConditionalGeneration", "base", seed=s) for s in range(8)]
    data = ArrayDataset({k: np.concatenate([r[k] for r in rows])[:24].astype(np.int32) for k in rows[0]})

    def run(mesh, per_device, folder):
        args = TrainingArguments(output_dir=str(tmp_path / folder), max_steps=3, per_device_train_batch_size=per_device,
                                 optim="sgd", learning_rate=0.1, logging_steps=1, save_strategy="no",
                                 report_to="none", disable_tqdm=True,
                                 sharding="fsdp_tp" if mesh.devices.size > 1 else "dp")
        trainer = Trainer(tj.BartForConditionalGeneration(config, seed=3), args, train_dataset=data, mesh=mesh)
        trainer.train()
        return trainer, [r["loss"] for r in trainer.state.log_history if "loss" in r]

    single, single_loss = run(Mesh(np.array(jax.devices()[:1]), ("data",)), 8, "one")
    sharded, sharded_loss = run(create_mesh({"data": 2, "fsdp": 2, "tensor": 2}), 2, "eight")
    assert len(single_loss) == 3 and single_loss[0] != single_loss[-1]
    assert_same_up_to_rounding(sharded_loss, single_loss, ulps=16, name="losses")
    assert_trees_same_up_to_rounding(sharded.model.params, single.model.params, ulps=16, floor=0.1)
    # final_logits_bias is a buffer in Hugging Face: never trained.
    np.testing.assert_array_equal(np.asarray(single.model.params["final_logits_bias"]), 0)


def test_memory_estimate_counts_both_stacks():
    """The activation estimate sums the encoder's layers and the decoder's (with their cross-attention maps)."""
    from sharding.memory import estimate_memory

    def activations(**changes):
        config = tj.BartConfig.from_dict(dict(FAMILIES["bart"].configs["base"], **changes))
        specs = tj.BartForConditionalGeneration.param_specs(config)
        return estimate_memory(config, specs, batch_per_device=2, seq_len=16).activations

    base = activations()
    d, t, b = 32, 16, 2
    encoder_layer = b * t * (8 * d + 4 * 37) * 4 + b * 4 * t * t * 4
    assert activations(decoder_layers=4) - base == b * t * (8 * d + 4 * 29) * 4 + 2 * b * 2 * t * t * 4
    assert activations(encoder_layers=3) - base == encoder_layer


def test_checkpoints_that_write_tied_copies_load(hf_case, tmp_path, caplog):
    """Older checkpoints hold the tied tables too (``model.encoder.embed_tokens``, ``model.decoder.embed_tokens``,
    ``lm_head``; Marian's position tables): accepted without a warning, same outputs; ours saves 5.24's form."""
    from safetensors.numpy import load_file, save_file

    for family_name, class_name in (("bart", "BartForConditionalGeneration"), ("marian", "MarianMTModel")):
        _, path, keys = hf_case(FAMILIES[family_name], class_name, "base")
        state = load_file(str(path / "model.safetensors"))
        added = {k: state["model.shared.weight"] for k in ("model.encoder.embed_tokens.weight",
                                                          "model.decoder.embed_tokens.weight", "lm_head.weight")}
        assert not set(added) & keys
        if family_name == "marian":
            added.update(tj.MarianMTModel.static_weights(tj.MarianConfig.from_pretrained(path)))
            assert "model.encoder.embed_positions.weight" in added
        folder = tmp_path / family_name
        folder.mkdir()
        (folder / "config.json").write_text((path / "config.json").read_text())
        save_file({**state, **added}, str(folder / "model.safetensors"))
        cls = getattr(tj, class_name)
        with caplog.at_level(logging.WARNING, logger="transformers_jax"):
            full = cls.from_pretrained(folder)
        assert not caplog.records, caplog.text
        inputs = make_inputs(FAMILIES[family_name], class_name, "base")
        np.testing.assert_array_equal(np.asarray(full(**inputs).logits),
                                      np.asarray(cls.from_pretrained(path)(**inputs).logits))


@pytest.mark.parametrize("family_name,class_name", [("bart", "BartForConditionalGeneration"), ("mbart", "MBartModel"),
                                                     ("t5", "T5ForConditionalGeneration"), ("umt5", "UMT5Model")])
def test_unrolled_layers_equal_the_scan(family_name, class_name):
    """``scan_layers=False`` (a Python loop over the layers) gives the scan's numbers."""
    scanned = _tiny(family_name, class_name)
    unrolled = type(scanned)(scanned.config.replace(scan_layers=False), params=scanned.params)
    inputs = make_inputs(FAMILIES[family_name], class_name, "base")
    a, b = scanned(**inputs, **FLAGS), unrolled(**inputs, **FLAGS)
    assert a.keys() == b.keys()
    assert_trees_same_up_to_rounding(a.to_tuple(), b.to_tuple(), ulps=8)


def test_inputs_as_lists_and_outputs_as_encoder_outputs():
    """Nested lists are one array each; a whole output object passes as ``encoder_outputs``."""
    model = _tiny("bart", "BartModel")
    ids = [[5, 6, 7, 2], [8, 9, 2, 1]]
    out = model(input_ids=ids, attention_mask=[[1, 1, 1, 1], [1, 1, 1, 0]], decoder_input_ids=[[2, 5], [2, 8]])
    assert out.last_hidden_state.shape == (2, 2, 32)
    again = model(attention_mask=[[1, 1, 1, 1], [1, 1, 1, 0]], decoder_input_ids=[[2, 5], [2, 8]],
                  encoder_outputs=tj.modeling_outputs.BaseModelOutput(last_hidden_state=out.encoder_last_hidden_state))
    assert_same_up_to_rounding(again.last_hidden_state, out.last_hidden_state, ulps=8)


# ----------------------------------------------------------------------------- T5
@pytest.mark.parametrize("family_name,side", [("t5", "encoder"), ("t5", "decoder"), ("umt5", "decoder")])
def test_t5_relative_bias_at_traced_positions(family_name, side):
    """The bias at (traced) query and key positions is HF's ``compute_bias``: over a whole sequence three
    times ``max_distance`` long, and for one decoding step at every offset (a query row per batch row)."""
    import torch

    family = FAMILIES[family_name]
    hf_config = family.hf_config_class(**family.configs["base"], is_decoder=side == "decoder")
    import importlib

    hf_module = importlib.import_module(f"transformers.models.{family_name}.modeling_{family_name}")
    attention_class = getattr(hf_module, f"{family_name.upper()}Attention")
    torch.manual_seed(0)
    hf_attention = attention_class(hf_config, has_relative_attention_bias=True, layer_idx=0)
    config = getattr(tj, f"{family_name.upper()}Config").from_dict(family.configs["base"])
    table = jax.numpy.asarray(hf_attention.relative_attention_bias.weight.detach().numpy())  # [buckets, H]
    holder = {"relative_attention_bias": {"embedding": table}}  # the stack's table (T5) or the layer's (umT5)
    bias = jax.jit(lambda q, k: config.self_attention_bias(holder, {"self_attn": holder}, side, q, k))
    length = 3 * config.relative_attention_max_distance
    keys = np.arange(length)[None]
    with torch.no_grad():
        np.testing.assert_array_equal(np.asarray(bias(keys, keys)), hf_attention.compute_bias(length, length).numpy())
        steps = [hf_attention.compute_bias(1, length, past_seen_tokens=p).numpy() for p in range(length)]
    for p in range(0, length, 2):
        rows = np.asarray(bias(np.array([[p], [p + 1]]), keys))  # [2, H, 1, S]: one traced program for every p
        np.testing.assert_array_equal(rows, np.concatenate(steps[p:p + 2]))


def test_t5_config_reads_and_writes_like_hf():
    """feed_forward_proj's parsing, scale_decoder_outputs and num_decoder_layers as HF derives them (values
    a config.json gives win), written back so that HF reads the same; T5's aliases; clear errors."""
    from sharding.memory import estimate_memory
    from transformers_jax.params import flatten_tree

    fields = ("dense_act_fn", "is_gated_act", "num_decoder_layers")
    for given in ({}, {"feed_forward_proj": "gated-gelu"}, {"feed_forward_proj": "gated-silu"},
                  {"feed_forward_proj": "gated-gelu", "dense_act_fn": "gelu"}, {"tie_word_embeddings": False},
                  {"scale_decoder_outputs": False, "tie_word_embeddings": True}, {"num_layers": 3},
                  {"num_layers": 3, "num_decoder_layers": 1}):
        for family in ("T5", "UMT5", "MT5"):
            ours = getattr(tj, f"{family}Config").from_dict(given)
            for theirs in (getattr(hf, f"{family}Config").from_dict(given),
                           getattr(hf, f"{family}Config").from_dict(ours.to_dict())):
                assert {f: getattr(ours, f) for f in fields} == {f: getattr(theirs, f) for f in fields}, given
                scaled = getattr(theirs, "scale_decoder_outputs", False)  # HF's mT5 never scales
                assert ours.decoder_output_scale() == (ours.d_model ** -0.5 if scaled else 1.0), (family, given)
    config = tj.T5Config()
    assert (config.pad_token_id, config.eos_token_id, config.decoder_start_token_id) == (0, 1, 0)
    aliases = (config.hidden_size, config.num_attention_heads, config.head_dim, config.num_hidden_layers)
    assert aliases == (512, 8, 64, 6)
    assert tj.T5Config.from_dict({"head_dim": 16}).d_kv == 16
    for bad, message in (({"feed_forward_proj": "gated-gelu-x"}, "feed_forward_proj='gated-gelu-x' is not of the form"),
                         ({"feed_forward_proj": "fast-relu"}, "feed_forward_proj='fast-relu' is not of the form"),
                         ({"feed_forward_proj": "gated-swishy"}, "unsupported activation 'swishy'"),
                         ({"relative_attention_num_buckets": 8, "relative_attention_max_distance": 4},
                          r"relative_attention_max_distance \(4\) must exceed relative_attention_num_buckets "
                          r"// 2 \(4\)")):
        with pytest.raises(ValueError, match=message):
            tj.T5Config.from_dict(bad)
    # The memory estimate reads T5's specs (inner width num_heads * d_kv) like any family's.
    small = tj.T5Config.from_dict(FAMILIES["t5"].configs["base"])
    specs = tj.T5ForConditionalGeneration.param_specs(small)
    size = sum(int(np.prod(s.shape)) for s in flatten_tree(specs).values())
    assert specs["transformer"]["encoder"]["layers"]["self_attn"]["q_proj"]["kernel"].shape == (2, 32, 24)
    assert estimate_memory(small, specs, batch_per_device=2, seq_len=16).params == 4 * size


def test_t5_bare_model_and_lm_need_decoder_inputs():
    """T5Model (and the LM without labels) take no decoder inputs from input_ids, as in HF; the classifiers do."""
    ids = np.array([[5, 6, 7, 1]])
    for class_name in ("T5Model", "T5ForConditionalGeneration"):
        with pytest.raises(ValueError, match=f"{class_name} needs decoder_input_ids"):
            _tiny("t5", class_name)(input_ids=ids)
    assert _tiny("t5", "T5ForQuestionAnswering")(input_ids=ids).start_logits.shape == (1, 4)


def test_t5_trains_with_dropout():
    """With a dropout key (dropout everywhere HF has it, after the final norms too) the loss moves with the
    key, and every gradient is finite; both stacks' relative bias tables get one."""
    import jax.numpy as jnp

    model = _tiny("t5", "T5ForConditionalGeneration")
    inputs = {k: jnp.asarray(v) for k, v in make_inputs(FAMILIES["t5"], "T5ForConditionalGeneration", "base").items()}

    def loss(params, rng):
        return type(model).forward(params, model.config, **inputs, dropout_rng=rng).loss

    step = jax.jit(jax.value_and_grad(loss))
    (first, grads), (second, _) = step(model.params, jax.random.PRNGKey(0)), step(model.params, jax.random.PRNGKey(1))
    plain = float(model(**inputs).loss)
    assert len({float(first), float(second), plain}) == 3
    assert all(bool(jnp.isfinite(g).all()) for g in jax.tree.leaves(grads))
    tables = [g for path, g in jax.tree_util.tree_leaves_with_path(grads)
              if "relative_attention_bias" in jax.tree_util.keystr(path)]
    assert len(tables) == 2 and all(float(jnp.abs(g).max()) > 0 for g in tables)


def test_t5_untied_lm_head_checkpoints(hf_case, tmp_path, caplog):
    """v1.1's LM head, compared with HF both ways. HF v5 saves a v1.1 config tied (one ``shared`` table,
    ``tie_word_embeddings`` true, ``scale_decoder_outputs`` false): read tied and unscaled here. A head of
    its own loads untied from both forms it comes in: FLAN-T5's config.json (``tie_word_embeddings``
    false) and HF v5's re-save (true, with a warning as HF gives); HF's outputs each time, and our save
    (with ``lm_head``) loads in HF with the same outputs."""
    import copy
    import json

    import torch

    from parity import safetensors_keys

    family = FAMILIES["t5"]
    hf_model, path, keys = hf_case(family, "T5ForConditionalGeneration", "v1_1")
    assert "lm_head.weight" not in keys  # HF v5 ties the head of a config that says tie_word_embeddings=False
    inputs = make_inputs(family, "T5ForConditionalGeneration", "v1_1")
    tied = tj.T5ForConditionalGeneration.from_pretrained(path)
    assert tied.config.tie_word_embeddings and tied.config.decoder_output_scale() == 1.0
    compare_with_hf(run_ours(tied, inputs, **FLAGS), hf_model, inputs, **FLAGS)
    untied = copy.deepcopy(hf_model)
    with torch.no_grad():
        noise = torch.randn(untied.shared.weight.shape, generator=torch.Generator().manual_seed(7))
        untied.lm_head.weight = torch.nn.Parameter(untied.shared.weight + 0.5 * noise)
    resaved, flan = tmp_path / "resaved", tmp_path / "flan"
    untied.save_pretrained(resaved)
    written = json.loads((resaved / "config.json").read_text())
    assert (written["tie_word_embeddings"], written["scale_decoder_outputs"]) == (True, False)
    flan.mkdir()
    (flan / "model.safetensors").write_bytes((resaved / "model.safetensors").read_bytes())
    written.pop("scale_decoder_outputs")
    (flan / "config.json").write_text(json.dumps({**written, "tie_word_embeddings": False}))
    for folder, warns in ((flan, False), (resaved, True)):
        caplog.clear()
        with caplog.at_level(logging.WARNING, logger="transformers_jax"):
            ours = tj.T5ForConditionalGeneration.from_pretrained(folder)
        assert ("differs from shared.weight" in caplog.text) == warns, caplog.text
        assert not ours.config.tie_word_embeddings and not ours.config.scale_decoder_outputs
        assert "lm_head" in ours.params
        compare_with_hf(run_ours(ours, inputs, **FLAGS), untied, inputs, **FLAGS)
    ours.save_pretrained(tmp_path / "ours")
    assert safetensors_keys(tmp_path / "ours") == keys | {"lm_head.weight"}
    theirs, info = hf.T5ForConditionalGeneration.from_pretrained(tmp_path / "ours", attn_implementation="eager",
                                                                  output_loading_info=True)
    assert {k: v for k, v in info.items() if v} == {}
    compare_with_hf(run_ours(ours, inputs, **FLAGS), theirs.eval(), inputs, **FLAGS)


def test_t5_checkpoints_read_across_classes(hf_case, tmp_path, caplog):
    """Like HF, T5's classes read each other's checkpoints whether the base model is nested under
    ``transformer.`` (the classifiers) or not: other classes' modules are reported and not used, missing
    heads initialised and reported; old checkpoints' tied copies and the unused relative bias of the
    decoder's first cross-attention load silently; any other unknown key is an error naming it."""
    from safetensors.numpy import load_file, save_file

    family = FAMILIES["t5"]
    _, lm_path, _ = hf_case(family, "T5ForConditionalGeneration", "base")
    _, classifier_path, _ = hf_case(family, "T5ForSequenceClassification", "base")
    inputs = make_inputs(family, "T5EncoderModel", "base")
    with caplog.at_level(logging.WARNING, logger="transformers_jax"):
        encoder = tj.T5EncoderModel.from_pretrained(lm_path)
    assert "were not used: decoder.block.0" in caplog.text
    theirs = hf.T5EncoderModel.from_pretrained(lm_path, attn_implementation="eager").eval()
    compare_with_hf(run_ours(encoder, inputs, **FLAGS), theirs, inputs, **FLAGS)
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="transformers_jax"):
        tagger = tj.T5ForTokenClassification.from_pretrained(lm_path, num_labels=NUM_LABELS)
    assert "newly initialised: classifier.bias, classifier.weight" in caplog.text
    assert "were not used: transformer.decoder.block.0" in caplog.text
    assert_trees_same_up_to_rounding(tagger.params["transformer"], encoder.params, ulps=0)
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="transformers_jax"):
        lm = tj.T5ForConditionalGeneration.from_pretrained(classifier_path)
    assert "weights of heads" in caplog.text and "classification_head.dense.weight" in caplog.text
    assert_trees_same_up_to_rounding(lm.params["transformer"], tj.T5Model.from_pretrained(classifier_path).params,
                                     ulps=0)

    state = load_file(str(lm_path / "model.safetensors"))
    old = {**state, "encoder.embed_tokens.weight": state["shared.weight"], "lm_head.weight": state["shared.weight"],
           "decoder.embed_tokens.weight": state["shared.weight"],
           "decoder.block.0.layer.1.EncDecAttention.relative_attention_bias.weight": np.ones((8, 4), np.float32)}
    for name, extra, error in (("old", {}, None),
                               ("bogus", {"encoder.block.0.layer.0.SelfAttention.foo.weight": np.ones(3, np.float32)},
                                "unexpected weight 'encoder.block.0.layer.0.SelfAttention.foo.weight'")):
        folder = tmp_path / name
        folder.mkdir()
        (folder / "config.json").write_text((lm_path / "config.json").read_text())
        save_file({**old, **extra}, str(folder / "model.safetensors"))
        if error:
            with pytest.raises(ValueError, match=error):
                tj.T5Model.from_pretrained(folder)
            continue
        caplog.clear()
        with caplog.at_level(logging.WARNING, logger="transformers_jax"):
            loaded = tj.T5ForConditionalGeneration.from_pretrained(folder)
        assert not caplog.records, caplog.text
        assert_trees_same_up_to_rounding(loaded.params, tj.T5ForConditionalGeneration.from_pretrained(lm_path).params,
                                         ulps=0)


def test_t5_auto_classes(hf_case):
    """Every T5 head the Auto classes serve, and the tokenizer class HF picks for t5 and mt5 folders."""
    from transformers_jax.tokenization.backends import MODEL_TYPE_CLASSES

    _, path, _ = hf_case(FAMILIES["t5"], "T5ForConditionalGeneration", "base")
    for auto, class_name in ((tj.AutoModel, "T5Model"), (tj.AutoModelForSeq2SeqLM, "T5ForConditionalGeneration"),
                             (tj.AutoModelForSequenceClassification, "T5ForSequenceClassification"),
                             (tj.AutoModelForQuestionAnswering, "T5ForQuestionAnswering"),
                             (tj.AutoModelForTokenClassification, "T5ForTokenClassification")):
        assert type(auto.from_config(tj.AutoConfig.from_pretrained(path))).__name__ == class_name
    for model_type in ("mt5", "umt5"):
        config = tj.AutoConfig.for_model(model_type, **FAMILIES[model_type].configs["base"])
        assert type(tj.AutoModelForTokenClassification.from_config(config)).__name__.startswith(model_type.upper())
    assert MODEL_TYPE_CLASSES["t5"] == MODEL_TYPE_CLASSES["mt5"] == "T5Tokenizer"
