#!/usr/bin/env python
"""Write the oracle that ``tests/test_pipelines_seq2seq.py`` compares our seq2seq pipelines with.

Hugging Face transformers 5.x removed the ``summarization``, ``translation`` and ``text2text-generation``
pipelines (``transformers.pipelines.REMOVED_TASKS``); the last release that has them is 4.57.x. This script runs
ONCE, in a throwaway virtual environment outside the repository (the test environment stays on 5.x):

    python3.11 -m venv /tmp/hf457
    /tmp/hf457/bin/pip install "transformers==4.57.*" torch==2.13.0 sentencepiece protobuf   # pin torch exactly
    /tmp/hf457/bin/python scripts/make_seq2seq_oracle.py

It rewrites ``tests/fixtures/seq2seq_oracle/``, one folder per tiny seeded random model, each saved by 4.57's own
``save_pretrained`` (model, ``generation_config.json`` and tokenizer files):

- ``bart/``: a ``BartForConditionalGeneration`` (d_model 16, 2+2 layers) with a byte-level BPE tokenizer trained
  here (``tokenizers``) and saved as a ``BartTokenizerFast`` (``model_max_length`` 48, so ``truncation=True`` cuts);
- ``bart_cnn/``: another such BART whose ``generation_config.json`` carries the settings of
  ``facebook/bart-large-cnn`` (``num_beams=4``, ``length_penalty=2.0``, ``no_repeat_ngram_size=3``,
  ``min_length``, ``max_length``, ``early_stopping``), which the pipeline must take over its own defaults;
- ``t5/``: a ``T5ForConditionalGeneration`` (d_model 16, 2+2 layers, untied head) whose config holds Hugging Face's
  real ``task_specific_params`` of t5-small (the ``"summarize: "`` and ``"translate English to German: "``...
  prefixes with their generation settings), with a Unigram tokenizer (a SentencePiece model trained here, saved as
  a ``T5TokenizerFast``).

The weights are seeded and shaped so that generation is not degenerate (see ``build_bart`` and ``build_t5``): the
output distributions are peaked, outputs depend on the input, and the EOS logit is shifted so that some greedy
generations stop at EOS and others run to their length limit (``check_dynamics`` refuses the model otherwise).
Every case must give the same output again with all weights jittered by a relative ``JITTER`` (1e-5, far above
float32 rounding), so no expected output hangs on a rounding difference between PyTorch and XLA.

``expected.json`` holds ``transformers_version``, ``torch_version`` and per case: the model folder, the task,
``pipeline()``'s keyword arguments, the call's positional and keyword arguments, HF 4.57's output (token ids as
lists of ints), the messages its pipeline modules logged (``logged``) and the Python warnings they raised
(``warned``), or for the error cases the exception's type and message. Each
pipeline is built afresh from its folder: HF's pipeline pops ``prefix`` out of the model config's
``task_specific_params`` in place, so a second pipeline over the same model object would lose the prefix.
"""
import io
import json
import logging
import shutil
import tempfile
import warnings
from pathlib import Path

import sentencepiece
import torch
import transformers as hf
from tokenizers import ByteLevelBPETokenizer

OUT = Path(__file__).resolve().parents[1] / "tests" / "fixtures" / "seq2seq_oracle"
JITTER = 1e-5  # every case must give the same output with the weights jittered by this relative amount

# The task_specific_params of google-t5/t5-small's config.json, as Hugging Face ships them.
T5_TASK_SPECIFIC_PARAMS = {
    "summarization": {"early_stopping": True, "length_penalty": 2.0, "max_length": 200, "min_length": 30,
                      "no_repeat_ngram_size": 3, "num_beams": 4, "prefix": "summarize: "},
    "translation_en_to_de": {"early_stopping": True, "max_length": 300, "num_beams": 4,
                             "prefix": "translate English to German: "},
    "translation_en_to_fr": {"early_stopping": True, "max_length": 300, "num_beams": 4,
                             "prefix": "translate English to French: "},
    "translation_en_to_ro": {"early_stopping": True, "max_length": 300, "num_beams": 4,
                             "prefix": "translate English to Romanian: "},
}
# The generation settings of facebook/bart-large-cnn's generation_config.json (lengths scaled down).
BART_CNN_GENERATION = {"num_beams": 4, "length_penalty": 2.0, "no_repeat_ngram_size": 3, "min_length": 6,
                       "max_length": 24, "early_stopping": True}

