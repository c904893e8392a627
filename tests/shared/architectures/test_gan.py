import os
import subprocess
import sys
import tempfile
import textwrap

import keras
import numpy as np
import pytest
import tensorflow as tf

from shared.architectures.gan import GAN, DCGANDiscriminator, DCGANGenerator
from tests.shared.architectures.harness import run_builder_test

IMG = dict(image_size=8, channels=1, num_upsamples=2, base_filters=4)
LATENT = np.random.default_rng(0).normal(size=(2, 6)).astype("float32")
IMAGES = np.random.default_rng(1).uniform(-1, 1, size=(4, 8, 8, 1)).astype("float32")
LABELS = np.array([0, 2, 1, 2], dtype="int32")
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))

SPECS = {
    "dcgan_generator": lambda: dict(
        init_kwargs=dict(latent_dim=6, **IMG), x=LATENT, expected_output_shape=(2, 8, 8, 1),
    ),
    "dcgan_discriminator": lambda: dict(
        init_kwargs=dict(**IMG), x=IMAGES, expected_output_shape=(4, 1),
        y=np.ones((4, 1), "float32"),  # one direction: robust to BatchNorm stat drift
        loss=keras.losses.BinaryCrossentropy(from_logits=True),
    ),
}


@pytest.mark.parametrize("name", sorted(SPECS))
def test_builder(name):
    cls = {"dcgan_generator": DCGANGenerator, "dcgan_discriminator": DCGANDiscriminator}[name]
    run_builder_test(cls, **SPECS[name]())


def test_conditional_builders():
    gen = run_builder_test(
        DCGANGenerator, dict(latent_dim=6, num_classes=3, embedding_dim=4, **IMG),
        {"latent": LATENT, "labels": LABELS[:2]}, (2, 8, 8, 1),
    )
    out = np.asarray(gen({"latent": LATENT, "labels": LABELS[:2]}))
    assert out.min() >= -1.0 and out.max() <= 1.0
    # The label changes the image for the same latent.
    other = np.asarray(gen({"latent": LATENT, "labels": np.array([1, 1], "int32")}))
    assert not np.allclose(out[0], other[0])
    run_builder_test(
        DCGANDiscriminator, dict(num_classes=3, **IMG),
        {"images": IMAGES, "labels": LABELS}, (4, 1),
        y=np.array([[1.0], [0.0], [1.0], [0.0]], "float32"),
        loss=keras.losses.BinaryCrossentropy(from_logits=True),
    )


def test_variants_shapes():
    from shared.architectures import _BUILDERS, _VARIANTS

    for variant, (arch, kwargs) in _VARIANTS.items():
        if arch == "dcgan_generator":
            model = _BUILDERS.get(arch)(**kwargs)
            size, ch = kwargs["image_size"], kwargs["channels"]
            assert tuple(model.output.shape) == (None, size, size, ch), variant
        elif arch == "dcgan_discriminator":
            model = _BUILDERS.get(arch)(**kwargs)
            assert tuple(model.output.shape) == (None, 1), variant


def _gan(num_classes=None, seed=7):
    return GAN(
        DCGANGenerator(latent_dim=6, num_classes=num_classes, embedding_dim=4, **IMG),
        DCGANDiscriminator(num_classes=num_classes, **IMG),
        seed=seed,
    )


def _weights(model):
    return [v.numpy().copy() for v in model.trainable_variables]


def _all_changed(before, model):
    return all(not np.allclose(a, v.numpy()) for a, v in zip(before, model.trainable_variables))


