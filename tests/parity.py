"""Shared helpers of the Hugging Face parity tests: perturbing weights, running both libraries,
and comparing every output field.

How numbers are compared (the reason each tolerance holds on any x86 CPU)
-------------------------------------------------------------------------
Float32 results depend on the order in which sums are accumulated, and that order differs between
libraries and between CPUs (AVX-512 and AVX2 kernels block their GEMMs differently). A fixed
tolerance tuned on one machine therefore fails on another. Two rules replace it:

* **Against PyTorch** (:func:`assert_accurate`, used by :func:`assert_outputs_match`): the same
  Hugging Face model also runs in float64, which is exact to float32 eyes. PyTorch's float32 output
  and ours are both approximations of it; ours must be within ``RATIO`` times PyTorch's own error
  (plus ``FLOOR_ULPS`` ulps of the tensor's largest magnitude, for outputs PyTorch happens to get
  exactly right). Both errors are measured on the machine under test, so the bound follows that
  machine's rounding instead of being tuned to one. A sanity bound checks that PyTorch's float32
  and float64 runs agree (so the float64 run really computes the same function).
* **Ours against ours** (:func:`assert_same_up_to_rounding`: scanned vs unrolled layers, sharded vs
  one device, accumulated vs whole batches): the same float32 operations in another order or
  fusion. Their difference is a rounding difference, bounded by ``ulps`` units in the last place of
  the tensor's largest magnitude; callers pick ``ulps`` from the depth of the computation.

``TRANSFORMERS_JAX_TEST_TOLERANCE_REPORT=path`` appends one JSON line per comparison (errors and
bounds) to ``path``: the way to see how close every test sits to its bound, on any machine.
"""
import contextlib
import copy
import inspect
import json
import os
import weakref

import jax
import jax.numpy as jnp
import numpy as np
import torch
from safetensors import safe_open

EPS32 = float(np.finfo(np.float32).eps)  # 1.19e-7: one ulp at magnitude 1
RATIO = 4.0  # ours may be this many times further from the exact result than PyTorch's float32
FLOOR_ULPS = 16  # ... or this many ulps of the tensor's scale, whichever is larger
SANITY = 1e-4  # PyTorch's float32 vs float64, relative to max(1, scale): the same function was run
_REPORT = os.environ.get("TRANSFORMERS_JAX_TEST_TOLERANCE_REPORT")


def _report(kind, name, error, bound, **extra):
    if _REPORT:
        with open(_REPORT, "a") as f:
            test = os.environ.get("PYTEST_CURRENT_TEST", "").split(" ")[0]
            f.write(json.dumps({"test": test, "kind": kind, "name": name, "error": error, "bound": bound,
                                "margin": bound / error if error else None, **extra}) + "\n")


def _f64(x):
    return np.asarray(to_np(x), dtype=np.float64)


def assert_accurate(ours, reference, exact, name="", ratio=RATIO, floor_ulps=FLOOR_ULPS):
    """``ours`` is as close to ``exact`` (float64) as ``reference`` (PyTorch's float32) is, up to ``ratio``.

    The bound is ``ratio * max|reference - exact| + floor_ulps * eps32 * max|exact|``."""
    ours, reference, exact = _f64(ours), _f64(reference), _f64(exact)
    assert ours.shape == reference.shape == exact.shape, (name, ours.shape, reference.shape, exact.shape)
    if not ours.size:
        return
    scale = float(np.abs(exact).max())
    reference_error = float(np.abs(reference - exact).max())
    our_error = float(np.abs(ours - exact).max())
    assert reference_error <= SANITY * max(1.0, scale), (
        f"{name}: PyTorch's float32 and float64 runs differ by {reference_error:.3g} (scale {scale:.3g}); "
        "the float64 reference does not compute the same function")
    bound = ratio * reference_error + floor_ulps * EPS32 * scale
    _report("accurate", name, our_error, bound, reference_error=reference_error, scale=scale)
    assert our_error <= bound, (
        f"{name}: our float32 error {our_error:.3g} exceeds {ratio:g}x PyTorch's ({reference_error:.3g}) + "
        f"{floor_ulps} ulps of the scale {scale:.3g} = {bound:.3g}")


