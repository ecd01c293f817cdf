"""Tokenizers read from a SentencePiece model file alone (no tokenizer.json), against Hugging Face transformers.

For XLM-R and CamemBERT (``sentencepiece.bpe.model``), ALBERT (``spiece.model``) and DeBERTa-v2/v3 (``spm.model``) a
tiny model is trained here with ``sentencepiece.SentencePieceTrainer`` on a small multilingual corpus, with the ids
the real checkpoints' models have (XLM-R / CamemBERT: ``<unk> <s> </s>``; ALBERT: ``<pad> <unk>`` and the control
pieces ``[CLS] [SEP] [MASK]``; DeBERTa-v3: ``[PAD] [CLS] [SEP] [UNK]``), and saved as HF's slow-format folder: the
model file and a ``tokenizer_config.json`` naming the class. HF's ``AutoTokenizer`` converts that folder itself; ours
must agree with it on everything a user sees (vocabulary, special tokens, pipeline, ids, tokens, offsets, pairs,
special-tokens masks, truncation, decoding), and the folder our ``save_pretrained`` writes must load in HF the same.
Also: a BPE SentencePiece model under XLM-R's class (HF reads its pieces as a Unigram vocabulary), a user-defined
piece, settings from ``from_pretrained``, a hub repo, and clear errors.
"""
import io
import json
import sys

import pytest
import sentencepiece
from transformers import AutoTokenizer as HFAutoTokenizer

from test_tokenization_families import (
    CHARSMAP_TEXT,
    CORPUS,
    LONG_WORD,
    TEXTS,
    assert_same_attributes,
    assert_same_call,
    assert_same_decoding,
    assert_same_encodings,
    assert_same_pipeline,
    pipeline_of,
    plain,
    with_specials,
)
from transformers_jax.tokenization import AutoTokenizer

SPM_CORPUS = CORPUS + [f"The {LONG_WORD} is a long word.", "ﬁne ！ Ⅰ Ⅱ ｆｕｌｌｗｉｄｔｈ"]

# family: (HF class, model file, trainer settings)
FAMILIES = {
    "xlm_roberta": ("XLMRobertaTokenizer", "sentencepiece.bpe.model",
                    dict(model_type="unigram", user_defined_symbols=["<br>"])),
    "xlm_roberta_bpe": ("XLMRobertaTokenizer", "sentencepiece.bpe.model", dict(model_type="bpe")),
    "camembert": ("CamembertTokenizer", "sentencepiece.bpe.model", dict(model_type="unigram")),
    "albert": ("AlbertTokenizer", "spiece.model", dict(
        model_type="unigram", pad_id=0, unk_id=1, bos_id=-1, eos_id=-1, control_symbols=["[CLS]", "[SEP]", "[MASK]"],
    )),
    "deberta_v2": ("DebertaV2Tokenizer", "spm.model", dict(
        model_type="unigram", pad_id=0, bos_id=1, eos_id=2, unk_id=3,
        pad_piece="[PAD]", bos_piece="[CLS]", eos_piece="[SEP]", unk_piece="[UNK]",
    )),
}
SPM_TEXTS = TEXTS + [CHARSMAP_TEXT, "x <br> y<br>z", "``quoted''"]


def train_spm(**settings) -> bytes:
    """A tiny SentencePiece model trained on SPM_CORPUS (the serialized ModelProto)."""
    model = io.BytesIO()
    sentencepiece.SentencePieceTrainer.train(
        sentence_iterator=iter(SPM_CORPUS * 4), model_writer=model, vocab_size=150, minloglevel=2, **settings
    )
    return model.getvalue()


def write_folder(path, hf_class, model_file, model, **config):
    path.mkdir(parents=True, exist_ok=True)
    (path / model_file).write_bytes(model)
    (path / "tokenizer_config.json").write_text(json.dumps({"tokenizer_class": hf_class, **config}))
    return path


