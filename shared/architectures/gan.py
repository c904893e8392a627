"""DCGAN (Radford et al. 2015) generator and discriminator, their class-conditional
variants, and `GAN`, a model that owns both and trains them with its own step.

Images are in [-1, 1] (the generator ends in tanh). With `num_classes` set, both networks
take a second input, an int class label `(batch,)`, through a learned embedding: the
generator concatenates it to the latent vector, the discriminator projects it to an extra
image channel.

`GAN` meets the training engine's custom-loop contract (`replica_train_step`,
`replica_test_step`, called inside `strategy.run`; see its docstring) and also works with
`fit` on a single device.
"""

import keras
import tensorflow as tf

from shared.architectures import register
from shared.architectures.base import ArgsConfig


def _check_image(image_size, channels, num_upsamples, base_filters, num_classes):
    for arg, value in dict(image_size=image_size, channels=channels, num_upsamples=num_upsamples,
                           base_filters=base_filters).items():
        if not isinstance(value, int) or value <= 0:
            raise ValueError(f"`{arg}` must be a positive int. Received: {arg}={value}")
    if image_size % (2**num_upsamples):
        raise ValueError(
            "`image_size` must be divisible by 2**num_upsamples. Received: "
            f"image_size={image_size}, num_upsamples={num_upsamples}"
        )
    if num_classes is not None and (not isinstance(num_classes, int) or num_classes < 2):
        raise ValueError(f"`num_classes` must be None or >= 2. Received: num_classes={num_classes}")


def apply_upsample_block(x, filters, name):
    """Conv2DTranspose(4, stride 2) -> BatchNorm -> ReLU. `(b, h, w, c)` -> `(b, 2h, 2w, filters)`."""
    x = keras.layers.Conv2DTranspose(filters, 4, strides=2, padding="same", use_bias=False,
                                     name=f"{name}_conv_transpose")(x)
    x = keras.layers.BatchNormalization(name=f"{name}_bn")(x)
    return keras.layers.ReLU(name=f"{name}_relu")(x)


def apply_downsample_block(x, filters, batch_norm, name):
    """Conv2D(4, stride 2) -> [BatchNorm] -> LeakyReLU(0.2). `(b, h, w, c)` -> `(b, h/2, w/2, filters)`."""
    x = keras.layers.Conv2D(filters, 4, strides=2, padding="same", use_bias=not batch_norm,
                            name=f"{name}_conv")(x)
    if batch_norm:
        x = keras.layers.BatchNormalization(name=f"{name}_bn")(x)
    return keras.layers.LeakyReLU(0.2, name=f"{name}_leaky_relu")(x)




_MNIST = dict(image_size=28, channels=1, num_upsamples=2, base_filters=64)
_RGB64 = dict(image_size=64, channels=3, num_upsamples=4, base_filters=64)


@keras.saving.register_keras_serializable(package="dlsuite")
@register(
    "dcgan_generator",
    variants={
        "dcgan_mnist_generator": dict(latent_dim=100, num_classes=None, embedding_dim=50, **_MNIST),
        "cdcgan_mnist_generator": dict(latent_dim=100, num_classes=10, embedding_dim=50, **_MNIST),
        "dcgan_64_generator": dict(latent_dim=100, num_classes=None, embedding_dim=50, **_RGB64),
    },
)
class DCGANGenerator(ArgsConfig, keras.Model):
    """latent `(batch, latent_dim)` [+ labels `(batch,)` int] -> image.

    Dense projection to `(s, s, base_filters * 2**(num_upsamples-1))` with
    `s = image_size / 2**num_upsamples`, then `num_upsamples - 1` upsample blocks that
    halve the filters, then a stride-2 Conv2DTranspose to `channels` and tanh (float32).
    Inputs: the latent tensor, or with `num_classes` the dict `{"latent", "labels"}`.

    Output shape: `(batch, image_size, image_size, channels)` in [-1, 1].
    """

    _ARGS = ("latent_dim", "image_size", "channels", "num_upsamples", "base_filters",
             "num_classes", "embedding_dim")

    def __init__(self, latent_dim=100, image_size=28, channels=1, num_upsamples=2,
                 base_filters=64, num_classes=None, embedding_dim=50, name=None, **kwargs):
        _check_image(image_size, channels, num_upsamples, base_filters, num_classes)
        if not isinstance(latent_dim, int) or latent_dim <= 0:
            raise ValueError(f"`latent_dim` must be a positive int. Received: latent_dim={latent_dim}")
        p = "generator"
        latent = keras.Input(shape=(latent_dim,), name="latent")
        x = latent
        if num_classes is not None:
            labels = keras.Input(shape=(), dtype="int32", name="labels")
            inputs = {"latent": latent, "labels": labels}
            e = keras.layers.Embedding(num_classes, embedding_dim, name=f"{p}_label_embedding")(labels)
            x = keras.layers.Concatenate(name=f"{p}_concat")([latent, e])
        else:
            inputs = latent
        size = image_size // 2**num_upsamples
        filters = base_filters * 2 ** (num_upsamples - 1)
        x = keras.layers.Dense(size * size * filters, use_bias=False, name=f"{p}_project")(x)
        x = keras.layers.BatchNormalization(name=f"{p}_project_bn")(x)
        x = keras.layers.ReLU(name=f"{p}_project_relu")(x)
        x = keras.layers.Reshape((size, size, filters), name=f"{p}_reshape")(x)
        for i in range(num_upsamples - 1):
            filters //= 2
            x = apply_upsample_block(x, max(filters, 1), name=f"{p}_block{i}")
        x = keras.layers.Conv2DTranspose(channels, 4, strides=2, padding="same",
                                         name=f"{p}_output_conv_transpose")(x)
        outputs = keras.layers.Activation("tanh", dtype="float32", name=f"{p}_tanh")(x)
        super().__init__(inputs=inputs, outputs=outputs, name=name, **kwargs)
        for arg in self._ARGS:
            setattr(self, arg, locals()[arg])


