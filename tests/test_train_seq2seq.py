"""Sequence-to-sequence training: DataCollatorForSeq2Seq against Hugging Face's, label smoothing against HF's
LabelSmoother (the formula, and three Trainer steps of a tiny BART against torch AdamW), Seq2SeqTrainingArguments
and Seq2SeqTrainer's generation-based evaluation, the ROUGE/BLEU helpers against the reference packages."""
import copy

import jax
import numpy as np
import pytest
import torch
import transformers
from jax.sharding import Mesh

import transformers_jax as tj
from parity import EPS32, assert_accurate, assert_within, perturb_params
from test_tokenization_seq2seq import _bart, _mbart
from train.collators import DataCollatorForSeq2Seq
from train.metrics import Seq2SeqMetrics, bleu_metric, decode_ids, rouge_metrics
from train.step import smoothing_shifts_labels
from train.trainer import Trainer
from train.trainer_seq2seq import Seq2SeqTrainer
from train.training_args import Seq2SeqTrainingArguments, TrainingArguments
from transformers_jax.losses import cross_entropy, label_smoothed_loss

BART = dict(vocab_size=64, d_model=16, encoder_layers=2, decoder_layers=2, encoder_attention_heads=2,
            decoder_attention_heads=2, encoder_ffn_dim=32, decoder_ffn_dim=32, max_position_embeddings=32,
            dropout=0.0, attention_dropout=0.0, activation_dropout=0.0)
SOURCES = ["Hello world!", "The quick brown fox jumps over the lazy dog.", "Crème brûlée à Zürich", "x"]
TARGETS = ["Bonjour le monde", "a fox", "Der schnelle braune Fuchs springt über den faulen Hund.", ""]


def one_device_mesh():
    return Mesh(np.array(jax.devices()[:1]), ("data",))


def args_for(tmp_path, cls=TrainingArguments, **kw):
    base = dict(output_dir=str(tmp_path), max_steps=1, per_device_train_batch_size=1, learning_rate=1e-3,
                logging_steps=1, save_strategy="no", report_to="none", disable_tqdm=True, check_memory=False)
    base.update(kw)
    return cls(**base)


@pytest.fixture(scope="module")
def tokenizer_dirs(tmp_path_factory):
    """Tiny BART (byte-level BPE) and mBART (Unigram + language codes) tokenizer folders."""
    root = tmp_path_factory.mktemp("s2s_tokenizers")
    _bart(root / "bart")
    _mbart(root / "mbart")
    return {"bart": root / "bart", "mbart": root / "mbart"}


def features_of(tokenizer):
    encoded = tokenizer(SOURCES, text_target=TARGETS)
    return [{"input_ids": list(encoded["input_ids"][i]), "attention_mask": list(encoded["attention_mask"][i]),
             "labels": list(encoded["labels"][i])} for i in range(len(SOURCES))]


# ----------------------------------------------------------------------------- DataCollatorForSeq2Seq
HF_MODELS = {
    "bart": (transformers.BartConfig, transformers.BartForConditionalGeneration, tj.BartConfig),
    "mbart": (transformers.MBartConfig, transformers.MBartForConditionalGeneration, tj.MBartConfig),
}


