"""Small engine pieces checked directly: schedules, optimizers, early stopping, registry."""

import keras
import pytest
import tensorflow as tf

from shared.errors import UserError
from shared.registry import Registry
from shared.training.config import TrainConfig
from shared.training.optim import build_optimizer, learning_rate
from shared.training.trainer import Trainer, round_records, shuffle_buffer_size


@pytest.mark.parametrize("name, cls", [("adam", "Adam"), ("adamw", "AdamW"), ("sgd", "SGD"), ("rmsprop", "RMSprop")])
def test_optimizer_choice(name, cls):
    assert type(build_optimizer(TrainConfig(optimizer=name), 10)).__name__ == cls


def test_mixed_float16_wraps_for_loss_scaling():
    assert isinstance(build_optimizer(TrainConfig(precision="mixed_float16"), 10), keras.optimizers.LossScaleOptimizer)


def test_cosine_schedule_with_warmup_values():
    schedule = learning_rate(TrainConfig(epochs=10, learning_rate=1.0, lr_schedule="cosine", warmup_epochs=1), 10)
    assert float(schedule(0)) == pytest.approx(0.0)
    assert float(schedule(10)) == pytest.approx(1.0, rel=1e-3)
    assert float(schedule(100)) == pytest.approx(0.01, rel=1e-2)
    with pytest.raises(UserError, match="--warmup-epochs"):
        learning_rate(TrainConfig(warmup_epochs=1), 10)


class _Stub:
    def __init__(self, history, patience):
        self.history, self.monitor, self.cfg = history, "val_loss", TrainConfig(early_stopping_patience=patience)


@pytest.mark.parametrize("values, patience, stop", [
    ([1.0, 0.9, 0.8], 1, False),
    ([1.0, 0.9, 0.95], 1, True),
    ([1.0, 0.9, 0.95], 2, False),
    ([1.0, 0.9, 0.95, 0.97], 2, True),
])
def test_early_stopping_patience(values, patience, stop):
    stub = _Stub([{"val_loss": v} for v in values], patience)
    assert Trainer._patience_spent(stub, min) is stop


def test_early_stopping_and_best_epoch_look_only_at_the_current_round():
    # round 0 reached 0.5; round 1 (new data) has not improved on its own first epoch for 2 epochs
    history = [{"val_loss": 0.5}, {"val_loss": 0.4}, {"round": 1, "val_loss": 0.9}, {"round": 1, "val_loss": 0.95},
               {"round": 1, "val_loss": 0.97}]
    assert Trainer._patience_spent(_Stub(history, 2), min, round=1) is True
    assert Trainer._patience_spent(_Stub(history[:4], 2), min, round=1) is False
    assert [r["val_loss"] for r in round_records(history, 0)] == [0.5, 0.4]


def test_shuffle_buffer_holds_everything_unless_the_examples_are_large():
    import tensorflow as tf

    def spec(shape, dtype=tf.uint8):
        return (tf.TensorSpec(shape, dtype), tf.TensorSpec([], tf.int32))

    assert shuffle_buffer_size(spec([28, 28, 1]), 54000) == 54000  # Fashion-MNIST: 42 MB, all of it
    assert shuffle_buffer_size(spec([28, 28, 1]), 90000) == 60000
    clip = 16 * 64 * 64 * 3 + 4  # a motion clip and its label
    assert shuffle_buffer_size(spec([16, 64, 64, 3]), 7200) == 512 * 2**20 // clip == 2730
    assert shuffle_buffer_size(spec([16, 64, 64, 3]), 7200, max_bytes=1) == 256
    assert shuffle_buffer_size(spec([None]), 7200, max_bytes=1) == 7200  # no static size: all


def test_registry_unknown_name_lists_known():
    reg = Registry("thing")
    reg.register("b")(1)
    reg.register("a")(2)
    assert reg.names() == ["a", "b"]
    with pytest.raises(UserError, match="unknown thing 'c'; expected one of: a, b"):
        reg.get("c")


class _RoundsTrainer:
    """Records what the engine asks of it; `history` is what a resumed run read back."""

    def __init__(self, history, epochs):
        self.history, self.epochs, self.calls, self.model, self.data = list(history), epochs, [], "model", "data0"

    def use_data(self, data):
        self.data = data

    def fit(self, on_epoch_end=None, until=None, round=0):
        until = self.epochs if until is None else until
        start = len(self.history)
        self.calls.append(("fit", round, start, until, self.data))
        self.history += [{"epoch": e + 1, **({"round": round} if round else {})} for e in range(start, until)]
        return self.history


@pytest.mark.parametrize("done, expected", [
    # a fresh run: round 0, then each round grows the data and trains cfg.epochs more
    ([], [("fit", 0, 0, 2, "data0"), ("grow", 1), ("fit", 1, 2, 4, "data1"), ("grow", 2), ("fit", 2, 4, 6, "data2")]),
    # killed in round 1 after epoch 3: round 1's data is reloaded and training continues there
    ([{}, {}, {"round": 1}], [("grow", 1), ("fit", 1, 3, 4, "data1"), ("grow", 2), ("fit", 2, 4, 6, "data2")]),
])
def test_dagger_rounds_train_in_turn_and_resume_inside_a_round(done, expected, tmp_path):
    from types import SimpleNamespace

    from shared.training.engine import _fit_rounds

    trainer = _RoundsTrainer([{"epoch": i + 1, **r} for i, r in enumerate(done)], epochs=2)

    def grow(model, data, round, directory, cfg):
        trainer.calls.append(("grow", round))
        return f"data{round}"

    task = SimpleNamespace(grow=grow)
    cfg = SimpleNamespace(epochs=2, dagger_rounds=2)
    run = SimpleNamespace(write_history=None, file=lambda *p: str(tmp_path.joinpath(*p)))
    history = _fit_rounds(trainer, task, cfg, run, chief=True)
    assert trainer.calls == expected
    assert [r.get("round", 0) for r in history] == [0, 0, 1, 1, 2, 2]


