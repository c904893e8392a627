"""GAN image synthesis (`dl-vision train synthesize`): a class-conditional DCGAN
(`shared/architectures/gan.py`) trained by the engine's custom step on Fashion-MNIST.

The test split pairs every held-out real image with a seeded noise vector and the real
image's label: the serving model turns (label, noise) into an image, so the report compares
as many generated images as real ones, class for class. Quality is measured with a judge, a
`classify` run trained by the suite on the same real data: the Fréchet distance between its
penultimate features of generated and of real test images (beside the same distance between
real training and real test images, the floor a perfect generator reaches), and how often it
reads the requested label back from a generated image (beside its accuracy on real images).
"""

import glob
import os

import numpy as np
import tensorflow as tf

from shared.errors import UserError
from shared.tasks import Data, DataInfo


def find_judge(cfg, class_names, image_shape):
    """The judge classify run's directory for `--judge` (or the newest matching one), or ""."""
    from shared.training.rundir import home, open_run

    candidates = [cfg.judge] if cfg.judge else sorted(
        glob.glob(os.path.join(home(), "saved_models", "vision", "classify", "*", "model.keras")),
        key=os.path.getmtime, reverse=True)
    for path in candidates:
        run_dir = os.path.dirname(path) if path.endswith("model.keras") else path
        try:
            run = open_run(run_dir)
            info = run.read_info().get("data_info") or {}
        except UserError:
            if cfg.judge:
                raise UserError(f"--judge {cfg.judge}: not a run directory") from None
            continue
        fits = (run.app, run.task) == ("vision", "classify") and tuple(info.get("class_names", ())) == tuple(
            class_names) and tuple(info.get("input_shape", ())) == tuple(image_shape)
        if fits and os.path.isfile(run.file("model.keras")):
            return run.path
        if cfg.judge:
            raise UserError(f"--judge {cfg.judge}: expected a finished vision classify run on {tuple(image_shape)} "
                            f"images of the classes {', '.join(class_names)}")
    return ""


def build_synthesis_data(cfg):
    """Train/validation: (float images in [-1, 1], labels); test: ({"labels", "noise"}, real uint8 image)."""
    from apps.vision.data import load_image_arrays
    from shared.data.images import split

    x, y, x_test, y_test, names, source = load_image_arrays(cfg)
    x_train, y_train, x_val, y_val = split(x, y, cfg.validation_split, cfg.seed)
    rng = np.random.default_rng(cfg.seed + 2)
    order = rng.permutation(len(x_test))[:cfg.eval_images]
    noise = rng.standard_normal((len(order), cfg.latent_dim)).astype(np.float32)
    info = DataInfo(input_shape=(cfg.latent_dim,), input_dtype="float32", class_names=tuple(names),
                    num_train=len(x_train), num_val=len(x_val), num_test=len(order), source=source,
                    extra={"image_shape": tuple(x_train.shape[1:]),
                           "judge": find_judge(cfg, names, x_train.shape[1:]),
                           "train_sample": x_train[:len(order)]})  # real training images: the distance's floor
    scaled = lambda a, b: tf.data.Dataset.from_tensor_slices((a, b)).map(  # noqa: E731
        lambda image, label: (tf.cast(image, tf.float32) / 127.5 - 1.0, label))
    test = tf.data.Dataset.from_tensor_slices(
        ({"labels": y_test[order].astype(np.int32), "noise": noise}, x_test[order]))
    return Data(scaled(x_train, y_train), scaled(x_val, y_val), test, info)


def build_gan(cfg, info):
    from shared.architectures.gan import GAN, DCGANDiscriminator, DCGANGenerator

    size, _, channels = info.extra["image_shape"]
    common = dict(image_size=size, channels=channels, num_upsamples=2, base_filters=cfg.base_filters,
                  num_classes=len(info.class_names))
    return GAN(DCGANGenerator(latent_dim=cfg.latent_dim, **common), DCGANDiscriminator(dropout=0.3, **common),
               seed=cfg.seed, name="cdcgan")


def synthesis_serving(model, info):
    """`{"labels": int32[N], "noise": float32[N, Z]} -> {"images": uint8[N, H, W, C]}`."""
    import keras

    generator = model.generator
    labels = keras.Input(shape=(), dtype="int32", name="labels")
    noise = keras.Input(shape=(generator.latent_dim,), dtype="float32", name="noise")
    images = generator({"latent": noise, "labels": labels})
    pixels = keras.layers.Lambda(lambda t: keras.ops.cast(keras.ops.clip(keras.ops.round((t + 1.0) * 127.5), 0, 255),
                                                          "uint8"), name="to_uint8")(images)
    return keras.Model({"labels": labels, "noise": noise}, {"images": pixels}, name="synthesize_serving")


