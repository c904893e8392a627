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


def test_init_from_a_classify_run_loads_its_trunk_into_a_unet_and_a_detector(tmp_path, monkeypatch):
    """The classifier's convolutions become the encoder (by name; its grey first kernel
    inflated to colour); the decoder, the extra pyramid stage and the heads start fresh."""
    from types import SimpleNamespace

    from apps.vision.configs import DetectConfig, SegmentConfig
    from shared.image_tasks import build_detector, build_segmenter
    from shared.training.transfer import leaf_layers

    monkeypatch.setenv("DLSUITE_HOME", str(tmp_path))
    source, _ = _train("grey", data="mnist", model="cnn_bn", epochs=1)
    theirs = dict(leaf_layers(runs.load_model(source)))
    info = SimpleNamespace(input_shape=(128, 128, 3), class_names=[f"c{k}" for k in range(11)])
    for config, build in ((SegmentConfig, build_segmenter), (DetectConfig, build_detector)):
        cfg = config.tiny()
        cfg.init_from = source.path
        model = build(cfg, info)
        engine._init_from(model, source.path, verbose=False)
        ours = dict(leaf_layers(model))
        first, second = ours["cnn_block1_conv1"].get_weights()[0], ours["cnn_block2_conv1"].get_weights()[0]
        assert first.shape == (3, 3, 3, 32)
        np.testing.assert_allclose(first, np.repeat(theirs["cnn_block1_conv1"].get_weights()[0], 3, axis=2) / 3)
        np.testing.assert_array_equal(second, theirs["cnn_block2_conv1"].get_weights()[0])
        assert _same(ours["cnn_block2_bn1"].get_weights(), theirs["cnn_block2_bn1"].get_weights())
        assert not any(name.startswith("cnn_head") for name in ours)
        out = model(np.zeros((1, 128, 128, 3), np.uint8))
        assert (out.shape == (1, 128, 128, 11)) if config is SegmentConfig else out["classes"].shape[-1] == 11
    with pytest.raises(UserError, match="--freeze-epochs: only a classifier"):
        engine._init_from(model, source.path, verbose=False, freeze_epochs=1)
    cfg = SegmentConfig.tiny()
    cfg.backbone = "resnet18"
    with pytest.raises(UserError, match="--backbone resnet18: expected one of cnn_bn, "):
        build_segmenter(cfg, info)
