"""Multilayer perceptron over flat (or flattened) feature inputs."""

import keras

from shared.architectures.base import ArgsConfig
from shared.architectures import register
from shared.architectures.cnn import check_activation

NORMALIZATIONS = (None, "batch", "layer")


def apply_dense_block(x, units, activation="relu", dropout=0.0, normalization=None, l2=0.0,
                      name="dense"):
    """Dense → [Batch/LayerNorm] → activation → [Dropout]. `(batch, F)` → `(batch, units)`."""
    regularizer = keras.regularizers.L2(l2) if l2 else None
    x = keras.layers.Dense(
        units, use_bias=normalization != "batch", kernel_regularizer=regularizer,
        name=f"{name}_dense",
    )(x)
    if normalization == "batch":
        x = keras.layers.BatchNormalization(name=f"{name}_bn")(x)
    elif normalization == "layer":
        x = keras.layers.LayerNormalization(name=f"{name}_ln")(x)
    x = keras.layers.Activation(activation, name=f"{name}_act")(x)
    if dropout:
        x = keras.layers.Dropout(dropout, name=f"{name}_dropout")(x)
    return x


@keras.saving.register_keras_serializable(package="dlsuite")
@register(
    "mlp",
    variants={
        # Tabular classifier, e.g. breast cancer (30 features, 2 classes).
        "mlp_classifier": dict(
            input_shape=(30,), widths=(64, 32), activation="relu", dropout=0.2,
            normalization=None, l2=0.0, num_classes=2, output_units=None, output_activation=None,
        ),
        # Image MLP for 28x28 digits (flattened inside).
        "mlp_mnist": dict(
            input_shape=(28, 28, 1), widths=(256, 128), activation="relu", dropout=0.2,
            normalization="batch", l2=0.0, num_classes=10, output_units=None, output_activation=None,
        ),
        # Regression, e.g. diabetes (10 features, 1 target).
        "mlp_regressor": dict(
            input_shape=(10,), widths=(64, 64), activation="gelu", dropout=0.0,
            normalization="layer", l2=1e-4, num_classes=None, output_units=1, output_activation=None,
        ),
    },
)
class MLP(ArgsConfig, keras.Model):
    """Stack of `Dense → [norm] → activation → [dropout]` blocks.

    Args:
        input_shape: shape of one example (e.g. `(30,)`, or `(28, 28, 1)`, flattened
            inside). `input_dim=N` is accepted as shorthand for `input_shape=(N,)`.
        widths: units of each hidden layer (may be empty: a linear/logistic model).
        activation: hidden activation, any `keras.activations` name (relu, sigmoid,
            tanh, gelu, swish, ...).
        dropout: dropout after each hidden layer.
        normalization: None, "batch" or "layer", between Dense and activation.
        l2: L2 weight decay on hidden kernels.
        num_classes: classification output `Dense(num_classes)` with
            `output_activation` (default softmax; sigmoid when num_classes == 1).
        output_units: regression output `Dense(output_units)` (default linear).
            At most one of `num_classes` / `output_units`.
        output_activation: overrides the output activation.

    Output shape: `(batch, num_classes)`, `(batch, output_units)`, or without either
    `(batch, widths[-1])` (features). The output layer computes in float32.
    """

    _ARGS = ("input_shape", "widths", "activation", "dropout", "normalization", "l2", "num_classes",
             "output_units", "output_activation")

    def __init__(
        self,
        input_shape=None,
        widths=(64, 64),
        activation="relu",
        dropout=0.0,
        normalization=None,
        l2=0.0,
        num_classes=None,
        output_units=None,
        output_activation=None,
        input_dim=None,
        name=None,
        **kwargs,
    ):
        if input_dim is not None:
            if input_shape is not None:
                raise ValueError(
                    "Pass only one of `input_shape` and `input_dim`. Received: "
                    f"input_shape={input_shape}, input_dim={input_dim}"
                )
            input_shape = (input_dim,)
        if input_shape is None:
            raise ValueError("`input_shape` (or `input_dim`) is required. Received: input_shape=None")
        if (
            not isinstance(input_shape, (tuple, list)) or not input_shape
            or any(not isinstance(d, int) or d < 1 for d in input_shape)
        ):
            raise ValueError(
                f"`input_shape` must be a non-empty sequence of positive ints. Received: input_shape={input_shape}"
            )
        widths = [widths] if isinstance(widths, int) else list(widths)
        if any(not isinstance(w, int) or w < 1 for w in widths):
            raise ValueError(f"`widths` must be positive ints. Received: widths={widths}")
        check_activation(activation)
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"`dropout` must be in [0, 1). Received: dropout={dropout}")
        if normalization not in NORMALIZATIONS:
            raise ValueError(f"`normalization` must be one of {NORMALIZATIONS}. Received: normalization={normalization}")
        if l2 < 0:
            raise ValueError(f"`l2` must be >= 0. Received: l2={l2}")
        if num_classes is not None and output_units is not None:
            raise ValueError(
                "Pass at most one of `num_classes` and `output_units`. Received: "
                f"num_classes={num_classes}, output_units={output_units}"
            )
        for arg, value in (("num_classes", num_classes), ("output_units", output_units)):
            if value is not None and (not isinstance(value, int) or value < 1):
                raise ValueError(f"`{arg}` must be an int >= 1. Received: {arg}={value}")
        if output_activation is not None:
            check_activation(output_activation, "output_activation")
        if not widths and num_classes is None and output_units is None:
            raise ValueError("An MLP without hidden layers needs an output. Received: widths=[]")

        prefix = "mlp"
        inputs = keras.Input(shape=tuple(input_shape), name=f"{prefix}_features")
        x = inputs
        if len(input_shape) > 1:
            x = keras.layers.Flatten(name=f"{prefix}_flatten")(x)
        for i, w in enumerate(widths):
            x = apply_dense_block(x, w, activation, dropout, normalization, l2, name=f"{prefix}_layer{i + 1}")
        if num_classes is not None or output_units is not None:
            if num_classes is not None:
                units = num_classes
                default = "sigmoid" if num_classes == 1 else "softmax"
            else:
                units, default = output_units, "linear"
            x = keras.layers.Dense(
                units, activation=output_activation or default, dtype="float32",
                name=f"{prefix}_output",
            )(x)
        super().__init__(inputs=inputs, outputs=x, name=name, **kwargs)

        self.input_shape_ = list(input_shape)
        self.widths = widths
        self.activation = activation
        self.dropout = dropout
        self.normalization = normalization
        self.l2 = l2
        self.num_classes = num_classes
        self.output_units = output_units
        self.output_activation = output_activation
