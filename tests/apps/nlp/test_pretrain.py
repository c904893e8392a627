"""Masked-LM pretraining: the corpus, the masking, and fine-tuning from a pretrained encoder."""

import json
import re

import numpy as np
import pytest

from shared.data.corpus import fortunes, pydoc_paragraphs
from apps.nlp.models import MaskTokens
from tests.conftest import error_line, run_main


def test_corpus_documents_are_clean_english():
    docs = fortunes()
    assert len(docs) > 10000 and not any(re.search(r"(?m)^%\s*$", t) for _, t in docs)  # no separator lines
    assert "ascii-art" not in {c for c, _ in docs}
    paragraphs = pydoc_paragraphs()
    assert len(paragraphs) > 1000 and all(len(t.split()) >= 4 for _, t in paragraphs)


def test_mask_tokens_masks_only_real_tokens_at_the_rate():
    ids = np.tile(np.arange(2, 102, dtype="int32"), (50, 1))
    ids[:, 80:] = 0
    corrupted, positions, weights = (np.asarray(t) for t in MaskTokens(rate=0.15, mask_id=1, max_predictions=20,
                                                                          seed=3)(ids))
    assert positions.shape == weights.shape == (50, 20)
    masked = corrupted == 1
    assert not masked[:, 80:].any() and (corrupted[:, 80:] == 0).all()  # padding is never masked
    assert abs(masked[:, :80].mean() - 0.15) < 0.02
    assert (corrupted[~masked] == ids[~masked]).all()
    rows = np.arange(50)[:, None]
    assert (masked[rows, positions] == (weights == 1)).all()  # the weighted positions are the masked ones
    assert (weights.sum(1) == masked.sum(1)).all()
    few = np.asarray(MaskTokens(rate=0.5, max_predictions=3, seed=1)(ids)[0])
    assert ((few == 1).sum(1) <= 3).all()  # at most max_predictions per row


@pytest.fixture(scope="module")
def pretrained(tiny_runs):
    return tiny_runs("nlp", "pretrain")


def test_pretraining_loss_falls_and_exports_embeddings(pretrained):
    _, run = pretrained
    history = json.loads((run / "history.json").read_text())
    metrics = json.loads((run / "metrics.json").read_text())
    assert history[-1]["loss"] < history[0]["loss"]
    assert metrics["test"]["masked_perplexity"] == pytest.approx(np.exp(metrics["test"]["masked_lm_loss"]))
    export = metrics["exports"]["savedmodel"]
    assert export["passed"] and export["parity"]["min_cosine"] > 0.999999
    assert [o["name"] for o in export["outputs"]] == ["embedding"]


def test_init_from_copies_the_encoder_and_checks_the_flags(pretrained):
    from apps.nlp.data import pretrained_tokenizer
    from apps.nlp.models import build_sentiment_model, find_layer
    from apps.nlp.configs import SentimentConfig
    from shared.data.text import vocabulary_size
    from shared.tasks import DataInfo
    from shared.training.runs import load_model
    from shared.training.rundir import open_run

    home, run = pretrained
    cfg = SentimentConfig.tiny()
    cfg.model, cfg.init_from = "transformer_classifier_tiny", str(run)
    preprocess = pretrained_tokenizer(cfg)
    info = DataInfo(input_shape=(), input_dtype="string", class_names=("negative", "positive"),
                    extra={"vocabulary_size": vocabulary_size(preprocess)})
    model = build_sentiment_model(cfg, info)
    source = load_model(open_run(run))
    for name in ("encoder_classifier_embedding", "encoder_classifier_encoder_layer0"):
        for a, b in zip(find_layer(model, name).get_weights(), find_layer(source, name).get_weights()):
            np.testing.assert_array_equal(a, b)
    line = error_line(run_main(["dl-nlp", "train", "sentiment", "--tiny", "--init-from", run], home))
    assert line == (f"dl-nlp: error: --init-from {run}: pretrained with --model transformer_classifier_tiny; "
                    "pass --model transformer_classifier_tiny")
