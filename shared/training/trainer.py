"""The training loop: one custom loop that runs the same task code under every strategy.

Keras 3's `fit` breaks under MultiWorkerMirroredStrategy (keras-team/keras#20585), so the
engine drives training itself: `experimental_distribute_dataset`, `strategy.run` of a
per-replica step, losses averaged over the *global* batch and `strategy.reduce(SUM)`.
Validation batches are padded to whole global batches with zero-weight examples, so every
replica and worker runs the same number of steps and the metrics stay exact.
"""

import dataclasses
import math
import os
import sys
import tempfile
import time

import keras
import tensorflow as tf

from shared.errors import UserError
from shared.training.optim import build_optimizer, current_learning_rate
from shared.training.strategy import is_chief


class TrainingDiverged(RuntimeError):
    """Loss became NaN/Inf; the last good checkpoint is kept."""


def round_records(history, round):
    """The history records of one data-aggregation round (records without a round are round 0)."""
    return [r for r in history if r.get("round", 0) == round]


SHUFFLE_BUFFER_BYTES = 512 * 2**20


def shuffle_buffer_size(element_spec, num_train, max_bytes=SHUFFLE_BUFFER_BYTES):
    """Examples the epoch's shuffle buffer holds: all of them (up to 60,000) unless they would
    take more than `max_bytes` (video clips: 196 KB each), then as many as fit (at least 256).
    The buffer is a copy of the data it holds; a partial one still reorders every epoch."""
    sizes = [s.shape.num_elements() for s in tf.nest.flatten(element_spec)]
    if None in sizes:  # variable-length examples: no static size to budget
        return min(num_train, 60000)
    per_example = sum(n * s.dtype.size for n, s in zip(sizes, tf.nest.flatten(element_spec)))
    return max(1, min(num_train, 60000, max(256, max_bytes // max(1, per_example))))


class Trainer:
    """Trains `model` on `data` with the task's loss and per-example step metrics.

    A model with its own step (e.g. a GAN) defines `replica_train_step(batch,
    global_batch_size)` (and optionally `replica_test_step`) returning scalars that sum to
    the global mean over replicas; the engine runs it the same way.
    """

    @classmethod
    def for_task(cls, task, cfg, data, strategy, checkpoint_dir, optimizer_precision=None, **kwargs):
        """The task's model and optimizer built under `strategy` (a model with its own step
        compiled with the optimizer) and the Trainer over them with the task's loss, step
        metrics, monitor and batching: the one way the engine, the bench and `--precision
        auto` build what they train. `optimizer_precision`: the policy the optimizer is built
        for (loss scaling), when `cfg.precision` is still `auto`."""
        with strategy.scope():
            model = task.model(cfg, data.info)
            optimizer_cfg = cfg if optimizer_precision is None else dataclasses.replace(cfg, precision=optimizer_precision)
            optimizer = build_optimizer(optimizer_cfg, max(1, data.info.num_train // cfg.batch_size))
            if hasattr(model, "replica_train_step"):
                model.compile(optimizer=optimizer)
        return cls(strategy=strategy, model=model, optimizer=optimizer, data=data, loss=task.loss(cfg, data.info),
                   step_metrics=task.step_metrics, cfg=cfg, checkpoint_dir=checkpoint_dir, monitor=task.monitor,
                   batch=task.batch, train_batch=task.train_batch, **kwargs)

    def __init__(self, *, strategy, model, optimizer, data, loss, step_metrics, cfg,
                 checkpoint_dir, monitor="val_loss", logger=None, history=(), verbose=True, batch=None, train_batch=None):
        self.strategy = strategy
        self.model = model
        self.optimizer = optimizer
        self.loss = loss
        self.step_metrics = dict(step_metrics)
        self.batch = batch or (lambda ds, n, drop: ds.batch(n, drop_remainder=drop, num_parallel_calls=tf.data.AUTOTUNE))
        self.train_batch = train_batch or (lambda ds, n: self.batch(ds, n, True))
        self.cfg = cfg
        self.monitor = monitor
        self.logger = logger
        self.history = list(history)
        self.chief = is_chief(strategy)
        self.verbose = verbose and self.chief
        self.global_batch = cfg.batch_size
        replicas = strategy.num_replicas_in_sync
        if self.global_batch % replicas:
            raise UserError(
                f"--batch-size {self.global_batch}: must be divisible by the {replicas} replicas")
        self.use_data(data)
        self.custom_step = hasattr(model, "replica_train_step")
        with strategy.scope():
            if not self.custom_step:  # create slots now, not lazily inside the distributed loop
                optimizer.build(model.trainable_variables)
            self.epoch = tf.Variable(0, dtype=tf.int64, trainable=False, name="epoch")
            ckpt = tf.train.Checkpoint(model=model, optimizer=optimizer, epoch=self.epoch)
        # Non-chief workers must save too (collectives), but into throwaway directories.
        where = checkpoint_dir if self.chief else tempfile.mkdtemp(prefix="dlsuite-worker-ckpt-")
        self.last = tf.train.CheckpointManager(ckpt, os.path.join(where, "last"), max_to_keep=2)
        self.best = tf.train.CheckpointManager(ckpt, os.path.join(where, "best"), max_to_keep=1)
        self._ckpt = ckpt
        self.checkpoint_dir = checkpoint_dir
        self.retrace()

    def retrace(self):
        """New step functions: after layers are frozen or unfrozen (the traced ones captured
        the trainable variables of their time)."""
        self._train_fn = self._make_loop(self._replica_train_step)
        self._eval_fn = self._make_loop(self._replica_test_step)

    # --- datasets ------------------------------------------------------------
    def use_data(self, data):
        """Trains on `data` from the next epoch on (a data-aggregation round's grown data)."""
        self.data = data
        self.steps_per_epoch = data.info.num_train // self.global_batch
        if self.steps_per_epoch < 1:
            raise UserError(
                f"--batch-size {self.global_batch}: larger than the {data.info.num_train} training examples")

    def distribute(self, ds):
        options = tf.data.Options()
        options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
        options.deterministic = True
        return self.strategy.experimental_distribute_dataset(
            ds.with_options(options).prefetch(tf.data.AUTOTUNE))

    def _train_dataset(self, epoch):
        return self.distribute(self.train_batches(epoch))

    def train_batches(self, epoch, until=None):
        """The (x, y, weight) training batches of epochs `epoch`..`until - 1` (default: that one
        epoch), `steps_per_epoch` each: every epoch shuffled with its own seed, batched (or
        bucketed), then preprocessed and augmented. One dataset for all the epochs of a `fit`,
        so its tokenizer and augmentation are traced once (not per epoch: measured 0.26 s of a
        0.4 s epoch for the risk task's feature encoder) and each epoch's shuffle buffer fills
        while the previous epoch ends and validates, behind the prefetch."""
        buffer = shuffle_buffer_size(self.data.train.element_spec, self.data.info.num_train)
        # A new order each epoch (each epoch iterates the shuffled data anew), seeded by the first
        # epoch: a resumed run's epochs are as reproducible as a whole run's, though not the same.
        shuffled = self.data.train.shuffle(buffer, seed=self.cfg.seed + epoch, reshuffle_each_iteration=True)

        def one_epoch(_):
            return self.train_batch(shuffled, self.global_batch).take(self.steps_per_epoch)

        ds = tf.data.Dataset.range(epoch, epoch + 1 if until is None else until).flat_map(one_epoch)
        ds = self._preprocessed(ds)
        if self.data.info.augment is not None:
            augment = self.data.info.augment
            ds = ds.map(augment, num_parallel_calls=tf.data.AUTOTUNE)
        ds = ds.map(lambda x, y: (x, y, tf.ones(tf.shape(tf.nest.flatten(y)[0])[:1], tf.float32)))
        return ds

    def input_wait_share(self, epoch=0, steps=None):
        """How much of a training epoch waits on input: `(share, pipeline seconds, compute
        seconds)`. The pipeline is timed as training meets it: the first `steps` steps (default
        all) of an epoch (its shuffle-buffer fill included), of the epoch after `epoch` in one
        dataset where a whole epoch is no more than twice `steps` (the iterator's start-up is
        then paid once per `fit`, not per epoch), else of a fresh iterator's first epoch; the
        same batches replayed from memory give the compute alone. It trains; both iterator
        kinds are traced before anything is timed."""
        steps = min(steps or self.steps_per_epoch, self.steps_per_epoch)
        second = self.steps_per_epoch <= 2 * steps
        timed = self.train_batches(epoch, epoch + 2).skip(self.steps_per_epoch) if second else self.train_batches(epoch)
        replay = timed.take(steps).cache()
        for _ in replay:  # fills the cache: the same batches, prepared
            pass
        self.run_steps(iter(self.distribute(self.train_batches(epoch + 2).take(1))), 1)  # traces
        self.run_steps(iter(self.distribute(replay)), 1)
        iterator = iter(self.distribute(self.train_batches(epoch, epoch + 2) if second else self.train_batches(epoch)))
        if second:
            self.run_steps(iterator, self.steps_per_epoch)  # the first epoch, untimed
        t0 = time.perf_counter()
        self.run_steps(iterator, steps)
        pipeline = time.perf_counter() - t0
        t0 = time.perf_counter()
        self.run_steps(iter(self.distribute(replay)), steps)
        compute = time.perf_counter() - t0
        return max(0.0, 1 - compute / pipeline), pipeline, compute

    def run_steps(self, iterator, steps):
        """`steps` training steps from a distributed `iterator`; their mean figures."""
        return self._run(self._train_fn, iterator, steps)

    def _preprocessed(self, ds):
        """Batches of raw inputs through the data's `preprocess` model (e.g. a tokenizer), in
        parallel in tf.data so the step never waits on it."""
        preprocess = self.data.info.preprocess
        if preprocess is None:
            return ds
        return ds.map(lambda x, y: (preprocess(x, training=False), y), num_parallel_calls=tf.data.AUTOTUNE)

    def _eval_dataset(self, ds, n):
        """Pads to whole global batches with zero-weight copies of the first example."""
        pad = (-n) % self.global_batch
        examples = ds.concatenate(ds.take(1).repeat(pad)) if pad else ds
        weights = tf.data.Dataset.from_tensor_slices(tf.concat([tf.ones([n]), tf.zeros([pad])], 0))
        batched = tf.data.Dataset.zip((self._preprocessed(self.batch(examples, self.global_batch, True)),
                                       weights.batch(self.global_batch, drop_remainder=True)))
        return self.distribute(batched.map(lambda xy, w: (xy[0], xy[1], w))), (n + pad) // self.global_batch

    # --- steps ---------------------------------------------------------------
    def _sums(self, y, pred, per_example, w):
        out = {"loss": tf.reduce_sum(tf.cast(per_example, tf.float32) * w), "count": tf.reduce_sum(w)}
        for name, fn in self.step_metrics.items():
            out[name] = tf.reduce_sum(tf.cast(fn(y, pred), tf.float32) * w)
        return out

    def _replica_train_step(self, x, y, w):
        if self.custom_step:
            return self.model.replica_train_step((x, y), self.global_batch)
        model, opt = self.model, self.optimizer
        with tf.GradientTape() as tape:
            pred = model(x, training=True)
            per_example = self.loss(y, pred)
            loss = tf.nn.compute_average_loss(tf.cast(per_example, tf.float32) * w,
                                              global_batch_size=self.global_batch)
            if model.losses:
                loss += tf.nn.scale_regularization_loss(tf.add_n([tf.cast(l, tf.float32) for l in model.losses]))
            scaled = opt.scale_loss(loss) if isinstance(opt, keras.optimizers.LossScaleOptimizer) else loss
        grads = tape.gradient(scaled, model.trainable_variables)
        opt.apply_gradients(zip(grads, model.trainable_variables))
        return self._sums(y, pred, per_example, w)

    def _replica_test_step(self, x, y, w):
        if self.custom_step:
            if hasattr(self.model, "replica_test_step"):
                return self.model.replica_test_step((x, y), self.global_batch)
            return {}
        pred = self.model(x, training=False)
        return self._sums(y, pred, self.loss(y, pred), w)

    def _make_loop(self, replica_step):
        """A tf.function running `n` steps from an iterator and summing the reduced outputs."""
        strategy = self.strategy
        step = tf.function(replica_step, jit_compile=True) if self.cfg.jit_compile else replica_step

        def one(iterator):
            out = strategy.run(step, args=next(iterator))
            return {k: strategy.reduce(tf.distribute.ReduceOp.SUM, v, axis=None) for k, v in out.items()}

        @tf.function
        def loop(iterator, n):
            totals = one(iterator)
            for _ in tf.range(n - 1):
                totals = tf.nest.map_structure(tf.add, totals, one(iterator))
            return totals

        return loop

    def _run(self, fn, iterator, steps, progbar=None, check_finite=False):
        totals, done = {}, 0
        while done < steps:
            n = min(self.cfg.steps_per_execution, steps - done)
            out = {k: float(v) for k, v in fn(iterator, tf.constant(n, tf.int64)).items()}
            totals = {k: totals.get(k, 0.0) + v for k, v in out.items()}
            done += n
            values = self._finalize(totals, done)
            if check_finite and not all(math.isfinite(v) for v in values.values()):
                raise TrainingDiverged(
                    f"loss became {values.get('loss', float('nan'))} at epoch {int(self.epoch) + 1} "
                    f"step {done}")
            if progbar is not None:
                progbar.update(done, list(values.items()))
        return self._finalize(totals, done)

    def _finalize(self, totals, steps):
        if "count" in totals:
            count = max(totals["count"], 1e-12)
            return {k: v / count for k, v in totals.items() if k != "count"}
        return {k: v / steps for k, v in totals.items()}

    # --- public --------------------------------------------------------------
    def restore(self):
        """Restores the last checkpoint if any; returns the number of completed epochs."""
        latest = tf.train.latest_checkpoint(os.path.join(self.checkpoint_dir, "last"))
        if latest:  # every worker reads the chief's checkpoint
            self._ckpt.restore(latest).expect_partial()
        done = int(self.epoch.numpy())
        self.history = self.history[:done]
        return done

    def evaluate(self, ds, n):
        dist, steps = self._eval_dataset(ds, n)
        return self._run(self._eval_fn, iter(dist), steps)

    def fit(self, on_epoch_end=None, until=None, round=0):
        """Trains from the current epoch to `until` (default `cfg.epochs`); returns the history
        (list of dicts). Epochs of a data-aggregation `round` > 0 are marked with it, and the
        best epoch and early stopping consider only that round's epochs (its data differ)."""
        cfg, info = self.cfg, self.data.info
        until = cfg.epochs if until is None else until
        mode = min if self.monitor.endswith("loss") else max
        best = None
        for record in round_records(self.history, round):
            if self.monitor in record and (best is None or mode(record[self.monitor], best) != best):
                best = record[self.monitor]
        start = int(self.epoch.numpy())
        batches = iter(self.distribute(self.train_batches(start, until))) if start < until else None
        for epoch in range(start, until):
            if self.verbose:
                print(f"Epoch {epoch + 1}/{until}" + (f" (round {round})" if round else ""), flush=True)
            progbar = keras.utils.Progbar(self.steps_per_epoch, stateful_metrics=["loss", *self.step_metrics],
                                          verbose=1 if self.verbose and sys.stdout.isatty() else 0)
            t0 = time.perf_counter()
            train = self._run(self._train_fn, batches, self.steps_per_epoch,
                              progbar=progbar, check_finite=True)
            seconds = time.perf_counter() - t0
            val = self.evaluate(self.data.val, info.num_val) if info.num_val else {}
            record = {"epoch": epoch + 1, **({"round": round} if round else {}), **train,
                      **{f"val_{k}": v for k, v in val.items()},
                      "learning_rate": current_learning_rate(self.optimizer),
                      "examples_per_second": self.steps_per_epoch * self.global_batch / seconds,
                      "seconds": seconds}
            self.history.append(record)
            self.epoch.assign(epoch + 1)
            self.last.save(checkpoint_number=epoch + 1)
            improved = self.monitor in record and (best is None or mode(record[self.monitor], best) != best)
            if improved or self.monitor not in record:
                best = record.get(self.monitor, best)
                self.best.save(checkpoint_number=epoch + 1)
            if self.verbose:
                shown = ", ".join(f"{k}={v:.4g}" for k, v in {**train, **record}.items()
                                  if k in train or k.startswith("val_"))
                print(f"  {shown}  ({seconds:.1f}s, {record['examples_per_second']:.0f} ex/s)", flush=True)
            if self.logger is not None and self.chief:
                self.logger.epoch(epoch + 1, record)
            if on_epoch_end is not None:
                on_epoch_end(self.history)
            if cfg.early_stopping_patience and self._patience_spent(mode, round):
                if self.verbose:
                    print(f"Early stopping: {self.monitor} has not improved for "
                          f"{cfg.early_stopping_patience} epochs", flush=True)
                break
        return self.history

    def _patience_spent(self, mode, round=0):
        values = [r[self.monitor] for r in round_records(self.history, round) if self.monitor in r]
        if not values:  # nothing monitored: never stop early
            return False
        if len(values) <= self.cfg.early_stopping_patience:
            return False
        best_index = values.index(mode(values))
        return len(values) - 1 - best_index >= self.cfg.early_stopping_patience

    def restore_best(self):
        """Loads the weights of the best epoch (by `monitor`); returns that epoch number."""
        path = tf.train.latest_checkpoint(os.path.join(self.checkpoint_dir, "best"))
        if not path:
            return int(self.epoch.numpy())
        tf.train.Checkpoint(model=self.model).read(path).expect_partial()
        return int(path.rsplit("-", 1)[1])