def assert_same_up_to_rounding(actual, desired, ulps=64, name="", floor=0.0):
    """Two float32 evaluations of the same function with sums in another order: equal to within
    ``ulps`` units in the last place of the larger tensor's largest magnitude (or of ``floor``, for a
    tensor whose values are far smaller than the terms that were summed into it)."""
    actual, desired = _f64(actual), _f64(desired)
    assert actual.shape == desired.shape, (name, actual.shape, desired.shape)
    if not actual.size:
        return
    scale = max(float(np.abs(actual).max()), float(np.abs(desired).max()), floor)
    error = float(np.abs(actual - desired).max())
    bound = ulps * EPS32 * scale
    _report("rounding", name, error, bound, scale=scale)
    assert error <= bound, f"{name}: differs by {error:.3g}, more than {ulps} ulps of {scale:.3g} ({bound:.3g})"


def assert_within(actual, desired, bound, name=""):
    """``max|actual - desired| <= bound``, for a bound the caller derives (and states) itself."""
    actual, desired = _f64(actual), _f64(desired)
    assert actual.shape == desired.shape, (name, actual.shape, desired.shape)
    error = float(np.abs(actual - desired).max()) if actual.size else 0.0
    _report("derived", name, error, bound)
    assert error <= bound, f"{name}: differs by {error:.3g}, more than the bound {bound:.3g}"


def assert_trees_same_up_to_rounding(actual, desired, ulps=64, floor=0.0):
    """:func:`assert_same_up_to_rounding` for every leaf of two pytrees with the same structure."""
    flat_a = jax.tree_util.tree_leaves_with_path(actual)
    flat_b = jax.tree_util.tree_leaves_with_path(desired)
    assert [p for p, _ in flat_a] == [p for p, _ in flat_b] and flat_a
    for (path, a), (_, b) in zip(flat_a, flat_b):
        assert_same_up_to_rounding(a, b, ulps, name=jax.tree_util.keystr(path), floor=floor)


def perturb_torch(model, seed, scale=0.1):
    """Add noise to every parameter (tied ones once), so zero biases and unit norms are not special."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn(p.shape, generator=gen) * scale)
    return model



def perturb_params(params, seed, scale=0.1):
    leaves, treedef = jax.tree.flatten(params)
    rng = np.random.RandomState(seed)
    return jax.tree.unflatten(
        treedef, [jnp.asarray(np.asarray(x) + scale * rng.standard_normal(x.shape).astype(np.float32)) for x in leaves]
    )



def safetensors_keys(directory):
    keys = set()
    for file in sorted(directory.glob("*.safetensors")):
        with safe_open(str(file), "np") as f:
            keys |= set(f.keys())
    return keys



def run_hf(model, inputs, **flags):
    """HF forward under no_grad; decoders run without a KV cache (as ours here)."""
    tensors = {k: torch.from_numpy(np.asarray(v)) for k, v in inputs.items()}
    if "use_cache" in inspect.signature(model.forward).parameters:
        flags.setdefault("use_cache", False)
    with torch.no_grad():
        return model(**tensors, **flags)


_EXACT = weakref.WeakKeyDictionary()


def float64_copy(model):
    """A float64 copy of a PyTorch model, made once per model object."""
    if model not in _EXACT:
        exact = copy.deepcopy(model).double().eval()
        if getattr(exact.config, "num_experts_per_tok", None):  # HF's grouped_mm experts take no float64
            exact.set_experts_implementation("eager")
        _EXACT[model] = exact
    return _EXACT[model]


@contextlib.contextmanager
def _float32_mask_value():
    """HF's eager attention masks with its dtype's minimum. Float64's minimum overflows to -inf once a
    score is added, so a row with no visible key (left padding) gives NaN where float32 gives a uniform
    row. In the float64 run the mask holds float32's minimum instead, which float64 represents without
    overflow: float32's semantics with float64 arithmetic."""
    from transformers import masking_utils

    mapping = masking_utils.ALL_MASK_ATTENTION_FUNCTIONS._global_mapping
    original = mapping["eager"]

    def eager(*args, dtype=torch.float32, **kwargs):
        mask = original(*args, dtype=torch.float32, **kwargs)
        return None if mask is None else mask.to(dtype)

    mapping["eager"] = eager
    try:
        yield
    finally:
        mapping["eager"] = original