@pytest.fixture(scope="module")
def spm_dirs(tmp_path_factory):
    """{family: HF slow-format folder (model file + tokenizer_config.json)}."""
    root = tmp_path_factory.mktemp("spm")
    return {
        name: write_folder(root / name, hf_class, model_file, train_spm(**settings))
        for name, (hf_class, model_file, settings) in FAMILIES.items()
    }


@pytest.fixture(scope="module", params=list(FAMILIES))
def family(request, spm_dirs):
    """(name, folder, ours, HF's) for each family."""
    path = spm_dirs[request.param]
    return request.param, path, AutoTokenizer.from_pretrained(path), HFAutoTokenizer.from_pretrained(path)


def spm_processor(path, name):
    return sentencepiece.SentencePieceProcessor(model_file=str(path / FAMILIES[name][1]))


def test_loads_like_hf(family):
    name, path, ours, hf = family
    assert not (path / "tokenizer.json").exists()
    assert type(hf).__name__ == FAMILIES[name][0]
    assert_same_attributes(ours, hf)
    assert_same_pipeline(ours, hf)
    # The charsmap of the model's normalizer (nmt_nfkc) is in the normalizer of the classes that use it.
    assert ("Precompiled" in json.dumps(pipeline_of(ours))) == (name != "deberta_v2")


def test_vocabulary_layout(family):
    """The model's pieces keep their scores, at the ids the class gives them (XLM-R's fairseq offset of 1 after
    ``<s> <pad> </s> <unk>``, CamemBERT's 4 after its five, ALBERT and DeBERTa as they are), the mask last."""
    name, path, ours, hf = family
    sp = spm_processor(path, name)
    offset, first = {"xlm_roberta": (1, 3), "xlm_roberta_bpe": (1, 3), "camembert": (4, 1)}.get(name, (0, 0))
    pieces = [sp.id_to_piece(i) for i in range(first, sp.get_piece_size())]
    assert ours.convert_tokens_to_ids(pieces) == [i + offset for i in range(first, sp.get_piece_size())]
    model = json.loads(ours.backend_tokenizer.to_str())["model"]
    assert model["type"] == "Unigram"
    scores = [score for _, score in model["vocab"][first + offset: sp.get_piece_size() + offset]]
    assert scores == pytest.approx([sp.get_score(i) for i in range(first, sp.get_piece_size())])
    assert ours.convert_ids_to_tokens(model["unk_id"]) == ours.unk_token
    if name != "albert":  # ALBERT's [MASK] is one of its model's pieces
        assert ours.mask_token_id == max(ours.get_vocab().values())
    # Control pieces are extra special tokens; XLM-R's user-defined <br> is one too, matched as an added token that is
    # not special (kept by skip_special_tokens), as in HF.
    controls = [sp.id_to_piece(i) for i in range(sp.get_piece_size()) if sp.is_control(i)]
    assert controls and set(controls) <= {str(t) for t in ours.extra_special_tokens}
    if name == "xlm_roberta":
        br = ours.convert_tokens_to_ids("<br>")
        assert br == sp.piece_to_id("<br>") + offset
        assert ours.added_tokens_decoder[br].special is hf.added_tokens_decoder[br].special is False
        assert ours.tokenize("a<br>b").count("<br>") == 1
        assert "<br>" in ours.decode(ours("a<br>b")["input_ids"], skip_special_tokens=True)


def test_encodes_like_hf(family):
    name, _, ours, hf = family
    extras = dict(return_offsets_mapping=True, return_special_tokens_mask=True)
    if name == "xlm_roberta_bpe":  # its long pieces break the shared truncation cases' length assumptions
        assert_same_call(ours, hf, SPM_TEXTS, SPM_TEXTS[::-1], padding=True, **extras)
        assert_same_call(ours, hf, SPM_TEXTS, truncation=True, max_length=8, return_overflowing_tokens=True, **extras)
    else:
        assert_same_encodings(ours, hf)
    for text in SPM_TEXTS[-3:]:
        assert_same_call(ours, hf, text, SPM_TEXTS[1], **extras)
        assert ours.tokenize(text) == hf.tokenize(text)


