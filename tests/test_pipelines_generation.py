"""The text-generation pipeline against Hugging Face 5.x's ``transformers.pipeline("text-generation")``.

Both load the SAME directories: tiny random ``LlamaForCausalLM`` and ``GPT2LMHeadModel`` checkpoints saved by
Hugging Face, with a byte-level BPE tokenizer trained here (``tokenizers``) and saved through Hugging Face's
``PreTrainedTokenizerFast`` with a chat template and an EOS token. Decoding is greedy (or beam search), so the
generated texts must be identical: a 2-layer float32 model's logits differ from PyTorch's by ~1e-6, far below
the gaps between the best tokens of these widely initialised models.
"""
import json

import numpy as np
import pytest
import transformers as hf

import transformers_jax as tj
from parity import count_compiles
from transformers_jax.pipelines.text_generation import TextGenerationPipeline

CORPUS = [
    "The quick brown fox jumps over the lazy dog.",
    "Hello world! Hello there, general Kenobi.",
    "A cat sat on the mat and looked at the moon.",
    "Once upon a time there was a small village by the sea.",
    "def foo(x):\n    return x * 2\n",
]
CHAT_TEMPLATE = (
    "{{ bos_token }}{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)
PROMPTS = ["Once upon a time", "Hello", "The quick brown fox jumps over the", "A cat"]
CHAT = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hello there!"}]
GREEDY = {"do_sample": False, "max_new_tokens": 8}


def _tokenizer(directory):
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    backend = Tokenizer(models.BPE())
    backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    backend.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=300, special_tokens=["<pad>", "<s>", "</s>", "<|im_start|>", "<|im_end|>"],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    backend.train_from_iterator(CORPUS * 5, trainer)
    tok = hf.PreTrainedTokenizerFast(tokenizer_object=backend, bos_token="<s>", eos_token="</s>", pad_token="<pad>",
                                     additional_special_tokens=["<|im_start|>", "<|im_end|>"],
                                     chat_template=CHAT_TEMPLATE)
    tok.save_pretrained(directory)
    return tok


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory):
    """{"llama": dir, "gpt2": dir}: tiny random HF decoders with the BPE tokenizer files."""
    import torch

    root = tmp_path_factory.mktemp("generation_models")
    vocab = len(_tokenizer(root / "tok"))
    configs = {
        "llama": hf.LlamaConfig(vocab_size=vocab, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                                num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=128,
                                initializer_range=0.2, bos_token_id=1, eos_token_id=2, pad_token_id=0),
        "gpt2": hf.GPT2Config(vocab_size=vocab, n_embd=32, n_layer=2, n_head=2, n_positions=128,
                              initializer_range=0.2, bos_token_id=1, eos_token_id=2, pad_token_id=0),
    }
    out = {}
    for seed, (name, config) in enumerate(configs.items()):
        torch.manual_seed(seed)
        model = (hf.LlamaForCausalLM if name == "llama" else hf.GPT2LMHeadModel)(config).eval()
        model.save_pretrained(root / name)
        _tokenizer(root / name)
        out[name] = root / name
    return out


@pytest.fixture(scope="module")
def pipes(checkpoints):
    """(ours, HF's) pipeline over each checkpoint, built once."""
    cache = {}

    def get(name, **kwargs):
        key = (name, tuple(sorted(kwargs.items())))
        if key not in cache:
            directory = str(checkpoints[name])
            cache[key] = (tj.pipeline("text-generation", model=directory, **kwargs),
                          hf.pipeline("text-generation", model=directory, device="cpu", **kwargs))
        return cache[key]

    return get


def _texts(result):
    """The generated_text values of a result (nested lists of records), for messages that name the difference."""
    if isinstance(result, dict):
        return result.get("generated_text", result.get("generated_token_ids"))
    return [_texts(r) for r in result]


def assert_same(ours, theirs):
    assert ours == theirs, f"\nours: {_texts(ours)}\nHF:   {_texts(theirs)}"


# ----------------------------------------------------------------------------- registry
def test_registry_entry_equals_hf():
    entry = tj.pipelines.SUPPORTED_TASKS["text-generation"]
    assert entry["default"] == hf.pipelines.SUPPORTED_TASKS["text-generation"]["default"]
    assert entry["auto_model"] == "AutoModelForCausalLM"