def run_hf_exact(model, inputs, **flags):
    """:func:`run_hf` on a float64 copy of ``model`` (float inputs in float64 too): the exact result."""
    inputs = {k: (np.asarray(v, np.float64) if np.issubdtype(np.asarray(v).dtype, np.floating) else v)
              for k, v in inputs.items()}
    with _float32_mask_value():
        return run_hf(float64_copy(model), inputs, **flags)


def hf_pair(model, fn):
    """``fn(model)`` in float32 and on the float64 copy: (PyTorch's float32 result, the exact one), as numpy."""
    with torch.no_grad():
        reference = to_np(fn(model))
        with _float32_mask_value():
            exact = to_np(fn(float64_copy(model)))
    return reference, exact


def compare_with_hf(ours, model, inputs, keep=None, subset=False, **flags):
    """Run HF ``model`` on ``inputs`` (float32 and float64) and :func:`assert_outputs_match` ``ours``
    against it; returns HF's float32 output."""
    theirs = run_hf(model, inputs, **flags)
    assert_outputs_match(ours, theirs, run_hf_exact(model, inputs, **flags), keep=keep, subset=subset)
    return theirs


def run_ours(model, inputs, **flags):
    return model(**inputs, **flags)



def to_np(x):
    return x.detach().numpy() if isinstance(x, torch.Tensor) else np.asarray(x)



def assert_outputs_match(ours, theirs, exact, keep=None, subset=False):
    """Every field HF returns, ours returns under the same name in the same order, and each tensor is
    :func:`assert_accurate` against ``exact`` (the same HF model run in float64, :func:`run_hf_exact`).

    ``keep`` ([rows, T] 0/1) restricts per-token tensors to the positions where it is 1;
    ``subset`` allows ours to hold more fields than HF's (attentions, which HF's sdpa leaves out)."""
    # HF also returns an empty cross_attentions tuple for encoders; our encoders have no such field.
    their_keys = [k for k in theirs.keys() if k != "past_key_values" and not (k == "cross_attentions" and not theirs[k])]
    if subset:
        assert [k for k in ours.keys() if k in their_keys] == their_keys
    else:
        assert list(ours.keys()) == their_keys
    for key in their_keys:
        a, b, c = ours[key], theirs[key], exact[key]
        triples = list(zip(a, b, c, strict=True)) if isinstance(b, tuple) else [(a, b, c)]
        for i, (x, y, z) in enumerate(triples):
            x, y, z = to_np(x), to_np(y), to_np(z)
            assert x.shape == y.shape, (key, i, x.shape, y.shape)
            if keep is not None and x.ndim >= 2 and x.shape[:2] == keep.shape:
                rows = keep.astype(bool)
                x, y, z = x[rows], y[rows], z[rows]
            assert_accurate(x, y, z, name=f"{key}[{i}]")


@contextlib.contextmanager
def count_compiles(fun_name=None):
    """Collect XLA backend compilations (optionally of one jitted function) inside the block."""
    compiles = []

    def listener(event, duration, **kwargs):
        if event == "/jax/core/compile/backend_compile_duration" and fun_name in (None, kwargs.get("fun_name")):
            compiles.append(kwargs.get("fun_name"))

    jax.monitoring.register_event_duration_secs_listener(listener)
    try:
        yield compiles
    finally:
        jax.monitoring.unregister_event_duration_listener(listener)