@pytest.mark.parametrize("conditional", [False, True])
def test_train_step_default_strategy(conditional):
    gan = _gan(num_classes=3 if conditional else None)
    gan.compile(optimizer=keras.optimizers.Adam(2e-3))
    assert gan.d_optimizer is not gan.g_optimizer
    assert gan.d_optimizer.get_config() == gan.g_optimizer.get_config()
    g0, d0 = _weights(gan.generator), _weights(gan.discriminator)
    batch = (IMAGES, LABELS) if conditional else IMAGES
    step = tf.function(lambda b: gan.replica_train_step(b, 4))
    for _ in range(3):
        logs = step(batch)
        assert set(logs) == {"d_loss", "g_loss"}
        assert all(np.isfinite(float(v)) for v in logs.values())
    assert int(gan.g_optimizer.iterations.numpy()) == 3
    assert int(gan.d_optimizer.iterations.numpy()) == 3
    assert _all_changed(g0, gan.generator) and _all_changed(d0, gan.discriminator)

    # The test step computes the same kind of losses and updates nothing.
    g1, d1 = _weights(gan.generator), _weights(gan.discriminator)
    logs = gan.replica_test_step(batch, 4)
    assert all(np.isfinite(float(v)) for v in logs.values())
    assert not _all_changed(g1, gan.generator) and not _all_changed(d1, gan.discriminator)
    for a, v in zip(g1 + d1, gan.generator.trainable_variables + gan.discriminator.trainable_variables):
        np.testing.assert_array_equal(a, v.numpy())


def test_losses_scale_with_global_batch_size():
    gan = _gan()
    gan.compile(optimizer="adam")
    a = gan.replica_test_step(IMAGES, 4)
    b = gan.replica_test_step(IMAGES, 8)  # same replica batch, twice the global batch
    np.testing.assert_allclose(float(b["d_loss"]) * 2, float(a["d_loss"]), rtol=1e-5)


def test_explicit_optimizers_and_errors():
    gan = _gan()
    g_opt, d_opt = keras.optimizers.Adam(1e-4), keras.optimizers.SGD(1e-2)
    gan.compile(g_optimizer=g_opt, d_optimizer=d_opt)
    assert gan.g_optimizer is g_opt and gan.d_optimizer is d_opt
    with pytest.raises(ValueError, match="num_classes"):
        GAN(DCGANGenerator(latent_dim=6, num_classes=3, **IMG), DCGANDiscriminator(**IMG))
    with pytest.raises(ValueError, match="shapes"):
        GAN(DCGANGenerator(latent_dim=6, **IMG), DCGANDiscriminator(**{**IMG, "image_size": 16}))
    with pytest.raises(ValueError, match="image_size"):
        DCGANGenerator(image_size=10, num_upsamples=2)
    with pytest.raises(ValueError, match="latent_dim"):
        DCGANGenerator(latent_dim=0)
    with pytest.raises(ValueError, match="labels"):
        _gan(num_classes=3).replica_test_step(IMAGES, 4)


def test_generate_and_serialization():
    gan = _gan(num_classes=3)
    images = gan.generate(5, seed=3)
    assert tuple(images.shape) == (5, 8, 8, 1)
    np.testing.assert_allclose(images, gan.generate(5, seed=3), atol=1e-6)
    assert not np.allclose(gan.generate(5), gan.generate(5))
    labelled = gan.generate(2, labels=[1, 1], seed=3)
    assert tuple(labelled.shape) == (2, 8, 8, 1)

    clone = GAN.from_config(gan.get_config())
    assert clone.get_config() == gan.get_config()
    assert clone.count_params() == gan.count_params()
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "gan.keras")
        gan.save(path)
        restored = keras.saving.load_model(path, safe_mode=True)
    assert isinstance(restored, GAN)
    np.testing.assert_allclose(restored.generate(5, seed=3), images, atol=1e-6)


def test_checkpoint_tracks_optimizers():
    gan = _gan()
    gan.compile(optimizer=keras.optimizers.Adam(1e-3))
    for _ in range(2):
        gan.replica_train_step(IMAGES, 4)
    with tempfile.TemporaryDirectory() as tmp:
        path = tf.train.Checkpoint(model=gan).save(os.path.join(tmp, "ckpt"))
        fresh = _gan()
        fresh.compile(optimizer=keras.optimizers.Adam(1e-3))
        tf.train.Checkpoint(model=fresh).restore(path).assert_existing_objects_matched()
    assert int(fresh.g_optimizer.iterations.numpy()) == 2
    assert int(fresh.d_optimizer.iterations.numpy()) == 2
    for a, b in zip(gan.d_optimizer.variables, fresh.d_optimizer.variables):
        np.testing.assert_allclose(a.numpy(), b.numpy())
    for a, b in zip(gan.generator.variables, fresh.generator.variables):
        np.testing.assert_allclose(a.numpy(), b.numpy())


