"""The compiled train and eval steps.

The train state is a plain dict pytree ``{"step", "params", "opt_state", "rng"}``. One train step
is one ``jax.jit`` (in/out shardings from the mesh, state donated) that runs the
``gradient_accumulation_steps`` micro-batches under ``lax.scan`` and applies one optimizer
update. The loss of a step is the mean over every counted label item of the whole step (tokens
for LM losses, rows for classification), so k accumulated micro-batches give the same update as
one k-times larger batch. A ``pmap`` variant (data parallel over local devices) shares the same
gradient code.

``label_smoothing`` (``TrainingArguments.label_smoothing_factor``) replaces the model's own loss by
:func:`~transformers_jax.losses.label_smoothed_loss` of its logits, in training and evaluation, as
Hugging Face's Trainer does with its ``LabelSmoother``: labels are shifted for the causal-LM classes
(those registered with ``AutoModelForCausalLM``) and not for the others (seq2seq LMs, whose decoder
inputs are the labels shifted right, masked LMs, classifiers). Unlike Hugging Face, which pops
``labels`` before the forward (so an encoder-decoder batch without ``decoder_input_ids`` decodes from
``input_ids``), the forward still receives ``labels`` and builds its decoder inputs from them.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp

from transformers_jax.losses import IGNORE_INDEX, label_smoothed_loss
from transformers_jax.partitioning import constrain, logical_sharding


def label_count(model_class, batch, label_smoothing: float = 0.0) -> jax.Array:
    """How many items the model's loss averages over in ``batch`` (float32 scalar).

    Integer ``labels`` count the entries other than -100 (for causal LMs, after the shift by one);
    anything else (float labels, span positions, a loss that is not one mean over labels) counts rows.
    With ``label_smoothing`` the loss is the smoothed loss, a mean over the labels (shifted by
    :func:`smoothing_shifts_labels`'s rule).
    """
    labels = batch.get("labels")
    rows = jax.tree.leaves(batch)[0].shape[0]
    if labels is None or not jnp.issubdtype(labels.dtype, jnp.integer):
        return jnp.float32(rows)
    if label_smoothing:
        shift = smoothing_shifts_labels(model_class)
    elif not model_class.loss_averages_labels:
        return jnp.float32(rows)
    else:
        shift = getattr(model_class, "is_causal_lm", False)
    if shift:
        labels = labels[:, 1:]
    return jnp.sum(labels != IGNORE_INDEX).astype(jnp.float32)


def smoothing_shifts_labels(model_class) -> bool:
    """Hugging Face's rule for its ``LabelSmoother``: labels are shifted for the classes of
    ``AutoModelForCausalLM`` (``MODEL_FOR_CAUSAL_LM_MAPPING_NAMES``), not for any other class."""
    if getattr(model_class, "is_causal_lm", False):
        return True
    from transformers_jax.models.auto import MODEL_MAPPING

    return any(cls is model_class for cls in MODEL_MAPPING["causal_lm"].values())


def model_loss(model_class, config, params, batch: dict, dropout_rng=None, label_smoothing: float = 0.0):
    """``(loss, output)`` of the forward on ``batch``: the model's own loss, or with ``label_smoothing`` > 0
    and ``labels`` in the batch, the label-smoothed loss of its ``logits`` (Hugging Face's ``LabelSmoother``).
    A mixture-of-experts LM's loss includes its router losses (its forward is asked for router logits)."""
    # Mixture-of-experts LMs train with their router losses (load balancing, z-loss) in the loss.
    router = {"output_router_logits": True} if getattr(model_class, "trains_with_router_logits", False) else {}
    out = model_class.forward(params, config, **batch, dropout_rng=dropout_rng, **router)
    labels = batch.get("labels")
    if not label_smoothing or labels is None:
        return out.loss, out
    logits = getattr(out, "logits", None)
    if logits is None:
        raise ValueError(f"label_smoothing_factor={label_smoothing} needs a model whose output has logits scored "
                         f"against labels; {model_class.__name__} returns {type(out).__name__}")
    if not jnp.issubdtype(labels.dtype, jnp.integer):
        raise ValueError(f"label_smoothing_factor={label_smoothing} needs integer class labels, got labels of dtype "
                         f"{labels.dtype} (regression and multi-label targets cannot be smoothed)")
    loss = label_smoothed_loss(logits, labels, label_smoothing, shift_labels=smoothing_shifts_labels(model_class))
    if router:
        loss = loss + model_class.router_loss(config, out.router_logits, batch.get("attention_mask"))
    return loss, out


def model_inputs(model_class, batch: dict) -> dict:
    """The batch entries the model's forward takes; an entry it does not take is an error."""
    names = set(model_class._input_names())
    unknown = sorted(k for k in batch if k not in names and not k.startswith("_"))
    if unknown:
        raise ValueError(f"{model_class.__name__} does not take batch entries {unknown}; it takes {sorted(names)}")
    return {k: v for k, v in batch.items() if k in names}


def loss_sum_and_grads(model_class, config, params, batch, rng, accumulation_steps: int, trainable=None,
                       label_smoothing: float = 0.0):
    """Sum over micro-batches of (loss x label count), its gradient, and the total count.

    ``batch`` leaves are [accumulation_steps * B, ...]; micro-batch ``a`` takes rows
    ``b * accumulation_steps + a``, so each device keeps its own rows in every micro-batch.
    """
    def split(x):  # [A * B, ...] -> [A, B, ...]
        x = x.reshape(x.shape[0] // accumulation_steps, accumulation_steps, *x.shape[1:]).swapaxes(0, 1)
        return constrain(x, (None, "batch") + (None,) * (x.ndim - 2))

    micro = jax.tree.map(split, batch)
    counts = jax.vmap(lambda b: label_count(model_class, b, label_smoothing))(micro)  # [A]

    def micro_loss(p, mb, count, key):
        if trainable is not None:
            p = jax.tree.map(lambda w, t: w if t else jax.lax.stop_gradient(w), p, trainable)
        loss, _ = model_loss(model_class, config, p, mb, key, label_smoothing)
        return jnp.where(count > 0, loss.astype(jnp.float32) * count, 0.0)

    grad_fn = jax.value_and_grad(micro_loss)

    def body(carry, xs):
        loss_sum, grads = carry
        mb, count, index = xs
        key = None if rng is None else jax.random.fold_in(rng, index)
        loss, g = grad_fn(params, mb, count, key)
        grads = jax.tree.map(lambda a, b: a + b.astype(jnp.float32), grads, g)
        return (loss_sum + loss, grads), None

    zeros = jax.tree.map(lambda w: jnp.zeros(w.shape, jnp.float32), params)
    (loss_sum, grads), _ = jax.lax.scan(body, (jnp.float32(0), zeros), (micro, counts, jnp.arange(accumulation_steps)))
    return loss_sum, grads, jnp.sum(counts)


def global_norm(tree) -> jax.Array:
    """Euclidean norm of all leaves together (float32)."""
    return jnp.sqrt(sum(jnp.sum(jnp.square(x.astype(jnp.float32))) for x in jax.tree.leaves(tree)))


def _apply(state, grads, loss_sum, count, optimizer, schedule):
    """Mean gradient -> one optimizer update; returns (new state, metrics)."""
    count = jnp.maximum(count, 1.0)
    grads = jax.tree.map(lambda g: g / count, grads)
    params = state["params"]
    updates, opt_state = optimizer.update(grads, state["opt_state"], params)
    new_params = jax.tree.map(lambda p, u: (p + u).astype(p.dtype), params, updates)
    metrics = {
        "loss": loss_sum / count,
        "grad_norm": global_norm(grads),
        "learning_rate": jnp.asarray(schedule(state["step"]), jnp.float32),
    }
    new_state = {"step": state["step"] + 1, "params": new_params, "opt_state": opt_state, "rng": state["rng"]}
    return new_state, metrics


def step_rng(state, use_dropout: bool):
    """This step's dropout key (a function of the run's key and the step: resumes reproduce it)."""
    return jax.random.fold_in(state["rng"], state["step"]) if use_dropout else None


def make_train_step(model_class, config, optimizer, schedule, *, mesh, rules, state_shardings, batch_shardings,
                    accumulation_steps: int = 1, use_dropout: bool = True, trainable=None,
                    label_smoothing: float = 0.0):
    """``train_step(state, batch) -> (state, metrics)`` compiled with shardings; state donated."""
    def train_step(state, batch):
        with logical_sharding(mesh, rules):
            inputs = model_inputs(model_class, batch)
            loss_sum, grads, count = loss_sum_and_grads(
                model_class, config, state["params"], inputs, step_rng(state, use_dropout), accumulation_steps, trainable,
                label_smoothing
            )
            return _apply(state, grads, loss_sum, count, optimizer, schedule)

    replicated = jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec())
    return jax.jit(train_step, in_shardings=(state_shardings, batch_shardings),
                   out_shardings=(state_shardings, replicated), donate_argnums=0)


def make_pmap_train_step(model_class, config, optimizer, schedule, *, accumulation_steps: int = 1,
                         use_dropout: bool = True, trainable=None, axis_name: str = "batch",
                         label_smoothing: float = 0.0):
    """The data-parallel ``pmap`` step: state replicated on every local device, batch leaves
    [devices, rows, ...]; gradients, losses and counts are summed across devices before the update."""
    def train_step(state, batch):
        inputs = model_inputs(model_class, batch)
        rng = step_rng(state, use_dropout)
        if rng is not None:
            rng = jax.random.fold_in(rng, jax.lax.axis_index(axis_name))
        loss_sum, grads, count = loss_sum_and_grads(
            model_class, config, state["params"], inputs, rng, accumulation_steps, trainable, label_smoothing
        )
        loss_sum, grads, count = jax.lax.psum((loss_sum, grads, count), axis_name)
        return _apply(state, grads, loss_sum, count, optimizer, schedule)

    return jax.pmap(train_step, axis_name=axis_name, donate_argnums=0)


def make_eval_step(model_class, config, *, mesh, rules, params_shardings, batch_shardings,
                   label_smoothing: float = 0.0, return_predictions: bool = True):
    """``eval_step(params, batch) -> (loss x count, count, logits)`` without dropout (``None`` in place of
    the logits when not ``return_predictions``: nothing of size [B, T, V] leaves the device)."""
    def eval_step(params, batch):
        with logical_sharding(mesh, rules):
            inputs = model_inputs(model_class, batch)
            loss, out = model_loss(model_class, config, params, inputs, None, label_smoothing)
            count = (label_count(model_class, inputs, label_smoothing) if "labels" in inputs or loss is not None
                     else jnp.float32(0))
            loss_sum = jnp.float32(0) if loss is None else jnp.where(count > 0, loss * count, 0.0)
            return loss_sum, count, _prediction(out) if return_predictions else None

    return jax.jit(eval_step, in_shardings=(params_shardings, batch_shardings))


def _prediction(out):
    """The output a metric looks at: ``logits``, or (start, end) logits for span heads."""
    if getattr(out, "logits", None) is not None:
        return out.logits
    if getattr(out, "prediction_logits", None) is not None:
        return out.prediction_logits
    return (out.start_logits, out.end_logits)