def tiny_bpe_tokenizer(corpus, vocab_size, chat_template=None):
    """A byte-level BPE trained on ``corpus`` (<pad>=0, <s>=1, </s>=2; <s> prepended), wrapped as ours."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers

    import transformers_jax as tj

    backend = Tokenizer(models.BPE())
    backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    backend.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=["<pad>", "<s>", "</s>"],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    backend.train_from_iterator(list(corpus) * 3, trainer)
    backend.post_processor = processors.TemplateProcessing(single="<s> $A", special_tokens=[("<s>", 1)])
    return tj.PreTrainedTokenizerFast(tokenizer_object=backend, bos_token="<s>", eos_token="</s>", pad_token="<pad>",
                                      chat_template=chat_template)


CLOSEST_CALL = 5e-6  # relative; float32 rounding of a score is ~1e-7, our scores differ from HF's by about that


class BeamMargins:
    """The closest call among the decisions HF's beam search makes (smallest gap between two scores whose order
    changes the result, relative to the scores' size), recorded while ``generate`` runs.

    Two candidates within float32 rounding of each other have two correct orders, and a float32 reimplementation
    may pick either (seen on AVX2 CPUs: two continuations one ulp apart). A case is a fair test of token equality
    only when its closest call is far above rounding; ``closest`` reports it. Decisions watched: which finished
    candidates rank among the top ``num_beams`` of a step, which running candidates continue (the boundary between
    the ``num_beams``-th and the next unfinished one), and the order of the best finished hypotheses (they are
    returned in that order)."""

    def __init__(self, model):
        self.model, self.gaps = model, []

    @staticmethod
    def relative_gap(higher, lower):
        if not np.isfinite(lower):  # -inf (a banned token) is below everything, exactly; two of them tie exactly
            return float("inf")
        return float((higher - lower) / max(abs(higher), abs(lower), 1.0))

    def running(self, original):
        def watch(**kwargs):
            num_beams, finished = kwargs["num_beams"], kwargs["next_token_hits_stopping_criteria"]
            for scores, done in zip(kwargs["topk_log_probs"].double().tolist(), finished.tolist()):  # best first
                if done[num_beams - 1] != done[num_beams]:  # a finished one enters or leaves the top num_beams
                    self.gaps.append(self.relative_gap(scores[num_beams - 1], scores[num_beams]))
                alive = [s for s, d in zip(scores, done) if not d]
                if len(alive) > num_beams:
                    self.gaps.append(self.relative_gap(alive[num_beams - 1], alive[num_beams]))
            return original(**kwargs)
        return watch

    def finished(self, original):
        def watch(*args, **kwargs):
            real_topk = torch.topk

            def topk(scores, k, *a, **kw):  # the merge of old and new finished hypotheses
                values = real_topk(scores, min(k + 1, scores.shape[-1]), *a, **kw).values.double()
                for row in values.tolist():
                    row = [v for v in row if v > -1e8]  # -1e9 marks "not a finished hypothesis"
                    self.gaps += [self.relative_gap(a, b) for a, b in zip(row, row[1:])]
                return real_topk(scores, k, *a, **kw)

            torch.topk = topk
            try:
                return original(*args, **kwargs)
            finally:
                torch.topk = real_topk
        return watch

    def __enter__(self):
        self.gaps = []
        self.model._get_running_beams_for_next_iteration = self.running(self.model._get_running_beams_for_next_iteration)
        self.model._update_finished_beams = self.finished(self.model._update_finished_beams)
        return self

    def __exit__(self, *exc):
        del self.model._get_running_beams_for_next_iteration, self.model._update_finished_beams

    @property
    def closest(self):
        return min(self.gaps, default=float("inf"))