@pytest.mark.parametrize("family", ["bart", "mbart"])
@pytest.mark.parametrize("settings", [
    dict(), dict(padding="max_length", max_length=40), dict(pad_to_multiple_of=8), dict(side="left"),
    dict(label_pad_token_id=7, pad_to_multiple_of=5),
])
def test_seq2seq_collator_matches_hugging_face(tokenizer_dirs, family, settings):
    settings = dict(settings)
    side = settings.pop("side", "right")
    ours_tok = tj.AutoTokenizer.from_pretrained(tokenizer_dirs[family])
    hf_tok = transformers.AutoTokenizer.from_pretrained(tokenizer_dirs[family])
    ours_tok.padding_side = hf_tok.padding_side = side
    hf_config_class, hf_model_class, config_class = HF_MODELS[family]
    size = dict(BART, vocab_size=len(hf_tok), pad_token_id=hf_tok.pad_token_id, eos_token_id=hf_tok.eos_token_id,
                decoder_start_token_id=hf_tok.eos_token_id)
    hf_model = hf_model_class(hf_config_class(**size))
    features = features_of(ours_tok)
    assert features == features_of(hf_tok)  # the same features go into both collators

    ours = DataCollatorForSeq2Seq(ours_tok, model=config_class.from_dict(size), **settings)(copy.deepcopy(features))
    # "pt": HF builds decoder_input_ids with torch ops (its "np" batches cannot go through the model's shift)
    theirs = transformers.DataCollatorForSeq2Seq(hf_tok, model=hf_model, return_tensors="pt", **settings)(features)
    assert sorted(ours) == sorted(theirs) == ["attention_mask", "decoder_input_ids", "input_ids", "labels"]
    for key in ours:
        assert ours[key].dtype == np.int32, key
        np.testing.assert_array_equal(ours[key], theirs[key].numpy(), err_msg=key)
    # the batch really is padded, on the configured side
    fill = settings.get("label_pad_token_id", -100)
    edge = 0 if side == "left" else -1
    assert (ours["labels"][:, edge] == fill).any() and (ours["input_ids"][:, edge] == ours_tok.pad_token_id).any()


def test_seq2seq_collator_without_a_model_and_its_errors(tokenizer_dirs):
    tok = tj.AutoTokenizer.from_pretrained(tokenizer_dirs["bart"])
    features = features_of(tok)
    batch = DataCollatorForSeq2Seq(tok)(features)
    assert "decoder_input_ids" not in batch and batch["labels"].shape == (4, max(len(f["labels"]) for f in features))
    # "label" is read as the labels, as in Hugging Face
    renamed = DataCollatorForSeq2Seq(tok)([{**{k: v for k, v in f.items() if k != "labels"}, "label": f["labels"]}
                                           for f in features])
    np.testing.assert_array_equal(renamed["labels"], batch["labels"])
    # without labels: only the inputs
    assert sorted(DataCollatorForSeq2Seq(tok)([{"input_ids": f["input_ids"]} for f in features])) == \
        ["attention_mask", "input_ids"]

    no_start = tj.BartConfig.from_dict(dict(BART, decoder_start_token_id=None))
    with pytest.raises(ValueError, match="DataCollatorForSeq2Seq: cannot build decoder_input_ids from the labels: "
                                         ".*decoder_start_token_id must be set"):
        DataCollatorForSeq2Seq(tok, model=no_start)(features)
    with pytest.raises(ValueError, match=r"labels of feature 2 has \d+ tokens, more than max_length=4"):
        DataCollatorForSeq2Seq(tok, padding="max_length", max_length=4)(
            [{"input_ids": [5, 6], "labels": f["labels"]} for f in features])
    with pytest.raises(ValueError, match=r"padding=False\): input_ids of feature 1 has"):
        DataCollatorForSeq2Seq(tok, padding=False)(features)
    with pytest.raises(ValueError, match="return_tensors='pt' is not supported"):
        DataCollatorForSeq2Seq(tok, return_tensors="pt")
    with pytest.raises(KeyError, match="feature 1 has no 'labels' but feature 0 has them"):
        DataCollatorForSeq2Seq(tok)([features[0], {**features[1], "labels": None}])
    equal = [{"input_ids": [5, 6, 7], "labels": [8, 9]}] * 2
    assert DataCollatorForSeq2Seq(tok, padding=False)(equal)["labels"].tolist() == [[8, 9], [8, 9]]


