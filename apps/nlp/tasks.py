"""The NLP app's tasks."""

from dataclasses import dataclass

import keras

from apps.nlp.data import build_pretrain_data, build_sentiment_data
from apps.nlp.documents import build_generate_data
from apps.nlp.language_model import (build_language_model, decode_generations, generation_parity,
                                     language_model_report, language_model_serving, logits_core,
                                     next_token_accuracy, next_token_loss)
from apps.nlp.chat import (build_chat_data, build_dual_encoder, chat_core, chat_parity, chat_report, chat_serving,
                           decode_replies, in_batch_accuracy, in_batch_loss)
from apps.nlp.chat_generative import build_generative_chat_data, generative_chat_report, generative_chat_serving
from apps.nlp.translation import (bucketed_translation_batch, build_translate_data, build_translation_model, decode_translations,
                                  token_accuracy, token_loss, translation_core, translation_parity,
                                  translation_report, translation_serving)
from apps.nlp.models import (build_masked_lm, build_sentiment_model, embedding_serving, masked_accuracy,
                             masked_lm_loss, sentiment_serving)
from shared.data.text import load_text
from shared.errors import UserError
from shared.evaluation.text import accuracy_or_sign, decode_text_outputs, squared_error, text_report
from shared.export.parity import embedding_parity
from shared.tasks import Task, task_registry
from shared.training.config import TrainConfig

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


@dataclass
class TokenizedConfig(TrainConfig):
    """A tokenizer's vocabulary size and sequence length, checked against the class's minimums."""

    vocabulary_size: int = 20000
    sequence_length: int = 64
    MIN_VOCABULARY = 3  # padding, unknown, a word
    MIN_LENGTH = 1
    UNIT = "words"

    def validate(self):
        super().validate()
        if self.vocabulary_size < self.MIN_VOCABULARY:
            raise UserError(f"--vocabulary-size: expected at least {self.MIN_VOCABULARY} {self.UNIT}; "
                            f"got {self.vocabulary_size}")
        if self.sequence_length < self.MIN_LENGTH:
            raise UserError(f"--sequence-length: expected at least {self.MIN_LENGTH} {self.UNIT}; "
                            f"got {self.sequence_length}")
        return self


@dataclass
class TextConfig(TokenizedConfig):
    """Fields every word-level text task shares: the word tokenizer's size and length, the schedule."""

    batch_size: int = 64
    learning_rate: float = 1e-3
    lr_schedule: str = "cosine"
    early_stopping_patience: int = 3

    @classmethod
    def tiny(cls):
        return cls(epochs=2, batch_size=32, max_train_examples=512, steps_per_execution=4, export="",
                   vocabulary_size=500, sequence_length=32, early_stopping_patience=0)


@dataclass
class SentimentConfig(TextConfig):
    """Sentence sentiment. `--data vader | sms_spam | csv:PATH | tfds:NAME`; `--target polarity | score`."""

    data: str = "vader"
    data_dir: str = ""
    download: bool = False
    text_column: str = "text"  # --data csv:PATH only
    label_column: str = "label"  # --data csv:PATH only
    target: str = "polarity"  # polarity: classes; score: regression on the label (VADER: mean rating)
    init_from: str = ""  # a `pretrain` run: its tokenizer and encoder weights (same --model)
    model: str = "text_cnn"
    epochs: int = 8

    @classmethod
    def tiny(cls):
        cfg = super().tiny()
        cfg.model = "text_cnn_tiny"
        return cfg

    def validate(self):
        super().validate()
        if self.target not in ("polarity", "score"):
            raise UserError(f"--target: expected polarity or score; got '{self.target}'")
        return self


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


@dataclass
class PretrainConfig(TextConfig):
    """Masked-LM pretraining of a transformer encoder. `--data english,vader` (comma list)."""

    data: str = "english,vader"
    model: str = "transformer_classifier_tiny"
    mask_rate: float = 0.15
    epochs: int = 10

    def validate(self):
        super().validate()
        if not 0 < self.mask_rate < 1:
            raise UserError(f"--mask-rate: expected a fraction in (0, 1); got {self.mask_rate}")
        return self


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


@dataclass
class GenerateConfig(TrainConfig):
    """Byte-level language model for text generation. `--data fortunes | text:PATH | tfds:NAME`."""

    data: str = "fortunes"
    data_dir: str = ""
    download: bool = False
    model: str = "transformer_lm_mini"
    sequence_length: int = 256  # training window and the transformer's context, in bytes
    epochs: int = 3  # 18.5 min of training here (≈ 6k bytes/s with XLA); the loss still falls at 3
    batch_size: int = 32
    learning_rate: float = 1e-3
    lr_schedule: str = "cosine"
    jit_compile: bool = True  # XLA: 1.33x the bytes/s of the same model without (measured, CPU)
    early_stopping_patience: int = 3

    @classmethod
    def tiny(cls):
        return cls(model="transformer_lm_tiny", sequence_length=32, epochs=2, batch_size=16, max_train_examples=256,
                   steps_per_execution=4, export="", early_stopping_patience=0, jit_compile=False)

    def validate(self):
        super().validate()
        if self.sequence_length < 2:
            raise UserError(f"--sequence-length: expected at least 2 bytes; got {self.sequence_length}")
        return self


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
        description="text generation with a byte-level GPT or LSTM (fortunes, text files, TFDS); bits per char",
    )


