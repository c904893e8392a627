"""Transfer learning for any classifier: start from another run's weights (`--init-from RUN`:
every layer but the classification head, matched by name and shape), train the new head with
the rest frozen for `--freeze-epochs K`, then fine-tune everything at `--fine-tune-lr-factor`
times the learning rate.

Frozen layers are left exactly as they are: `trainable = False` also runs BatchNormalization
in inference mode (Keras 3), so neither weights nor moving statistics move."""

import keras
import numpy as np


def leaf_layers(model):
    """(name, layer) of every non-model layer inside `model`, nested models unfolded. Layers
    line up across two runs by name: builders name their layers (`cnn_block1_conv`), while a
    nested model's own name may get a numeric suffix in a process that built another."""
    for layer in model.layers:
        if isinstance(layer, keras.Model):
            yield from leaf_layers(layer)
        else:
            yield layer.name, layer


def head_layer(model):
    """The classification head: the last Dense layer (nested models included)."""
    dense = [layer for _, layer in leaf_layers(model) if isinstance(layer, keras.layers.Dense)]
    if not dense:
        raise ValueError(f"{model.name}: no Dense classification head")
    return dense[-1]


def fitted_weights(ours, theirs):
    """`theirs` (arrays) shaped as the variables `ours`, or None: equal shapes, or a grey
    convolution's kernel inflated to more input channels (repeated over them and divided by
    their number, so a grey image gives the same response)."""
    out = []
    for mine, other in zip(ours, theirs):
        shape = tuple(mine.shape)
        if tuple(other.shape) != shape:
            if not (other.ndim == 4 and other.shape[2] == 1 and shape[:2] + shape[3:] == other.shape[:2] + other.shape[3:]):
                return None
            other = np.repeat(other, shape[2], axis=2) / shape[2]
        out.append(other)
    return out if len(out) == len(ours) == len(theirs) else None


def transfer_weights(model, source):
    """Copies into `model` the weights of every layer of `source` with the same name and
    weight shapes (a grey first convolution inflated to colour: `fitted_weights`), except
    `model`'s classification head when it has one (a segmenter or a detector has none: its
    head's names are its own). Returns (copied names, layers with weights not copied)."""
    theirs = dict(leaf_layers(source))
    heads = [layer for _, layer in leaf_layers(model) if isinstance(layer, keras.layers.Dense)][-1:]
    copied, missed = [], []
    for path, layer in leaf_layers(model):
        if not layer.weights:
            continue
        other = theirs.get(path)
        weights = fitted_weights(layer.weights, other.get_weights()) if other is not None and layer not in heads else None
        if weights is not None:
            layer.set_weights(weights)
            copied.append(path)
        else:
            missed.append(path)
    return copied, missed


def set_backbone_frozen(model, frozen):
    """Freezes (or unfreezes) every layer but the head."""
    head = head_layer(model)
    for _, layer in leaf_layers(model):
        if layer is not head:
            layer.trainable = not frozen


def backbone_weights(model):
    """Copies of every non-head weight (the variables frozen epochs must leave untouched)."""
    head = head_layer(model)
    return [np.array(w) for _, layer in leaf_layers(model) if layer is not head for w in layer.weights]


@keras.saving.register_keras_serializable(package="dlsuite")
class FineTuneSchedule(keras.optimizers.schedules.LearningRateSchedule):
    """`base` (a schedule or a number) until step `boundary`, then `factor` x `base`."""

    def __init__(self, base, boundary, factor):
        self.base = base
        self.boundary = int(boundary)
        self.factor = float(factor)

    def __call__(self, step):
        base = self.base(step) if callable(self.base) else keras.ops.convert_to_tensor(self.base, "float32")
        return keras.ops.where(keras.ops.less(step, self.boundary), base, base * self.factor)

    def get_config(self):
        base = keras.optimizers.schedules.serialize(self.base) if callable(self.base) else self.base
        return {"base": base, "boundary": self.boundary, "factor": self.factor}

    @classmethod
    def from_config(cls, config):
        base = config["base"]
        if isinstance(base, dict):
            base = keras.optimizers.schedules.deserialize(base)
        return cls(base, config["boundary"], config["factor"])