# Inputs: the examples of Hugging Face's task summary and pipeline docstrings, and a few more.
TRANSFORMER_ABSTRACT = (
    "In this work, we presented the Transformer, the first sequence transduction model based entirely on attention, "
    "replacing the recurrent layers most commonly used in encoder-decoder architectures with multi-headed "
    "self-attention. For translation tasks, the Transformer can be trained significantly faster than architectures "
    "based on recurrent or convolutional layers. On both WMT 2014 English-to-German and WMT 2014 English-to-French "
    "translation tasks, we achieve a new state of the art. In the former task our best model outperforms even all "
    "previously reported ensembles.")
APPLE = "An apple a day, keeps the doctor away"
HUGGING_FACE = "Hugging Face is a community-based open-source platform for machine learning."
QUESTION = "question: What is 42 ? context: 42 is the answer to life, the universe and everything"
ARTICLES = [
    "The city council met on Tuesday to discuss the new bridge over the river. Residents asked for more bike lanes.",
    "A small cat sat on the warm mat and looked at the moon for a long time.",
    "Scientists say the old forest stores more carbon than they thought, and they want to protect it.",
    "The team won the final match after a long season of hard training and many injuries.",
]
SENTENCES = ["How old are you?", "The house is wonderful.", "My name is Wolfgang and I live in Berlin.",
             "The weather is nice today, so we walk to the park."]
CORPUS = [TRANSFORMER_ABSTRACT, APPLE, HUGGING_FACE, QUESTION, *ARTICLES, *SENTENCES,
          "summarize: translate English to German: translate English to French: translate English to Romanian:",
          "Das Haus ist wunderbar. La maison est merveilleuse. Casa este minunată. Wie alt bist du?",
          "question context answer life universe everything, numbers 0123456789 (parentheses) and dashes - too."]


def _bart_tokenizer(directory: Path, workdir: Path) -> hf.BartTokenizerFast:
    """A byte-level BPE trained on CORPUS, saved as BART's fast tokenizer (``<s>``=0, ``<pad>``=1, ``</s>``=2)."""
    bpe = ByteLevelBPETokenizer()
    bpe.train_from_iterator(CORPUS * 3, vocab_size=400, min_frequency=2,
                            special_tokens=["<s>", "<pad>", "</s>", "<unk>", "<mask>"])
    bpe.save_model(str(workdir))
    tokenizer = hf.BartTokenizerFast(vocab_file=str(workdir / "vocab.json"), merges_file=str(workdir / "merges.txt"),
                                     model_max_length=64)
    tokenizer.save_pretrained(directory)
    return tokenizer


def _t5_tokenizer(directory: Path, workdir: Path) -> hf.T5TokenizerFast:
    """A SentencePiece Unigram model trained on CORPUS (identity normalisation: a small file), saved as T5's fast
    tokenizer with 3 sentinels (``<pad>``=0, ``</s>``=1, ``<unk>``=2). ``add_prefix_space=True`` makes 4.57 write
    the "always" Metaspace of real T5 tokenizer.json files (without it, 4.57 converts a bare spiece.model with
    "never" and then tokenizes unlike transformers 5 and this library)."""
    model = io.BytesIO()
    sentencepiece.SentencePieceTrainer.train(
        sentence_iterator=iter(CORPUS * 4), model_writer=model, vocab_size=200, model_type="unigram",
        normalization_rule_name="identity", add_dummy_prefix=True, remove_extra_whitespaces=True, pad_id=0, eos_id=1,
        unk_id=2, bos_id=-1, minloglevel=2, pad_piece="<pad>", eos_piece="</s>", unk_piece="<unk>")
    (workdir / "spiece.model").write_bytes(model.getvalue())
    tokenizer = hf.T5TokenizerFast(vocab_file=str(workdir / "spiece.model"), extra_ids=3, model_max_length=512,
                                   add_prefix_space=True)
    tokenizer.save_pretrained(directory)
    return tokenizer