def test_task_is_inferred_from_a_causal_lm(checkpoints):
    for name in ("llama", "gpt2"):
        assert tj.pipeline(model=str(checkpoints[name])).task == "text-generation"


# ----------------------------------------------------------------------------- outputs equal HF's
@pytest.mark.parametrize("name", ["llama", "gpt2"])
def test_string_and_batch_equal_hf(pipes, name):
    ours, theirs = pipes(name)
    assert isinstance(ours, TextGenerationPipeline)
    assert ours.tokenizer.padding_side == "left"
    single = ours(PROMPTS[0], **GREEDY)
    assert_same(single, theirs(PROMPTS[0], **GREEDY))
    assert single[0]["generated_text"].startswith(PROMPTS[0]) and len(single[0]["generated_text"]) > len(PROMPTS[0])
    # batch_size=2 over prompts of different lengths: left padding must not change any result
    batched = ours(PROMPTS, batch_size=2, **GREEDY)
    assert_same(batched, theirs(PROMPTS, batch_size=2, **GREEDY))
    assert batched[0] == single
    assert_same(ours(PROMPTS[:3], return_full_text=False, **GREEDY),
                theirs(PROMPTS[:3], return_full_text=False, **GREEDY))
    for flags in ({"clean_up_tokenization_spaces": True}, {"skip_special_tokens": False, "return_text": True}):
        assert_same(ours(PROMPTS[1], **flags, **GREEDY), theirs(PROMPTS[1], **flags, **GREEDY))


def test_chats_equal_hf(pipes):
    ours, theirs = pipes("llama")
    result = ours(CHAT, **GREEDY)
    assert_same(result, theirs(CHAT, **GREEDY))
    assert result[0]["generated_text"][:2] == CHAT and result[0]["generated_text"][2]["role"] == "assistant"
    chats = [CHAT, [{"role": "user", "content": "Tell me about the sea"}]]
    assert_same(ours(chats, batch_size=2, **GREEDY), theirs(chats, batch_size=2, **GREEDY))
    prefill = CHAT + [{"role": "assistant", "content": "Once upon"}]  # continue_final_message by default
    assert_same(ours(prefill, **GREEDY), theirs(prefill, **GREEDY))
    assert_same(ours(CHAT, return_full_text=False, **GREEDY), theirs(CHAT, return_full_text=False, **GREEDY))


def test_beams_and_several_sequences_equal_hf(pipes):
    ours, theirs = pipes("llama")
    kwargs = dict(GREEDY, num_beams=3, num_return_sequences=2)
    result = ours(PROMPTS[:2], **kwargs)
    assert_same(result, theirs(PROMPTS[:2], **kwargs))
    assert [len(r) for r in result] == [2, 2] and result[0][0] != result[0][1]
    assert_same(ours(PROMPTS[2], num_beams=2, **GREEDY), theirs(PROMPTS[2], num_beams=2, **GREEDY))


def test_token_ids_and_lengths_equal_hf(pipes):
    ours, theirs = pipes("gpt2")
    ids = ours(PROMPTS[:2], return_tensors=True, batch_size=2, **GREEDY)
    assert_same(ids, theirs(PROMPTS[:2], return_tensors=True, batch_size=2, **GREEDY))
    assert all(isinstance(t, int) for t in ids[1][0]["generated_token_ids"])
    for kwargs in ({"max_new_tokens": 3}, {"max_length": 12}):
        assert_same(ours(PROMPTS[1], do_sample=False, **kwargs), theirs(PROMPTS[1], do_sample=False, **kwargs))
    new = ours(PROMPTS[1], do_sample=False, max_new_tokens=3, return_tensors=True)[0]["generated_token_ids"]
    assert len(new) == len(ours.tokenizer(PROMPTS[1])["input_ids"]) + 3


