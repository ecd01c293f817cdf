"""Where GPT-2 124M's batch-1 decode time goes on XLA:CPU (see docs/benchmarks.md, issue 10).

Times one cached decode step, the weight matvecs alone under lax.scan over the stacked layer
weights, the same matvecs over separate per-layer arrays (unrolled), one 768x3072 matvec (its
9 MB stay in cache between calls, so its bandwidth is a cache figure) and a scan of eight 768x3072
matvecs (75 MB, read from memory), with the read bandwidth each reaches; then a synthetic loop of
16 decode-like steps, scanned over stacked weights vs unstacked once. Run it alone:

    .venv/bin/python scripts/probe_decode_matvecs.py
"""
import time, numpy as np, jax, jax.numpy as jnp
import transformers_jax as tj
from transformers_jax.layers import kv_cache

def timeit(f, *a, n=30):
    out = f(*a); jax.block_until_ready(out)
    t = time.perf_counter()
    for _ in range(n): out = f(*a)
    jax.block_until_ready(out)
    return (time.perf_counter() - t) / n * 1e3

cfg = dict(vocab_size=50257, n_embd=768, n_layer=12, n_head=12, n_positions=1024, pad_token_id=0)
c = tj.GPT2Config.from_dict(cfg)
m = tj.GPT2LMHeadModel(c)
cache = m.init_cache(c, 1, 80)
tok = jnp.ones((1, 1), jnp.int32); pos = jnp.full((1, 1), 20); cmask = jnp.ones((1, 80), jnp.int32)
dec = jax.jit(lambda p, cache: m.decode(p, c, tok, pos, cmask, cache, 20))
print("decode step (full, no donation)", timeit(dec, m.params, cache))
# the weight matvecs alone, layer by layer
ws = m.params["transformer"]["layers"]
def mats(ws, x):
    def body(x, w):
        a = w["self_attn"]
        h = x @ a["q_proj"]["kernel"] + x @ a["k_proj"]["kernel"] + x @ a["v_proj"]["kernel"]
        h = h @ a["o_proj"]["kernel"]
        h = (h @ w["mlp"]["up_proj"]["kernel"]) @ w["mlp"]["down_proj"]["kernel"]
        return x + h, None
    x, _ = jax.lax.scan(body, x, ws)
    return x @ m.params["transformer"]["embed_tokens"]["embedding"].T
print("matvecs only (scan)", timeit(jax.jit(mats), ws, jnp.ones((1, 768))))
nbytes = sum(x.nbytes for x in jax.tree.leaves(m.params))
print("param MB", nbytes / 1e6)
layers = [jax.tree.map(lambda a: jnp.array(a[i]), ws) for i in range(12)]
def mats_list(layers, x, emb):
    for w in layers:
        a = w["self_attn"]
        h = x @ a["q_proj"]["kernel"] + x @ a["k_proj"]["kernel"] + x @ a["v_proj"]["kernel"]
        h = h @ a["o_proj"]["kernel"]
        h = (h @ w["mlp"]["up_proj"]["kernel"]) @ w["mlp"]["down_proj"]["kernel"]
        x = x + h
    return x @ emb.T
emb = m.params["transformer"]["embed_tokens"]["embedding"]
print("matvecs separate arrays (unrolled)", timeit(jax.jit(mats_list), layers, jnp.ones((1, 768)), emb))
def one(w, x): return x @ w
W = jnp.ones((768, 3072)); print("one 768x3072 matvec ms", timeit(jax.jit(one), W, jnp.ones((1,768))), "->GB/s", W.nbytes/ (timeit(jax.jit(one), W, jnp.ones((1,768)))/1e3)/1e9)
W8 = jnp.ones((8, 768, 3072))
def sl(W8, x):
    def body(x, w): return x + (x @ w)[:, :768], None
    return jax.lax.scan(body, x, W8)[0]
t = timeit(jax.jit(sl), W8, jnp.ones((1,768))); print("scan of 8 768x3072", t, "GB/s", W8.nbytes/(t/1e3)/1e9)

# Synthetic: 16 steps of a 12-layer matvec chain in one fori_loop, scanned over stacked weights vs
# the weights unstacked once outside the loop.
L = 12
W = {"a": jnp.ones((L,768,2304))*0.001, "b": jnp.ones((L,768,768))*0.001, "c": jnp.ones((L,768,3072))*0.001, "d": jnp.ones((L,3072,768))*0.001}
steps=16
def layer(x, w):
    h = (x @ w["a"])[:, :768] @ w["b"]
    return x + (h @ w["c"]) @ w["d"]
def scanned(W, x):
    def body(i, x):
        return jax.lax.scan(lambda x, w: (layer(x, w), None), x, W)[0]
    return jax.lax.fori_loop(0, steps, body, x)
def unstacked_once(W, x):
    per = [jax.tree.map(lambda a: a[i], W) for i in range(L)]
    def body(i, x):
        for w in per: x = layer(x, w)
        return x
    return jax.lax.fori_loop(0, steps, body, x)
x = jnp.ones((1,768))
nbytes = sum(a.nbytes for a in W.values())
for name, f in [("scan", scanned), ("unstacked once", unstacked_once)]:
    t = timeit(jax.jit(f), W, x)
    print(name, f"{t/steps:.2f} ms/step", f"{nbytes/(t/steps/1e3)/1e9:.1f} GB/s")