def generate(serving, labels, seed=0):
    """uint8 images [N, H, W, C] for int `labels` [N] with seeded standard-normal noise."""
    latent = next(t.shape[-1] for t in serving.inputs if t.name == "noise")
    noise = np.random.default_rng(seed).standard_normal((len(labels), latent)).astype(np.float32)
    out = serving({"labels": np.asarray(labels, np.int32), "noise": noise}, training=False)
    return np.asarray(out["images"])


def grid_png(images, path, columns=None, labels=None):
    """Writes uint8 [N, H, W, C] images as one grid PNG (3x upscaled); returns `path`."""
    from PIL import Image

    images = np.asarray(images)
    n, h, w, c = images.shape
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    columns = columns or int(np.ceil(np.sqrt(n)))
    rows = int(np.ceil(n / columns))
    canvas = np.full((rows * (h + 2), columns * (w + 2), c), 255, np.uint8)
    for k, image in enumerate(images):
        r, q = divmod(k, columns)
        canvas[r * (h + 2) + 1:r * (h + 2) + 1 + h, q * (w + 2) + 1:q * (w + 2) + 1 + w] = image
    picture = Image.fromarray(canvas[..., 0] if c == 1 else canvas)
    picture.resize((picture.width * 3, picture.height * 3), Image.NEAREST).save(path)
    return path


def class_grid(model, info, path, per_class=10, seed=0, serving=None):
    """One row per class of `per_class` samples (fixed noise): the per-epoch picture."""
    labels = np.repeat(np.arange(len(info.class_names)), per_class)
    return grid_png(generate(serving or synthesis_serving(model, info), labels, seed), path, columns=per_class)


def synthesis_report(model, ds, info, plots_dir):
    """Fréchet distance and label accuracy by the judge; a class-by-class sample grid."""
    from shared.evaluation.generative import feature_model, frechet_distance, label_accuracy
    from shared.evaluation.predict import take_examples
    from shared.training.runs import load_model
    from shared.training.rundir import open_run

    inputs, real = take_examples(ds, info.num_test)
    serving = synthesis_serving(model, info)
    images = np.asarray(serving.predict(inputs, batch_size=256, verbose=0)["images"])
    plots = [class_grid(model, info, os.path.join(plots_dir, "samples.png"), serving=serving)]
    result = {"generated_images": len(images), "pixel_mean_generated": float(images.mean()),
              "pixel_mean_real": float(real.mean())}
    judge_dir = info.extra.get("judge")
    if not judge_dir:
        print("No judge: Fréchet distance and label accuracy not measured (train `dl-vision train classify` "
              "on the same data first, or pass --judge RUN)", flush=True)
        return {**result, "judge": None}, plots
    judge = load_model(open_run(judge_dir))
    features = feature_model(judge)
    embed = lambda x: features.predict(x, batch_size=256, verbose=0)  # noqa: E731
    accuracy, per_label = label_accuracy(judge.predict(images, batch_size=256, verbose=0), inputs["labels"],
                                         info.class_names)
    real_accuracy, _ = label_accuracy(judge.predict(real, batch_size=256, verbose=0), inputs["labels"],
                                      info.class_names)
    result.update(
        judge=judge_dir,
        frechet_distance=frechet_distance(embed(images), embed(real)),
        frechet_distance_real_train_vs_test=frechet_distance(embed(info.extra["train_sample"]), embed(real)),
        label_accuracy=accuracy, label_accuracy_per_class=per_label, judge_accuracy_on_real=real_accuracy)
    return result, plots


def no_input(path, info):
    raise UserError(f"{path}: a synthesize run takes no input files; use `dl-vision generate RUN --label NAME`")


def generate_command(run, task, info, args):
    """`dl-vision generate RUN --label NAME --count N --out grid.png`."""
    from shared.training.runs import load_model

    if run.task != "synthesize":
        raise UserError(f"{run.path}: generate needs a synthesize run, not a {run.task} run")
    if args.count < 1:
        raise UserError(f"--count: expected a positive number; got {args.count}")
    if not args.out.lower().endswith(".png"):
        raise UserError(f"--out {args.out}: expected a .png file")
    names = [n.lower() for n in info.class_names]
    if args.label is None:
        labels = np.arange(args.count) % len(names)
    elif args.label.lower() in names:
        labels = np.full(args.count, names.index(args.label.lower()))
    elif args.label.isdigit() and int(args.label) < len(names):
        labels = np.full(args.count, int(args.label))
    else:
        raise UserError(f"--label {args.label}: expected one of {', '.join(info.class_names)} (or an index)")
    images = generate(task.serving_model(load_model(run), info), labels, args.seed)
    print(f"{grid_png(images, args.out)}: {args.count} images of "
          f"{info.class_names[labels[0]] if args.label is not None else 'every class'} (seed {args.seed})")