def test_prefix_and_stop_sequence_equal_hf(pipes):
    ours, theirs = pipes("llama")
    kwargs = dict(GREEDY, prefix="Hello world! ")
    assert_same(ours(PROMPTS[1], **kwargs), theirs(PROMPTS[1], **kwargs))
    settings = dict(GREEDY, max_new_tokens=12)
    full = ours(PROMPTS[0], return_full_text=False, **settings)[0]["generated_text"]
    ids = ours(PROMPTS[0], return_tensors=True, **settings)[0]["generated_token_ids"]
    new_ids = ids[len(ours.tokenizer(PROMPTS[0])["input_ids"]):]
    # a stop string the model does generate, in the middle: the letters of a later token
    words = [ours.tokenizer.decode([t]).strip() for t in new_ids[3:]]
    stop = next((w for w in words if w.isascii() and w.isalpha()), None)
    assert stop is not None, f"no ASCII word among the generated tokens {words}"
    cut = ours(PROMPTS[0], stop_sequence=stop, return_full_text=False, **settings)
    assert_same(cut, theirs(PROMPTS[0], stop_sequence=stop, return_full_text=False, **settings))
    assert stop in cut[0]["generated_text"] and len(cut[0]["generated_text"]) < len(full)


def test_hole_and_streamed_chats_equal_hf(checkpoints):
    """handle_long_generation="hole" keeps the end of a prompt that leaves no room; chats streamed from a
    generator (as from a dataset) are chats too."""
    directory = str(checkpoints["llama"])
    ours = tj.pipeline("text-generation", model=directory,
                       tokenizer=tj.AutoTokenizer.from_pretrained(directory, model_max_length=20))
    theirs = hf.pipeline("text-generation", model=directory, device="cpu",
                         tokenizer=hf.AutoTokenizer.from_pretrained(directory, model_max_length=20))
    prompt = "The quick brown fox jumps over the"  # 24 tokens: 12 are kept for 8 new ones
    assert len(ours.tokenizer(prompt)["input_ids"]) + GREEDY["max_new_tokens"] > 20
    kwargs = dict(GREEDY, handle_long_generation="hole", return_tensors=True)
    result = ours(prompt, **kwargs)
    assert_same(result, theirs(prompt, **kwargs))
    assert len(result[0]["generated_token_ids"]) == 20
    chats = [CHAT, [{"role": "user", "content": "Tell me about the sea"}]]
    streamed = list(ours((c for c in chats), **GREEDY))
    assert_same(streamed, list(theirs((c for c in chats), **GREEDY)))
    column = tj.pipelines.KeyDataset([{"chat": c} for c in chats], "chat")  # a dataset column of chats
    assert list(ours(column, **GREEDY)) == streamed


def test_eos_and_generation_config_defaults_equal_hf(checkpoints, tmp_path):
    """A generation_config.json whose EOS is a token the model generates: both stop there, with its settings
    (greedy, max_new_tokens) used instead of the pipeline's defaults (sampling, 256 new tokens)."""
    import shutil

    directory = tmp_path / "llama_eos"
    shutil.copytree(checkpoints["llama"], directory)
    probe = tj.pipeline("text-generation", model=str(directory))
    ids = probe(PROMPTS[0], return_tensors=True, **dict(GREEDY, max_new_tokens=10))[0]["generated_token_ids"]
    prompt_length = len(probe.tokenizer(PROMPTS[0])["input_ids"])
    eos = ids[prompt_length + 3]
    stop = prompt_length + ids[prompt_length:].index(eos)  # where generation must end now
    (directory / "generation_config.json").write_text(json.dumps(
        {"eos_token_id": eos, "do_sample": False, "max_new_tokens": 10, "pad_token_id": 0, "bos_token_id": 1}))
    ours = tj.pipeline("text-generation", model=str(directory))
    theirs = hf.pipeline("text-generation", model=str(directory), device="cpu")
    result = ours(PROMPTS[0], return_tensors=True)
    assert result[0]["generated_token_ids"] == ids[:stop + 1]
    assert_same(result, theirs(PROMPTS[0], return_tensors=True))
    assert_same(ours(PROMPTS, batch_size=2), theirs(PROMPTS, batch_size=2))


@pytest.mark.parametrize("kwargs", [{}, {"do_sample": False}, {"max_length": 30}, {"top_k": 5},
                                    {"do_sample": False, "temperature": 0.3}, {"max_new_tokens": 4, "num_beams": 2}])
def test_generate_arguments_and_defaults_equal_hf(pipes, kwargs):
    """What reaches generate: the user's settings plus HF's pipeline defaults (max_new_tokens=256, do_sample=True,
    temperature=0.7 only when sampling, none of max_new_tokens once max_length is set)."""
    ours, theirs = pipes("llama")
    assert ours.generation_kwargs(dict(kwargs)) == theirs._prepare_generate_kwargs(dict(kwargs))


