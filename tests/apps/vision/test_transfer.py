"""Transfer learning: --init-from copies every layer but the head, the frozen epochs leave the
transferred weights bit-identical, fine-tuning then moves them; --backbone-preset does the same
from a local keras-hub preset."""

import os

import keras
import numpy as np
import pytest
import tensorflow as tf

from apps.vision.configs import ClassifyConfig
from apps.vision.tasks import TASKS
from shared.errors import UserError
from shared.training import engine, runs
from shared.training.transfer import FineTuneSchedule, backbone_weights, head_layer


def _train(name, **overrides):
    cfg = ClassifyConfig.tiny()
    cfg.epochs, cfg.max_train_examples = 2, 256
    for key, value in overrides.items():
        setattr(cfg, key, value)
    return engine.train("vision", "classify", TASKS.get("classify")(), cfg, run_name=name, verbose=False), cfg


def _weights_at_epoch(run, cfg, epoch):
    """The classifier as checkpointed after `epoch` (the trainer keeps the last two)."""
    task = TASKS.get("classify")()
    data = engine.load_data(task, cfg)
    model = task.model(cfg, data.info)
    tf.train.Checkpoint(model=model).read(os.path.join(run.file("checkpoints", "last"), f"ckpt-{epoch}")).expect_partial()
    return model


def _same(a, b):
    return len(a) == len(b) and all(np.array_equal(x, y) for x, y in zip(a, b))


def test_init_from_freezes_then_fine_tunes(tmp_path, monkeypatch):
    monkeypatch.setenv("DLSUITE_HOME", str(tmp_path))
    source, _ = _train("source", data="mnist")
    source_model = runs.load_model(source)
    run, cfg = _train("transfer", init_from=source.path, freeze_epochs=1, epochs=2)
    frozen, tuned = _weights_at_epoch(run, cfg, 1), _weights_at_epoch(run, cfg, 2)
    assert _same(backbone_weights(frozen), backbone_weights(source_model))  # bit-identical while frozen
    assert not np.array_equal(head_layer(frozen).get_weights()[0], head_layer(source_model).get_weights()[0])
    assert not _same(backbone_weights(tuned), backbone_weights(frozen))  # then fine-tuned
    schedule = FineTuneSchedule(keras.optimizers.schedules.CosineDecay(0.01, 100), boundary=10, factor=0.1)
    again = FineTuneSchedule.from_config(schedule.get_config())
    for step, expected in ((0, 0.01), (9, float(schedule.base(9))), (10, 0.1 * float(schedule.base(10)))):
        assert float(schedule(step)) == pytest.approx(expected) == pytest.approx(float(again(step)))

    with pytest.raises(UserError, match="--freeze-epochs: needs pretrained layers"):
        ClassifyConfig(freeze_epochs=1).validate()
    with pytest.raises(UserError, match="--init-from"):
        _train("bad", init_from=str(tmp_path / "nowhere"))


def test_backbone_preset_is_loaded_and_frozen(tmp_path, monkeypatch):
    import keras_hub

    monkeypatch.setenv("DLSUITE_HOME", str(tmp_path))
    preset = keras_hub.models.ResNetBackbone(
        input_conv_filters=[64], input_conv_kernel_sizes=[3], stackwise_num_filters=[64, 16],
        stackwise_num_blocks=[1, 1], stackwise_num_strides=[1, 2], block_type="basic_block",
        use_pre_activation=False, image_shape=[None, None, 3])
    preset.save_to_preset(str(tmp_path / "preset"))
    run, cfg = _train("preset", backbone_preset=str(tmp_path / "preset"), freeze_epochs=1, epochs=2)
    frozen = _weights_at_epoch(run, cfg, 1)
    hub = next(layer for layer in frozen.layers[-1].layers if isinstance(layer, keras_hub.models.Backbone))
    assert _same([np.array(w) for w in hub.weights], [np.array(w) for w in preset.weights])
    assert runs.read_metrics(run)["test"]["accuracy"] > 0  # evaluated and exported like any run
