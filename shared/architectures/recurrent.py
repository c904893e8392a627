"""Recurrent sequence models: stacked SimpleRNN / LSTM / GRU, optionally bidirectional.

Inputs are either integer token ids (`vocabulary_size` set; id 0 is padding and is
masked through `Embedding(mask_zero=True)`) or float feature sequences
(`input_shape=(None, F)`; all-zero steps are masked through `Masking(0.0)`), so padded
steps never change the result.
"""

import keras

from shared.architectures.base import ArgsConfig
from shared.architectures import register
from shared.architectures.cnn import check_activation

_CELLS = {
    "simple_rnn": keras.layers.SimpleRNN,
    "lstm": keras.layers.LSTM,
    "gru": keras.layers.GRU,
}


def bidirectional_wrapper(layer, merge_mode="concat", name=None):
    """`keras.layers.Bidirectional(layer)` that also loads reliably from a `.keras` file.

    Keras bug (keras 3.15, `serialization_lib.ObjectSharingScope`): while `load_model`
    runs, every object serialized is remembered by `id(obj)`. `Bidirectional.__init__`
    serializes the `layer` it wraps, and once that template layer is garbage-collected its
    id can be reused by the next template (the next stacked layer, or another model in
    the same load); Keras then takes it for a "shared" object and hands back the earlier
    layer, so forward and backward both get `go_backwards=True` and loading fails
    ("Forward layer and backward layer should have different `go_backwards` value")
    depending on memory layout, i.e. at random with `PYTHONHASHSEED`. The workaround
    keeps the template alive for as long as the wrapper, so its id is never reused;
    it is stored untracked, so weights and saved files are unchanged.
    """
    wrapper = keras.layers.Bidirectional(layer, merge_mode=merge_mode, name=name)
    object.__setattr__(wrapper, "_dlsuite_template", layer)
    return wrapper


def apply_recurrent_block(
    x, cell, units, bidirectional=False, return_sequences=True, dropout=0.0, name="rnn"
):
    """One (bi)directional recurrent layer. `x`: `(batch, steps, features)`, masked or not.

    Returns `(batch, steps, d)` if `return_sequences` else `(batch, d)`, with
    `d = 2 * units` when bidirectional (forward and backward concatenated), else `units`.
    """
    layer = _CELLS[cell](
        units, return_sequences=return_sequences, dropout=dropout, name=f"{name}_{cell}"
    )
    if bidirectional:
        layer = bidirectional_wrapper(layer, name=f"{name}_bidirectional")
    return layer(x)


