"""Data side of training: collators, packing, dataset readers, token files and the resumable loader."""
import numpy as np
import pytest

import transformers_jax as tj
from parity import assert_same_up_to_rounding
from train.data import (
    ArrayDataset,
    DataCollatorForLanguageModeling,
    DataCollatorWithPadding,
    DataLoader,
    TokenFileDataset,
    default_data_collator,
    load_rows,
    pack_sequences,
    tokenize_rows,
)


@pytest.fixture(scope="module")
def bert_tok(minilm_dir):
    return tj.AutoTokenizer.from_pretrained(minilm_dir)


def random_features(tok, rows, lo, hi, seed=0):
    """Rows of [CLS] random-words [SEP] with lengths in [lo, hi)."""
    rs = np.random.RandomState(seed)
    return [
        {"input_ids": [tok.cls_token_id, *rs.randint(1000, 20000, rs.randint(lo, hi)).tolist(), tok.sep_token_id]}
        for _ in range(rows)
    ]


# ---------------------------------------------------------------------------------------------------------- MLM


def test_mlm_masking_statistics_and_exclusions(bert_tok):
    features = random_features(bert_tok, 96, 40, 120)
    collator = DataCollatorForLanguageModeling(bert_tok, mlm_probability=0.15)
    batch = collator(features, rng=np.random.default_rng(0))
    ids, labels, mask = batch["input_ids"], batch["labels"], batch["attention_mask"]
    assert ids.dtype == labels.dtype == mask.dtype == np.int32 and ids.shape == labels.shape == mask.shape
    original = np.zeros_like(ids)
    for i, f in enumerate(features):
        original[i, : len(f["input_ids"])] = f["input_ids"]
    special = np.isin(original, bert_tok.all_special_ids) | (mask == 0)
    assert (mask == 0).any()  # padding is really there
    chosen = labels != -100
    assert not (chosen & special).any()  # [CLS], [SEP], [PAD] never chosen
    assert (ids[special] == original[special]).all()
    assert (labels[chosen] == original[chosen]).all()
    candidates = (~special).sum()
    assert abs(chosen.sum() / candidates - 0.15) < 0.015, chosen.sum() / candidates
    n = chosen.sum()
    masked = (ids == bert_tok.mask_token_id) & chosen
    unchanged = (ids == original) & chosen
    randomized = chosen & ~masked & ~unchanged
    assert abs(masked.sum() / n - 0.8) < 0.03
    assert abs(unchanged.sum() / n - 0.1) < 0.025
    assert abs(randomized.sum() / n - 0.1) < 0.025
    assert ((ids == original) | chosen).all()  # nothing outside the chosen positions changes


def test_mlm_same_rng_same_batch_and_errors(bert_tok):
    features = random_features(bert_tok, 8, 5, 20)
    collator = DataCollatorForLanguageModeling(bert_tok)
    a = collator(features, rng=np.random.default_rng(7))
    b = collator(features, rng=np.random.default_rng(7))
    c = collator(features, rng=np.random.default_rng(8))
    assert all(np.array_equal(a[k], b[k]) for k in a)
    assert not np.array_equal(a["labels"], c["labels"])
    with pytest.raises(ValueError, match="needs rng=numpy.random.Generator"):
        collator(features)
    no_mask = tiny_tokenizer()
    with pytest.raises(ValueError, match="mlm=True needs a tokenizer with a mask token"):
        DataCollatorForLanguageModeling(no_mask, mlm=True)
    with pytest.raises(KeyError, match="feature 1 has no 'input_ids'"):
        collator([features[0], {"ids": [1]}], rng=np.random.default_rng(0))


def tiny_tokenizer():
    from parity import tiny_bpe_tokenizer

    return tiny_bpe_tokenizer(["hello world", "the cat sat"], 300)


def test_causal_lm_collator_labels_and_multiple(bert_tok):
    features = [{"input_ids": [101, 5, 6, 102]}, {"input_ids": [101, 7, 102]}]
    batch = DataCollatorForLanguageModeling(bert_tok, mlm=False, pad_to_multiple_of=8)(features)
    assert batch["input_ids"].shape == (2, 8)
    np.testing.assert_array_equal(batch["input_ids"][1], [101, 7, 102, 0, 0, 0, 0, 0])
    np.testing.assert_array_equal(batch["attention_mask"][1], [1, 1, 1, 0, 0, 0, 0, 0])
    np.testing.assert_array_equal(batch["labels"][0], [101, 5, 6, 102, -100, -100, -100, -100])
    np.testing.assert_array_equal(batch["labels"][1], [101, 7, 102, -100, -100, -100, -100, -100])