# ----------------------------------------------------------------------------- label smoothing: the formula
@pytest.mark.parametrize("shift", [False, True])
def test_label_smoothed_loss_equals_hugging_face_label_smoother(shift):
    from transformers.trainer_pt_utils import LabelSmoother

    rng = np.random.RandomState(0)
    logits = (rng.standard_normal((3, 7, 11)) * 3).astype(np.float32)
    labels = rng.randint(0, 11, (3, 7)).astype(np.int32)
    labels[0, :3] = -100
    labels[2, 5:] = -100
    ours = float(label_smoothed_loss(logits, labels, 0.1, shift_labels=shift))
    outputs = {"logits": torch.from_numpy(logits)}
    reference = float(LabelSmoother(0.1)(outputs, torch.from_numpy(labels).long(), shift_labels=shift))
    exact = float(LabelSmoother(0.1)({"logits": torch.from_numpy(logits).double()}, torch.from_numpy(labels).long(),
                                     shift_labels=shift))
    assert_accurate(ours, reference, exact, name="smoothed loss")
    # smoothing changes the loss; epsilon 0 is the plain cross entropy
    kept = (logits[:, :-1], labels[:, 1:]) if shift else (logits, labels)
    plain = float(cross_entropy(*kept))
    assert abs(ours - plain) > 1e-3
    assert float(label_smoothed_loss(logits, labels, 0.0, shift_labels=shift)) == pytest.approx(plain, rel=1e-6)
    with pytest.raises(ValueError, match=r"epsilon must be in \[0, 1\), got 1.5"):
        label_smoothed_loss(logits, labels, 1.5)


def test_smoothing_shifts_labels_for_the_causal_lm_classes_only():
    """Hugging Face's rule: the classes of AutoModelForCausalLM (BartForCausalLM too), nothing else."""
    assert smoothing_shifts_labels(tj.LlamaForCausalLM) and smoothing_shifts_labels(tj.BartForCausalLM)
    assert not smoothing_shifts_labels(tj.BartForConditionalGeneration)
    assert not smoothing_shifts_labels(tj.BertForMaskedLM)
    assert not smoothing_shifts_labels(tj.BertForSequenceClassification)


def test_label_smoothing_factor_is_checked_and_refused_where_it_cannot_apply(tmp_path):
    with pytest.raises(ValueError, match=r"label_smoothing_factor must be in \[0, 1\), got 1.0"):
        args_for(tmp_path, label_smoothing_factor=1.0)
    size = dict(vocab_size=32, hidden_size=16, num_hidden_layers=1, num_attention_heads=2, intermediate_size=16)
    config = tj.BertConfig.from_dict(dict(size, num_labels=3, problem_type="multi_label_classification"))
    with pytest.warns(UserWarning, match="Label smoothing is not compatible with multi-label classification"):
        trainer = Trainer(tj.BertForSequenceClassification(config), args_for(tmp_path, label_smoothing_factor=0.1),
                          mesh=one_device_mesh())
    assert trainer.label_smoothing == 0.0
    regression = tj.BertForSequenceClassification(tj.BertConfig.from_dict(dict(size, num_labels=1,
                                                                               problem_type="regression")))
    data = [{"input_ids": [3, 4, 5], "labels": 0.5}, {"input_ids": [6, 7, 8], "labels": 1.5}]
    trainer = Trainer(regression, args_for(tmp_path, label_smoothing_factor=0.1), eval_dataset=data,
                      mesh=one_device_mesh())
    with pytest.raises(ValueError, match="needs integer class labels, got labels of dtype float32"):
        trainer.evaluate()


