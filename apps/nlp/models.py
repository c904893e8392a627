"""NLP task models: token ids in (the tokenizer runs in tf.data and in front of exports),
shared builders inside."""

import keras

from shared import architectures
from shared.data.text import OOV
from shared.errors import UserError
from shared.export.savedmodel import as_serving_model


def build_sentiment_model(cfg, info):
    """token_ids int32 [N, L] -> `cfg.model` (text_cnn, bilstm_classifier, lstm_classifier,
    transformer_classifier_*) -> class probabilities [N, C], or a score [N] for `--target score`."""
    regression = not info.class_names
    kwargs = dict(vocabulary_size=info.extra["vocabulary_size"], num_classes=1 if regression else len(info.class_names),
                  head_activation="linear" if regression else "softmax")
    if architectures.architecture_of(cfg.model) == "transformer_classifier":
        kwargs["sequence_length"] = cfg.sequence_length
    net = architectures.build(cfg.model, **kwargs)
    token_ids = keras.Input(shape=(cfg.sequence_length,), dtype="int32", name="token_ids")
    out = net(token_ids)
    if regression:
        out = keras.layers.Flatten(name="score")(out)[:, 0]
    model = keras.Model(token_ids, out, name=f"sentiment_{cfg.model}")
    if cfg.init_from:
        init_from_pretrained(model, cfg.init_from)
    return model


def sentiment_serving(model, info):
    """{"probabilities": float32 [N, C]} or, for a regression run, {"score": float32 [N]}; the
    input keeps the model's name (`text`, or `token_ids` for the TFLite core)."""
    return as_serving_model(model, model.inputs[0].name, "probabilities" if info.class_names else "score")


@keras.saving.register_keras_serializable(package="dlsuite")
class MaskTokens(keras.layers.Layer):
    """Masked-LM corruption (Devlin et al., 2019, simplified): each non-padding token is
    chosen with probability `rate`, on every call, and replaced by `mask_id` (the unknown-word
    id: the word vocabulary has no mask token). Returns `(corrupted ids, float weights of
    the chosen positions)`."""

    def __init__(self, rate=0.15, mask_id=1, seed=None, **kwargs):
        super().__init__(**kwargs)
        if not 0.0 < rate < 1.0:
            raise ValueError(f"`rate` must be in (0, 1). Received: rate={rate}")
        self.rate, self.mask_id, self.seed = rate, mask_id, seed
        self.seed_generator = keras.random.SeedGenerator(seed)

    def call(self, token_ids):
        chosen = keras.ops.logical_and(
            keras.random.uniform(keras.ops.shape(token_ids), seed=self.seed_generator) < self.rate,
            keras.ops.not_equal(token_ids, 0))
        corrupted = keras.ops.where(chosen, keras.ops.cast(self.mask_id, token_ids.dtype), token_ids)
        return corrupted, keras.ops.cast(chosen, "float32")

    def compute_output_spec(self, token_ids):
        return (keras.KerasTensor(token_ids.shape, token_ids.dtype), keras.KerasTensor(token_ids.shape, "float32"))

    def get_config(self):
        return {**super().get_config(), "rate": self.rate, "mask_id": self.mask_id, "seed": self.seed}


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
    """token ids -> MaskTokens -> encoder -> Dense(vocabulary) logits; outputs `logits`,
    `targets` (the uncorrupted ids) and `weights` (the masked positions) for the loss."""
    vocabulary = info.extra["vocabulary_size"]
    token_ids = keras.Input(shape=(cfg.sequence_length,), dtype="int32", name="token_ids")
    corrupted, weights = MaskTokens(cfg.mask_rate, OOV, seed=cfg.seed, name="mlm_mask")(token_ids)
    logits = keras.layers.Dense(vocabulary, dtype="float32", name="mlm_head")(text_encoder(cfg, vocabulary)(corrupted))
    targets = keras.layers.Identity(name="targets")(token_ids)
    return keras.Model(token_ids, {"logits": logits, "targets": targets, "weights": weights},
                       name=f"masked_lm_{cfg.model}")


def masked_lm_loss(y_true, y_pred):
    """Per-example mean cross-entropy over the masked positions (0 where none was masked)."""
    ce = keras.losses.sparse_categorical_crossentropy(y_pred["targets"], y_pred["logits"], from_logits=True)
    weights = y_pred["weights"]
    return keras.ops.sum(ce * weights, axis=1) / keras.ops.maximum(keras.ops.sum(weights, axis=1), 1.0)


def masked_accuracy(y_true, y_pred):
    """Step metric: the share of masked tokens predicted exactly."""
    hit = keras.ops.cast(keras.ops.equal(keras.ops.argmax(y_pred["logits"], -1),
                                         keras.ops.cast(y_pred["targets"], "int64")), "float32")
    weights = y_pred["weights"]
    return keras.ops.sum(hit * weights, axis=1) / keras.ops.maximum(keras.ops.sum(weights, axis=1), 1.0)


def _find(model, name):
    for layer in model.layers:
        if layer.name == name:
            return layer
        if isinstance(layer, keras.Model):
            found = _find(layer, name)
            if found is not None:
                return found
    return None


def embedding_serving(model, info):
    """{"embedding": float32 [N, hidden]}: the encoder's mean over non-padding tokens (no
    masking), from the raw `text` (or `token_ids` for the TFLite core)."""
    source = model.inputs[0]
    x = keras.Input(shape=tuple(source.shape[1:]), dtype=source.dtype, name=source.name)
    token_ids = info.preprocess(x) if source.dtype == "string" else x
    sequence = _find(model, ENCODER)(token_ids)
    weights = keras.ops.cast(keras.ops.expand_dims(keras.ops.not_equal(token_ids, 0), -1), sequence.dtype)
    pooled = keras.ops.sum(sequence * weights, axis=1) / keras.ops.maximum(keras.ops.sum(weights, axis=1), 1.0)
    return keras.Model(x, {"embedding": keras.layers.Identity(name="embedding", dtype="float32")(pooled)},
                       name="embedding_serving")


def init_from_pretrained(model, run_path):
    """Copies the encoder weights of a `pretrain` run into `model`'s layers of the same names."""
    from shared.training.engine import load_model
    from shared.training.rundir import open_run

    encoder = _find(load_model(open_run(run_path)), ENCODER)
    copied = 0
    for layer in encoder.layers:
        target = _find(model, layer.name)
        if target is not None and layer.weights:
            target.set_weights(layer.get_weights())
            copied += 1
    if not copied:
        raise UserError(f"--init-from {run_path}: no encoder layer matches --model's layers")
    return copied