def test_decodes_like_hf(family):
    _, _, ours, hf = family
    assert_same_decoding(ours, hf)
    ids = hf(SPM_TEXTS, padding=True)["input_ids"]
    for skip in (False, True):
        assert ours.batch_decode(ids, skip_special_tokens=skip) == hf.batch_decode(ids, skip_special_tokens=skip)


def test_saved_tokenizer_loads_identically_in_hf(family, tmp_path):
    _, _, ours, hf = family
    ours.save_pretrained(tmp_path / "ours")
    assert (tmp_path / "ours" / "tokenizer.json").is_file()
    call = dict(padding=True, return_offsets_mapping=True, return_special_tokens_mask=True)
    reference = {k: plain(v) for k, v in hf(SPM_TEXTS, SPM_TEXTS[::-1], **call).items()}
    for tok in (HFAutoTokenizer.from_pretrained(tmp_path / "ours"), AutoTokenizer.from_pretrained(tmp_path / "ours")):
        assert_same_attributes(tok, hf)
        assert_same_pipeline(tok, hf)
        assert {k: plain(v) for k, v in tok(SPM_TEXTS, SPM_TEXTS[::-1], **call).items()} == reference
        assert tok.batch_decode(reference["input_ids"]) == hf.batch_decode(reference["input_ids"])


@pytest.mark.parametrize(
    "name, settings",
    [
        ("albert", dict(do_lower_case=False, keep_accents=True)),
        ("deberta_v2", dict(split_by_punct=True, do_lower_case=True)),
        ("xlm_roberta", dict(add_prefix_space=False)),
        ("camembert", dict(mask_token="<mask>", unk_token="<unk>")),
    ],
)
def test_settings_like_hf(spm_dirs, name, settings):
    path = spm_dirs[name]
    ours, hf = AutoTokenizer.from_pretrained(path, **settings), HFAutoTokenizer.from_pretrained(path, **settings)
    assert_same_attributes(ours, hf)
    assert_same_pipeline(ours, hf)
    for text in SPM_TEXTS + with_specials(hf):
        assert_same_call(ours, hf, text, "Zürich ÉTÉ", return_offsets_mapping=True, return_special_tokens_mask=True)


@pytest.mark.parametrize("layout", ["deberta_v3_hub", "additional_special_tokens"])
def test_config_files_of_hub_checkpoints_like_hf(spm_dirs, tmp_path, layout):
    """DeBERTa-v3's hub folder (``[MASK]`` in added_tokens.json after the model's pieces, special_tokens_map.json),
    and a config naming its own extra special tokens (kept instead of the model's control pieces)."""
    if layout == "deberta_v3_hub":
        model = (spm_dirs["deberta_v2"] / "spm.model").read_bytes()
        size = sentencepiece.SentencePieceProcessor(model_proto=model).get_piece_size()
        write_folder(tmp_path, "DebertaV2Tokenizer", "spm.model", model, do_lower_case=False, vocab_type="spm")
        (tmp_path / "added_tokens.json").write_text(json.dumps({"[MASK]": size}))
        names = dict(bos_token="[CLS]", cls_token="[CLS]", eos_token="[SEP]", sep_token="[SEP]", mask_token="[MASK]",
                     pad_token="[PAD]", unk_token="[UNK]")
        (tmp_path / "special_tokens_map.json").write_text(json.dumps(names))
    else:
        model = (spm_dirs["xlm_roberta"] / "sentencepiece.bpe.model").read_bytes()
        write_folder(tmp_path, "XLMRobertaTokenizer", "sentencepiece.bpe.model", model,
                     additional_special_tokens=["<x>"])
    ours, hf = AutoTokenizer.from_pretrained(tmp_path), HFAutoTokenizer.from_pretrained(tmp_path)
    assert_same_attributes(ours, hf)
    texts = ["Hello <x> [MASK] wörld <mask>", "a [MASK]b<x>", *SPM_TEXTS]
    assert_same_call(ours, hf, texts, texts[::-1], padding=True, return_offsets_mapping=True,
                     return_special_tokens_mask=True)


