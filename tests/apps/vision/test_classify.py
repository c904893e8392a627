"""Vision classify: it learns on real Fashion-MNIST, and the folder and TFDS loaders work offline."""

import numpy as np
import pytest
from PIL import Image

from apps.vision.data import FASHION_MNIST_CLASSES, build_classify_data, load_fashion_mnist
from apps.vision.configs import ClassifyConfig
from apps.vision.tasks import TASKS
from shared.errors import UserError
from shared.training import engine, runs


def test_fashion_mnist_is_the_full_real_dataset():
    x, y, xt, yt = load_fashion_mnist()
    assert x.shape == (60000, 28, 28, 1) and xt.shape == (10000, 28, 28, 1) and x.dtype == np.uint8
    assert np.bincount(y).tolist() == [6000] * 10 and np.bincount(yt).tolist() == [1000] * 10


def test_validation_is_split_from_train_and_test_is_untouched():
    cfg = ClassifyConfig(validation_split=0.1)
    data = build_classify_data(cfg)
    assert (data.info.num_train, data.info.num_val, data.info.num_test) == (54000, 6000, 10000)
    assert data.info.class_names == FASHION_MNIST_CLASSES
    x, y = next(iter(data.train.batch(4)))
    assert x.shape == (4, 28, 28, 1) and x.dtype.name == "uint8"


def test_tiny_classifier_beats_chance_on_real_images(tmp_path, monkeypatch):
    monkeypatch.setenv("DLSUITE_HOME", str(tmp_path))
    cfg = ClassifyConfig.tiny()
    cfg.epochs, cfg.max_train_examples = 3, 2048
    run = engine.train("vision", "classify", TASKS.get("classify")(), cfg, run_name="learn", verbose=False)
    metrics = runs.read_metrics(run)
    history = run.read_history()
    assert history[-1]["loss"] < history[0]["loss"]
    assert metrics["test"]["accuracy"] > 0.6, metrics["test"]["accuracy"]  # chance: 0.1


def test_augmentation_keeps_dtype_shape_and_changes_pixels():
    from shared.data.augment import image_augmenter

    x, _, _, _ = load_fashion_mnist()
    batch = x[:16]
    out = image_augmenter("flip,translate,rotate,zoom,contrast", seed=1)(batch).numpy()
    assert out.dtype == np.uint8 and out.shape == batch.shape
    assert not np.array_equal(out, batch)
    with pytest.raises(UserError, match="--augment: unknown augmentation 'blur'"):
        image_augmenter("flip,blur")


def _write_folder(root, x, y, per_class=12, classes=3):
    for c in range(classes):
        (root / f"class_{c}").mkdir(parents=True)
        for i, idx in enumerate(np.flatnonzero(y == c)[:per_class]):
            Image.fromarray(np.repeat(x[idx], 3, -1)).resize((32, 32)).save(root / f"class_{c}" / f"{i}.png")


def test_folder_loader_resizes_and_converts(tmp_path):
    x, y, _, _ = load_fashion_mnist()
    _write_folder(tmp_path / "imgs", x, y)
    cfg = ClassifyConfig(data=f"folder:{tmp_path / 'imgs'}", validation_split=0.2)
    data = build_classify_data(cfg)
    assert data.info.class_names == ("class_0", "class_1", "class_2")
    assert data.info.num_train + data.info.num_val + data.info.num_test == 36
    images = np.stack([i.numpy() for i, _ in data.test])
    assert images.shape[1:] == (28, 28, 1) and images.dtype == np.uint8


def test_tfds_loader_reads_a_locally_prepared_dataset(tmp_path):
    import tensorflow as tf
    import tensorflow_datasets as tfds

    x, y, xt, yt = load_fashion_mnist()
    features = tfds.features.FeaturesDict({
        "image": tfds.features.Image(shape=(28, 28, 1)),
        "label": tfds.features.ClassLabel(names=list(FASHION_MNIST_CLASSES)),
    })
    split = lambda a, b: tf.data.Dataset.from_tensor_slices({"image": a, "label": b})  # noqa: E731
    tfds.dataset_builders.store_as_tfds_dataset(
        name="fmnist_local", version="1.0.0", data_dir=str(tmp_path), features=features,
        split_datasets={"train": split(x[:300], y[:300]), "test": split(xt[:100], yt[:100])})
    cfg = ClassifyConfig(data="tfds:fmnist_local", data_dir=str(tmp_path), validation_split=0.1)
    data = build_classify_data(cfg)
    assert (data.info.num_train, data.info.num_val, data.info.num_test) == (270, 30, 100)
    assert data.info.class_names == FASHION_MNIST_CLASSES
    test_images = np.stack([i.numpy() for i, _ in data.test])
    np.testing.assert_array_equal(np.sort(test_images.reshape(100, -1).sum(1)), np.sort(xt[:100].reshape(100, -1).sum(1)))
    with pytest.raises(UserError, match="--data tfds:not_there"):
        build_classify_data(ClassifyConfig(data="tfds:not_there", data_dir=str(tmp_path)))


def test_served_classifier_averages_the_mirror_image(tiny_runs):
    """`--test-time-flip` (on with `--augment flip`): evaluation and the SavedModel use the mean
    of the image's and its mirror's probabilities; without flip augmentation it is off."""
    import json

    import tensorflow as tf

    _, run = tiny_runs("vision", "classify")
    assert json.loads((run / "run.json").read_text())["data_info"]["extra"]["saved"]["test_time_flip"] is True
    model = runs.load_model(engine.rundir.open_run(str(run)))
    images = load_fashion_mnist()[2][:8]
    expected = (model(images) + model(images[:, :, ::-1])) / 2
    served = tf.saved_model.load(str(run / "saved_model")).signatures["serving_default"]
    np.testing.assert_allclose(served(images=tf.constant(images))["probabilities"], expected, atol=1e-5)
    assert build_classify_data(ClassifyConfig(augment="contrast")).info.extra["saved"]["test_time_flip"] is False