def test_trainer_smooths_a_causal_lm_loss_on_shifted_labels(tmp_path):
    """For a causal LM the smoothed loss scores logits[t] against labels[t + 1] (HF's shift_labels=True)."""
    config = tj.LlamaConfig(vocab_size=48, hidden_size=16, intermediate_size=32, num_hidden_layers=1,
                            num_attention_heads=2, num_key_value_heads=1, max_position_embeddings=32)
    model = tj.LlamaForCausalLM(config, seed=0)
    rng = np.random.RandomState(0)
    ids = rng.randint(3, 48, (4, 10)).astype(np.int32)
    labels = ids.copy()
    labels[1, 6:] = labels[3, 8:] = -100
    data = [{"input_ids": ids[i], "labels": labels[i]} for i in range(4)]
    trainer = Trainer(model, args_for(tmp_path, per_device_eval_batch_size=4, label_smoothing_factor=0.2),
                      eval_dataset=data, mesh=one_device_mesh())
    loss = trainer.evaluate()["eval_loss"]
    logits = model(ids).logits
    assert loss == pytest.approx(float(label_smoothed_loss(logits, labels, 0.2, shift_labels=True)), rel=1e-5)
    assert abs(loss - float(label_smoothed_loss(logits, labels, 0.2))) > 1e-3  # the shift matters


def test_label_smoothed_accumulation_equals_a_big_batch(tmp_path):
    """Two accumulated micro-batches of ragged label counts give the update of one batch of both (the smoothed
    loss is a mean over all the step's labels)."""
    from parity import assert_same_up_to_rounding, assert_trees_same_up_to_rounding

    config = tj.BartConfig.from_dict(BART)
    tok = type("Tok", (), {"pad_token_id": 1, "padding_side": "right"})()
    data = seq2seq_rows(8, seed=4)
    runs = []
    for rows, steps in ((2, 2), (4, 1)):
        trainer = Trainer(tj.BartForConditionalGeneration(config, seed=5),
                          args_for(tmp_path / f"{rows}", max_steps=2, per_device_train_batch_size=rows,
                                   gradient_accumulation_steps=steps, optim="sgd", learning_rate=0.1,
                                   label_smoothing_factor=0.1),
                          train_dataset=data, data_collator=DataCollatorForSeq2Seq(tok), mesh=one_device_mesh())
        trainer.train()
        runs.append((trainer, [r["loss"] for r in trainer.state.log_history if "loss" in r]))
    (accumulated, l1), (big, l2) = runs
    assert_same_up_to_rounding(l1, l2, ulps=16, name="losses")
    assert_trees_same_up_to_rounding(accumulated.model.params, big.model.params, ulps=16, floor=0.1)


# ----------------------------------------------------------------------------- three steps against PyTorch
ADAM_EPS = 1e-3
LR = 1e-3


def seq2seq_rows(rows, seed=0, vocab=64):
    rng = np.random.RandomState(seed)
    out = []
    for r in range(rows):
        n, m = 4 + r % 5, 2 + r % 4
        out.append({"input_ids": [0, *rng.randint(3, vocab, n).tolist(), 2],
                    "labels": [*rng.randint(3, vocab, m).tolist(), 2]})
    return out


