"""The NLP app's task registry (sentiment, pretrain, generate, translate, chat): one record per
task, naming its config (`configs.py`) and the functions of its data, model, metrics and
serving (in the task's own module). The layout rule: README.md, "Layout"."""

import keras

from apps.nlp.configs import ChatConfig, GenerateConfig, PretrainConfig, SentimentConfig, TranslateConfig
from apps.nlp.data import build_pretrain_data, build_sentiment_data
from apps.nlp.documents import build_generate_data
from apps.nlp.language_model import (build_language_model, decode_generations, generation_parity,
                                     language_model_report, language_model_serving, logits_core,
                                     next_token_accuracy, next_token_loss, pretrained_byte_lm)
from apps.nlp.chat import (build_chat_data, build_dual_encoder, chat_core, chat_parity, chat_report, chat_serving,
                           choose_blend_weights, decode_replies, in_batch_accuracy, in_batch_loss)
from apps.nlp.chat_generative import build_generative_chat_data, generative_chat_report, generative_chat_serving
from apps.nlp.translation import (bucketed_translation_batch, build_translate_data, build_translation_model, decode_translations,
                                  token_accuracy, token_loss, translation_core, translation_parity,
                                  translation_report, translation_serving)
from apps.nlp.models import (build_masked_lm, build_sentiment_model, embedding_serving, masked_accuracy,
                             masked_lm_loss, sentiment_serving)
from shared.data.text import load_text
from shared.evaluation.text import accuracy_or_sign, decode_text_outputs, squared_error, text_report
from shared.export.parity import embedding_parity
from shared.tasks import Task, task_registry

TASKS = task_registry("nlp")


def sentiment_report(model, ds, info, plots_dir):
    """`text_report`; on `--data vader` also the VADER analyser on the same test sentences."""
    result, plots = text_report(model, ds, info, plots_dir)
    if info.extra.get("vader_peer"):
        from apps.nlp.peers import vader_peer
        from shared.evaluation.predict import take_examples

        texts, targets = take_examples(ds, info.num_test)
        result["peer_vader"] = vader_peer(texts, targets, info.extra.get("test_groups"), not info.class_names)
    return result, plots


@TASKS.register("sentiment")
def sentiment():
    return Task(
        config=SentimentConfig,
        data=build_sentiment_data,
        model=build_sentiment_model,
        loss=lambda cfg, info: (keras.losses.SparseCategoricalCrossentropy(reduction=None) if info.class_names
                                else squared_error),
        step_metrics={"accuracy": accuracy_or_sign},
        metrics=sentiment_report,
        decode=decode_text_outputs,
        load_input=load_text,
        monitor="val_loss",
        serving=sentiment_serving,
        description="sentence sentiment / text classification (VADER, SMS spam, CSV, TFDS)",
    )


def masked_lm_report(model, ds, info, plots_dir):
    """Held-out masked-LM loss, its perplexity and the masked-token accuracy."""
    import numpy as np

    losses, hits = [], []
    for x, _ in ds.batch(256):
        out = model(x, training=False)
        losses.append(np.asarray(masked_lm_loss(None, out)))
        hits.append(np.asarray(masked_accuracy(None, out)))
    loss, accuracy = float(np.concatenate(losses).mean()), float(np.concatenate(hits).mean())
    return {"masked_lm_loss": loss, "masked_perplexity": float(np.exp(loss)), "masked_accuracy": accuracy,
            "num_examples": int(sum(len(h) for h in hits))}, []


@TASKS.register("pretrain")
def pretrain():
    return Task(
        config=PretrainConfig,
        data=build_pretrain_data,
        model=build_masked_lm,
        loss=lambda cfg, info: masked_lm_loss,
        step_metrics={"masked_accuracy": masked_accuracy},
        metrics=masked_lm_report,
        decode=lambda outputs, info: [{"embedding": [float(v) for v in row], "summary": f"{len(row)}-d embedding"}
                                      for row in outputs["embedding"]],
        load_input=load_text,
        monitor="val_loss",
        serving=embedding_serving,
        parity=embedding_parity,
        description="masked-LM pretraining of a text encoder (fortunes, pydoc, VADER sentences); --init-from for sentiment",
    )


@TASKS.register("generate")
def generate():
    return Task(
        config=GenerateConfig,
        data=build_generate_data,
        model=build_language_model,
        loss=lambda cfg, info: next_token_loss,
        step_metrics={"next_byte_accuracy": next_token_accuracy},
        metrics=language_model_report,
        decode=decode_generations,
        load_input=load_text,
        monitor="val_loss",
        serving=language_model_serving,
        core=logits_core,
        parity=generation_parity,
        pretrained=pretrained_byte_lm,
        description="text generation with a byte-level GPT or LSTM (fortunes, text files, TFDS); bits per char",
    )


@TASKS.register("translate")
def translate():
    return Task(
        config=TranslateConfig,
        data=build_translate_data,
        model=build_translation_model,
        loss=lambda cfg, info: token_loss(cfg.label_smoothing),
        step_metrics={"token_accuracy": token_accuracy},
        metrics=translation_report,
        decode=decode_translations,
        load_input=load_text,
        monitor="val_loss",
        train_batch=bucketed_translation_batch,
        serving=translation_serving,
        core=translation_core,
        parity=translation_parity,
        description="translation: Transformer encoder-decoder on WordPiece subwords, beam search in the export "
                    "(LibreOffice's en->es/fr/de catalogs, TSV, TFDS); BLEU and chrF",
    )


@TASKS.register("chat")
def chat():
    return Task(
        config=ChatConfig,
        data=build_chat_data,
        model=build_dual_encoder,
        loss=lambda cfg, info: in_batch_loss,
        step_metrics={"in_batch_accuracy": in_batch_accuracy},
        metrics=chat_report,
        decode=decode_replies,
        load_input=load_text,
        monitor="val_loss",
        serving=chat_serving,
        core=chat_core,
        parity=chat_parity,
        calibrate=choose_blend_weights,
        modes={"generative": dict(data=build_generative_chat_data, model=build_translation_model, calibrate=None,
                                  loss=lambda cfg, info: token_loss(cfg.label_smoothing),
                                  step_metrics={"token_accuracy": token_accuracy}, metrics=generative_chat_report,
                                  train_batch=bucketed_translation_batch, serving=generative_chat_serving,
                                  core=translation_core)},
        description="chatbot: --mode retrieval, a dual encoder trained with in-batch negatives picks the best known "
                    "reply; --mode generative, a seq2seq Transformer writes one (chatterbot-corpus, YAML, TSV); "
                    "recall@1/5, MRR, perplexity",
    )
