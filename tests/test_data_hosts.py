"""Each host reads only what its rows of a global batch need: two simulated hosts (``process_index`` /
``process_count`` arguments) in one process. A token file is read through a wrapper that records every slice of the
memmap; a text corpus through a tokenizer that records every document it tokenizes. The hosts' batches together
must still be the single-host batch. (tests/test_multiprocess.py checks the same counters in real multi-process
runs.)"""
from types import SimpleNamespace

import numpy as np
import pytest

from train.collators import DataCollatorForLanguageModeling, group_texts, pack_sequences, packing_layout
from train.corpus import DocumentDataset, GroupedDataset, PackedDataset, TextCorpus, share
from train.data import ArrayDataset, DataLoader, StreamingDataLoader, TokenFileDataset, default_data_collator

WORDS = "the cat sat on a mat and the dog ran to the park while birds sang in tall green trees".split()


class RecordingTokens:
    """Stands in for a TokenFileDataset's memmap: records the [start, stop) of every slice read."""

    def __init__(self, tokens):
        self.tokens, self.slices = tokens, []

    def __len__(self):
        return len(self.tokens)

    def __getitem__(self, key):
        assert isinstance(key, slice), f"the dataset indexed the token stream with {key!r}, not a slice"
        self.slices.append((key.start, key.stop))
        return self.tokens[key]


class RecordingTokenizer:
    """One token a word, whose id is the document's number + 1 (so a row's tokens name its documents); records
    the documents it tokenizes."""

    def __init__(self, texts):
        self.index = {text: i for i, text in enumerate(texts)}
        self.documents = []  # document numbers, in tokenizing order

    def __call__(self, texts):
        self.documents += [self.index[t] for t in texts]
        return [[self.index[text] + 1] * len(text.split()) for text in texts]


def documents_in(rows, special=(0, 99)):
    """The documents whose tokens the rows hold (ids of RecordingTokenizer, minus pad and EOS)."""
    return set((np.setdiff1d(np.asarray(rows), special) - 1).tolist())


def texts(n, seed=0):
    rng = np.random.RandomState(seed)
    out = []
    for i in range(n):
        start, count = rng.randint(len(WORDS)), rng.randint(1, 30)  # some documents span several 16-token rows
        out.append(f"doc{i} " + " ".join(WORDS[(start + j) % len(WORDS)] for j in range(count)))
    return out


def joined(parts, key):
    return np.concatenate([part[key] for part in parts])


# ------------------------------------------------------------------------------------------------------- token files


