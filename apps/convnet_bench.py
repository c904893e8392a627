"""`dlsuite bench`: the suite's engine vs a plain Keras script, side by side in one run.

Both train the keras-io "Simple MNIST convnet" on the same Fashion-MNIST examples, each in a
fresh subprocess, alternating over `rounds`; throughput is the best examples/s over the
epochs after the first (tracing) — the best is the least disturbed by a noisy machine.
The suite process also measures how much of its step time waits on input (a real epoch vs
the same steps fed from one cached batch) and compares float SavedModel with int8 TFLite;
a third process does the input-wait measurement for text (the word tokenizer in tf.data).
"""

import json
import subprocess
import sys
import tempfile


def _plain_keras(examples, epochs, batch_size):
    """The keras-io script, verbatim in spirit: float inputs, compile + fit."""
    import keras
    import numpy as np

    from apps.vision.data import load_fashion_mnist
    from shared.training.throughput import epoch_timer

    x, y, _, _ = load_fashion_mnist()
    x = x[:examples].astype("float32") / 255
    y = y[:examples]
    model = keras.Sequential([
        keras.Input(shape=(28, 28, 1)),
        keras.layers.Conv2D(32, kernel_size=(3, 3), activation="relu"),
        keras.layers.MaxPooling2D(pool_size=(2, 2)),
        keras.layers.Conv2D(64, kernel_size=(3, 3), activation="relu"),
        keras.layers.MaxPooling2D(pool_size=(2, 2)),
        keras.layers.Flatten(),
        keras.layers.Dropout(0.5),
        keras.layers.Dense(10, activation="softmax"),
    ])
    model.compile(loss="sparse_categorical_crossentropy", optimizer="adam", metrics=["accuracy"])
    timer = epoch_timer()
    model.fit(x, y, batch_size=batch_size, epochs=epochs, verbose=0, callbacks=[timer])
    steps = int(np.ceil(len(x) / batch_size))
    return {"examples_per_second": [steps * batch_size / t for t in timer.seconds]}


