"""A model with its own step (the GAN: two optimizers) trains and resumes under the engine's loop."""

import numpy as np
import tensorflow as tf

from apps.vision.data import load_fashion_mnist
from shared.architectures.gan import GAN, DCGANDiscriminator, DCGANGenerator
from shared.tasks import Data, DataInfo
from shared.training.config import TrainConfig
from shared.training.optim import build_optimizer
from shared.training.trainer import Trainer


def _data():
    x, y, _, _ = load_fashion_mnist()
    images, y = x[:320].astype("float32") / 127.5 - 1.0, y[:320]
    make = lambda a, b: tf.data.Dataset.from_tensor_slices((a, b))  # noqa: E731
    info = DataInfo(input_shape=(28, 28, 1), input_dtype="float32", num_train=256, num_val=64)
    return Data(make(images[:256], y[:256]), make(images[256:], y[256:]), make(images[256:], y[256:]), info)


def _trainer(cfg, checkpoint_dir):
    strategy = tf.distribute.get_strategy()
    with strategy.scope():
        gan = GAN(DCGANGenerator(latent_dim=16, base_filters=16), DCGANDiscriminator(base_filters=16))
        gan.compile(optimizer=build_optimizer(cfg, 256 // cfg.batch_size))
    return gan, Trainer(strategy=strategy, model=gan, optimizer=gan.g_optimizer, data=_data(), loss=None,
                        step_metrics={}, cfg=cfg, checkpoint_dir=checkpoint_dir, monitor="val_g_loss", verbose=False)


def test_gan_trains_and_resumes_under_the_engine(tmp_path):
    cfg = TrainConfig(epochs=2, batch_size=32, learning_rate=2e-4, steps_per_execution=4)
    gan, trainer = _trainer(cfg, str(tmp_path))
    before = [w.numpy().copy() for w in (gan.generator.trainable_weights + gan.discriminator.trainable_weights)]
    history = trainer.fit()
    assert [r["epoch"] for r in history] == [1, 2]
    for record in history:
        assert {"d_loss", "g_loss", "val_d_loss", "val_g_loss"} <= set(record)
        assert all(np.isfinite(record[k]) for k in ("d_loss", "g_loss", "val_d_loss", "val_g_loss"))
    after = gan.generator.trainable_weights + gan.discriminator.trainable_weights
    assert all(not np.allclose(b, a.numpy()) for b, a in zip(before, after))
    assert int(gan.d_optimizer.iterations.numpy()) == int(gan.g_optimizer.iterations.numpy()) == 16

    cfg.epochs = 3
    resumed, trainer2 = _trainer(cfg, str(tmp_path))
    assert trainer2.restore() == 2
    for a, b in zip(resumed.weights, gan.weights):
        np.testing.assert_array_equal(a.numpy(), b.numpy())
    assert int(resumed.d_optimizer.iterations.numpy()) == 16  # the discriminator's optimizer state too
    assert [r["epoch"] for r in trainer2.fit()] == [3]