PROBES = [TRANSFORMER_ABSTRACT, APPLE, *ARTICLES, *SENTENCES]
T5_PROBE_PREFIXES = ["summarize: ", "translate English to German: ", "translate English to French: ", ""]
LOGIT_NORM = 6.0  # the norm of every output-embedding row: peaked distributions, wide margins between tokens


def _is_word_piece(token: str) -> bool:
    return token.replace("\u0120", "").isascii() and token.replace("\u0120", "").isalpha()


def check_dynamics(name: str, model, tokenizer, prefixes=("",)) -> None:
    """Greedy generation over PROBES: outputs must differ between inputs, and some must stop at EOS within 40 new
    tokens while others run to the limit (so the fixture exercises both endings)."""
    texts, early = [], 0
    with torch.no_grad():
        for i, text in enumerate(PROBES):
            encoded = tokenizer(prefixes[i % len(prefixes)] + text, return_tensors="pt")
            out = model.generate(**encoded, num_beams=1, max_new_tokens=40)
            early += out.shape[1] < 41
            texts.append(tokenizer.decode(out[0], skip_special_tokens=True))
    if len(set(texts)) < len(texts) // 2 or not 2 <= early <= len(texts) - 2:
        raise SystemExit(f"{name}: degenerate generation ({early} of {len(texts)} stop early): {texts}")


def build_bart(directory: Path, tokenizer, seed: int, eos_bias: float, generation: dict | None = None) -> None:
    """A tiny BART whose generations depend on the input: the embedding rows (tied to the LM head) all have norm
    LOGIT_NORM, the last decoder layer's final LayerNorm has random signs (so the residual stream does not make
    the model repeat its input token), byte tokens that are not letters get a -2 * LOGIT_NORM logit bias (readable
    outputs) and EOS ``eos_bias``."""
    config = hf.BartConfig(vocab_size=len(tokenizer), d_model=16, encoder_layers=2, decoder_layers=2,
                           encoder_attention_heads=2, decoder_attention_heads=2, encoder_ffn_dim=32,
                           decoder_ffn_dim=32, max_position_embeddings=300, init_std=0.3)
    torch.manual_seed(seed)
    model = hf.BartForConditionalGeneration(config).eval()
    generator = torch.Generator().manual_seed(seed + 100)
    with torch.no_grad():
        for name, param in model.named_parameters():
            if "layer_norm" in name or "layernorm" in name:
                param.add_(torch.randn(param.shape, generator=generator) * 0.2)
        model.model.decoder.layers[-1].final_layer_norm.weight.copy_(torch.randn(16, generator=generator) * 1.5)
        table = model.model.shared.weight
        table.mul_(LOGIT_NORM / table.norm(dim=1, keepdim=True).clamp_min(1e-6))
        bad = [i for token, i in tokenizer.get_vocab().items() if i >= 5 and not _is_word_piece(token)]
        model.final_logits_bias[0, bad] = -2 * LOGIT_NORM
        model.final_logits_bias[0, config.eos_token_id] = eos_bias
    check_dynamics(directory.name, model, tokenizer)
    if generation:
        model.generation_config.update(**generation)
    model.save_pretrained(directory)


