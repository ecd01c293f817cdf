"""Mixture-of-experts decoders (Mixtral, Qwen2-MoE, Qwen3-MoE): the shared decoder whose feed-forward
blocks are sparse MoE blocks (``layers.moe``) in the layers :meth:`sparse_layers` names.

A family's config mixes in :class:`MoeArchitecture` and answers its names: ``num_experts``,
``num_experts_per_tok``, ``moe_intermediate_size``, ``norm_topk_prob``,
``shared_expert_intermediate_size`` (0: none), ``router_aux_loss_coef``, ``output_router_logits``,
``router_jitter_noise``. The base model and the causal LM add ``output_router_logits`` to their
inputs; the causal LM adds the load-balancing loss (``aux_loss``) to its loss when router logits are
requested, as Hugging Face does. The other heads are the shared decoder's.

Checkpoints keep Hugging Face's per-expert tensors (``mlp.experts.3.gate_proj.weight``); here each
layer's experts are one ``[E, in, out]`` leaf (the checkpoint's ``experts`` container is a stacked axis).
"""
from __future__ import annotations

import re

import jax.numpy as jnp
import numpy as np

from transformers_jax import layers as L
from transformers_jax.modeling_outputs import MoeCausalLMOutput
from transformers_jax.models._decoder import (
    HEADS,
    DecoderForCausalLM,
    DecoderModel,
    DecoderPreTrainedModel,
    build_family,
    decoder_forward,
)


class MoeArchitecture:
    """What a mixture-of-experts config adds to the decoder's: which layers are sparse, and checks."""

    norm_topk_prob: bool = False
    shared_expert_intermediate_size: int = 0
    router_jitter_noise: float = 0.0

    def sparse_layers(self) -> np.ndarray:
        """Hugging Face's rule (Qwen2/3-MoE): layer i is sparse unless it is in ``mlp_only_layers``,
        when ``(i + 1) % decoder_sparse_step == 0`` and there are experts at all."""
        only_dense = set(getattr(self, "mlp_only_layers", None) or ())
        step = getattr(self, "decoder_sparse_step", 1)
        return np.array([i not in only_dense and self.num_experts > 0 and (i + 1) % step == 0
                         for i in range(self.num_hidden_layers)], np.int32)

    def check_experts(self) -> None:
        """Refuse routing to more experts than there are, and dense-only layer lists out of range."""
        name = type(self).__name__
        if self.num_experts_per_tok > self.num_experts:
            raise ValueError(f"{name}: num_experts_per_tok={self.num_experts_per_tok} is larger than the number of "
                             f"experts ({self.num_experts})")
        if self.num_experts_per_tok < 1:
            raise ValueError(f"{name}: num_experts_per_tok={self.num_experts_per_tok} must be at least 1")
        bad = [i for i in (getattr(self, "mlp_only_layers", None) or ()) if not 0 <= i < self.num_hidden_layers]
        if bad:
            raise ValueError(f"{name}: mlp_only_layers names layer {bad[0]}, outside 0..{self.num_hidden_layers - 1}")
        if getattr(self, "decoder_sparse_step", 1) < 1:
            raise ValueError(f"{name}: decoder_sparse_step={self.decoder_sparse_step} must be at least 1")


class MoePreTrainedModel(DecoderPreTrainedModel):
    """Base of the MoE families' classes: experts and the mixed dense/MoE stacks are stacked axes."""

    stacked_layer_keys = ("layers", "sparse_layers", "dense_layers", "experts")

    @classmethod
    def _normalize_checkpoint_keys(cls, state_dict: dict, config, source: str) -> dict:
        """Also accepts the layout of Hugging Face v5's modules (what ``model.state_dict()`` holds, not what
        ``save_pretrained`` writes): each layer's experts fused as ``mlp.experts.gate_up_proj`` [E, 2F, D]
        (gate rows, then up rows) and ``mlp.experts.down_proj`` [E, D, F], under ``mlp`` for every family.
        They are cut into the per-expert tensors of the checkpoint format first."""
        fused = re.compile(r"^(?P<layer>(?:.*\.)?layers\.\d+)\.mlp\.experts\.(?P<which>gate_up_proj|down_proj)$")
        if not any(fused.match(k) for k in state_dict):
            return super()._normalize_checkpoint_keys(state_dict, config, source)
        state = {}
        for key, value in state_dict.items():
            match = fused.match(key)
            if match is None:  # other module keys in the v5 layout use the module names: map them as ours
                state[cls.checkpoint_name(key)] = value
                continue
            value = np.asarray(value)
            if match["which"] == "gate_up_proj":
                if value.ndim != 3 or value.shape[1] % 2:
                    raise ValueError(f"fused expert weight {key!r} in {source} has shape {value.shape}; expected "
                                     "[experts, 2 * moe_intermediate_size, hidden_size]")
                parts = dict(zip(("gate_proj", "up_proj"), np.split(value, 2, axis=1)))
            else:
                parts = {"down_proj": value}
            for name, stacked in parts.items():
                for expert, weight in enumerate(stacked):
                    state[cls.checkpoint_name(f"{match['layer']}.mlp.experts.{expert}.{name}.weight")] = weight
        return super()._normalize_checkpoint_keys(state, config, source)

    @classmethod
    def stacked_layer_numbers(cls, config) -> dict:
        """Where the mixed stacks' entries sit in the checkpoint: {container: ("layers", layer numbers)}."""
        sparse = np.asarray(config.sparse_layers(), bool)
        if sparse.all() or not sparse.any():
            return {}
        return {"sparse_layers": ("layers", np.flatnonzero(sparse).tolist()),
                "dense_layers": ("layers", np.flatnonzero(~sparse).tolist())}


