"""NLP task models: token ids in (the tokenizer runs in tf.data and in front of exports),
shared builders inside."""

import keras

from shared import architectures
from shared.architectures.base import weighted_mean
from shared.data.text import OOV
from shared.errors import UserError
from shared.export.savedmodel import as_serving_model


def build_sentiment_model(cfg, info):
    """token_ids int32 [N, L] -> `cfg.model` (text_cnn, bilstm_classifier, lstm_classifier,
    transformer_classifier_*) -> class probabilities [N, C], or a score [N] for `--target score`."""
    regression = not info.class_names
    kwargs = dict(vocabulary_size=info.extra["vocabulary_size"], num_classes=1 if regression else len(info.class_names),
                  head_activation="linear" if regression else "softmax")
    init = info.extra.get("embedding_init")
    if architectures.architecture_of(cfg.model) == "transformer_classifier":
        kwargs["sequence_length"] = cfg.sequence_length
        if init is not None:
            raise UserError(f"--word-vectors {cfg.word_vectors}: a transformer starts from a `pretrain` run "
                            "(--init-from); pass --word-vectors ''")
    if init is not None:
        kwargs["embedding_dim"] = int(init.shape[1])
    net = architectures.build(cfg.model, **kwargs)
    if init is not None:
        start_embedding(next(l for l in net.layers if isinstance(l, keras.layers.Embedding)), init,
                        cfg.freeze_embedding)
    token_ids = keras.Input(shape=(cfg.sequence_length,), dtype="int32", name="token_ids")
    out = net(token_ids)
    if regression:
        out = keras.layers.Flatten(name="score")(out)[:, 0]
    model = keras.Model(token_ids, out, name=f"sentiment_{cfg.model}")
    if cfg.init_from:
        init_from_pretrained(model, cfg.init_from)
    return model


def start_embedding(embedding, init, freeze=False):
    """Sets a word `keras.layers.Embedding`'s table to `init` (pretrained word vectors,
    `shared.data.word_vectors.embedding_matrix`), kept as is when `freeze`."""
    if tuple(embedding.embeddings.shape) != init.shape:
        raise UserError(f"--word-vectors: {init.shape[1]}-d vectors; the model embeds words in "
                        f"{embedding.embeddings.shape[1]} dimensions (vectors of that size, or another --model)")
    embedding.set_weights([init])
    embedding.trainable = not freeze


def sentiment_serving(model, info):
    """{"probabilities": float32 [N, C]} or, for a regression run, {"score": float32 [N]}; the
    input keeps the model's name (`text`, or `token_ids` for the TFLite core)."""
    return as_serving_model(model, model.inputs[0].name, "probabilities" if info.class_names else "score")


@keras.saving.register_keras_serializable(package="dlsuite")
class MaskTokens(keras.layers.Layer):
    """Masked-LM corruption (Devlin et al., 2019, simplified): each non-padding token is
    chosen with probability `rate`, on every call, at most `max_predictions` per row, and
    replaced by `mask_id` (the unknown-word id: the word vocabulary has no mask token).

    Returns `(corrupted ids [N, L], positions [N, P] int32, weights [N, P] float32)`: the
    chosen positions (padded with unchosen ones, weight 0), so the LM head only scores
    those P positions instead of all L (6x less work at L=64, P=10, measured necessary: a
    [64, 64, 20000] logits batch made an epoch take minutes)."""

    def __init__(self, rate=0.15, mask_id=1, max_predictions=10, seed=None, **kwargs):
        super().__init__(**kwargs)
        if not 0.0 < rate < 1.0:
            raise ValueError(f"`rate` must be in (0, 1). Received: rate={rate}")
        if not isinstance(max_predictions, int) or max_predictions < 1:
            raise ValueError(f"`max_predictions` must be a positive int. Received: max_predictions={max_predictions}")
        self.rate, self.mask_id, self.max_predictions, self.seed = rate, mask_id, max_predictions, seed
        self.seed_generator = keras.random.SeedGenerator(seed)

    def call(self, token_ids):
        ops = keras.ops
        u = keras.random.uniform(ops.shape(token_ids), seed=self.seed_generator)
        chosen = ops.logical_and(u < self.rate, ops.not_equal(token_ids, 0))
        score = ops.where(chosen, 1.0 + u, u * 0.5)  # chosen first, then any others
        k = min(self.max_predictions, token_ids.shape[1])
        top, positions = ops.top_k(score, k)
        selected = ops.logical_and(chosen, score >= top[:, -1:])  # at most k chosen per row
        weights = ops.cast(ops.take_along_axis(selected, positions, axis=1), "float32")
        corrupted = ops.where(selected, ops.cast(self.mask_id, token_ids.dtype), token_ids)
        return corrupted, ops.cast(positions, "int32"), weights

    def compute_output_spec(self, token_ids):
        k = min(self.max_predictions, token_ids.shape[1])
        return (keras.KerasTensor(token_ids.shape, token_ids.dtype), keras.KerasTensor((token_ids.shape[0], k), "int32"),
                keras.KerasTensor((token_ids.shape[0], k), "float32"))

    def get_config(self):
        return {**super().get_config(), "rate": self.rate, "mask_id": self.mask_id,
                "max_predictions": self.max_predictions, "seed": self.seed}