def test_fit_on_one_device():
    gan = _gan()
    gan.compile(optimizer=keras.optimizers.Adam(1e-3))
    history = gan.fit(IMAGES, batch_size=2, epochs=1, verbose=0)
    assert np.isfinite(history.history["d_loss"][-1])
    assert int(gan.g_optimizer.iterations.numpy()) == 2


MIRRORED_SCRIPT = textwrap.dedent(
    """
    import json
    import tensorflow as tf
    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
    import keras, numpy as np
    from shared.architectures.gan import GAN, DCGANDiscriminator, DCGANGenerator

    img = dict(image_size=8, channels=1, num_upsamples=2, base_filters=4)
    strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
    x = np.random.default_rng(0).uniform(-1, 1, (8, 8, 8, 1)).astype("float32")
    y = (np.arange(8) % 3).astype("int32")

    def replicas_equal(v):
        vals = [t.numpy() for t in getattr(v.value, "values", [v.value])]
        return len(vals) == 2 and all(np.allclose(vals[0], t) for t in vals)

    results = {}
    for conditional in (False, True):
        nc = 3 if conditional else None
        with strategy.scope():
            gan = GAN(DCGANGenerator(latent_dim=6, num_classes=nc, **img),
                      DCGANDiscriminator(num_classes=nc, **img))
            gan.compile(optimizer=keras.optimizers.Adam(2e-3))
        ds = tf.data.Dataset.from_tensor_slices((x, y) if conditional else x).batch(4)
        dist = strategy.experimental_distribute_dataset(ds)
        g0 = [v.numpy() for v in gan.generator.trainable_variables]
        d0 = [v.numpy() for v in gan.discriminator.trainable_variables]

        @tf.function
        def step(batch):
            out = strategy.run(gan.replica_train_step, args=(batch, 4))
            return {k: strategy.reduce("SUM", v, axis=None) for k, v in out.items()}

        losses = [{k: float(v) for k, v in step(b).items()} for _ in range(2) for b in dist]
        trainable = gan.generator.trainable_variables + gan.discriminator.trainable_variables
        results[str(conditional)] = {
            "losses": losses,
            "steps": int(gan.g_optimizer.iterations.numpy()),
            "g_changed": all(not np.allclose(a, v.numpy()) for a, v in zip(g0, gan.generator.trainable_variables)),
            "d_changed": all(not np.allclose(a, v.numpy()) for a, v in zip(d0, gan.discriminator.trainable_variables)),
            "replicas_in_sync": all(replicas_equal(v) for v in trainable),
        }
    print(json.dumps(results))
    """
)


@pytest.mark.slow
def test_train_step_mirrored_two_cpu_replicas():
    """Unconditional and conditional GAN under MirroredStrategy over 2 logical CPUs
    (a subprocess: logical devices must be configured before TF initializes)."""
    import json

    env = {**os.environ, "PYTHONPATH": ROOT, "TF_CPP_MIN_LOG_LEVEL": "2"}
    proc = subprocess.run(
        [sys.executable, "-c", MIRRORED_SCRIPT],
        capture_output=True, text=True, cwd=ROOT, env=env, timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    results = json.loads(proc.stdout.strip().splitlines()[-1])
    assert set(results) == {"False", "True"}
    for result in results.values():
        assert result["steps"] == 4
        assert len(result["losses"]) == 4
        assert all(np.isfinite(v) for logs in result["losses"] for v in logs.values())
        assert result["g_changed"] and result["d_changed"]
        assert result["replicas_in_sync"]