def test_hub_repo_with_a_sentencepiece_model_only(spm_dirs, tmp_path, monkeypatch):
    """From a hub repo without tokenizer.json the model file is downloaded too."""
    from hub_server import HubServer, point_huggingface_hub_at

    path = spm_dirs["albert"]
    files = {p.name: p.read_bytes() for p in path.iterdir()}
    with HubServer() as server:
        server.add_repo("tiny/albert-spm", files)
        point_huggingface_hub_at(server, monkeypatch, tmp_path / "cache")
        ours = AutoTokenizer.from_pretrained("tiny/albert-spm")
        assert server.downloads("tiny/albert-spm").get("spiece.model") == 1
    hf = HFAutoTokenizer.from_pretrained(path)
    assert_same_call(ours, hf, SPM_TEXTS, padding=True, return_offsets_mapping=True)


# ----------------------------------------------------------------------------------------------------------------------
# errors
# ----------------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("content", [b"not a model at all \xff\xfe", b"\x0a\x00"])
def test_a_file_that_is_no_model_is_refused_clearly(tmp_path, content):
    write_folder(tmp_path, "XLMRobertaTokenizer", "sentencepiece.bpe.model", content)
    with pytest.raises(ValueError, match=r"sentencepiece\.bpe\.model is not a SentencePiece model file"):
        AutoTokenizer.from_pretrained(tmp_path)


@pytest.mark.parametrize("tokenizer_class", [None, "BertTokenizer"])
def test_a_class_that_reads_no_sentencepiece_model_is_refused_clearly(spm_dirs, tmp_path, tokenizer_class):
    (tmp_path / "spm.model").write_bytes((spm_dirs["deberta_v2"] / "spm.model").read_bytes())
    (tmp_path / "tokenizer_config.json").write_text(json.dumps({"tokenizer_class": tokenizer_class}))
    message = r"SentencePiece model \(spm\.model\) but no tokenizer\.json.*DebertaV2Tokenizer"
    with pytest.raises(ValueError, match=message):
        AutoTokenizer.from_pretrained(tmp_path)


def test_the_class_file_name_is_required(spm_dirs, tmp_path):
    write_folder(tmp_path, "AlbertTokenizer", "spm.model", (spm_dirs["albert"] / "spiece.model").read_bytes())
    with pytest.raises(FileNotFoundError, match=r"spm\.model but AlbertTokenizer reads .* from spiece\.model"):
        AutoTokenizer.from_pretrained(tmp_path)


def test_camembert_refuses_a_bpe_model_as_hf_cannot_read_it(spm_dirs, tmp_path):
    model = (spm_dirs["xlm_roberta_bpe"] / "sentencepiece.bpe.model").read_bytes()
    write_folder(tmp_path, "CamembertTokenizer", "sentencepiece.bpe.model", model)
    with pytest.raises(Exception):  # noqa: B017 - HF 5.24 fails inside its converter
        HFAutoTokenizer.from_pretrained(tmp_path)
    with pytest.raises(ValueError, match=r"sentencepiece\.bpe\.model is a bpe SentencePiece model; CamembertTokenizer"):
        AutoTokenizer.from_pretrained(tmp_path)


@pytest.mark.parametrize("missing", ["sentencepiece", "google.protobuf"])
def test_missing_packages_are_named(spm_dirs, monkeypatch, missing):
    if missing == "google.protobuf":  # the schema module must be imported again, without protobuf
        monkeypatch.delitem(sys.modules, "sentencepiece.sentencepiece_model_pb2", raising=False)
        monkeypatch.delattr(sentencepiece, "sentencepiece_model_pb2", raising=False)
    monkeypatch.setitem(sys.modules, missing, None)  # makes importing it fail
    message = r"needs the `sentencepiece` package \(and `protobuf`.*sentencepiece\[protobuf\]"
    with pytest.raises(ImportError, match=message):
        AutoTokenizer.from_pretrained(spm_dirs["camembert"])
