"""The NLP app's configs: one dataclass per task (every field is a `dl-nlp train TASK` flag)
and `CONFIGS`, task name -> config class. Imports no TensorFlow, so flags are parsed and
checked before it starts."""

from dataclasses import dataclass

from shared.errors import UserError
from shared.training.config import TrainConfig


CHAT_ARCHITECTURES = {"retrieval": "transformer_dual_encoder", "generative": "transformer_seq2seq"}


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
    hold_out: str = ""  # --data vader: train on the other sources, test on every sentence of this one
    init_from: str = ""  # a `pretrain` run: its tokenizer and encoder weights (same --model)
    # the word embedding's start (shared/data/word_vectors.py): english (the library's word2vec),
    # a word2vec / GloVe file, or '' (random)
    word_vectors: str = "english"
    freeze_embedding: bool = False  # keep the pretrained word vectors as they are (README: worse here)
    # afinn (AFINN-165), a word<TAB>rating file or '': its words join the training split as
    # one-word examples of their rating's sign (a polarity task only)
    lexicon: str = "afinn"
    # the training text's words (~26k on vader), then the vectors' most frequent others
    vocabulary_size: int = 50000
    model: str = "text_cnn"
    epochs: int = 8
    batch_size: int = 32  # README: +0.011 ROC AUC in domain over 64, on 3 seeds

    @classmethod
    def tiny(cls):
        cfg = super().tiny()
        cfg.model, cfg.word_vectors, cfg.lexicon = "text_cnn_tiny", "", ""
        return cfg

    def validate(self):
        super().validate()
        if self.target not in ("polarity", "score"):
            raise UserError(f"--target: expected polarity or score; got '{self.target}'")
        if self.hold_out:
            from apps.nlp.data import VADER_SOURCES

            if self.data != "vader":
                raise UserError(f"--hold-out {self.hold_out}: only with --data vader (its sources)")
            if self.hold_out not in VADER_SOURCES:
                raise UserError(f"--hold-out {self.hold_out}: expected one of {', '.join(VADER_SOURCES)}")
        return self


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


@dataclass
class GenerateConfig(TrainConfig):
    """Byte-level language model for text generation. `--data fortunes | text:PATH | tfds:NAME`."""

    data: str = "fortunes"
    data_dir: str = ""
    download: bool = False
    model: str = "transformer_lm_mini"
    sequence_length: int = 256  # training window and the transformer's context, in bytes
    epochs: int = 9  # 2.42 bits/char, 26 min in all here (3 epochs: 2.89, 9.2 min; README)
    # 8 windows (2,048 bytes) a step: the model was starved of updates at 32 (270 a pass over the
    # fortunes): 3 epochs gave 3.41 bits/char at 32, 2.89 at 8 (8.6 vs 9.2 min here)
    batch_size: int = 8
    learning_rate: float = 1e-3
    lr_schedule: str = "cosine"
    jit_compile: bool = False  # XLA measured 0.65x the examples/s here (dlsuite bench; 1.33x on another CPU)
    early_stopping_patience: int = 3
    # the newest byte LM pretrained on the English library (`--data english`, built once), if any
    init_from: str = "auto"

    @classmethod
    def tiny(cls):
        return cls(model="transformer_lm_tiny", sequence_length=32, epochs=2, batch_size=16, max_train_examples=256,
                   steps_per_execution=4, export="", early_stopping_patience=0, jit_compile=False, init_from="")

    def validate(self):
        super().validate()
        if self.sequence_length < 2:
            raise UserError(f"--sequence-length: expected at least 2 bytes; got {self.sequence_length}")
        return self


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
    dropout: float = 0.1  # the Transformer's (embeddings, attention, feed-forward); low-resource studies use 0.3
    beam_size: int = 4  # the export's and evaluation's beam search (1: greedy)
    length_penalty: float = 1.0  # hypotheses ranked by log-prob / length ** this

    def validate(self):
        super().validate()
        if not 0 <= self.label_smoothing < 1:
            raise UserError(f"--label-smoothing: expected a fraction in [0, 1); got {self.label_smoothing}")
        if not 0 <= self.dropout < 1:
            raise UserError(f"--dropout: expected a fraction in [0, 1); got {self.dropout}")
        if self.beam_size < 1:
            raise UserError(f"--beam-size: expected a positive number; got {self.beam_size}")
        return self