def test_three_label_smoothed_bart_steps_match_pytorch(tmp_path):
    """Trainer(label_smoothing_factor=0.1) on a tiny BART == torch AdamW (HF's decay groups) + HF's linear warm-up
    schedule + clipping + HF's LabelSmoother on the model's logits, the labels popped from the inputs as HF's
    Trainer does (the collator built decoder_input_ids from them)."""
    from transformers.trainer_pt_utils import LabelSmoother

    config = tj.BartConfig.from_dict(BART)
    initial = perturb_params(tj.BartForConditionalGeneration(config, seed=3).params, 0, scale=0.3)  # peaked logits
    ours = tj.BartForConditionalGeneration(config, initial)
    ours.save_pretrained(tmp_path / "init")
    theirs = transformers.BartForConditionalGeneration.from_pretrained(tmp_path / "init", attn_implementation="eager")
    collator = DataCollatorForSeq2Seq(tokenizer=type("Tok", (), {"pad_token_id": 1, "padding_side": "right"})(),
                                      model=ours)
    data = seq2seq_rows(12)
    args = args_for(tmp_path / "run", max_steps=3, per_device_train_batch_size=4, learning_rate=LR, weight_decay=0.1,
                    warmup_steps=1, max_grad_norm=0.5, adam_epsilon=ADAM_EPS, label_smoothing_factor=0.1)
    trainer = Trainer(ours, args, train_dataset=data, data_collator=collator, mesh=one_device_mesh())
    loader = trainer._loader(data, 4, train=True)
    batches = [loader.load_batch(0, step) for step in range(3)]
    assert all("decoder_input_ids" in b for b in batches) and (batches[0]["labels"] == -100).any()
    unsmoothed = float(ours(**batches[0]).loss)  # the model's own loss on the first batch
    trainer.train()

    def torch_run(model):
        decay = set(transformers.Trainer.get_decay_parameter_names(None, model))
        named = list(model.named_parameters())
        opt = torch.optim.AdamW([{"params": [p for n, p in named if n in decay], "weight_decay": 0.1},
                                 {"params": [p for n, p in named if n not in decay], "weight_decay": 0.0}],
                                lr=LR, eps=ADAM_EPS)
        sched = transformers.get_scheduler("linear", opt, num_warmup_steps=1, num_training_steps=3)
        smoother, losses = LabelSmoother(epsilon=0.1), []
        for batch in batches:
            inputs = {k: torch.from_numpy(np.asarray(v)).long() for k, v in batch.items()}
            labels = inputs.pop("labels")
            loss = smoother(model(**inputs), labels)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 0.5)
            opt.step()
            sched.step()
            opt.zero_grad()
            losses.append(loss.item())
        return losses, {k: v.detach().numpy() for k, v in model.state_dict().items()}

    exact_losses, exact_state = torch_run(copy.deepcopy(theirs).double())
    torch_losses, torch_state = torch_run(theirs)
    ours_losses = [r["loss"] for r in trainer.state.log_history if "loss" in r]
    assert_accurate(ours_losses, torch_losses, exact_losses, name="losses")
    assert_within(ours_losses, torch_losses, 1e-5, name="losses vs PyTorch")
    # smoothing was on: the first loss is not the model's own (unsmoothed) loss on that batch
    assert abs(unsmoothed - ours_losses[0]) > 1e-2

    ours.save_pretrained(tmp_path / "after")
    from safetensors.numpy import load_file

    saved = load_file(tmp_path / "after" / "model.safetensors")
    assert saved.keys() <= torch_state.keys() and len(saved) > 20
    # An AdamW update moves by at most lr / eps per unit change of a gradient: after 3 steps a param may differ
    # from the exact run by 3 * lr / eps times its gradient's rounding (16 ulps of O(1) terms) = 5.7e-6 < 1e-5.
    bound = 3 * LR / ADAM_EPS * 16 * EPS32
    assert bound < 1e-5
    moved = 0
    for key, value in saved.items():
        assert_within(torch_state[key], exact_state[key], bound, name=f"PyTorch {key}")
        assert_within(value, exact_state[key], bound, name=key)
        assert_within(value, torch_state[key], 1e-5, name=f"{key} vs PyTorch")
        moved += not np.allclose(value, load_file(tmp_path / "init" / "model.safetensors")[key], atol=1e-4)
    assert moved > 20  # the steps really moved the params


# ----------------------------------------------------------------------------- Seq2SeqTrainingArguments
def test_seq2seq_training_arguments(tmp_path):
    args = args_for(tmp_path, Seq2SeqTrainingArguments, predict_with_generate=True, generation_max_length=12,
                    generation_num_beams=2)
    assert args.to_dict()["generation_max_length"] == 12 and args.predict_with_generate
    with pytest.raises(ValueError, match="generation_num_beams must be a positive integer or None, got 0"):
        args_for(tmp_path, Seq2SeqTrainingArguments, generation_num_beams=0)
    from train import cli

    recipe = cli.training_arguments({"output_dir": "x", "predict_with_generate": True})
    assert isinstance(recipe, Seq2SeqTrainingArguments) and recipe.predict_with_generate
    assert type(cli.training_arguments({"output_dir": "x"})) is TrainingArguments


