"""Any keras-hub image backbone (built from its config, or loaded from a local preset
directory) + global pooling + an optional classification head.

Presets are not downloaded: `preset_dir` must be a directory written by
`backbone.save_to_preset(dir)` (or an unpacked Kaggle/HF preset with `config.json`).
"""

import inspect
import os

import keras

from shared.architectures import register
from shared.architectures.base import ArgsConfig
from shared.architectures.cnn import (
    apply_classifier_head,
    apply_pooling,
    check_activation,
    check_input_shape,
    check_num_classes,
)
from shared.errors import UserError

_PREFIX = "keras_hub:"
_DROP_KEYS = ("name", "trainable", "dtype")


def _jsonable(value):
    """Tuples → lists (recursively), so configs compare equal after a JSON round trip."""
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    return value


def backbone_class(backbone):
    """`"keras_hub:ResNetBackbone"` → `keras_hub.models.ResNetBackbone` (validated)."""
    import keras_hub

    name = backbone[len(_PREFIX):] if isinstance(backbone, str) and backbone.startswith(_PREFIX) else None
    cls = getattr(keras_hub.models, name, None) if name else None
    if not (isinstance(cls, type) and issubclass(cls, keras_hub.models.Backbone)):
        raise ValueError(
            "`backbone` must name a keras-hub backbone class as 'keras_hub:<Class>', e.g. "
            f"'keras_hub:ResNetBackbone'. Received: backbone={backbone!r}"
        )
    return cls


def load_preset_backbone(preset_dir):
    """Loads a `keras_hub.models.Backbone` (config + weights) from a local preset dir."""
    import keras_hub

    if not os.path.isfile(os.path.join(str(preset_dir), "config.json")):
        raise UserError(
            "`preset_dir` must be a local keras-hub preset directory containing config.json "
            f"(write one with `backbone.save_to_preset(dir)`). Received: preset_dir={preset_dir}"
        )
    return keras_hub.models.Backbone.from_preset(str(preset_dir))


@keras.saving.register_keras_serializable(package="dlsuite")
@register(
    "keras_hub_backbone",
    variants={
        "hub_resnet_tiny": dict(
            backbone="keras_hub:ResNetBackbone",
            backbone_kwargs=dict(
                input_conv_filters=[64], input_conv_kernel_sizes=[3],
                stackwise_num_filters=[64, 32], stackwise_num_blocks=[1, 1],
                stackwise_num_strides=[1, 2], block_type="basic_block",
                use_pre_activation=False, image_shape=[32, 32, 3],
            ),
            preset_dir=None, input_shape=None, pooling="avg", dropout=0.0, num_classes=10,
            head_activation="softmax",
        ),
    },
)
class KerasHubBackbone(ArgsConfig, keras.Model):
    """A keras-hub backbone → global pooling → optional head.

    Args:
        backbone: "keras_hub:<BackboneClass>" (any image `keras_hub.models.Backbone`
            whose output is a `(batch, h, w, C)` feature map).
        backbone_kwargs: constructor kwargs of that class (built offline, random init).
        preset_dir: instead of the two above, a local preset directory; loads its
            architecture and weights. The config then records the resolved class and
            kwargs (`preset_dir=None`), so `.keras` files don't need the directory.
        input_shape: `(H, W, C)`; defaults to the backbone's input shape.
        pooling: "avg", "max" (global) or None (the feature map).
        dropout: dropout before the head.
        num_classes: if set, a float32 `Dense(num_classes, head_activation)` head.
        head_activation: activation of the head.

    Output shape: `(batch, num_classes)`, else `(batch, C)`, or `(batch, h, w, C)` with
    `pooling=None`.
    """

    _ARGS = ("backbone", "backbone_kwargs", "preset_dir", "input_shape", "pooling", "dropout", "num_classes",
             "head_activation")

    def __init__(
        self,
        backbone="keras_hub:ResNetBackbone",
        backbone_kwargs=None,
        preset_dir=None,
        input_shape=None,
        pooling="avg",
        dropout=0.0,
        num_classes=None,
        head_activation="softmax",
        name=None,
        **kwargs,
    ):
        if preset_dir is not None and backbone_kwargs:
            raise ValueError(
                "Pass either `preset_dir` or `backbone_kwargs`, not both. Received: "
                f"preset_dir={preset_dir}, backbone_kwargs={backbone_kwargs}"
            )
        cls = None if preset_dir is not None else backbone_class(backbone)
        if input_shape is not None:
            check_input_shape(input_shape, 3)
        if pooling not in ("avg", "max", None):
            raise ValueError(f"`pooling` must be 'avg', 'max' or None. Received: pooling={pooling}")
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"`dropout` must be in [0, 1). Received: dropout={dropout}")
        check_num_classes(num_classes)
        check_activation(head_activation, "head_activation")
        if num_classes is not None and pooling is None:
            raise ValueError("A head (`num_classes`) needs `pooling`. Received: pooling=None")

        if cls is not None:
            accepted = set(inspect.signature(cls.__init__).parameters) | set(_DROP_KEYS)
            unknown = sorted(set(backbone_kwargs or {}) - accepted)
            if unknown:
                raise ValueError(
                    f"Unknown `backbone_kwargs` {unknown} for {backbone}. "
                    f"Received: backbone_kwargs={backbone_kwargs}"
                )
        if preset_dir is not None:
            net = load_preset_backbone(preset_dir)
        else:
            try:
                net = cls(**(backbone_kwargs or {}))
            except TypeError as e:
                raise ValueError(
                    f"Bad `backbone_kwargs` for {backbone}: {e}. Received: backbone_kwargs={backbone_kwargs}"
                ) from None
        if not isinstance(net.output, keras.KerasTensor) or len(net.output.shape) != 4:
            raise ValueError(
                "The backbone must output one (batch, h, w, C) feature map. "
                f"Received: backbone={type(net).__name__} with output {net.output}"
            )
        resolved = {k: v for k, v in net.get_config().items() if k not in _DROP_KEYS}

        prefix = "hub"
        shape = tuple(input_shape) if input_shape is not None else tuple(net.input.shape[1:])
        inputs = keras.Input(shape=shape, name=f"{prefix}_images")
        x = net(inputs)
        x = apply_pooling(x, pooling, name=prefix)
        if num_classes is not None:
            x = apply_classifier_head(x, num_classes, head_activation, dropout, name=f"{prefix}_head")
        elif dropout:
            x = keras.layers.Dropout(dropout, name=f"{prefix}_dropout")(x)
        super().__init__(inputs=inputs, outputs=x, name=name, **kwargs)

        self.backbone = net
        self.backbone_name = _PREFIX + type(net).__name__
        self.backbone_kwargs = _jsonable(resolved)
        self.input_shape_ = None if input_shape is None else list(input_shape)
        self.pooling = pooling
        self.dropout = dropout
        self.num_classes = num_classes
        self.head_activation = head_activation

    def config_value(self, arg):
        """`backbone` is the resolved class name (the attribute holds the backbone itself) and
        there is no `preset_dir`: the class and kwargs it resolved to are recorded instead."""
        if arg == "backbone":
            return self.backbone_name
        if arg == "backbone_kwargs":
            return dict(self.backbone_kwargs)
        return None if arg == "preset_dir" else super().config_value(arg)
