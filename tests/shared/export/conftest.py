"""One small trained Fashion-MNIST classifier (raw uint8 in, softmax out) and one full
export of it, shared by all export tests."""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
import pytest

FASHION = Path("/usr/share/datasets/fashion-mnist")


def _idx(name: str, offset: int, shape) -> np.ndarray:
    with gzip.open(FASHION / name) as f:
        return np.frombuffer(f.read(), np.uint8, offset=offset).reshape(shape)


@pytest.fixture(scope="session")
def fashion():
    """(x_train, y_train, x_heldout): 3,000 training images, 300 held-out test images."""
    if (FASHION / "train-images-idx3-ubyte.gz").exists():
        x = _idx("train-images-idx3-ubyte.gz", 16, (-1, 28, 28, 1))[:3000]
        y = _idx("train-labels-idx1-ubyte.gz", 8, (-1,))[:3000]
        xt = _idx("t10k-images-idx3-ubyte.gz", 16, (-1, 28, 28, 1))[:300]
    else:  # random but learnable stand-in: class = brightest quadrant-ish band
        rng = np.random.default_rng(0)
        x = rng.integers(0, 256, (3300, 28, 28, 1), dtype=np.uint8)
        y = (x.reshape(len(x), -1).mean(1) * 10 / 256).astype(np.int64) % 10
        x, xt = x[:3000], x[3000:]
        y = y[:3000]
    return x, y, xt


@pytest.fixture(scope="session")
def classifier(fashion):
    import keras

    x, y, _ = fashion
    keras.utils.set_random_seed(0)
    inp = keras.Input((28, 28, 1), dtype="uint8", name="pixels")
    h = keras.layers.Rescaling(1 / 255, name="rescale")(inp)
    h = keras.layers.Conv2D(8, 3, activation="relu")(h)
    h = keras.layers.MaxPooling2D()(h)
    h = keras.layers.Flatten()(h)
    out = keras.layers.Dense(10, activation="softmax")(h)
    model = keras.Model(inp, out)
    model.compile("adam", "sparse_categorical_crossentropy", metrics=["accuracy"])
    model.fit(x, y, epochs=2, batch_size=64, verbose=0)
    return model


@pytest.fixture(scope="session")
def exported(classifier, fashion, tmp_path_factory):
    """``(run_dir, results)`` of ``export_run`` with every format and quantize mode."""
    from shared.export import export_run

    x, _, xt = fashion
    run_dir = tmp_path_factory.mktemp("run")
    results = export_run(classifier, run_dir, quantize=("none", "dynamic", "float16", "int8"),
                         representative_inputs=x, heldout_inputs=xt)
    return run_dir, results


@pytest.fixture(scope="session")
def reference(classifier, fashion):
    from shared.export import reference_outputs

    return reference_outputs(classifier, fashion[2])