@keras.saving.register_keras_serializable(package="dlsuite")
@register(
    "recurrent",
    variants={
        "lstm_classifier": dict(
            cell="lstm", units=(64,), bidirectional=False, vocabulary_size=10000,
            embedding_dim=64, input_shape=None, return_sequences=False, num_classes=2,
            dropout=0.0,
        ),
        "bilstm_classifier": dict(
            cell="lstm", units=(64, 64), bidirectional=True, vocabulary_size=10000,
            embedding_dim=64, input_shape=None, return_sequences=False, num_classes=2,
            dropout=0.0,
        ),
        "gru_tagger": dict(
            cell="gru", units=(64,), bidirectional=True, vocabulary_size=10000,
            embedding_dim=64, input_shape=None, return_sequences=True, num_classes=10,
            dropout=0.0,
        ),
        "gru_sequence_encoder": dict(
            cell="gru", units=(64,), bidirectional=False, vocabulary_size=None,
            embedding_dim=None, input_shape=(None, 16), return_sequences=False,
            num_classes=None, dropout=0.0,
        ),
        # byte-level language models (`dl-nlp train generate`): next-byte logits per step
        "lstm_lm": dict(
            cell="lstm", units=(512,), bidirectional=False, vocabulary_size=257,
            embedding_dim=64, input_shape=None, return_sequences=True, num_classes=257,
            dropout=0.0, head_activation="linear",
        ),
        "lstm_lm_tiny": dict(
            cell="lstm", units=(32,), bidirectional=False, vocabulary_size=257,
            embedding_dim=16, input_shape=None, return_sequences=True, num_classes=257,
            dropout=0.0, head_activation="linear",
        ),
        "simple_rnn_classifier": dict(
            cell="simple_rnn", units=(32,), bidirectional=False, vocabulary_size=1000,
            embedding_dim=32, input_shape=None, return_sequences=False, num_classes=2,
            dropout=0.0,
        ),
    },
)
class RecurrentNet(ArgsConfig, keras.Model):
    """Stacked recurrent network over token ids or feature sequences.

    Args:
        cell: `"simple_rnn"`, `"lstm"` or `"gru"`.
        units: units of each recurrent layer (an int or a sequence of ints).
        bidirectional: wrap every layer in `keras.layers.Bidirectional` (concat).
        vocabulary_size: if set, inputs are int token ids `(batch, steps)` with 0 =
            padding, embedded with `embedding_dim` and masked.
        embedding_dim: embedding width (token inputs only).
        input_shape: `(steps, features)` of float inputs (`steps` may be None);
            required when `vocabulary_size` is None. All-zero steps are masked.
        return_sequences: per-step outputs instead of the last state.
        num_classes: if set, a `Dense(num_classes, head_activation)` head (float32).
        dropout: input dropout of each recurrent layer.
        head_activation: activation of the head ("linear" for regression).

    Output shape: `(batch, d)` or, with `return_sequences`, `(batch, steps, d)`, where
    `d = num_classes` with a head, else the last layer's units (×2 if bidirectional).
    With `return_sequences`, outputs at padded steps are meaningless (zeros or the
    carried state) and should be masked by the loss.
    """

    _ARGS = ("cell", "units", "bidirectional", "vocabulary_size", "embedding_dim", "input_shape",
             "return_sequences", "num_classes", "dropout", "head_activation")

    def __init__(
        self,
        cell="lstm",
        units=(64,),
        bidirectional=False,
        vocabulary_size=None,
        embedding_dim=64,
        input_shape=None,
        return_sequences=False,
        num_classes=None,
        dropout=0.0,
        head_activation="softmax",
        name=None,
        **kwargs,
    ):
        if cell not in _CELLS:
            raise ValueError(f"`cell` must be one of {sorted(_CELLS)}. Received: cell={cell}")
        units = [units] if isinstance(units, int) else list(units)
        if not units or any(not isinstance(u, int) or u <= 0 for u in units):
            raise ValueError(f"`units` must be positive ints. Received: units={units}")
        if vocabulary_size is None and input_shape is None:
            raise ValueError(
                "Pass `vocabulary_size` (token inputs) or `input_shape` (feature inputs). "
                "Received: vocabulary_size=None, input_shape=None"
            )
        if vocabulary_size is not None and input_shape is not None:
            raise ValueError(
                "Pass only one of `vocabulary_size` and `input_shape`. Received: "
                f"vocabulary_size={vocabulary_size}, input_shape={input_shape}"
            )
        if vocabulary_size is not None and (vocabulary_size < 2 or not embedding_dim or embedding_dim <= 0):
            raise ValueError(
                "`vocabulary_size` must be >= 2 and `embedding_dim` positive. Received: "
                f"vocabulary_size={vocabulary_size}, embedding_dim={embedding_dim}"
            )
        if input_shape is not None and len(input_shape) != 2:
            raise ValueError(
                f"`input_shape` must be (steps, features). Received: input_shape={input_shape}"
            )
        if num_classes is not None and num_classes < 1:
            raise ValueError(f"`num_classes` must be >= 1. Received: num_classes={num_classes}")
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"`dropout` must be in [0, 1). Received: dropout={dropout}")
        check_activation(head_activation, "head_activation")
        prefix = "recurrent"

        if vocabulary_size is not None:
            inputs = keras.Input(shape=(None,), dtype="int32", name=f"{prefix}_token_ids")
            x = keras.layers.Embedding(
                vocabulary_size, embedding_dim, mask_zero=True, name=f"{prefix}_embedding"
            )(inputs)
        else:
            inputs = keras.Input(shape=tuple(input_shape), name=f"{prefix}_features")
            x = keras.layers.Masking(mask_value=0.0, name=f"{prefix}_masking")(inputs)
        for i, u in enumerate(units):
            last = i == len(units) - 1
            x = apply_recurrent_block(
                x, cell, u, bidirectional=bidirectional,
                return_sequences=return_sequences or not last, dropout=dropout,
                name=f"{prefix}_layer{i}",
            )
        if num_classes is not None:
            x = keras.layers.Dense(
                num_classes, activation=head_activation, dtype="float32", name=f"{prefix}_head"
            )(x)
        super().__init__(inputs=inputs, outputs=x, name=name, **kwargs)
        self.cell = cell
        self.units = units
        self.bidirectional = bidirectional
        self.vocabulary_size = vocabulary_size
        self.embedding_dim = embedding_dim
        self.input_shape_ = None if input_shape is None else list(input_shape)
        self.return_sequences = return_sequences
        self.num_classes = num_classes
        self.dropout = dropout
        self.head_activation = head_activation