@dataclass
class SubwordConfig(TokenizedConfig):
    """Fields of the tasks on WordPiece subwords (shared/data/subword.py)."""

    vocabulary_size: int = 8000  # WordPiece pieces at most (the learner may stop below)
    sequence_length: int = 64  # pieces per text
    MIN_VOCABULARY = 16
    MIN_LENGTH = 4  # [START], a piece, [END] and room
    UNIT = "pieces"


@dataclass
class Seq2SeqConfig(SubwordConfig):
    """Fields of the tasks trained as a Transformer encoder-decoder and decoded by beam search."""

    label_smoothing: float = 0.1
    beam_size: int = 4  # the export's and evaluation's beam search (1: greedy)
    length_penalty: float = 1.0  # hypotheses ranked by log-prob / length ** this

    def validate(self):
        super().validate()
        if not 0 <= self.label_smoothing < 1:
            raise UserError(f"--label-smoothing: expected a fraction in [0, 1); got {self.label_smoothing}")
        if self.beam_size < 1:
            raise UserError(f"--beam-size: expected a positive number; got {self.beam_size}")
        return self


@dataclass
class TranslateConfig(Seq2SeqConfig):
    """Translation. `--data gettext:es|fr|de | tsv:PATH | tfds:NAME` (English -> the language for gettext)."""

    data: str = "gettext:es"
    data_dir: str = ""
    download: bool = False
    model: str = "transformer_seq2seq_small"
    shared_vocabulary: bool = True  # one vocabulary for both languages (names, numbers, placeholders copy)
    max_test_sentences: int = 0  # 0: the whole test split
    precision: str = "auto"  # mixed bfloat16 where the hardware has it (1.7x the examples/s here, with bucketing)
    epochs: int = 20
    batch_size: int = 64
    learning_rate: float = 1e-3
    lr_schedule: str = "cosine"
    early_stopping_patience: int = 3

    @classmethod
    def tiny(cls):
        return cls(model="transformer_seq2seq_tiny", epochs=2, batch_size=32, max_train_examples=512,
                   max_test_sentences=32, vocabulary_size=400, sequence_length=32, beam_size=2,
                   steps_per_execution=4, export="", early_stopping_patience=0, precision="float32")

    def validate(self):
        super().validate()
        if self.max_test_sentences < 0:
            raise UserError(f"--max-test-sentences: expected 0 (all) or a positive number; got {self.max_test_sentences}")
        return self


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


CHAT_ARCHITECTURES = {"retrieval": "transformer_dual_encoder", "generative": "transformer_seq2seq"}


@dataclass
class ChatConfig(Seq2SeqConfig):
    """Chatbot. `--mode retrieval | generative`; `--data chatterbot | yaml:DIR | tsv:PATH`; `--language` for chatterbot."""

    mode: str = "retrieval"  # retrieval: the best-scoring known reply; generative: a reply written by beam search
    data: str = "chatterbot"
    language: str = "english"  # chatterbot-corpus's folder
    model: str = "small"  # a model name, or tiny | small: the mode's model of that size
    max_eval_messages: int = 0  # validation and test message variants at most (0: one per pair)
    vocabulary_size: int = 4000  # WordPiece pieces at most
    sequence_length: int = 48  # pieces per context or reply
    epochs: int = 40
    batch_size: int = 64
    learning_rate: float = 1e-3
    lr_schedule: str = "cosine"
    early_stopping_patience: int = 8

    @classmethod
    def tiny(cls):
        # all 836 English pairs for 10 epochs (~15 s): enough to learn (the tests check it on this run)
        return cls(model="tiny", epochs=10, batch_size=32, learning_rate=3e-3, vocabulary_size=1000,
                   sequence_length=32, beam_size=2, max_eval_messages=300, steps_per_execution=4, export="",
                   early_stopping_patience=0)

    def validate(self):
        if self.mode not in CHAT_ARCHITECTURES:
            raise UserError(f"--mode: expected one of {', '.join(CHAT_ARCHITECTURES)}; got '{self.mode}'")
        if self.model in ("tiny", "small"):
            self.model = f"{CHAT_ARCHITECTURES[self.mode]}_{self.model}"
        if self.max_eval_messages < 0:
            raise UserError(f"--max-eval-messages: expected 0 (all) or a positive number; got {self.max_eval_messages}")
        return super().validate()


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
        modes={"generative": dict(data=build_generative_chat_data, model=build_translation_model,
                                  loss=lambda cfg, info: token_loss(cfg.label_smoothing),
                                  step_metrics={"token_accuracy": token_accuracy}, metrics=generative_chat_report,
                                  train_batch=bucketed_translation_batch, serving=generative_chat_serving,
                                  core=translation_core)},
        description="chatbot: --mode retrieval, a dual encoder trained with in-batch negatives picks the best known "
                    "reply; --mode generative, a seq2seq Transformer writes one (chatterbot-corpus, YAML, TSV); "
                    "recall@1/5, MRR, perplexity",
    )