# ----------------------------------------------------------------------------- Seq2SeqTrainer plumbing
class RecordingGenerate:
    """Stands in for ``model.generate``: records its calls and returns [B, 1 + len] ids (the start token, then
    the row's first source tokens), so the trainer's padding and metrics can be checked without a decoder."""

    def __init__(self, length):
        self.length, self.calls = length, []

    def __call__(self, input_ids, attention_mask=None, params=None, **kwargs):
        self.calls.append({"shape": np.shape(input_ids), "mask": attention_mask is not None,
                           "params": params is not None, **kwargs})
        ids = np.asarray(input_ids)[:, 1:1 + self.length]
        return np.concatenate([np.full((len(ids), 1), 2, np.int32), ids], axis=1)


def test_seq2seq_trainer_hands_generated_ids_to_compute_metrics(tmp_path):
    model = tj.BartForConditionalGeneration(tj.BartConfig.from_dict(BART), seed=1)
    model.generate = RecordingGenerate(length=3)
    data = seq2seq_rows(5, seed=2)
    tok = type("Tok", (), {"pad_token_id": 1, "eos_token_id": 2, "padding_side": "right"})()
    seen = []

    def compute_metrics(prediction):
        seen.append(prediction)
        return {"rows": len(prediction.predictions)}

    args = args_for(tmp_path, Seq2SeqTrainingArguments, per_device_eval_batch_size=2, predict_with_generate=True,
                    generation_max_length=9, generation_num_beams=3)
    trainer = Seq2SeqTrainer(model, args, eval_dataset=data, data_collator=DataCollatorForSeq2Seq(tok, model=model),
                             compute_metrics=compute_metrics, processing_class=tok, mesh=one_device_mesh())
    metrics = trainer.evaluate()
    assert metrics["eval_rows"] == 5 and np.isfinite(metrics["eval_loss"])
    assert [c["shape"][0] for c in model.generate.calls] == [2, 2, 2]  # the padded last batch is generated whole
    assert all(c["max_length"] == 9 and c["num_beams"] == 3 and c["mask"] and c["params"]
               for c in model.generate.calls)
    predictions, labels = seen[-1].predictions, seen[-1].label_ids
    assert predictions.shape == (5, 9)  # padded with the pad id to max_length
    for row, predicted in zip(data, predictions):
        assert predicted.tolist() == [2, *row["input_ids"][1:4], *[1] * 5]
    assert labels.shape == (5, 9)  # labels shorter than max_length are padded with the pad id too (HF)
    for row, label in zip(data, labels):
        n = len(row["labels"])
        assert label[:n].tolist() == row["labels"] and set(label[n:].tolist()) <= {1, -100}
    # the loss is the teacher-forced loss of the plain evaluation
    plain = Seq2SeqTrainer(model, args_for(tmp_path, Seq2SeqTrainingArguments, per_device_eval_batch_size=2),
                           eval_dataset=data, data_collator=DataCollatorForSeq2Seq(tok, model=model),
                           mesh=one_device_mesh())
    assert plain.evaluate()["eval_loss"] == pytest.approx(metrics["eval_loss"], rel=1e-6)
    # call arguments win over the arguments' settings; max_new_tokens replaces generation_max_length
    out = trainer.predict(data, max_new_tokens=4, num_beams=1)
    assert model.generate.calls[-1]["max_new_tokens"] == 4 and "max_length" not in model.generate.calls[-1]
    assert model.generate.calls[-1]["num_beams"] == 1
    assert out.predictions.shape == (5, 5) and "test_rows" in out.metrics