# ---------------------------------------------------------------------------------------------- padding collator


def test_padding_collator_values_and_labels(bert_tok):
    rows = [{"text": "hello world", "pair": "a", "label": "pos"}, {"text": "hi", "pair": "b c d", "label": "neg"}]
    features = tokenize_rows(rows, bert_tok, "text", text_pair_field="pair", label_field="label",
                             label2id={"neg": 0, "pos": 1})
    assert features[0]["input_ids"] == bert_tok("hello world", text_pair="a")["input_ids"]
    batch = DataCollatorWithPadding(bert_tok)(features)
    lengths = [len(f["input_ids"]) for f in features]
    assert batch["input_ids"].shape == (2, max(lengths)) and batch["input_ids"].dtype == np.int32
    short = int(np.argmin(lengths))
    assert (batch["input_ids"][short, lengths[short]:] == bert_tok.pad_token_id).all()
    np.testing.assert_array_equal(batch["attention_mask"].sum(1), lengths)
    type_ids = features[short]["token_type_ids"] + [0] * (max(lengths) - lengths[short])
    np.testing.assert_array_equal(batch["token_type_ids"][short], type_ids)
    np.testing.assert_array_equal(batch["labels"], [1, 0])
    assert batch["labels"].dtype == np.int32

    multiple = DataCollatorWithPadding(bert_tok, pad_to_multiple_of=16)(features)
    assert multiple["input_ids"].shape == (2, 16)
    fixed = DataCollatorWithPadding(bert_tok, padding="max_length", max_length=12)(features)
    assert fixed["input_ids"].shape == (2, 12)
    # `label` is renamed; float and list labels keep their type
    floats = DataCollatorWithPadding(bert_tok)([{"input_ids": [1, 2], "label": 0.5}, {"input_ids": [3], "label": 2.0}])
    assert floats["labels"].dtype == np.float32 and "label" not in floats
    np.testing.assert_array_equal(floats["labels"], np.float32([0.5, 2.0]))
    multi = DataCollatorWithPadding(bert_tok)(
        [{"input_ids": [1], "labels": [0, 1, 1]}, {"input_ids": [2], "labels": [1, 0, 0]}])
    assert multi["labels"].shape == (2, 3)


def test_padding_collator_errors(bert_tok):
    with pytest.raises(ValueError, match="padding='max_length' needs a positive integer max_length"):
        DataCollatorWithPadding(bert_tok, padding="max_length")
    with pytest.raises(ValueError, match=r"padding='bogus' is not supported"):
        DataCollatorWithPadding(bert_tok, padding="bogus")
    with pytest.raises(ValueError, match="feature 1 has 5 tokens, more than max_length=3"):
        DataCollatorWithPadding(bert_tok, padding="max_length", max_length=3)(
            [{"input_ids": [1]}, {"input_ids": [1] * 5}])
    with pytest.raises(ValueError, match="Cannot stack 'labels'"):
        DataCollatorWithPadding(bert_tok)([{"input_ids": [1], "labels": [0, 1]}, {"input_ids": [2], "labels": [1]}])
    with pytest.raises(ValueError, match="feature 0: 'attention_mask' has 1 entries but 'input_ids' has 2"):
        DataCollatorWithPadding(bert_tok)([{"input_ids": [1, 2], "attention_mask": [1]}])
    with pytest.raises(TypeError, match="feature 0 is a list"):
        DataCollatorWithPadding(bert_tok)([[1, 2]])


def test_tokenize_rows_labels_and_errors(bert_tok):
    rows = [{"t": "a b", "y": 2}, {"t": "c", "y": 0}]
    features = tokenize_rows(rows, bert_tok, "t", label_field="y", max_length=3)
    assert [f["labels"] for f in features] == [2, 0]
    assert len(features[0]["input_ids"]) == 3  # truncated
    with pytest.raises(ValueError, match=r"row 1: unknown label 'maybe' in 'y'"):
        tokenize_rows([{"t": "a", "y": "yes"}, {"t": "b", "y": "maybe"}], bert_tok, "t", label_field="y",
                      label2id={"yes": 1, "no": 0})
    with pytest.raises(ValueError, match=r"row 0: label 'yes' in 'y' is a string; pass label2id"):
        tokenize_rows([{"t": "a", "y": "yes"}], bert_tok, "t", label_field="y")
    with pytest.raises(ValueError, match="row 1 has no field 't'"):
        tokenize_rows([{"t": "a"}, {"x": "b"}], bert_tok, "t")


# --------------------------------------------------------------------------------------------------------- packing


