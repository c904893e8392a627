"""NLP task models: token ids in (the tokenizer runs in tf.data and in front of exports),
shared builders inside."""

import keras

from shared import architectures
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
    return keras.Model(token_ids, out, name=f"sentiment_{cfg.model}")


def sentiment_serving(model, info):
    """{"probabilities": float32 [N, C]} or, for a regression run, {"score": float32 [N]}; the
    input keeps the model's name (`text`, or `token_ids` for the TFLite core)."""
    return as_serving_model(model, model.inputs[0].name, "probabilities" if info.class_names else "score")
