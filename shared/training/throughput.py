"""Training throughput of one task: the engine's loop against a plain Keras `model.fit` of
the same model, data pipeline and batch, and the share of a real epoch that waits on input.

`measure(task, cfg, side)` runs in its own process (a fresh TensorFlow per measurement, see
`apps/benchmark.py`); both sides train on the same batches, the engine's own training
pipeline (`Trainer.train_batches`: shuffle, batching or bucketing, preprocessing,
augmentation), so the ratio isolates the loop: tracing, steps per execution, metrics.
"""

import time

SIDES = ("engine", "keras")


def epoch_timer():
    """A Keras callback whose `seconds` lists each epoch's wall time."""
    import keras

    class EpochTimer(keras.callbacks.Callback):
        def __init__(self):
            super().__init__()
            self.seconds = []

        def on_epoch_begin(self, epoch, logs=None):
            self.t0 = time.perf_counter()

        def on_epoch_end(self, epoch, logs=None):
            self.seconds.append(time.perf_counter() - self.t0)

    return EpochTimer()


def _trainer(app, name, task, cfg, directory):
    """The engine's Trainer for `cfg` (data, precision, model and optimizer as `engine.train`)."""
    import keras

    from shared.training import engine
    from shared.training.precision import resolve_precision
    from shared.training.strategy import resolve_strategy
    from shared.training.trainer import Trainer

    task = task.for_config(cfg)
    strategy = resolve_strategy(cfg.distribution, cfg.cpu_replicas, cfg.tpu)
    keras.utils.set_random_seed(cfg.seed)
    data = engine.load_data(task, cfg)
    precision, _ = engine.choose_precision(app, name, task, cfg, data, strategy, None,
                                           resolve_precision(cfg.precision), False)
    return task, Trainer.for_task(task, cfg, data, strategy, directory, optimizer_precision=precision, verbose=False)


def _plain_fit(trainer, loss, steps):
    """Seconds of `steps` training steps of a plain Keras `compile` + `fit` (Keras's defaults:
    one step per execution, `jit_compile="auto"`) with the task's loss and step metrics (as
    `Mean` metrics, what `compile(metrics=…)` would track): the second of two epochs of
    `steps` (the first traces and fills the shuffle buffer)."""
    import keras
    import tensorflow as tf

    model = trainer.model
    if not trainer.custom_step:  # the task's per-example loss, weighted and averaged as Keras does
        def compute_loss(x=None, y=None, y_pred=None, sample_weight=None, training=True):
            per_example = tf.cast(loss(y, y_pred), tf.float32)
            total = tf.reduce_sum(per_example * sample_weight) / tf.cast(tf.shape(per_example)[0], tf.float32)
            return total + (tf.add_n([tf.cast(l, tf.float32) for l in model.losses]) if model.losses else 0.0)

        trackers = {name: keras.metrics.Mean(name=name) for name in trainer.step_metrics}

        def compute_metrics(x, y, y_pred, sample_weight=None):
            for name, fn in trainer.step_metrics.items():
                trackers[name].update_state(tf.cast(fn(y, y_pred), tf.float32), sample_weight)
            return {name: tracker.result() for name, tracker in trackers.items()}

        model.compute_loss = compute_loss
        if trackers:
            model.compute_metrics = compute_metrics
        model.compile(optimizer=trainer.optimizer)
    ds = trainer.train_batches(0).repeat().prefetch(tf.data.AUTOTUNE)
    if trainer.custom_step:  # a model with its own `train_step` (a GAN) takes (x, y)
        ds = ds.map(lambda x, y, w: (x, y))
    timer = epoch_timer()
    model.fit(ds, steps_per_epoch=steps, epochs=2, verbose=0, callbacks=[timer])
    return timer.seconds[-1]


def _engine_fit(trainer, steps):
    """Seconds of `steps` engine training steps after as many untimed ones, from one iterator."""
    iterator = iter(trainer.distribute(trainer.train_batches(0).repeat()))
    trainer.run_steps(iterator, steps)
    t0 = time.perf_counter()
    trainer.run_steps(iterator, steps)
    return time.perf_counter() - t0


def _pipeline_alone(trainer, steps):
    """Seconds the training pipeline takes to give `steps` batches with nothing else running
    (a fresh iterator: shuffle-buffer fill included)."""
    iterator = iter(trainer.train_batches(2).prefetch(2))
    t0 = time.perf_counter()
    for _ in range(steps):
        next(iterator)
    return time.perf_counter() - t0


def measure(app, name, task, cfg, side, steps=60, wait_steps=200):
    """One side's figures: `examples_per_second` over `steps` steps after as many untimed
    ones (tracing, shuffle-buffer fill), and for the engine the input-wait share of its first real epoch
    (fresh iterator: shuffle-buffer fill included; at most `wait_steps` steps) against the
    same steps fed one prepared batch, and how fast the pipeline alone gives those batches."""
    import tempfile

    if side not in SIDES:
        raise ValueError(f"side must be one of {SIDES}. Received: side={side}")
    with tempfile.TemporaryDirectory() as tmp:
        task, trainer = _trainer(app, name, task, cfg, tmp)
        result = {"steps": steps, "batch_size": cfg.batch_size, "num_train": trainer.data.info.num_train,
                  "steps_per_epoch": trainer.steps_per_epoch}
        if side == "engine":
            seconds = _engine_fit(trainer, steps)  # traces the step first
            n = min(trainer.steps_per_epoch, wait_steps)
            share, pipeline, compute = trainer.input_wait_share(epoch=1, steps=n)
            alone = _pipeline_alone(trainer, n)
            result.update(input_wait_share=share, wait_pipeline_seconds=pipeline, wait_compute_seconds=compute,
                          wait_steps=n, pipeline_alone_seconds=alone,
                          pipeline_examples_per_second=n * cfg.batch_size / alone)
        else:
            seconds = _plain_fit(trainer, task.loss(cfg, trainer.data.info), steps)
    result.update(seconds=seconds, examples_per_second=steps * cfg.batch_size / seconds)
    return result