def test_pack_sequences_hand_example():
    docs = [[11, 12, 13], [21, 22], [31, 32, 33, 34, 35, 36, 37], [], [41]]
    packed = pack_sequences(docs, seq_len=6, pad_token_id=0, eos_token_id=2)
    # chunks: [11 12 13 2] [21 22 2] [31..36] [37 2] [41 2]; first fit: row0 = A + C2, row1 = B + E, row2 = C1
    np.testing.assert_array_equal(packed["input_ids"], [
        [11, 12, 13, 2, 37, 2],
        [21, 22, 2, 41, 2, 0],
        [31, 32, 33, 34, 35, 36],
    ])
    np.testing.assert_array_equal(packed["attention_mask"], [[1, 1, 1, 1, 2, 2], [1, 1, 1, 2, 2, 0], [1] * 6])
    np.testing.assert_array_equal(packed["position_ids"], [[0, 1, 2, 3, 0, 1], [0, 1, 2, 0, 1, 0], [0, 1, 2, 3, 4, 5]])
    np.testing.assert_array_equal(packed["labels"], [
        [-100, 12, 13, 2, -100, 2],
        [-100, 22, 2, -100, 2, -100],
        [-100, 32, 33, 34, 35, 36],
    ])
    assert all(v.dtype == np.int32 and v.shape == (3, 6) for v in packed.values())
    again = pack_sequences(docs, seq_len=6, pad_token_id=0, eos_token_id=2)
    assert all(np.array_equal(packed[k], again[k]) for k in packed)  # deterministic
    no_eos = pack_sequences([[5, 6], [7]], seq_len=4, pad_token_id=9)
    np.testing.assert_array_equal(no_eos["input_ids"], [[5, 6, 7, 9]])
    with pytest.raises(ValueError, match="document 1 must be a flat list of token ids"):
        pack_sequences([[1], [[1, 2]]], seq_len=4, pad_token_id=0)
    with pytest.raises(ValueError, match="seq_len must be a positive integer, got 0"):
        pack_sequences([[1]], seq_len=0, pad_token_id=0)


def test_packed_row_logits_match_each_document_alone():
    config = tj.LlamaConfig(vocab_size=64, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                            num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=64)
    model = tj.LlamaForCausalLM(config, seed=3)
    rs = np.random.RandomState(0)
    docs = [rs.randint(3, 64, n).tolist() for n in (7, 5, 9)]
    packed = pack_sequences(docs, seq_len=24, pad_token_id=0, eos_token_id=2)
    assert packed["input_ids"].shape == (1, 24)  # all three share one row, with padding at the end
    logits = np.asarray(model(input_ids=packed["input_ids"], attention_mask=packed["attention_mask"],
                              position_ids=packed["position_ids"]).logits)  # [1, 24, V]
    start = 0
    for doc in docs:
        ids = np.asarray([doc + [2]], np.int32)  # [1, n]
        alone = np.asarray(model(input_ids=ids, attention_mask=np.ones_like(ids)).logits)  # [1, n, V]
        # the same document through the same 2 layers, in a longer row: equal up to rounding
        assert_same_up_to_rounding(logits[0, start:start + ids.shape[1]], alone[0], ulps=64)
        start += ids.shape[1]
    # the loss over a packed batch runs and ignores the padding and document starts
    loss = model(input_ids=packed["input_ids"], attention_mask=packed["attention_mask"],
                 position_ids=packed["position_ids"], labels=packed["labels"]).loss
    assert np.isfinite(float(loss))


def test_array_dataset_and_default_collator():
    packed = pack_sequences([[1, 2, 3], [4, 5]], seq_len=3, pad_token_id=0)
    dataset = ArrayDataset(packed)
    assert len(dataset) == 2
    batch = default_data_collator([dataset[1], dataset[0]])
    np.testing.assert_array_equal(batch["input_ids"], packed["input_ids"][::-1])
    with pytest.raises(ValueError, match="one common leading length"):
        ArrayDataset({"a": np.zeros((2, 3)), "b": np.zeros((3, 3))})
    with pytest.raises(ValueError, match=r"feature 1 has keys \['x'\], but feature 0 has \['input_ids'\]"):
        default_data_collator([{"input_ids": [1]}, {"x": [1]}])


# ---------------------------------------------------------------------------------------------------------- loader


def index_dataset(n):
    return [{"input_ids": [i], "labels": i} for i in range(n)]