@keras.saving.register_keras_serializable(package="dlsuite")
@register(
    "dcgan_discriminator",
    variants={
        "dcgan_mnist_discriminator": dict(num_classes=None, batch_norm=True, dropout=0.3, **_MNIST),
        "cdcgan_mnist_discriminator": dict(num_classes=10, batch_norm=True, dropout=0.3, **_MNIST),
        "dcgan_64_discriminator": dict(num_classes=None, batch_norm=True, dropout=0.0, **_RGB64),
    },
)
class DCGANDiscriminator(ArgsConfig, keras.Model):
    """image `(batch, image_size, image_size, channels)` [+ labels `(batch,)` int] -> logit.

    With `num_classes`, the label is embedded to an `image_size x image_size` map and
    concatenated as an extra channel. Then `num_upsamples` stride-2 conv blocks
    (filters `base_filters * 2**i`, LeakyReLU 0.2, BatchNorm after the first if
    `batch_norm`), flatten, dropout, `Dense(1)` (float32). Inputs: the image tensor, or
    with `num_classes` the dict `{"images", "labels"}`.

    Output shape: `(batch, 1)` real/fake logits (no sigmoid).
    """

    _ARGS = ("image_size", "channels", "num_upsamples", "base_filters", "num_classes",
             "batch_norm", "dropout")

    def __init__(self, image_size=28, channels=1, num_upsamples=2, base_filters=64,
                 num_classes=None, batch_norm=True, dropout=0.3, name=None, **kwargs):
        _check_image(image_size, channels, num_upsamples, base_filters, num_classes)
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"`dropout` must be in [0, 1). Received: dropout={dropout}")
        p = "discriminator"
        images = keras.Input(shape=(image_size, image_size, channels), name="images")
        x = images
        if num_classes is not None:
            labels = keras.Input(shape=(), dtype="int32", name="labels")
            inputs = {"images": images, "labels": labels}
            e = keras.layers.Embedding(num_classes, image_size * image_size,
                                       name=f"{p}_label_embedding")(labels)
            e = keras.layers.Reshape((image_size, image_size, 1), name=f"{p}_label_map")(e)
            x = keras.layers.Concatenate(name=f"{p}_concat")([images, e])
        else:
            inputs = images
        for i in range(num_upsamples):
            x = apply_downsample_block(x, base_filters * 2**i, batch_norm and i > 0,
                                       name=f"{p}_block{i}")
        x = keras.layers.Flatten(name=f"{p}_flatten")(x)
        x = keras.layers.Dropout(dropout, name=f"{p}_dropout")(x)
        outputs = keras.layers.Dense(1, dtype="float32", name=f"{p}_logit")(x)
        super().__init__(inputs=inputs, outputs=outputs, name=name, **kwargs)
        for arg in self._ARGS:
            setattr(self, arg, locals()[arg])


def _bce_per_example(logits, target):
    """Sigmoid cross-entropy per example, `(batch, 1)` logits -> `(batch,)` float32."""
    logits = tf.cast(logits, tf.float32)
    labels = tf.fill(tf.shape(logits), tf.constant(target, tf.float32))
    return tf.reduce_mean(tf.nn.sigmoid_cross_entropy_with_logits(labels=labels, logits=logits), -1)


