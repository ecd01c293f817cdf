"""DistilBERT's and ELECTRA's own settings beyond the parity suite (tests/encoder_cases/): the
sinusoidal position table at init, config names, the Auto classes, and clear errors for the options
we do not compute."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch
import transformers as hf

import transformers_jax as tj
from parity import assert_within
from transformers_jax.params import flatten_tree

TINY_DISTILBERT = dict(vocab_size=50, dim=16, n_layers=1, n_heads=2, hidden_dim=20, max_position_embeddings=12)
TINY_ELECTRA = dict(vocab_size=50, embedding_size=8, hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
                    intermediate_size=20, max_position_embeddings=12)


@pytest.mark.parametrize("dim", [16, 15])
def test_sinusoidal_table_at_init_equals_hf(dim):
    """A fresh model with sinusoidal_pos_embds has HF's fixed sin/cos table (HF computes it in float64
    and casts); the table is an ordinary saved param in both (HF keeps requires_grad=True)."""
    cfg = dict(TINY_DISTILBERT, dim=dim, n_heads=1 if dim % 2 else 2, sinusoidal_pos_embds=True)
    torch.manual_seed(0)
    theirs = hf.DistilBertModel(hf.DistilBertConfig(**cfg)).embeddings.position_embeddings.weight
    assert theirs.requires_grad
    ours = tj.DistilBertModel(tj.DistilBertConfig(**cfg), seed=1).params["embeddings"]["position_embeddings"]["embedding"]
    # float64 values rounded once to float32 on both sides: at most half an ulp of |x| <= 1 apart
    assert_within(ours, theirs.detach().numpy(), float(np.finfo(np.float32).eps), name="position table")
    assert float(jnp.abs(ours[1, 0] - np.sin(1.0))) < 1e-6 and float(jnp.abs(ours[0, 1] - 1.0)) < 1e-6


def test_sinusoidal_table_is_trained_and_plain_table_is_random():
    config = tj.DistilBertConfig.from_dict(dict(TINY_DISTILBERT, sinusoidal_pos_embds=True, num_labels=2))
    model = tj.DistilBertForSequenceClassification(config, seed=0)
    ids = np.array([[3, 4, 5, 6]])

    def loss(params):
        return model.forward(params, config, jnp.asarray(ids), labels=jnp.asarray([1])).loss

    grads = jax.grad(loss)(model.params)
    assert float(jnp.abs(grads["distilbert"]["embeddings"]["position_embeddings"]["embedding"][:4]).max()) > 0
    plain = tj.DistilBertModel(tj.DistilBertConfig(**TINY_DISTILBERT), seed=0)
    table = plain.params["embeddings"]["position_embeddings"]["embedding"]
    assert float(jnp.abs(table[0, 1::2] - 1.0).min()) > 1e-3  # normal init, not cos(0) = 1


def test_distilbert_config_names():
    config = tj.DistilBertConfig.from_dict(dict(TINY_DISTILBERT, activation="relu"))
    assert (config.hidden_size, config.num_hidden_layers, config.num_attention_heads) == (16, 1, 2)
    assert (config.intermediate_size, config.hidden_act, config.norm_eps) == (20, "relu", 1e-12)
    assert not config.has_token_types and not config.has_pooler
    assert tj.DistilBertConfig.from_dict(dict(TINY_DISTILBERT), hidden_size=24).dim == 24  # HF's alias
    written = config.to_dict()
    assert written["dim"] == 16 and "hidden_size" not in written and "intermediate_size" not in written
    assert hf.DistilBertConfig(**{k: v for k, v in written.items() if k not in ("model_type",)}).dim == 16
    with pytest.raises(ValueError, match="dim .15. is not a multiple of n_heads .2."):
        tj.DistilBertConfig(**dict(TINY_DISTILBERT, dim=15))
    with pytest.raises(ValueError, match="num_labels=2"):
        tj.DistilBertForQuestionAnswering(tj.DistilBertConfig.from_dict(dict(TINY_DISTILBERT, num_labels=3)))


def test_checkpoint_names_and_projection():
    distil = tj.DistilBertForMaskedLM._torch_keys(tj.DistilBertConfig(**TINY_DISTILBERT))
    assert "distilbert.transformer.layer.0.attention.q_lin.weight" in distil
    assert "distilbert.transformer.layer.0.ffn.lin2.bias" in distil and "vocab_projector.bias" in distil
    assert "vocab_projector.weight" not in distil  # tied to the word embeddings
    assert not any("token_type" in k or "pooler" in k for k in distil)
    electra = tj.ElectraModel.param_specs(tj.ElectraConfig(**TINY_ELECTRA))
    assert electra["embeddings_project"]["kernel"].shape == (8, 16)
    assert electra["embeddings"]["word_embeddings"]["embedding"].shape == (50, 8)
    wide = tj.ElectraModel.param_specs(tj.ElectraConfig(**dict(TINY_ELECTRA, embedding_size=16)))
    assert "embeddings_project" not in wide and "pooler" not in wide
    # every param has logical axes, one name per dim
    for cls, config in ((tj.ElectraForMultipleChoice, tj.ElectraConfig(**TINY_ELECTRA)),
                        (tj.DistilBertForMultipleChoice, tj.DistilBertConfig(**TINY_DISTILBERT))):
        for path, spec in flatten_tree(cls.param_specs(config)).items():
            assert len(spec.axes) == len(spec.shape), path


def test_auto_classes():
    from transformers_jax.models.auto import MODEL_MAPPING

    assert MODEL_MAPPING["pretraining"]["electra"] is tj.ElectraForPreTraining
    assert MODEL_MAPPING["pretraining"]["distilbert"] is tj.DistilBertForMaskedLM
    assert MODEL_MAPPING["masked_lm"]["electra"] is tj.ElectraForMaskedLM
    assert MODEL_MAPPING["multiple_choice"]["distilbert"] is tj.DistilBertForMultipleChoice


def test_discriminator_loss_without_mask_is_the_mean_over_all_tokens():
    config = tj.ElectraConfig(**TINY_ELECTRA)
    model = tj.ElectraForPreTraining(config, seed=0)
    ids, labels = np.array([[3, 4, 5, 6], [7, 8, 0, 0]]), np.array([[0, 1, 0, 1], [1, 0, 1, 1]])
    out = model(ids, labels=labels)
    x = np.asarray(out.logits, np.float64)
    want = np.mean(np.maximum(x, 0) - x * labels + np.log1p(np.exp(-np.abs(x))))
    assert out.logits.shape == (2, 4) and abs(float(out.loss) - want) < 1e-6
    masked = model(ids, attention_mask=(ids != 0).astype(np.int32), labels=labels)
    assert abs(float(masked.loss) - float(out.loss)) > 1e-6  # the padded positions are left out


@pytest.mark.parametrize("option,message", [
    (dict(summary_type="attn"), "summary_type='attn' is not supported"),
    (dict(summary_type="middle"), "summary_type='middle' is not supported"),
    (dict(summary_proj_to_labels=True), "summary_proj_to_labels=True is not supported"),
    (dict(summary_activation="softsign"), "unsupported activation 'softsign'"),
])
def test_unsupported_summary_options_are_errors(option, message):
    config = tj.ElectraConfig.from_dict(dict(TINY_ELECTRA, **option))
    tj.ElectraForSequenceClassification(config)  # the summary options concern multiple choice only
    with pytest.raises(ValueError, match=message):
        tj.ElectraForMultipleChoice(config)


def test_electra_decoder_options_are_errors():
    for option in ("is_decoder", "add_cross_attention"):
        with pytest.raises(ValueError, match="is_decoder=True / add_cross_attention=True"):
            tj.ElectraConfig(**TINY_ELECTRA, **{option: True})


def test_electra_sequence_classifier_uses_gelu_whatever_summary_activation():
    config = tj.ElectraConfig.from_dict(dict(TINY_ELECTRA, num_labels=2))
    model = tj.ElectraForSequenceClassification(config, seed=0)
    ids = np.array([[3, 4, 5, 6]])
    tanh = tj.ElectraForSequenceClassification(config.replace(summary_activation="tanh"), model.params)
    np.testing.assert_array_equal(np.asarray(model(ids).logits), np.asarray(tanh(ids).logits))


def test_pretraining_checkpoints_load_into_task_heads(tmp_path, caplog):
    """HF's DistilBERT MLM checkpoint (saved with the tied ``vocab_projector.weight`` too, as older
    checkpoints are) and ELECTRA discriminator checkpoint load into the task heads: the pre-training
    head's weights are reported unused, the new head is reported initialised, the encoder agrees."""
    import logging

    from safetensors.torch import load_file, save_file

    torch.manual_seed(0)
    mlm = hf.DistilBertForMaskedLM(hf.DistilBertConfig(**TINY_DISTILBERT)).eval()
    mlm.save_pretrained(tmp_path / "distil")
    state = load_file(tmp_path / "distil" / "model.safetensors")
    state["vocab_projector.weight"] = state["distilbert.embeddings.word_embeddings.weight"].clone()
    save_file(state, tmp_path / "distil" / "model.safetensors", metadata={"format": "pt"})
    ours_mlm = tj.DistilBertForMaskedLM.from_pretrained(tmp_path / "distil")
    ids = np.array([[3, 4, 5, 6, 7]])
    with torch.no_grad():
        want = mlm(torch.from_numpy(ids)).logits.numpy()
    assert_within(ours_mlm(ids).logits, want, 1e-4, name="MLM logits")
    with caplog.at_level(logging.WARNING, logger="transformers_jax"):
        classifier = tj.DistilBertForSequenceClassification.from_pretrained(tmp_path / "distil")
    assert "vocab_projector.bias" in caplog.text and "pre_classifier.weight" in caplog.text
    np.testing.assert_array_equal(np.asarray(classifier.params["distilbert"]["embeddings"]["word_embeddings"]["embedding"]),
                                  state["distilbert.embeddings.word_embeddings.weight"].numpy())

    caplog.clear()
    hf.ElectraForPreTraining(hf.ElectraConfig(**TINY_ELECTRA)).save_pretrained(tmp_path / "electra")
    with caplog.at_level(logging.WARNING, logger="transformers_jax"):
        tj.ElectraForSequenceClassification.from_pretrained(tmp_path / "electra")
    assert "discriminator_predictions.dense.weight" in caplog.text and "classifier.out_proj.weight" in caplog.text
