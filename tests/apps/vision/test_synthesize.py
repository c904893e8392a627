"""Vision synthesize: the conditional GAN trains both networks, exports the contract signature,
`generate` honours --label, the judge's measures are right, and generated images can join a
classifier's training split."""

import subprocess
import sys

import numpy as np
import pytest

from shared.evaluation.generative import frechet_distance, label_accuracy
from tests.conftest import error_line, run_main


def test_frechet_distance_matches_its_closed_form():
    rng = np.random.default_rng(0)
    a = rng.standard_normal((4000, 3))
    assert frechet_distance(a, a) == pytest.approx(0.0, abs=1e-6)
    shifted = a + np.array([1.0, 2.0, 0.0])  # same covariance: the distance is the squared shift
    assert frechet_distance(a, shifted) == pytest.approx(5.0, rel=1e-6)
    scaled = a * 2.0  # same mean, covariance 4C: Tr(C + 4C - 2 * 2C) = Tr(C) ~ 3
    assert frechet_distance(a, scaled) == pytest.approx(np.trace(np.cov(a, rowvar=False)), rel=1e-3)
    accuracy, per_class = label_accuracy(np.eye(3)[[0, 1, 1, 2]], np.array([0, 1, 2, 2]), ("a", "b", "c"))
    assert accuracy == 0.75 and per_class == {"a": 1.0, "b": 1.0, "c": 0.5}


def test_gan_step_trains_both_networks():
    import keras

    from apps.vision.configs import SynthesizeConfig
    from apps.vision.synthesis import build_gan
    from shared.tasks import DataInfo

    cfg = SynthesizeConfig.tiny()
    info = DataInfo(input_shape=(cfg.latent_dim,), class_names=tuple("abcdefghij"), extra={"image_shape": (28, 28, 1)})
    gan = build_gan(cfg, info)
    gan.compile(optimizer=keras.optimizers.Adam(1e-3, beta_1=0.5))
    before = [[w.numpy().copy() for w in net.trainable_weights] for net in (gan.generator, gan.discriminator)]
    images = np.random.default_rng(0).uniform(-1, 1, (16, 28, 28, 1)).astype(np.float32)
    losses = gan.train_step((images, np.arange(16) % 10))
    assert np.isfinite(float(losses["d_loss"])) and np.isfinite(float(losses["g_loss"]))
    for net, old in zip((gan.generator, gan.discriminator), before):
        changed = [not np.array_equal(w.numpy(), o) for w, o in zip(net.trainable_weights, old)]
        assert sum(changed) >= len(changed) - 2, net.name  # all but BN-free gaps move


def test_signature_is_the_contract(tiny_runs):
    _, run = tiny_runs("vision", "synthesize")
    code = f"""
import numpy as np, tensorflow as tf
sig = tf.saved_model.load({str(run / 'saved_model')!r}).signatures["serving_default"]
specs = sig.structured_input_signature[1]
assert specs["labels"].dtype == tf.int32 and specs["labels"].shape.as_list() == [None], specs
assert specs["noise"].dtype == tf.float32 and specs["noise"].shape.as_list() == [None, 16], specs
out = sig(labels=tf.constant([0, 7, 9]), noise=tf.random.normal([3, 16]))
assert list(out) == ["images"] and out["images"].dtype == tf.uint8 and out["images"].shape == (3, 28, 28, 1)
print("ok")
"""
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert result.stdout.strip().endswith("ok"), result.stderr[-2000:]


def test_generate_honours_the_label(tiny_runs, tmp_path):
    from PIL import Image

    from apps.vision.synthesis import generate, grid_png, synthesis_serving
    from shared.training.runs import load_model
    from shared.training.rundir import open_run

    home, run = tiny_runs("vision", "synthesize")
    result = run_main(["dl-vision", "generate", run, "--label", "sneaker", "--count", 6, "--out",
                          tmp_path / "grid.png"], home)
    assert result.returncode == 0, result.stderr[-2000:]
    serving = synthesis_serving(load_model(open_run(str(run))), None)
    sneakers, bags = generate(serving, [7] * 6), generate(serving, [8] * 6)
    assert not np.array_equal(sneakers, bags)  # the label reaches the generator
    grid_png(sneakers, str(tmp_path / "expected.png"))
    assert np.array_equal(np.asarray(Image.open(tmp_path / "grid.png")), np.asarray(Image.open(tmp_path / "expected.png")))
    line = error_line(run_main(["dl-vision", "generate", run, "--label", "Hat", "--out", tmp_path / "x.png"], home))
    assert "--label Hat: expected one of T-shirt/top" in line


def test_judge_measures_a_run_and_generated_images_join_training(tiny_runs, monkeypatch):
    from apps.vision.configs import ClassifyConfig, SynthesizeConfig
    from apps.vision.data import build_classify_data
    from apps.vision.synthesis import build_gan, build_synthesis_data, synthesis_report
    from shared.training.engine import load_data
    from shared.training.runs import load_model
    from shared.training.rundir import open_run

    _, judge = tiny_runs("vision", "classify")
    _, synth = tiny_runs("vision", "synthesize")
    cfg = SynthesizeConfig.tiny()
    cfg.judge, cfg.eval_images = str(judge), 300
    data = build_synthesis_data(cfg)
    assert data.info.extra["judge"] == str(judge) and data.info.num_test == 300
    model = load_model(open_run(str(synth)))
    result, plots = synthesis_report(model, data.test, data.info, str(judge.parent / "synth-plots"))
    assert result["generated_images"] == 300 and 0 <= result["label_accuracy"] <= 1
    assert result["judge_accuracy_on_real"] > 0.3  # the tiny judge knows real images (chance 0.1; seen 0.50-0.55)
    floor = result["frechet_distance_real_train_vs_test"]
    untrained = synthesis_report(build_gan(cfg, data.info), data.test, data.info, str(judge.parent / "p2"))[0]
    assert 0 <= floor < result["frechet_distance"] and floor < untrained["frechet_distance"]
    assert len(result["label_accuracy_per_class"]) == 10 and plots[0].endswith("samples.png")

    mixed = ClassifyConfig.tiny()
    mixed.max_train_examples, mixed.synthetic_from, mixed.synthetic_ratio = 100, str(synth), 0.5
    data = load_data(type("T", (), {"data": staticmethod(build_classify_data)}), mixed)
    assert data.info.num_train == 150 and sum(1 for _ in data.train) == 150
    assert "50 generated by" in data.info.source
    mixed.synthetic_from = str(judge)
    with pytest.raises(Exception, match="expected a synthesize run"):
        build_classify_data(mixed)
