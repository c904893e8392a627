"""TensorBoard logging with tf.summary: per-epoch scalars, hparams and evaluation images."""

import os

import tensorflow as tf
from tensorboard.plugins.hparams import api as hp


class TensorBoardLogger:
    """Writes `train/`, `validation/` and `evaluation/` event files under the run's log dir."""

    def __init__(self, logdir):
        self.logdir = logdir
        self._writers = {}

    def _writer(self, name):
        if name not in self._writers:
            self._writers[name] = tf.summary.create_file_writer(os.path.join(self.logdir, name))
        return self._writers[name]

    def hparams(self, config, run_id):
        scalars = {k: v for k, v in config.items() if isinstance(v, (bool, int, float, str))}
        with self._writer("train").as_default():
            hp.hparams(scalars, trial_id=run_id)

    def epoch(self, epoch, record):
        """`record` keys: `val_*` go to validation, the rest to train (as `epoch_<name>`)."""
        for key, value in record.items():
            if key == "epoch" or not isinstance(value, (int, float)):
                continue
            split, name = ("validation", key[4:]) if key.startswith("val_") else ("train", key)
            with self._writer(split).as_default():
                tf.summary.scalar(f"epoch_{name}", value, step=epoch)
        self.flush()

    def images(self, pngs, step):
        """Logs PNG files (sample predictions, confusion matrix, …) under `evaluation/`."""
        with self._writer("evaluation").as_default():
            for path in pngs:
                image = tf.image.decode_png(tf.io.read_file(path), channels=4)
                tag = os.path.splitext(os.path.basename(path))[0]
                tf.summary.image(tag, image[None], step=step)
        self.flush()

    def texts(self, values, step):
        """Logs every `…samples` list of `values` (strings, or dicts as table rows) as a
        Markdown text summary under `evaluation/` (TensorBoard's Text tab)."""
        with self._writer("evaluation").as_default():
            for key, rows in values.items():
                if not key.endswith("samples") or not isinstance(rows, list) or not rows:
                    continue
                if isinstance(rows[0], dict):
                    columns = list(rows[0])
                    cell = lambda v: str(v).replace("|", "\\|").replace("\n", " ")  # noqa: E731
                    text = "\n".join(["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
                                      + ["| " + " | ".join(cell(r.get(c, "")) for c in columns) + " |" for r in rows])
                else:
                    text = "\n\n".join(f"    {r}" for r in rows)
                tf.summary.text(key, text, step=step)
        self.flush()

    def scalars(self, split, values, step):
        with self._writer(split).as_default():
            for key, value in values.items():
                if isinstance(value, (int, float)):
                    tf.summary.scalar(key, value, step=step)
        self.flush()

    def flush(self):
        for writer in self._writers.values():
            writer.flush()