ENCODER = "encoder"


def text_encoder(cfg, vocabulary_size):
    """The token-sequence encoder of a `transformer_classifier_*` variant: token ids [N, L] ->
    [N, L, hidden], its layers named as inside the classifier (so weights carry over by name)."""
    if architectures.architecture_of(cfg.model) != "transformer_classifier":
        raise UserError(f"--model {cfg.model}: pretraining needs a transformer_classifier_* model")
    net = architectures.build(cfg.model, vocabulary_size=vocabulary_size, sequence_length=cfg.sequence_length)
    last = max(i for i, layer in enumerate(net.layers) if "_encoder_layer" in layer.name)
    return keras.Model(net.inputs, net.layers[last].output, name=ENCODER)


def build_masked_lm(cfg, info):
    """token ids -> MaskTokens -> encoder -> the masked positions' states -> Dense(vocabulary)
    logits; outputs `logits` [N, P, V], `targets` [N, P] (the original ids there) and
    `weights` [N, P] (1 where a token was masked) for the loss."""
    vocabulary = info.extra["vocabulary_size"]
    token_ids = keras.Input(shape=(cfg.sequence_length,), dtype="int32", name="token_ids")
    predictions = max(1, int(round(cfg.mask_rate * cfg.sequence_length * 1.5)))
    corrupted, positions, weights = MaskTokens(cfg.mask_rate, OOV, predictions, seed=cfg.seed,
                                               name="mlm_mask")(token_ids)
    sequence = text_encoder(cfg, vocabulary)(corrupted)
    states = keras.ops.take_along_axis(sequence, keras.ops.expand_dims(positions, -1), axis=1)
    logits = keras.layers.Dense(vocabulary, dtype="float32", name="mlm_head")(states)
    targets = keras.layers.Identity(name="targets")(keras.ops.take_along_axis(token_ids, positions, axis=1))
    return keras.Model(token_ids, {"logits": logits, "targets": targets, "weights": weights},
                       name=f"masked_lm_{cfg.model}")


def masked_lm_loss(y_true, y_pred):
    """Per-example mean cross-entropy over the masked positions (0 where none was masked)."""
    ce = keras.losses.sparse_categorical_crossentropy(y_pred["targets"], y_pred["logits"], from_logits=True)
    return weighted_mean(ce, y_pred["weights"])


def masked_accuracy(y_true, y_pred):
    """Step metric: the share of masked tokens predicted exactly."""
    hit = keras.ops.cast(keras.ops.equal(keras.ops.argmax(y_pred["logits"], -1),
                                         keras.ops.cast(y_pred["targets"], "int64")), "float32")
    return weighted_mean(hit, y_pred["weights"])


def find_layer(model, name):
    """The layer named `name` in `model` or its nested models (depth first), or None."""
    for layer in model.layers:
        if layer.name == name:
            return layer
        if isinstance(layer, keras.Model):
            found = find_layer(layer, name)
            if found is not None:
                return found
    return None


def embedding_serving(model, info):
    """{"embedding": float32 [N, hidden]}: the encoder's mean over non-padding tokens (no
    masking), from the raw `text` (or `token_ids` for the TFLite core)."""
    source = model.inputs[0]
    x = keras.Input(shape=tuple(source.shape[1:]), dtype=source.dtype, name=source.name)
    token_ids = info.preprocess(x) if source.dtype == "string" else x
    sequence = find_layer(model, ENCODER)(token_ids)
    pooled = weighted_mean(sequence, keras.ops.expand_dims(keras.ops.not_equal(token_ids, 0), -1))
    return keras.Model(x, {"embedding": keras.layers.Identity(name="embedding", dtype="float32")(pooled)},
                       name="embedding_serving")


def init_from_pretrained(model, run_path):
    """Copies the encoder weights of a `pretrain` run into `model`'s layers of the same names."""
    from shared.training.runs import load_model
    from shared.training.rundir import open_run

    encoder = find_layer(load_model(open_run(run_path)), ENCODER)
    copied = 0
    for layer in encoder.layers:
        target = find_layer(model, layer.name)
        if target is not None and layer.weights:
            target.set_weights(layer.get_weights())
            copied += 1
    if not copied:
        raise UserError(f"--init-from {run_path}: no encoder layer matches --model's layers")
    return copied