def test_seq2seq_trainer_generation_config_and_errors(tmp_path):
    from transformers_jax.generation.configuration_utils import GenerationConfig

    model = tj.BartForConditionalGeneration(tj.BartConfig.from_dict(BART), seed=1)
    GenerationConfig(max_length=7, num_beams=2).save_pretrained(tmp_path / "gen")
    trainer = Seq2SeqTrainer(model, args_for(tmp_path, Seq2SeqTrainingArguments,
                                             generation_config=str(tmp_path / "gen")), mesh=one_device_mesh())
    assert model.generation_config.max_length == 7 and model.generation_config.num_beams == 2
    assert trainer._generated_width({}) == 7 and trainer._generated_width({"max_new_tokens": 3}) == 4
    with pytest.raises(FileNotFoundError, match="no generation_config.json in that directory"):
        Seq2SeqTrainer(model, args_for(tmp_path, Seq2SeqTrainingArguments, generation_config=str(tmp_path)),
                       mesh=one_device_mesh())
    bert = tj.BertForSequenceClassification(tj.BertConfig(vocab_size=32, hidden_size=16, num_hidden_layers=1,
                                                          num_attention_heads=2, intermediate_size=16))
    trainer = Seq2SeqTrainer(bert, args_for(tmp_path, Seq2SeqTrainingArguments, predict_with_generate=True),
                             eval_dataset=[{"input_ids": [3, 4], "labels": 1}], mesh=one_device_mesh())
    with pytest.raises(ValueError, match="predict_with_generate=True needs a model with generate"):
        trainer.evaluate()


# ----------------------------------------------------------------------------- metrics
def test_rouge_and_bleu_helpers_equal_the_reference_packages(tokenizer_dirs):
    from rouge_score import rouge_scorer
    import sacrebleu

    predictions = ["the cat sat on the mat", "a quick brown fox", "hello there world"]
    references = ["the cat was sitting on the mat", "the quick brown fox jumps", "hello world"]
    ours = rouge_metrics(predictions, references)
    scorer = rouge_scorer.RougeScorer(["rouge1", "rouge2", "rougeL", "rougeLsum"], use_stemmer=True)
    scores = [scorer.score(r, p) for p, r in zip(predictions, references)]
    for name in ("rouge1", "rouge2", "rougeL", "rougeLsum"):
        assert ours[name] == pytest.approx(np.mean([s[name].fmeasure for s in scores]), abs=1e-12)
    assert 0 < ours["rouge2"] < ours["rouge1"] < 1
    assert bleu_metric(predictions, references)["bleu"] == pytest.approx(
        sacrebleu.corpus_bleu(predictions, [references]).score)
    two = [[r, r.upper()] for r in references]
    assert bleu_metric(predictions, two)["bleu"] == pytest.approx(
        sacrebleu.corpus_bleu(predictions, [references, [r.upper() for r in references]]).score)
    with pytest.raises(ValueError, match="3 predictions but 2 references"):
        rouge_metrics(predictions, references[:2])
    with pytest.raises(TypeError, match=r"predictions\[1\] is a list, not a string"):
        bleu_metric(["a", [1, 2]], ["a", "b"])

    tok = tj.AutoTokenizer.from_pretrained(tokenizer_dirs["bart"])
    ids = tok(references, padding=True)["input_ids"]
    labels = np.where(np.asarray(ids) == tok.pad_token_id, -100, ids)
    assert decode_ids(tok, labels) == references
    metrics = Seq2SeqMetrics(tok, ("rouge", "bleu"))(
        type("P", (), {"predictions": np.asarray(tok(predictions, padding=True)["input_ids"]), "label_ids": labels}))
    assert metrics["rouge1"] == pytest.approx(ours["rouge1"]) and "bleu" in metrics and metrics["gen_len"] > 3
    with pytest.raises(ValueError, match=r"unknown metric\(s\) \['meteor'\]"):
        Seq2SeqMetrics(tok, ("meteor",))