def _router_logits_requested(config, output_router_logits) -> bool:
    return config.output_router_logits if output_router_logits is None else bool(output_router_logits)


class MoeDecoderModel(DecoderModel):
    """The bare MoE decoder: last hidden states, and each sparse layer's router logits on request."""

    @classmethod
    def forward(cls, params, config, input_ids, attention_mask=None, position_ids=None, output_hidden_states=False,
                output_attentions=False, output_router_logits=None, dropout_rng=None):
        return decoder_forward(params, config, input_ids, attention_mask, position_ids, output_hidden_states,
                               output_attentions, dropout_rng=dropout_rng,
                               output_router_logits=_router_logits_requested(config, output_router_logits))[0]


class MoeDecoderForCausalLM(DecoderForCausalLM):
    """The MoE decoder with a language-modelling head; with router logits requested (the argument or
    ``config.output_router_logits``) also ``aux_loss``, added to ``loss`` times ``router_aux_loss_coef``,
    and the router z-loss times ``router_z_loss_coef`` where the config sets one (ours; default 0).
    Training always requests router logits (``trains_with_router_logits``), so the Trainer's loss
    includes the load-balancing term; set ``router_aux_loss_coef=0`` to train without it."""

    trains_with_router_logits = True

    @classmethod
    def router_loss(cls, config, router_logits, attention_mask=None, aux_loss=None):
        """What the routers add to the LM loss: ``router_aux_loss_coef * aux_loss`` plus, where the config
        sets ``router_z_loss_coef``, that times the z-loss (``router_logits``: one [B*T, E] per sparse layer)."""
        if aux_loss is None:
            aux_loss = L.moe.load_balancing_loss(jnp.stack(router_logits), config.num_experts_per_tok, attention_mask)
        total = config.router_aux_loss_coef * aux_loss
        z_coef = getattr(config, "router_z_loss_coef", 0.0)
        if z_coef:
            total = total + z_coef * L.moe.router_z_loss(jnp.stack(router_logits), attention_mask)  # [L_sparse, B*T, E]
        return total

    @classmethod
    def decode_params(cls, params):
        """As the decoder's; a mixed dense/MoE stack stays stacked (its runs are scanned one by one)."""
        if "sparse_layers" in params[cls.base_model_prefix]:
            return params
        return super().decode_params(params)

    @classmethod
    def forward(cls, params, config, input_ids, attention_mask=None, position_ids=None, labels=None,
                output_hidden_states=False, output_attentions=False, output_router_logits=None, dropout_rng=None):
        want_router = _router_logits_requested(config, output_router_logits)
        out, _ = decoder_forward(params[cls.base_model_prefix], config, input_ids, attention_mask, position_ids,
                                 output_hidden_states, output_attentions, dropout_rng=dropout_rng,
                                 output_router_logits=want_router)
        logits, loss = cls.logits_and_loss(params, config, out.last_hidden_state, labels)
        aux_loss = router_logits = None
        if want_router:
            router_logits = out.router_logits
            aux_loss = L.moe.load_balancing_loss(jnp.stack(router_logits), config.num_experts_per_tok, attention_mask)
            if loss is not None:
                loss = loss + cls.router_loss(config, router_logits, attention_mask, aux_loss)
        return MoeCausalLMOutput(loss=loss, aux_loss=aux_loss, logits=logits, hidden_states=out.hidden_states,
                                 attentions=out.attentions, router_logits=router_logits)


MOE_HEADS = {**HEADS, "base": ("Model", MoeDecoderModel), "causal_lm": ("ForCausalLM", MoeDecoderForCausalLM)}


def build_moe_family(prefix: str, config_class, module: str, **kwargs) -> dict[str, type]:
    """:func:`~transformers_jax.models._decoder.build_family` with the MoE heads and base class."""
    return build_family(prefix, config_class, module, heads=MOE_HEADS, base=MoePreTrainedModel, **kwargs)