def test_loader_order_is_deterministic_and_a_permutation():
    data = index_dataset(40)
    a = DataLoader(data, 8, default_data_collator, seed=1, process_index=0, process_count=1)
    b = DataLoader(data, 8, default_data_collator, seed=1, process_index=0, process_count=1)
    c = DataLoader(data, 8, default_data_collator, seed=2, process_index=0, process_count=1)
    assert a.batches_per_epoch == len(a) == 5 and a.local_batch_size == 8
    epoch0 = np.concatenate([batch["labels"] for batch in a.iter_epoch(0)])
    assert sorted(epoch0.tolist()) == list(range(40)) and epoch0.tolist() != list(range(40))
    np.testing.assert_array_equal(epoch0, np.concatenate([x["labels"] for x in b.iter_epoch(0)]))
    assert not np.array_equal(epoch0, np.concatenate([x["labels"] for x in c.iter_epoch(0)]))
    assert not np.array_equal(epoch0, np.concatenate([x["labels"] for x in a.iter_epoch(1)]))
    plain = DataLoader(data, 8, default_data_collator, shuffle=False, process_index=0, process_count=1)
    np.testing.assert_array_equal(next(iter(plain))["labels"], np.arange(8))


def test_loader_hosts_union_equals_single_host_batch(bert_tok):
    features = random_features(bert_tok, 32, 3, 30, seed=1)
    collator = DataCollatorForLanguageModeling(bert_tok)
    single = DataLoader(features, 16, collator, seed=5, process_index=0, process_count=1)
    hosts = [DataLoader(features, 16, collator, seed=5, process_index=p, process_count=4) for p in range(4)]
    for b in range(single.batches_per_epoch):
        whole = single.load_batch(1, b)
        parts = [h.load_batch(1, b) for h in hosts]
        assert all(part["input_ids"].shape[0] == 4 for part in parts)
        for key in whole:  # same rows, same masks, same padded length
            np.testing.assert_array_equal(np.concatenate([p[key] for p in parts]), whole[key])
    with pytest.raises(ValueError, match="global_batch_size=10 is not divisible by process_count=4"):
        DataLoader(features, 10, collator, process_index=0, process_count=4)
    with pytest.raises(ValueError, match="has 32 rows, fewer than one global batch of global_batch_size=64"):
        DataLoader(features, 64, collator, process_index=0, process_count=1)
    with pytest.raises(ValueError, match=r"process_index=4 must be in \[0, process_count=4\)"):
        DataLoader(features, 16, collator, process_index=4, process_count=4)


def test_loader_resume_and_epoch_rollover(bert_tok):
    features = random_features(bert_tok, 20, 3, 30, seed=2)
    collator = DataCollatorForLanguageModeling(bert_tok)

    def make():
        return DataLoader(features, 8, collator, seed=3, process_index=1, process_count=2)

    loader = make()
    assert loader.batches_per_epoch == 2  # 20 rows, last 4 dropped
    stream = iter(loader)
    seen = [next(stream) for _ in range(3)]
    assert loader.state_dict() == {"epoch": 1, "batch": 1}  # rolled over into epoch 1
    expected = [next(stream) for _ in range(3)]
    assert loader.state_dict() == {"epoch": 3, "batch": 0}

    resumed = make()
    resumed.load_state_dict({"epoch": 1, "batch": 1})
    got = [batch for batch, _ in zip(resumed, range(3))]
    for a, b in zip(expected, got):
        assert all(np.array_equal(a[k], b[k]) for k in a)  # ids, MLM masks and labels identical
    assert not np.array_equal(seen[0]["labels"], seen[2]["labels"])  # epoch 1 reshuffled / re-masked
    with pytest.raises(KeyError, match="DataLoader state has no 'batch'"):
        resumed.load_state_dict({"epoch": 0})
    with pytest.raises(ValueError, match="state batch=5 is out of range: an epoch has 2 batches"):
        resumed.load_state_dict({"epoch": 0, "batch": 5})


def test_loader_eval_pads_last_batch_with_valid_mask(bert_tok):
    data = index_dataset(10)
    loaders = [DataLoader(data, 4, default_data_collator, shuffle=False, drop_last=False, process_index=p,
                          process_count=2) for p in range(2)]
    assert loaders[0].batches_per_epoch == 3
    batches = [list(loader.iter_epoch()) for loader in loaders]
    assert all(b["labels"].shape == (2,) and b["_valid"].dtype == bool for host in batches for b in host)
    last = np.concatenate([host[2]["_valid"] for host in batches])
    np.testing.assert_array_equal(last, [True, True, False, False])
    labels = np.concatenate([np.concatenate([host[i]["labels"] for host in batches]) for i in range(3)])
    valid = np.concatenate([np.concatenate([host[i]["_valid"] for host in batches]) for i in range(3)])
    np.testing.assert_array_equal(labels[valid], np.arange(10))
    small = DataLoader(data[:3], 8, default_data_collator, shuffle=False, drop_last=False, process_index=0,
                       process_count=1)
    assert next(small.iter_epoch())["_valid"].sum() == 3