@pytest.mark.parametrize("name, flags, gpus, tpu, expected", [
    ("float32", {"avx512_bf16"}, [], False, "float32"),  # an explicit choice is kept
    ("mixed_float16", set(), [], False, "mixed_float16"),
    ("auto", {"avx512f", "avx512_bf16"}, [], False, "measure"),
    ("auto", {"amx_bf16"}, [], False, "measure"),  # a CPU with bfloat16 instructions: timed per model
    ("auto", {"avx2", "avx512f"}, [], False, "float32"),  # emulated bfloat16 is slower
    ("auto", set(), [(8, 0)], False, "mixed_bfloat16"),
    ("auto", set(), [(7, 5)], False, "mixed_float16"),
    ("auto", set(), [(6, 1)], False, "float32"),
    ("auto", set(), [], True, "mixed_bfloat16"),
])
def test_precision_auto(name, flags, gpus, tpu, expected):
    from shared.training.precision import resolve_precision

    assert resolve_precision(name, flags=flags, gpus=gpus, tpu=tpu) == expected


def test_cpu_flags_are_read_from_cpuinfo(tmp_path):
    from shared.training.precision import cpu_flags

    (tmp_path / "cpuinfo").write_text("processor\t: 0\nflags\t\t: fpu avx512f avx512_bf16\n")
    assert cpu_flags(str(tmp_path / "cpuinfo")) == {"fpu", "avx512f", "avx512_bf16"}
    assert cpu_flags(str(tmp_path / "missing")) == set()


def test_float32_copy_of_a_mixed_precision_model():
    from types import SimpleNamespace

    import numpy as np

    from shared import architectures
    from shared.training.engine import float32_copy

    task = SimpleNamespace(model=lambda cfg, info: architectures.build("cnn_bn", filters=(4, 8), num_classes=3))
    keras.mixed_precision.set_global_policy("mixed_bfloat16")
    try:
        mixed = task.model(None, None)
        copy = float32_copy(task, None, None, mixed)
        assert keras.mixed_precision.global_policy().name == "float32"  # evaluation and export run in float32
    finally:
        keras.mixed_precision.set_global_policy("float32")
    assert {l.compute_dtype for l in mixed.layers[1:-1]} == {"bfloat16"}
    assert {l.compute_dtype for l in copy.layers} == {"float32"}
    for a, b in zip(mixed.weights, copy.weights):
        np.testing.assert_array_equal(keras.ops.convert_to_numpy(a), keras.ops.convert_to_numpy(b))
    x = np.random.default_rng(0).uniform(size=(4, 28, 28, 1)).astype("float32")
    np.testing.assert_allclose(copy(x), mixed(x), atol=0.05)
    assert float32_copy(task, None, None, copy) is copy


def test_label_smoothing_loss():
    import numpy as np

    from apps.vision.configs import ClassifyConfig
    from shared.tasks import sparse_crossentropy

    y = np.array([0, 2])
    p = np.array([[0.7, 0.2, 0.1], [0.1, 0.3, 0.6]], "float32")
    plain = -np.log(p[[0, 1], y])
    np.testing.assert_allclose(sparse_crossentropy(0.0)(y, p), plain, rtol=1e-5)
    target = 0.9 * np.eye(3)[y] + 0.1 / 3
    np.testing.assert_allclose(sparse_crossentropy(0.1)(y, p), -(target * np.log(p)).sum(-1), rtol=1e-5)
    with pytest.raises(UserError, match="--label-smoothing: expected a number in"):
        ClassifyConfig(label_smoothing=1.0).validate()


def test_one_training_dataset_gives_every_epoch_a_new_seeded_order():
    """`train_batches(start, until)`: `steps_per_epoch` batches per epoch, each epoch a new
    permutation of the data (nothing dropped twice or repeated within an epoch), the same
    orders whenever the same epochs are asked for."""
    from types import SimpleNamespace

    from shared.training.trainer import Trainer

    trainer = object.__new__(Trainer)
    trainer.data = SimpleNamespace(train=tf.data.Dataset.range(10).map(lambda i: (i, i)),
                                   info=SimpleNamespace(num_train=10, preprocess=None, augment=None))
    trainer.cfg, trainer.global_batch, trainer.steps_per_epoch = SimpleNamespace(seed=3), 5, 2
    trainer.train_batch = lambda ds, n: ds.batch(n, drop_remainder=True)
    batches = [x.numpy().tolist() for x, _, w in trainer.train_batches(0, 3)]
    assert len(batches) == 6
    epochs = [sorted(batches[2 * e] + batches[2 * e + 1]) for e in range(3)]
    assert epochs == [list(range(10))] * 3
    assert len({tuple(batches[2 * e] + batches[2 * e + 1]) for e in range(3)}) == 3  # a new order each epoch
    assert [x.numpy().tolist() for x, _, _ in trainer.train_batches(0, 3)] == batches