@dataclass
class TranslateConfig(Seq2SeqConfig):
    """Translation. `--data gettext:es|fr|de | gettext+help:es | tsv:PATH | tfds:NAME` (English ->)."""

    # the catalogs and LibreOffice's help pages (36k training pairs; validation and test: the catalogs')
    data: str = "gettext+help:es"
    data_dir: str = ""
    download: bool = False
    model: str = "transformer_seq2seq_small"
    shared_vocabulary: bool = True  # one vocabulary for both languages (names, numbers, placeholders copy)
    max_test_sentences: int = 0  # 0: the whole test split
    precision: str = "auto"  # bfloat16 where measured faster on this machine (1.7x on one, 1.2x on another)
    # low-resource subwords (Sennrich & Zhang 2019): 4k pieces gave BLEU 26.3 where 8k gave 15.1 (README)
    vocabulary_size: int = 4000
    epochs: int = 9  # ~26 min here on 36k pairs
    batch_size: int = 64
    learning_rate: float = 1e-3
    lr_schedule: str = "cosine"
    early_stopping_patience: int = 3

    @classmethod
    def tiny(cls):
        return cls(data="gettext:es", model="transformer_seq2seq_tiny", epochs=2, batch_size=32,
                   max_train_examples=512, max_test_sentences=32, vocabulary_size=400, sequence_length=32, beam_size=2,
                   steps_per_execution=4, export="", early_stopping_patience=0, precision="float32")

    def validate(self):
        super().validate()
        if self.max_test_sentences < 0:
            raise UserError(f"--max-test-sentences: expected 0 (all) or a positive number; got {self.max_test_sentences}")
        return self


@dataclass
class ChatConfig(Seq2SeqConfig):
    """Chatbot. `--mode retrieval | generative`; `--data chatterbot | yaml:DIR | tsv:PATH`; `--language` for chatterbot."""

    mode: str = "retrieval"  # retrieval: the best-scoring known reply; generative: a reply written by beam search
    data: str = "chatterbot"
    language: str = "english"  # chatterbot-corpus's folder
    model: str = "small"  # a model name, or tiny | small: the mode's model of that size
    max_eval_messages: int = 0  # validation and test message variants at most (0: one per pair)
    # retrieval: the token embedding's start, as sentiment's (shared/data/word_vectors.py); '' random
    word_vectors: str = "english"
    freeze_embedding: bool = False
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
                   early_stopping_patience=0, word_vectors="")

    def validate(self):
        if self.mode not in CHAT_ARCHITECTURES:
            raise UserError(f"--mode: expected one of {', '.join(CHAT_ARCHITECTURES)}; got '{self.mode}'")
        if self.model in ("tiny", "small"):
            self.model = f"{CHAT_ARCHITECTURES[self.mode]}_{self.model}"
        if self.max_eval_messages < 0:
            raise UserError(f"--max-eval-messages: expected 0 (all) or a positive number; got {self.max_eval_messages}")
        if self.mode == "generative":  # its seq2seq starts from random: only another file is a mistake
            if self.word_vectors not in ("", "english"):
                raise UserError(f"--word-vectors {self.word_vectors}: only for --mode retrieval")
            self.word_vectors = ""
        return super().validate()


CONFIGS = {"sentiment": SentimentConfig, "pretrain": PretrainConfig, "generate": GenerateConfig, "translate": TranslateConfig, "chat": ChatConfig}