def _fit(task, cfg, directory, cache=False):
    """`(trainer, history, data, model)`: `cfg` trained through the suite's own Trainer."""
    from shared.training import engine
    from shared.training.optim import build_optimizer
    from shared.training.strategy import resolve_strategy
    from shared.training.trainer import Trainer

    strategy = resolve_strategy(cfg.distribution)
    data = engine.load_data(task, cfg)
    if cache:
        data.train = data.train.cache()
    with strategy.scope():
        model = task.model(cfg, data.info)
        optimizer = build_optimizer(cfg, data.info.num_train // cfg.batch_size)
    trainer = Trainer(strategy=strategy, model=model, optimizer=optimizer, data=data,
                      loss=task.loss(cfg, data.info), step_metrics=task.step_metrics, cfg=cfg,
                      checkpoint_dir=directory, monitor=task.monitor, verbose=False)
    return trainer, trainer.fit(), data, model


def _suite(examples, epochs, batch_size):
    """The same model and data through the suite's engine (one-device strategy)."""
    from apps.vision.tasks import TASKS, ClassifyConfig
    from shared.evaluation.predict import take_inputs
    from shared.export import export_run

    cfg = ClassifyConfig(model="simple_cnn", augment="none", lr_schedule="constant", learning_rate=1e-3,
                         epochs=epochs, batch_size=batch_size, max_train_examples=examples,
                         validation_split=0.05, early_stopping_patience=0, distribution="one_device",
                         precision="float32")  # as the plain Keras side
    with tempfile.TemporaryDirectory() as tmp:
        trainer, history, data, model = _fit(TASKS.get("classify")(), cfg, tmp, cache=True)
        wait, real_seconds, compute_seconds = trainer.input_wait_share()
        exports = export_run(model, tmp, formats=("savedmodel", "tflite"), quantize=("int8",),
                             representative_inputs=take_inputs(data.train, 256),
                             heldout_inputs=take_inputs(data.test, 256))
    return {"examples_per_second": [r["examples_per_second"] for r in history],
            "val_accuracy": history[-1].get("val_accuracy"),
            "input_wait_share": wait,
            "pipeline_epoch_seconds": real_seconds, "compute_only_epoch_seconds": compute_seconds,
            "exports": {k: {m: v[m] for m in ("size_bytes", "latency_ms_batch1", "top1_agreement", "passed")}
                        for k, v in exports.items()}}


def _text(examples, epochs, batch_size):
    """The default sentiment pipeline (strings -> word tokenizer in tf.data -> text_cnn): after
    `epochs` epochs, the share of an epoch spent waiting on tokenized input."""
    from apps.nlp.tasks import TASKS, SentimentConfig

    cfg = SentimentConfig(epochs=epochs, batch_size=batch_size, max_train_examples=examples,
                          early_stopping_patience=0, distribution="one_device")
    with tempfile.TemporaryDirectory() as tmp:
        trainer, history, _, _ = _fit(TASKS.get("sentiment")(), cfg, tmp)
        wait, pipeline, compute = trainer.input_wait_share()
    return {"examples_per_second": [r["examples_per_second"] for r in history], "input_wait_share": wait,
            "pipeline_epoch_seconds": pipeline, "compute_only_epoch_seconds": compute, "model": cfg.model}


def _child(kind, examples, epochs, batch_size):
    cmd = [sys.executable, "-m", "apps.convnet_bench", kind, str(examples), str(epochs), str(batch_size)]
    out = subprocess.run(cmd, capture_output=True, text=True)
    if out.returncode:
        raise RuntimeError(f"bench {kind} failed:\n{out.stderr[-2000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def bench(epochs=3, examples=20000, batch_size=128, rounds=2):
    """Runs both sides alternately and prints the comparison; returns the figures."""
    epochs = max(2, epochs)
    plain_speeds, suite_speeds = [], []
    for _ in range(rounds):
        plain = _child("plain", examples, epochs, batch_size)
        suite = _child("suite", examples, epochs, batch_size)
        plain_speeds += plain["examples_per_second"][1:]
        suite_speeds += suite["examples_per_second"][1:]
    p, s = max(plain_speeds), max(suite_speeds)
    text = _child("text", min(examples, 16000), 1, 64)
    sm, tl = suite["exports"]["savedmodel"], suite["exports"]["tflite_int8"]
    result = {"plain_keras_examples_per_second": p, "suite_examples_per_second": s, "ratio_suite_over_plain": s / p,
              "input_wait_share": suite["input_wait_share"],
              "savedmodel_bytes": sm["size_bytes"], "tflite_int8_bytes": tl["size_bytes"],
              "size_ratio_int8_over_savedmodel": tl["size_bytes"] / sm["size_bytes"],
              "savedmodel_latency_ms": sm["latency_ms_batch1"], "tflite_int8_latency_ms": tl["latency_ms_batch1"],
              "latency_ratio_int8_over_savedmodel": tl["latency_ms_batch1"] / sm["latency_ms_batch1"],
              "int8_top1_agreement": tl["top1_agreement"],
              "text_examples_per_second": text["examples_per_second"][-1], "text_input_wait_share": text["input_wait_share"]}
    print(f"Training throughput, keras-io simple convnet, {examples} Fashion-MNIST examples, batch {batch_size},"
          f" best of epochs 2..{epochs} over {rounds} alternating rounds:")
    print(f"  plain Keras model.fit  {p:10.0f} examples/s")
    print(f"  dlsuite engine         {s:10.0f} examples/s   ratio {s / p:.2f}")
    print(f"  input wait             {100 * suite['input_wait_share']:.1f}% of the suite's step time")
    print("Export (same trained model):")
    print(f"  float SavedModel  {sm['size_bytes'] / 1e3:9.1f} kB  batch-1 {sm['latency_ms_batch1']:.3f} ms")
    print(f"  int8 TFLite       {tl['size_bytes'] / 1e3:9.1f} kB  batch-1 {tl['latency_ms_batch1']:.3f} ms  "
          f"(size x{result['size_ratio_int8_over_savedmodel']:.3f}, latency x{result['latency_ratio_int8_over_savedmodel']:.3f},"
          f" top-1 agreement {tl['top1_agreement']:.4f})")
    print(f"Text pipeline (sentiment: strings -> word tokenizer in tf.data -> {text['model']}, batch 64):")
    print(f"  {text['examples_per_second'][-1]:10.0f} examples/s, input wait "
          f"{100 * text['input_wait_share']:.1f}% of the step time")
    print(json.dumps(result))
    return result


if __name__ == "__main__":
    kind, examples, epochs, batch_size = sys.argv[1], *map(int, sys.argv[2:5])
    print(json.dumps({"plain": _plain_keras, "suite": _suite, "text": _text}[kind](examples, epochs, batch_size)))