@pytest.mark.parametrize("dtype", [np.uint16, np.int32])
def test_token_file_hosts_read_only_their_rows_bytes(tmp_path, dtype):
    L, G = 8, 8
    np.arange(40 * L + 3, dtype=dtype).tofile(tmp_path / "tokens.bin")  # 40 rows and a 3-token tail
    single = DataLoader(TokenFileDataset(tmp_path / "tokens.bin", L, dtype=dtype), G, default_data_collator, seed=4,
                        process_index=0, process_count=1)
    hosts, recorders = [], []
    for p in range(2):
        dataset = TokenFileDataset(tmp_path / "tokens.bin", L, dtype=dtype)
        dataset.tokens = RecordingTokens(dataset.tokens)
        recorders.append(dataset.tokens)
        hosts.append(DataLoader(dataset, G, default_data_collator, seed=4, process_index=p, process_count=2))
    assert hosts[0].rowwise  # default_data_collator: each host collates (and reads) its own rows
    itemsize = np.dtype(dtype).itemsize
    for epoch, batch in [(0, 0), (0, 3), (1, 2)]:
        for recorder in recorders:
            recorder.slices.clear()
        parts = [host.load_batch(epoch, batch) for host in hosts]
        whole = single.load_batch(epoch, batch)
        for key in whole:
            np.testing.assert_array_equal(joined(parts, key), whole[key])
        indices, _ = single.global_indices(epoch, batch)
        for p, recorder in enumerate(recorders):
            mine = indices[p * G // 2:(p + 1) * G // 2]
            assert sorted(recorder.slices) == sorted((int(i) * L, (int(i) + 1) * L) for i in mine)
    for p, host in enumerate(hosts):  # 3 batches of 4 rows, L tokens each
        assert host.rows_read == 3 * G // 2
        assert host.dataset.bytes_read == 3 * (G // 2) * L * itemsize
    assert single.dataset.bytes_read == 3 * G * L * itemsize


def test_whole_batch_collators_still_read_the_global_batch(tmp_path):
    """A collator that is not row-wise (random masks, padding to the longest row) sees the whole global batch on
    every host, so every host reads every row of it."""
    np.save(tmp_path / "t.npy", np.arange(64, dtype=np.int32))

    def collate(features, rng):  # not row-wise: no ``rowwise`` attribute
        return default_data_collator(features)

    loaders = [DataLoader(TokenFileDataset(tmp_path / "t.npy", 4), 8, collate, process_index=p, process_count=2)
               for p in range(2)]
    single = DataLoader(TokenFileDataset(tmp_path / "t.npy", 4), 8, default_data_collator, process_index=0,
                        process_count=1)
    parts = [loader.load_batch(0, 1) for loader in loaders]
    np.testing.assert_array_equal(joined(parts, "input_ids"), single.load_batch(0, 1)["input_ids"])
    assert [loader.rows_read for loader in loaders] == [8, 8]
    assert [loader.dataset.bytes_read for loader in loaders] == [8 * 4 * 4] * 2


def test_eval_padding_rows_of_a_host(tmp_path):
    """drop_last=False: the last batch is padded with its first row; a host whose rows are all padding reads
    that one row, and ``_valid`` marks it."""
    np.save(tmp_path / "t.npy", np.arange(10 * 3, dtype=np.int32))  # 10 rows
    hosts = [DataLoader(TokenFileDataset(tmp_path / "t.npy", 3), 8, default_data_collator, shuffle=False,
                        drop_last=False, process_index=p, process_count=2) for p in range(2)]
    last = [list(host.iter_epoch())[-1] for host in hosts]  # rows 8, 9, then 6 padding rows
    np.testing.assert_array_equal(joined(last, "_valid"), [True, True] + [False] * 6)
    np.testing.assert_array_equal(last[1]["input_ids"], np.tile(np.arange(24, 27), (4, 1)))  # row 8 repeated
    assert hosts[1].rows_read == 4 + 1  # batch 0: rows 4..7; batch 1: row 8 once


# ------------------------------------------------------------------------------------------------------ text corpora


def host_corpora(documents, hosts):
    """One corpus per simulated host, each with its own recording tokenizer."""
    out = []
    for _ in range(hosts):
        tokenizer = RecordingTokenizer(documents)
        out.append((TextCorpus(documents, tokenizer), tokenizer))
    return out


def test_packed_text_hosts_tokenize_their_share_and_their_rows():
    documents = texts(300)
    L, G, eos, pad = 16, 8, 99, 0
    reference = RecordingTokenizer(documents)
    single = DataLoader(ArrayDataset(pack_sequences(reference(documents), L, pad, eos)), G, default_data_collator,
                        seed=2, process_index=0, process_count=1)
    (c0, t0), (c1, t1) = host_corpora(documents, 2)
    l1 = c1.local_lengths(1, 2)  # host 1's share, counted by host 1
    lengths = c0.lengths(0, 2, allgather=lambda local, sizes: np.concatenate([local, l1]))  # host 0 gathers it
    assert sorted(t0.documents) == list(share(300, 0, 2)) and sorted(t1.documents) == list(range(150, 300))
    np.testing.assert_array_equal(lengths, [len(ids) for ids in reference(documents)])
    datasets = [PackedDataset(c, lengths, L, pad, eos) for c in (c0, c1)]
    assert len(datasets[0]) == len(single.dataset)
    hosts = [DataLoader(d, G, default_data_collator, seed=2, process_index=p, process_count=2)
             for p, d in enumerate(datasets)]
    needed = [set(share(300, p, 2)) for p in range(2)]
    for epoch, batch in [(0, 0), (0, 5), (1, 1)]:
        parts = [host.load_batch(epoch, batch) for host in hosts]
        whole = single.load_batch(epoch, batch)
        for key in whole:
            np.testing.assert_array_equal(joined(parts, key), whole[key])
        for p in range(2):
            needed[p] |= documents_in(parts[p]["input_ids"])
    for p, tokenizer in enumerate((t0, t1)):
        assert len(tokenizer.documents) == len(set(tokenizer.documents))  # each document tokenized once
        assert set(tokenizer.documents) == needed[p] and len(needed[p]) < 300
        assert datasets[p].corpus.documents_tokenized == len(needed[p])


def test_packing_layout_is_pack_sequences():
    rng = np.random.default_rng(3)
    docs = [rng.integers(1, 50, rng.integers(0, 40)).tolist() for _ in range(60)]
    for eos in (None, 7):
        packed = pack_sequences(docs, 12, 0, eos)
        layout = packing_layout([len(d) for d in docs], 12, eos=eos is not None)
        rows = [5, 0, layout.num_rows - 1]
        part = layout.fill(rows, dict(enumerate(docs)), 0, eos)
        for key in packed:
            np.testing.assert_array_equal(part[key], packed[key][rows])
    numbered = [[i + 1] * len(d) for i, d in enumerate(docs)]  # ids name the documents
    packed = pack_sequences(numbered, 12, 0, 99)
    layout = packing_layout([len(d) for d in docs], 12, eos=True)
    for r in range(layout.num_rows):
        listed, seen = set(layout.documents([r]).tolist()), documents_in(packed["input_ids"][r])
        assert seen <= listed and all(len(docs[d]) % 12 == 0 for d in listed - seen)  # + chunks of just EOS


def test_document_rows_tokenized_by_the_host_that_reads_them():
    documents = texts(64, seed=1)
    tokenizer = SimpleNamespace(pad_token_id=0, padding_side="right", all_special_ids=[0], mask_token_id=None)
    collator = DataCollatorForLanguageModeling(tokenizer, mlm=False, pad_to_multiple_of=16, max_length=16)
    assert collator.rowwise and not DataCollatorForLanguageModeling(tokenizer, mlm=False).rowwise
    truncate = RecordingTokenizer(documents)

    def tokenize(batch):
        return [ids[:16] for ids in truncate(batch)]

    single = DataLoader([{"input_ids": ids} for ids in tokenize(documents)], 8,
                        DataCollatorForLanguageModeling(tokenizer, mlm=False, pad_to_multiple_of=16), seed=1,
                        process_index=0, process_count=1)
    corpora = []
    for _ in range(2):
        recorder = RecordingTokenizer(documents)
        corpora.append((TextCorpus(documents, lambda b, r=recorder: [ids[:16] for ids in r(b)]), recorder))
    hosts = [DataLoader(DocumentDataset(c), 8, collator, seed=1, process_index=p, process_count=2)
             for p, (c, _) in enumerate(corpora)]
    parts = [host.load_batch(0, 3) for host in hosts]
    whole = single.load_batch(0, 3)
    for key in whole:
        np.testing.assert_array_equal(joined(parts, key), whole[key])
    indices, _ = single.global_indices(0, 3)
    for p, (_, recorder) in enumerate(corpora):
        assert recorder.documents == sorted(indices[p * 4:(p + 1) * 4].tolist())  # its 4 documents, one call
    with pytest.raises(ValueError, match="feature 0 has 17 tokens, more than max_length=16"):
        collator([{"input_ids": list(range(17))}])


def test_grouped_rows_read_only_the_documents_they_span():
    documents = texts(80, seed=2)
    documents[5] = ""  # an empty document inside a row
    reference = RecordingTokenizer(documents)
    expected = group_texts(reference(documents), 10)
    recorder = RecordingTokenizer(documents)
    grouped = GroupedDataset(TextCorpus(documents, recorder), [len(ids) for ids in reference(documents)], 10)
    assert len(grouped) == len(expected)
    rows = [0, 7, len(grouped) - 1]
    items = grouped.__getitems__(rows)
    for row, item in zip(rows, items):
        np.testing.assert_array_equal(item["input_ids"], expected[row])
    spanned = set().union(*(documents_in(item["input_ids"]) for item in items))
    assert set(recorder.documents) - {5} == spanned and len(spanned) < 20
    np.testing.assert_array_equal(np.stack([row["input_ids"] for row in grouped[1:3]]), expected[1:3])  # as a list
    assert len(list(grouped)) == len(expected)
    with pytest.raises(ValueError, match="fewer than one row of 10"):
        GroupedDataset(TextCorpus(["a"], recorder), [3], 10)


def test_corpus_errors():
    with pytest.raises(ValueError, match="document 1 must be a string, got int"):
        TextCorpus(["a", 3], lambda b: b)
    corpus = TextCorpus(["a b", "c"], lambda b: [[1] * len(t.split()) for t in b])
    with pytest.raises(ValueError, match=r"process_index=2 must be in \[0, process_count=2\)"):
        corpus.local_lengths(2, 2)
    with pytest.raises(ValueError, match="do not hold this host's own counts"):
        corpus.lengths(0, 2, allgather=lambda local, sizes: np.asarray([5, 1]))
    with pytest.raises(ValueError, match="lengths has 3 counts for a corpus of 2 documents"):
        PackedDataset(corpus, [2, 1, 1], 4, 0)
    packed = PackedDataset(corpus, [2, 2], 4, 0)  # the counts disagree with the tokenizer
    with pytest.raises(ValueError, match="document 1 tokenized to 1 tokens, but the packing layout was made for 2"):
        packed[0]
    with pytest.raises(IndexError, match="PackedDataset index 5 out of range"):
        packed[5]


def test_streaming_hosts_collate_only_their_rows():
    """A stream is read in full by every host (it cannot skip rows); a row-wise collator still sees only the
    host's rows."""
    rows = [{"input_ids": np.full(3, i, np.int32)} for i in range(12)]
    calls = []

    def collate(features, rng):
        calls.append(len(features))
        return default_data_collator(features)

    collate.rowwise = True
    hosts = [StreamingDataLoader(rows, 4, collate, process_index=p, process_count=2) for p in range(2)]
    parts = [next(iter(host)) for host in hosts]
    np.testing.assert_array_equal(joined(parts, "input_ids")[:, 0], [0, 1, 2, 3])
    assert calls == [2, 2]
    assert all(host.rows_read == 8 for host in hosts)  # the first batch and the look-ahead one