# --------------------------------------------------------------------------------------------------------- reading


def test_load_rows_formats(tmp_path):
    (tmp_path / "a.jsonl").write_text('{"text": "one", "label": 1}\n\n{"text": "two", "label": 0}\n')
    assert load_rows(tmp_path / "a.jsonl") == [{"text": "one", "label": 1}, {"text": "two", "label": 0}]
    (tmp_path / "a.csv").write_text('text,label\n"x, y",pos\n\nz,neg\n')
    assert load_rows(tmp_path / "a.csv", required_fields=["label"]) == [
        {"text": "x, y", "label": "pos"}, {"text": "z", "label": "neg"}]
    (tmp_path / "a.txt").write_text("first doc\n\n  \nsecond doc\n")
    assert load_rows(tmp_path / "a.txt", text_field="body") == [{"body": "first doc"}, {"body": "second doc"}]


def test_load_rows_errors(tmp_path):
    missing = tmp_path / "nope.jsonl"
    with pytest.raises(FileNotFoundError, match="nope.jsonl"):
        load_rows(missing)
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"text": "ok"}\n\n{"text": oops}\n')
    with pytest.raises(ValueError, match=r"bad.jsonl:3: malformed JSON: Expecting value"):
        load_rows(bad)
    bad.write_text('{"text": "ok"}\n["not", "an", "object"]\n')
    with pytest.raises(ValueError, match=r"bad.jsonl:2: expected a JSON object, got list"):
        load_rows(bad)
    bad.write_text('{"text": "ok"}\n{"body": "no text"}\n')
    with pytest.raises(ValueError, match=r"bad.jsonl:2: row has no field 'text'"):
        load_rows(bad)
    csv_path = tmp_path / "bad.csv"
    csv_path.write_text("text,label\na,1\nb,2,extra\n")
    with pytest.raises(ValueError, match=r"bad.csv:3: expected 2 columns \(as in the header\) but found 3"):
        load_rows(csv_path)
    csv_path.write_text("body,label\na,1\n")
    with pytest.raises(ValueError, match=r"bad.csv:1: the header has no column 'text'"):
        load_rows(csv_path)
    with pytest.raises(ValueError, match=r"unsupported extension '.parquet'; supported: .jsonl, .csv, .txt"):
        load_rows(tmp_path / "x.parquet")


# ----------------------------------------------------------------------------------------------------- token files


def test_token_file_dataset_npy_and_bin(tmp_path):
    tokens = np.arange(23, dtype=np.uint16)
    np.save(tmp_path / "t.npy", tokens)
    tokens.tofile(tmp_path / "t.bin")
    for dataset in (TokenFileDataset(tmp_path / "t.npy", 5), TokenFileDataset(tmp_path / "t.bin", 5, dtype=np.uint16)):
        assert isinstance(dataset.tokens, np.memmap)
        assert len(dataset) == 4
        item = dataset[2]
        np.testing.assert_array_equal(item["input_ids"], np.arange(10, 15))
        np.testing.assert_array_equal(item["labels"], item["input_ids"])
        assert item["input_ids"].dtype == np.int32
        with pytest.raises(IndexError, match="index 4 out of range for 4 rows"):
            dataset[4]
    loader = DataLoader(TokenFileDataset(tmp_path / "t.npy", 5), 2, default_data_collator, process_index=0,
                        process_count=1)
    assert next(iter(loader))["input_ids"].shape == (2, 5)


def test_token_file_dataset_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="missing.npy"):
        TokenFileDataset(tmp_path / "missing.npy", 4)
    np.save(tmp_path / "two_d.npy", np.zeros((3, 4), np.int32))
    with pytest.raises(ValueError, match=r"expected a flat 1-D token stream, got an array of shape \(3, 4\)"):
        TokenFileDataset(tmp_path / "two_d.npy", 4)
    np.save(tmp_path / "short.npy", np.arange(3, dtype=np.int32))
    with pytest.raises(ValueError, match="holds 3 tokens, fewer than one row of seq_len=4"):
        TokenFileDataset(tmp_path / "short.npy", 4)
    np.arange(8, dtype=np.int32).tofile(tmp_path / "raw.bin")
    with pytest.raises(ValueError, match=r"raw .bin token file needs dtype="):
        TokenFileDataset(tmp_path / "raw.bin", 4)
    with pytest.raises(ValueError, match="unsupported extension '.txt'; supported: .npy, .bin"):
        TokenFileDataset(tmp_path / "x.txt", 4)