def test_sampling_is_reproducible_with_a_key(pipes):
    import jax

    ours, _ = pipes("gpt2")
    kwargs = dict(do_sample=True, top_k=20, temperature=1.5, max_new_tokens=8, num_return_sequences=3)
    a = ours(PROMPTS[0], prng_key=jax.random.PRNGKey(3), **kwargs)
    assert a == ours(PROMPTS[0], prng_key=jax.random.PRNGKey(3), **kwargs)
    assert len({r["generated_text"] for r in a}) > 1  # three draws, not three copies
    assert ours(PROMPTS[0], **kwargs) != ours(PROMPTS[0], **kwargs)  # no key: successive calls draw anew


# ----------------------------------------------------------------------------- compilation
def test_batches_reuse_compiled_programs(checkpoints):
    ours = tj.pipeline("text-generation", model=str(checkpoints["gpt2"]), batch_size=2)
    ours.model = type(ours.model)(ours.model.config.replace(layer_norm_epsilon=1.234e-5), ours.model.params)
    short = ["Once upon a time", "Hello", "A cat", "Hello there", "The dog"]
    long = "The quick brown fox jumps over the"
    length = lambda text: len(ours.tokenizer(text)["input_ids"])  # noqa: E731
    assert max(map(length, short)) <= 16 < length(long) <= 32
    with count_compiles("jit(_decode_loop)") as compiles:
        first = ours(short[:4], **GREEDY)  # prompts in the 16-token bucket, a budget of 8 in the 16 bucket
        assert len(compiles) == 1, compiles
        ours(short[2:], max_new_tokens=5, do_sample=False)  # other widths and budget; 3 rows = 2 + 1 filler
        assert len(compiles) == 1, compiles
        ours([long, short[0]], **GREEDY)  # the 32 bucket: one more program
        assert len(compiles) == 2, compiles
    assert first == [ours(text, **GREEDY) for text in short[:4]]


# ----------------------------------------------------------------------------- errors
def test_empty_prompt_starts_from_bos_like_hf(pipes):
    ours, theirs = pipes("llama")
    assert_same(ours("", **GREEDY), theirs("", **GREEDY))


def test_model_without_causal_lm_head(checkpoints, tmp_path):
    directory = tmp_path / "bert"
    import torch

    torch.manual_seed(0)
    hf.BertForSequenceClassification(hf.BertConfig(vocab_size=99, hidden_size=8, num_hidden_layers=1,
                                                   num_attention_heads=2, intermediate_size=8)).save_pretrained(directory)
    with pytest.raises(ValueError, match=r"AutoModelForCausalLM does not support model_type 'bert'"):
        tj.pipeline("text-generation", model=str(directory), tokenizer=str(checkpoints["llama"]))
    model = tj.AutoModelForSequenceClassification.from_pretrained(directory)
    with pytest.raises(ValueError, match=r"'text-generation' pipeline needs a model that AutoModelForCausalLM loads.*"
                                         r"got a BertForSequenceClassification"):
        tj.pipeline("text-generation", model=model, tokenizer=str(checkpoints["llama"]))
    with pytest.raises(ValueError, match=r"causal language model .*AutoModelForCausalLM.*BertForSequenceClassification"):
        TextGenerationPipeline(model, tj.AutoTokenizer.from_pretrained(checkpoints["llama"]))


def test_bad_inputs_and_arguments(pipes):
    ours, _ = pipes("llama")
    with pytest.raises(ValueError, match=r"each dict must have a 'role' and 'content' key: message 1 of the chat has "
                                         r"keys \['role', 'text'\]"):
        ours([{"role": "user", "content": "hi"}, {"role": "assistant", "text": "oops"}])
    with pytest.raises(ValueError, match=r"message 0 of the chat has keys \['text'\]"):
        ours([{"text": "no role"}])
    with pytest.raises(TypeError, match="text-generation takes a string, a chat .* got int"):
        ours([3])
    with pytest.raises(ValueError, match=r"unknown argument\(s\) 'max_new_token'"):
        ours("Hello", max_new_token=3)
    with pytest.raises(ValueError, match="mutually exclusive"):
        ours("Hello", return_full_text=True, return_tensors=True)
    with pytest.raises(ValueError, match="stop_sequence must be"):
        ours("Hello", stop_sequence="")