def build_t5(directory: Path, tokenizer, seed: int, eos_shift: float) -> None:
    """A tiny T5 (untied head) with t5-small's task_specific_params: weights redrawn with unit-scale LayerNorm
    weights of random sign and fan-in scaled projections; the head rows have norm LOGIT_NORM, and the EOS row is
    moved ``eos_shift * LOGIT_NORM`` towards the mean decoder output (EOS then wins at some steps)."""
    config = hf.T5Config(vocab_size=len(tokenizer), d_model=16, d_kv=8, d_ff=32, num_layers=2, num_decoder_layers=2,
                         num_heads=2, relative_attention_num_buckets=8, relative_attention_max_distance=20,
                         tie_word_embeddings=False, decoder_start_token_id=0,
                         task_specific_params=json.loads(json.dumps(T5_TASK_SPECIFIC_PARAMS)))
    torch.manual_seed(seed)
    model = hf.T5ForConditionalGeneration(config).eval()
    generator = torch.Generator().manual_seed(seed + 100)
    with torch.no_grad():
        for name, param in model.named_parameters():
            if "layer_norm" in name or name in ("shared.weight", "lm_head.weight"):
                param.copy_(torch.randn(param.shape, generator=generator))
            else:
                param.copy_(torch.randn(param.shape, generator=generator) * param.shape[-1] ** -0.5)
        head = model.lm_head.weight
        head.mul_(LOGIT_NORM / head.norm(dim=1, keepdim=True))
        states = []
        for i, text in enumerate(PROBES):
            encoded = tokenizer(T5_PROBE_PREFIXES[i % 4] + text, return_tensors="pt")
            out = model.generate(**encoded, num_beams=1, max_new_tokens=20)
            states.append(model(**encoded, decoder_input_ids=out, output_hidden_states=True)
                          .decoder_hidden_states[-1][0])
        mean = torch.cat(states).mean(0)
        head[config.eos_token_id] += eos_shift * LOGIT_NORM * mean / mean.norm()
    check_dynamics(directory.name, model, tokenizer, T5_PROBE_PREFIXES)
    model.save_pretrained(directory)


class _LogCapture(logging.Handler):
    def __init__(self):
        super().__init__(logging.WARNING)
        self.messages: list[str] = []

    def emit(self, record):
        self.messages.append(record.getMessage())


def _jsonable(result):
    if isinstance(result, torch.Tensor):
        return result.tolist()
    if isinstance(result, dict):
        return {k: _jsonable(v) for k, v in result.items()}
    if isinstance(result, (list, tuple)):
        return [_jsonable(v) for v in result]
    return result


def _records(result):
    """Every record (dict) of a result, however nested."""
    if isinstance(result, dict):
        return [result]
    return [r for item in result for r in _records(item)]