@keras.saving.register_keras_serializable(package="dlsuite")
class GAN(keras.Model):
    """A generator and a discriminator trained adversarially (non-saturating BCE loss).

    Engine contract:
      * `compile(optimizer=opt)` uses `opt` for the generator and a clone of it for the
        discriminator; or pass `g_optimizer=` / `d_optimizer=`. Both are attributes
        (`g_optimizer`, `d_optimizer`), so `tf.train.Checkpoint(model=gan)` tracks them.
        Call `compile` inside the strategy scope: it builds both optimizers there.
      * `replica_train_step(batch, global_batch_size)`, called inside `strategy.run`:
        `batch` is real images (or `(images, labels)` when conditional). One
        discriminator and one generator update; losses are
        `tf.nn.compute_average_loss(..., global_batch_size)` so SUM-reducing the
        returned `{"d_loss", "g_loss"}` over replicas gives the global means.
      * `replica_test_step(batch, global_batch_size)`: the same losses, no updates.
      * `generate(n, labels=None, seed=None)` -> `(n, H, W, C)` images in [-1, 1].

    Latents inside the steps come from `tf.random.stateless_normal` seeded by
    (`seed`, the generator optimizer's step, the replica id, the draw), so they differ
    per step and per replica and are reproducible. (A `keras.random.SeedGenerator` in
    replica context draws the *same* latents on every replica — checked under
    MirroredStrategy with 2 CPUs — so the global batch would repeat its noise.)
    `generate` uses a SeedGenerator.

    Calling the model, `gan(latent)` / `gan({"latent", "labels"})`, runs the generator.
    """

    def __init__(self, generator, discriminator, seed=1337, **kwargs):
        super().__init__(**kwargs)
        if isinstance(generator, dict):
            generator = keras.saving.deserialize_keras_object(generator)
        if isinstance(discriminator, dict):
            discriminator = keras.saving.deserialize_keras_object(discriminator)
        g_classes = getattr(generator, "num_classes", None)
        d_classes = getattr(discriminator, "num_classes", None)
        if g_classes != d_classes:
            raise ValueError(
                "generator and discriminator must agree on `num_classes`. Received: "
                f"generator num_classes={g_classes}, discriminator num_classes={d_classes}"
            )
        if tuple(generator.output.shape[1:]) != tuple(
            (discriminator.input["images"] if d_classes else discriminator.input).shape[1:]
        ):
            raise ValueError(
                "generator output and discriminator input shapes differ. Received: "
                f"{generator.output.shape} and {discriminator.input}"
            )
        self.generator = generator
        self.discriminator = discriminator
        self.latent_dim = generator.input["latent"].shape[-1] if g_classes else generator.input.shape[-1]
        self.num_classes = g_classes
        self.seed = int(seed)
        self.seed_generator = keras.random.SeedGenerator(self.seed)
        self.g_optimizer = None
        self.d_optimizer = None
        self.built = True  # both networks are built functional models

    # -- construction / serialization -------------------------------------------------
    def get_config(self):
        return {
            "name": self.name,
            "trainable": self.trainable,
            "generator": keras.saving.serialize_keras_object(self.generator),
            "discriminator": keras.saving.serialize_keras_object(self.discriminator),
            "seed": self.seed,
        }

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        config["generator"] = keras.saving.deserialize_keras_object(config["generator"])
        config["discriminator"] = keras.saving.deserialize_keras_object(config["discriminator"])
        return cls(**config)

    def compile(self, optimizer=None, g_optimizer=None, d_optimizer=None, **kwargs):
        g_optimizer = keras.optimizers.get(g_optimizer or optimizer or "adam")
        if d_optimizer is None:
            d_optimizer = g_optimizer.__class__.from_config(g_optimizer.get_config())
        d_optimizer = keras.optimizers.get(d_optimizer)
        if d_optimizer is g_optimizer:
            raise ValueError("`g_optimizer` and `d_optimizer` must be different instances.")
        kwargs.setdefault("jit_compile", False)
        super().compile(optimizer=g_optimizer, **kwargs)
        self.g_optimizer = g_optimizer
        self.d_optimizer = d_optimizer
        # Build slot variables now (in the caller's strategy scope), not lazily in replica context.
        self.g_optimizer.build(self.generator.trainable_variables)
        self.d_optimizer.build(self.discriminator.trainable_variables)

    def call(self, inputs, training=False):
        return self.generator(inputs, training=training)

    # -- helpers ----------------------------------------------------------------------
    def _split(self, batch):
        if isinstance(batch, dict):
            return batch["images"], batch.get("labels")
        if isinstance(batch, (tuple, list)):
            images, labels = (batch[0], batch[1]) if len(batch) > 1 else (batch[0], None)
        else:
            images, labels = batch, None
        if self.num_classes is not None and labels is None:
            raise ValueError("A conditional GAN needs `(images, labels)` batches.")
        images = tf.cast(images, "float32")
        if self.num_classes is None:
            return images, None
        return images, tf.reshape(tf.cast(labels, "int32"), (-1,))

    def _latent(self, batch_size, draw):
        replica = tf.distribute.get_replica_context()
        replica_id = replica.replica_id_in_sync_group if replica is not None else 0
        step = self.g_optimizer.iterations if self.g_optimizer is not None else 0
        seed = tf.constant([self.seed, 0], tf.int64)
        for data in (step, replica_id, draw):
            seed = tf.random.experimental.stateless_fold_in(seed, tf.cast(data, tf.int64))
        return tf.random.stateless_normal((batch_size, self.latent_dim), seed=seed)

    def _g_inputs(self, z, labels):
        return z if labels is None else {"latent": z, "labels": labels}

    def _d_inputs(self, images, labels):
        return images if labels is None else {"images": images, "labels": labels}

    def _adversarial_losses(self, images, labels, global_batch_size, training, z_d, z_g):
        """Returns (d_loss, g_loss) scalars, each scaled by `global_batch_size`."""
        fake = self.generator(self._g_inputs(z_d, labels), training=training)
        real_logits = self.discriminator(self._d_inputs(images, labels), training=training)
        fake_logits = self.discriminator(self._d_inputs(fake, labels), training=training)
        d_per_example = _bce_per_example(real_logits, 1.0) + _bce_per_example(fake_logits, 0.0)
        d_loss = tf.nn.compute_average_loss(d_per_example, global_batch_size=global_batch_size)
        g_logits = self.discriminator(
            self._d_inputs(self.generator(self._g_inputs(z_g, labels), training=training), labels),
            training=training,
        )
        g_loss = tf.nn.compute_average_loss(
            _bce_per_example(g_logits, 1.0), global_batch_size=global_batch_size
        )
        return d_loss, g_loss

    @staticmethod
    def _regularization(model):
        return tf.nn.scale_regularization_loss(tf.add_n(model.losses)) if model.losses else 0.0

    # -- engine contract --------------------------------------------------------------
    def replica_train_step(self, batch, global_batch_size):
        if self.g_optimizer is None:
            raise ValueError("Call `compile()` before training the GAN.")
        images, labels = self._split(batch)
        n = tf.shape(images)[0]

        z = self._latent(n, 0)
        with tf.GradientTape() as tape:
            fake = self.generator(self._g_inputs(z, labels), training=True)
            real_logits = self.discriminator(self._d_inputs(images, labels), training=True)
            fake_logits = self.discriminator(self._d_inputs(fake, labels), training=True)
            d_per_example = _bce_per_example(real_logits, 1.0) + _bce_per_example(fake_logits, 0.0)
            d_loss = tf.nn.compute_average_loss(d_per_example, global_batch_size=global_batch_size)
            d_total = d_loss + self._regularization(self.discriminator)
        d_vars = self.discriminator.trainable_variables
        self.d_optimizer.apply_gradients(zip(tape.gradient(d_total, d_vars), d_vars))

        z = self._latent(n, 1)
        with tf.GradientTape() as tape:
            fake = self.generator(self._g_inputs(z, labels), training=True)
            fake_logits = self.discriminator(self._d_inputs(fake, labels), training=True)
            g_loss = tf.nn.compute_average_loss(
                _bce_per_example(fake_logits, 1.0), global_batch_size=global_batch_size
            )
            g_total = g_loss + self._regularization(self.generator)
        g_vars = self.generator.trainable_variables
        self.g_optimizer.apply_gradients(zip(tape.gradient(g_total, g_vars), g_vars))
        return {"d_loss": d_loss, "g_loss": g_loss}

    def replica_test_step(self, batch, global_batch_size):
        images, labels = self._split(batch)
        n = tf.shape(images)[0]
        d_loss, g_loss = self._adversarial_losses(images, labels, global_batch_size, False,
                                      self._latent(n, 2), self._latent(n, 3))
        return {"d_loss": d_loss, "g_loss": g_loss}

    # `fit` / `evaluate` on one device: the per-replica batch is the global batch.
    def train_step(self, data):
        images, _ = self._split(data)
        return self.replica_train_step(data, tf.shape(images)[0])

    def test_step(self, data):
        images, _ = self._split(data)
        return self.replica_test_step(data, tf.shape(images)[0])

    def generate(self, n, labels=None, seed=None):
        """`n` images `(n, H, W, C)` in [-1, 1]; `labels` (n,) ints for a conditional GAN
        (default: classes 0, 1, 2, ... cycled). `seed` (int) makes the draw reproducible."""
        z = keras.random.normal((n, self.latent_dim), seed=self.seed_generator if seed is None else seed)
        if self.num_classes is not None:
            if labels is None:
                labels = tf.range(n) % self.num_classes
            labels = tf.reshape(tf.cast(labels, tf.int32), (n,))
        elif labels is not None:
            raise ValueError("`labels` given to an unconditional GAN.")
        return self.generator(self._g_inputs(z, labels), training=False)
