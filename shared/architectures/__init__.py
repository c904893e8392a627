"""Keras architecture builders shared by every app.

Each builder is a functional `keras.Model` subclass (keras-hub style: validated
arguments, `get_config()` round-trip, prefixed layer names) registered here with its
named variants::

    from shared import architectures
    architectures.names()                      # ['cnn', 'resnet', ...]
    architectures.get("resnet")                # the builder class
    architectures.variants("resnet")           # {'resnet18': {...}, ...}
    architectures.build("resnet18", input_shape=(32, 32, 3), num_classes=10)
"""

import importlib

from shared.errors import UserError
from shared.registry import Registry

_BUILDERS = Registry("architecture")
_VARIANTS = {}  # variant name -> (architecture name, kwargs)
_MODULES = (
    "mlp", "cnn", "resnet", "keras_hub_backbone", "recurrent", "transformer",
    "gan", "unet", "audio", "video", "detection", "text_cnn", "tabular", "counterfactual", "metric_learning",
)


def register(name, variants=None):
    """Class decorator: registers a builder under `name` with `{variant: kwargs}`."""

    def decorator(cls):
        _BUILDERS.register(name)(cls)
        cls.registry_name = name
        for variant, kwargs in (variants or {name: {}}).items():
            if variant in _VARIANTS:
                raise ValueError(f"variant '{variant}' is already registered")
            _VARIANTS[variant] = (name, dict(kwargs))
        return cls

    return decorator


def _load():
    for module in _MODULES:
        importlib.import_module(f"{__name__}.{module}")


def names():
    """Registered architecture names."""
    _load()
    return _BUILDERS.names()


def get(name):
    """The builder class registered as `name`."""
    _load()
    return _BUILDERS.get(name)


def variants(name=None):
    """`{variant: kwargs}` of one architecture, or of all when `name` is None."""
    _load()
    return {v: dict(kw) for v, (arch, kw) in _VARIANTS.items() if name in (None, arch)}


def architecture_of(variant):
    """The architecture name a variant belongs to."""
    _load()
    if variant not in _VARIANTS:
        raise UserError(f"unknown variant '{variant}'; expected one of: {', '.join(sorted(_VARIANTS))}")
    return _VARIANTS[variant][0]


def build(name, **kwargs):
    """Builds an architecture or a named variant; `kwargs` override the variant's."""
    _load()
    if name in _VARIANTS:
        arch, defaults = _VARIANTS[name]
        return _BUILDERS.get(arch)(**{**defaults, **kwargs})
    if name in _BUILDERS:
        return _BUILDERS.get(name)(**kwargs)
    raise UserError(
        f"unknown architecture '{name}'; expected one of: {', '.join(sorted(set(_VARIANTS) | set(_BUILDERS.names())))}"
    )
