"""Shared fixtures: the real shipped models, found through their installed packages."""
import atexit
import os
import shutil
import tempfile
from pathlib import Path

import pytest

# Tests run on the CPU. Multi-device tests need 8 simulated devices, set before JAX starts.
os.environ.setdefault("XLA_FLAGS", "--xla_force_host_platform_device_count=8")
os.environ.setdefault("JAX_PLATFORMS", "cpu")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
# The command-line tools keep compiled programs in a persistent cache: the tests' subprocesses share
# one of their own for the session (never the user's ~/.cache), so a program compiled by one tool
# run is loaded, not compiled again, by the next.
os.environ["TRANSFORMERS_JAX_COMPILATION_CACHE"] = tempfile.mkdtemp(prefix="transformers-jax-test-xla-")
atexit.register(shutil.rmtree, os.environ["TRANSFORMERS_JAX_COMPILATION_CACHE"], True)


@pytest.fixture(autouse=True, scope="module")
def _release_compiled_programs():
    """Drop JAX's compiled programs after each test module. XLA:CPU maps memory for every kernel it compiles
    (an encoder-decoder's beam search is ~500 maps); a test worker that keeps thousands of programs reaches
    the kernel's limit of 65530 maps per process (``vm.max_map_count``), and the next compilation crashes."""
    yield
    import gc

    import jax

    jax.clear_caches()
    gc.collect()


@pytest.fixture(autouse=True)
def _persistent_cache_off_after_test():
    """A command-line tool's ``main`` called in-process turns JAX's persistent compilation cache on for the
    rest of the process; switch it off after such a test, so that the many later programs of a long test
    worker are not written."""
    yield
    import jax

    if jax.config.jax_compilation_cache_dir:
        from jax.experimental.compilation_cache import compilation_cache

        jax.config.update("jax_compilation_cache_dir", None)
        compilation_cache.reset_cache()


@pytest.fixture(scope="session")
def minilm_dir() -> Path:
    """Directory with all-MiniLM-L6-v2 (config.json, model.safetensors, tokenizer files)."""
    from real_weights import minilm_dir as find

    return find()


@pytest.fixture(scope="session")
def smollm2_gguf() -> Path:
    """Path to SmolLM2-135M-Instruct as a 4-bit GGUF file."""
    from real_weights import smollm2_gguf as find

    return find()


def _our_gguf_model(path: Path):
    import transformers_jax as tj

    return tj.AutoModelForCausalLM.from_pretrained(path.parent, gguf_file=path.name)


def _our_gguf_tokenizer(path: Path):
    import transformers_jax as tj

    return tj.AutoTokenizer.from_pretrained(path.parent, gguf_file=path.name)


def _hf_gguf(path: Path):
    """(Hugging Face's own GGUF load in eager attention, its tokenizer): the oracle."""
    import transformers

    model = transformers.AutoModelForCausalLM.from_pretrained(path.parent, gguf_file=path.name).eval()
    model.set_attn_implementation("eager")
    return model, transformers.AutoTokenizer.from_pretrained(path.parent, gguf_file=path.name)


@pytest.fixture(scope="session")
def smollm2_model(smollm2_gguf):
    """Our SmolLM2-135M-Instruct (LlamaForCausalLM from the GGUF), loaded once for every test module."""
    return _our_gguf_model(smollm2_gguf)


@pytest.fixture(scope="session")
def smollm2_tokenizer(smollm2_gguf):
    """Our tokenizer of SmolLM2-135M-Instruct, read from the GGUF."""
    return _our_gguf_tokenizer(smollm2_gguf)


@pytest.fixture(scope="session")
def smollm2_hf(smollm2_gguf):
    """HF's GGUF load of SmolLM2 and its tokenizer, loaded once."""
    return _hf_gguf(smollm2_gguf)


@pytest.fixture(scope="session")
def gemma3_gguf() -> Path:
    """Path to Gemma 3 270M (base, GGUF Q4_K_M), assembled by scripts/fetch_gemma3.py (which the README's
    test command runs through scripts/setup.sh); a missing file is an error, not a skip."""
    from real_weights import gemma3_gguf as find

    return find()


@pytest.fixture(scope="session")
def gemma3_model(gemma3_gguf):
    """Our Gemma 3 270M (Gemma3ForCausalLM from the GGUF), loaded once for every test module."""
    return _our_gguf_model(gemma3_gguf)


@pytest.fixture(scope="session")
def gemma3_tokenizer(gemma3_gguf):
    """Our tokenizer of Gemma 3 270M, read from the GGUF."""
    return _our_gguf_tokenizer(gemma3_gguf)


@pytest.fixture(scope="session")
def gemma3_hf(gemma3_gguf):
    """HF's GGUF load of Gemma 3 270M and its tokenizer, loaded once."""
    return _hf_gguf(gemma3_gguf)