# ----------------------------------------------------------------------------- predict_with_generate, for real
def test_predict_with_generate_metrics_equal_rouge_and_bleu_of_generate(tokenizer_dirs, tmp_path):
    """Seq2SeqTrainer.evaluate with predict_with_generate on a tiny BART: its predictions are model.generate's ids
    on the same batch, and its ROUGE/BLEU equal rouge_metrics/bleu_metric of those generations decoded, against
    targets made to overlap them (so the scores are neither 0 nor 1)."""
    import jax.numpy as jnp

    tok = tj.AutoTokenizer.from_pretrained(tokenizer_dirs["bart"])
    config = tj.BartConfig.from_dict(dict(BART, vocab_size=len(tok), max_position_embeddings=64))
    params = perturb_params(tj.BartForConditionalGeneration(config, seed=1).params, 0, scale=0.3)
    # favour the word pieces (" the", " and", ...) so that the generations decode to words ROUGE can count
    words = [i for t, i in tok.get_vocab().items() if t.startswith("Ġ") and t[1:].isascii() and t[1:].isalpha()]
    bias = np.zeros((1, len(tok)), np.float32)
    bias[0, words] = 6.0
    params["final_logits_bias"] = jnp.asarray(bias)
    model = tj.BartForConditionalGeneration(config, params)
    collator = DataCollatorForSeq2Seq(tok, model=model, padding="max_length", max_length=24)
    sources = SOURCES + ["a dog and a fox"]
    inputs = tok(sources)
    rows = [{"input_ids": list(inputs["input_ids"][i]), "attention_mask": list(inputs["attention_mask"][i])}
            for i in range(len(sources))]

    # generate directly on the batch the trainer will form (8 rows on one device: the 5 rows, then row 0 again)
    batch = collator(rows + [rows[0]] * 3)
    generated = np.asarray(model.generate(batch["input_ids"], attention_mask=batch["attention_mask"], max_length=12,
                                          num_beams=2, params=model.params))[:5]
    texts = decode_ids(tok, generated)
    assert all(any(c.isalpha() for c in text) for text in texts), texts
    first_word = texts[1].split()[0]
    targets = [texts[0], f"{first_word} quick brown {first_word} fox", "nothing in common", "x", "a dog and a fox"]
    labels = tok(text_target=targets)["input_ids"]
    data = [{**row, "labels": list(label)} for row, label in zip(rows, labels)]

    args = args_for(tmp_path, Seq2SeqTrainingArguments, per_device_eval_batch_size=8, predict_with_generate=True,
                    generation_max_length=12, generation_num_beams=2)
    trainer = Seq2SeqTrainer(model, args, eval_dataset=data, data_collator=collator,
                             compute_metrics=Seq2SeqMetrics(tok, ("rouge", "bleu")), processing_class=tok,
                             mesh=one_device_mesh())
    output = trainer.predict(data, metric_key_prefix="eval")
    np.testing.assert_array_equal(output.predictions, generated)  # already max_length wide: nothing padded
    references = decode_ids(tok, output.label_ids)
    assert references == [t.strip() for t in targets]
    expected = {**rouge_metrics(texts, references), **bleu_metric(texts, references)}
    for name, value in expected.items():
        assert output.metrics[f"eval_{name}"] == pytest.approx(value, abs=1e-12), name
    assert 0 < output.metrics["eval_rouge1"] < 1 and 0 < output.metrics["eval_bleu"] < 100
    assert np.isfinite(output.metrics["eval_loss"])
    # evaluate() gives the same numbers (and greedy search, asked for by the call, others)
    assert trainer.evaluate()["eval_rouge1"] == output.metrics["eval_rouge1"]
    greedy = trainer.predict(data, num_beams=1)
    direct = np.asarray(model.generate(batch["input_ids"], attention_mask=batch["attention_mask"], max_length=12,
                                       num_beams=1))[:5]
    np.testing.assert_array_equal(greedy.predictions, direct)