def _jitter(model, relative: float, seed: int) -> None:
    """Scale every float weight and buffer by (1 + relative * N(0, 1)) noise: a stand-in for rounding differences
    (larger than float32 ones) between PyTorch and XLA."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for tensor in [*model.parameters(), *model.buffers()]:
            if tensor.is_floating_point():
                tensor.mul_(1 + relative * torch.randn(tensor.shape, generator=generator))


def run(folder: Path, task: str, pipeline_kwargs: dict, args: list, kwargs: dict, jitter: float = 0.0):
    """(HF 4.57's output, the messages its pipeline modules logged, the warnings they raised) for one case, the
    pipeline built afresh; with ``jitter``, on a model whose weights were jittered by that relative amount."""
    capture = _LogCapture()
    loggers = [logging.getLogger(name) for name in ("transformers.pipelines.text2text_generation",
                                                    "transformers.pipelines.base")]
    for log in loggers:
        log.addHandler(capture)
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            model = hf.AutoModelForSeq2SeqLM.from_pretrained(folder)
            if jitter:
                _jitter(model, jitter, seed=len(str(args)))
            pipe = hf.pipeline(task, model=model, tokenizer=hf.AutoTokenizer.from_pretrained(folder), device="cpu",
                               **pipeline_kwargs)
            result = pipe(*args, **kwargs)
    finally:
        for log in loggers:
            log.removeHandler(capture)
    messages = [m for m in capture.messages if not m.startswith("Device set to use")]
    warned = [str(w.message) for w in caught if "/pipelines/" in w.filename.replace("\\", "/")]
    return _jsonable(result), messages, warned


def main() -> None:
    if OUT.exists():
        shutil.rmtree(OUT)
    OUT.mkdir(parents=True)
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        bart_tok = _bart_tokenizer(OUT / "bart", tmp)
        build_bart(OUT / "bart", bart_tok, seed=5, eos_bias=10.0)
        _bart_tokenizer(OUT / "bart_cnn", tmp)
        build_bart(OUT / "bart_cnn", bart_tok, seed=2, eos_bias=13.0, generation=BART_CNN_GENERATION)
        t5_tok = _t5_tokenizer(OUT / "t5", tmp)
        build_t5(OUT / "t5", t5_tok, seed=2, eos_shift=0.5)

    cases = []

    def case(name, folder, task, *args, pipeline_kwargs=None, check_distinct=True, **kwargs):
        pipeline_kwargs = pipeline_kwargs or {}
        result, logged, warned = run(OUT / folder, task, pipeline_kwargs, list(args), kwargs)
        jittered, _, _ = run(OUT / folder, task, pipeline_kwargs, list(args), kwargs, jitter=JITTER)
        if jittered != result:
            raise SystemExit(f"case {name!r}: weights jittered by {JITTER} change the output; pick other weights or "
                             f"inputs\n{result}\n{jittered}")
        texts = [v for r in _records(result) for k, v in r.items() if k.endswith("_text")]
        if check_distinct and len(texts) > 1 and len(set(texts)) == 1:
            raise SystemExit(f"case {name!r}: every output is the same text {texts[0]!r}")
        cases.append({"name": name, "model": folder, "task": task, "pipeline_kwargs": pipeline_kwargs,
                      "args": list(args), "kwargs": kwargs, "expected": result, "logged": logged, "warned": warned})
        print(f"{name}: {result}  {logged} {warned}")
        return result

    def error_case(name, folder, task, *args, pipeline_kwargs=None, **kwargs):
        try:
            run(OUT / folder, task, pipeline_kwargs or {}, list(args), kwargs)
        except Exception as err:  # noqa: BLE001 - what HF raises is the record
            cases.append({"name": name, "model": folder, "task": task, "pipeline_kwargs": pipeline_kwargs or {},
                          "args": list(args), "kwargs": kwargs,
                          "error": {"type": type(err).__name__, "message": str(err)}})
            print(f"{name}: {type(err).__name__}: {err}")
            return
        raise SystemExit(f"case {name!r} did not raise")

    def tokens_case(name, folder, task, *args, **kwargs):
        """A return_tensors case: token ids, which may repeat between inputs."""
        return case(name, folder, task, *args, return_tensors=True, check_distinct=False, **kwargs)

    # ------------------------------------------------------------------ BART: summarization
    case("task_summary_summarization", "bart", "summarization", TRANSFORMER_ABSTRACT)
    case("summarization_docstring_min_max", "bart", "summarization", APPLE, min_length=5, max_length=20)
    case("summarization_default", "bart", "summarization", ARTICLES[0])
    case("summarization_pipeline_max_length", "bart", "summarization", ARTICLES[1],
         pipeline_kwargs={"max_length": 12})
    case("summarization_num_beams_3", "bart", "summarization", ARTICLES[2], num_beams=3, max_new_tokens=16)
    greedy = case("summarization_greedy", "bart", "summarization", ARTICLES[3], num_beams=1, max_new_tokens=16)
    case("summarization_min_new_tokens", "bart", "summarization", ARTICLES[1], num_beams=1, min_new_tokens=10,
         max_new_tokens=14)
    case("summarization_num_return_sequences", "bart", "summarization", ARTICLES[0], num_beams=3,
         num_return_sequences=2, max_new_tokens=12)
    case("summarization_batch", "bart", "summarization", ARTICLES[:3], pipeline_kwargs={"batch_size": 2},
         max_new_tokens=16)
    case("summarization_batch_call_batch_size", "bart", "summarization", [APPLE, *ARTICLES], batch_size=2,
         num_beams=2, max_new_tokens=10)
    case("summarization_truncation", "bart", "summarization", TRANSFORMER_ABSTRACT, truncation=True, num_beams=2,
         max_new_tokens=12)
    stopped = case("summarization_stop_sequence", "bart", "summarization", ARTICLES[3], stop_sequence=" tas",
                   num_beams=1, max_new_tokens=16)
    if stopped == greedy:
        raise SystemExit("stop_sequence=' tas' did not change the greedy summary; pick another stop sequence")
    case("summarization_short_input_warns", "bart", "summarization", SENTENCES[0], max_length=30, num_beams=1)
    case("summarization_no_repeat_ngram", "bart", "summarization", ARTICLES[3], no_repeat_ngram_size=2,
         repetition_penalty=1.5, num_beams=1, max_new_tokens=20)
    tokens_case("summarization_return_tensors", "bart", "summarization", ARTICLES[2], num_beams=2, max_new_tokens=14)
    tokens_case("summarization_return_tensors_batch", "bart", "summarization", ARTICLES[:3],
                pipeline_kwargs={"batch_size": 3}, num_beams=1, max_new_tokens=14)
    case("text2text_bart", "bart", "text2text-generation", SENTENCES[1], num_beams=2, max_new_tokens=10)

    # ------------------------------------------------------------------ BART with bart-large-cnn's generation config
    case("cnn_default", "bart_cnn", "summarization", ARTICLES[0])
    case("cnn_batch", "bart_cnn", "summarization", ARTICLES, pipeline_kwargs={"batch_size": 2})
    case("cnn_min_max", "bart_cnn", "summarization", ARTICLES[2], min_length=3, max_length=10)
    case("cnn_override_beams", "bart_cnn", "summarization", ARTICLES[3], num_beams=2, length_penalty=1.0)

    # ------------------------------------------------------------------ T5: prefixes from task_specific_params
    case("t5_summarization", "t5", "summarization", TRANSFORMER_ABSTRACT)
    case("t5_summarization_call_max_length", "t5", "summarization", ARTICLES[1], max_length=12)
    case("t5_translation_en_to_de", "t5", "translation_en_to_de", SENTENCES[1])
    case("t5_translation_en_to_fr_docstring", "t5", "translation_en_to_fr", SENTENCES[0])
    case("t5_translation_en_to_ro_batch", "t5", "translation_en_to_ro", SENTENCES, pipeline_kwargs={"batch_size": 2},
         num_beams=2)
    case("t5_task_summary_translation", "t5", "translation",
         "translate English to French: " + HUGGING_FACE)
    case("t5_translation_src_tgt", "t5", "translation", SENTENCES[2], src_lang="en", tgt_lang="fr")
    case("t5_translation_de_src_tgt", "t5", "translation_en_to_de", SENTENCES[3], src_lang="en", tgt_lang="de",
         max_length=12)
    case("t5_text2text", "t5", "text2text-generation", QUESTION)
    case("t5_text2text_greedy", "t5", "text2text-generation", QUESTION, num_beams=1, max_new_tokens=20)
    tokens_case("t5_text2text_return_tensors", "t5", "text2text-generation", SENTENCES[0], num_beams=1,
                max_new_tokens=12)
    case("t5_text2text_batch_list", "t5", "text2text-generation", SENTENCES[:3], num_beams=3,
         num_return_sequences=2, max_new_tokens=8)
    case("t5_translation_unnamed_pair", "t5", "translation_en_to_es", SENTENCES[1], num_beams=1, max_new_tokens=8)

    # ------------------------------------------------------------------ errors
    error_case("invalid_translation_task", "t5", "translation_en", SENTENCES[1])
    error_case("translation_bad_separator", "t5", "translation_en_de_fr", SENTENCES[1])

    registry = {task: {"default": {",".join(k) if isinstance(k, tuple) else k: v for k, v in
                                   hf.pipelines.SUPPORTED_TASKS[task]["default"].items()},
                       "pt": [cls.__name__ for cls in hf.pipelines.SUPPORTED_TASKS[task]["pt"]]}
                for task in ("summarization", "translation", "text2text-generation")}
    expected = {"transformers_version": hf.__version__, "torch_version": torch.__version__, "registry": registry,
                "cases": cases}
    (OUT / "expected.json").write_text(json.dumps(expected, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    total = sum(f.stat().st_size for f in OUT.rglob("*") if f.is_file())
    print(f"wrote {len(cases)} cases to {OUT} ({total / 1e3:.0f} KB) with transformers {hf.__version__}")


if __name__ == "__main__":
    main()
