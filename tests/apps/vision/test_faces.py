"""Vision faces: the embedded ORL identities are whole and repaired, people (not photos) are
split, the ArcFace embedding learns to verify unseen people with a threshold chosen on
validation people, the export is the contract signature, and enrol / verify / identify work."""

import json
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from apps.vision.configs import FacesConfig
from apps.vision.faces import build_faces_data, load_orl, orl_directory, read_orl_pgm, split_people
from shared.evaluation.verification import pair_trials, rates_at, threshold_at_far, verification_metrics
from tests.conftest import error_line, run_main


def test_orl_is_whole_and_its_crlf_damage_is_undone(tmp_path):
    photos, people, names = load_orl()
    assert photos.shape == (400, 112, 92) and photos.dtype == np.uint8 and names[0] == "s1"
    assert np.array_equal(np.bincount(people), [10] * 40)
    # A shifted row (a byte too many or too few) breaks the vertical continuity of a face.
    roughness = np.abs(np.diff(photos.astype(np.int32), axis=1)).mean(axis=(1, 2))
    assert roughness.max() < 3 * np.median(roughness), roughness.max()
    # The repair on a made-up photo whose pixels hold a real CR LF pair (kept by the damage,
    # as every LF byte became CR LF): smooth down its columns, so only the right pair fits.
    image = np.tile(np.arange(92, dtype=np.uint8), (112, 1))
    image[50, 20:22] = [13, 10]
    clean = b"P5\n92 112\n255\n" + image.tobytes()
    damaged = clean.replace(b"\r\n", b"\0CRLF\0").replace(b"\n", b"\r\n").replace(b"\0CRLF\0", b"\r\n")
    assert len(damaged) == len(clean) + 112 + 3  # column 10 (a LF) of every row, and the header's 3
    (tmp_path / "damaged.pgm").write_bytes(damaged)
    (tmp_path / "clean.pgm").write_bytes(clean)
    assert np.array_equal(read_orl_pgm(tmp_path / "damaged.pgm"), image)
    assert np.array_equal(read_orl_pgm(tmp_path / "clean.pgm"), image)
    assert np.array_equal(read_orl_pgm(f"{orl_directory()}/s1/1.pgm"), photos[0])


def test_people_not_photos_are_split():
    cfg = FacesConfig.tiny()
    train, val, test = split_people(40, cfg)
    assert (len(train), len(val), len(test)) == (24, 6, 10)
    assert not (set(train) & set(val) or set(train) & set(test) or set(val) & set(test))
    data = build_faces_data(cfg)
    info = data.info
    assert len(info.class_names) == 24 and info.num_train + info.num_val == 240 and info.num_test == 100
    test_people = {int(p) for _, p in data.test}
    assert len(test_people) == 10 and not {f"s{p + 1}" for p in test_people} & set(info.class_names)
    val_faces, val_people = info.extra["verify_val"]
    assert len(val_faces) == 60 and not set(val_people.tolist()) & test_people
    assert {int(y) for _, y in data.val} == set(range(24))  # every training person has held-out photos


def test_verification_measures_match_their_definitions():
    embeddings = np.array([[1, 0], [0.9, 0.1], [0, 1], [0.1, 0.9], [-1, 0]], np.float64)
    scores, genuine = pair_trials(embeddings, [0, 0, 1, 1, 2])
    assert len(scores) == 10 and genuine.sum() == 2
    perfect = verification_metrics(scores, genuine)
    assert perfect["roc_auc"] == 1.0 and perfect["eer"] == 0.0 and perfect["tar_at_far_0.01"] == 1.0
    rng = np.random.default_rng(0)
    scores, genuine = rng.normal(size=20000), rng.random(20000) < 0.3
    threshold = threshold_at_far(scores, genuine, 0.05)
    tar, far = rates_at(scores, genuine, threshold)
    assert far <= 0.05 and far > 0.049 and abs(tar - far) < 0.02  # no signal: TAR = FAR
    assert verification_metrics(scores, genuine)["roc_auc"] == pytest.approx(0.5, abs=0.02)


def test_arcface_margin_widens_the_true_class_angle():
    from shared.architectures.metric_learning import additive_angular_margin_loss

    cosine = np.array([[0.8, 0.1, -0.2]], np.float32)
    plain = float(additive_angular_margin_loss(10.0, 0.0)(np.array([0]), cosine)[0])
    logits = 10.0 * cosine[0].astype(np.float64)
    assert plain == pytest.approx(-(logits[0] - np.log(np.exp(logits).sum())), rel=1e-4)
    widened = float(additive_angular_margin_loss(10.0, 0.3)(np.array([0]), cosine)[0])
    margin_logit = 10.0 * np.cos(np.arccos(0.8) + 0.3)
    expected = -(margin_logit - np.log(np.exp(margin_logit) + np.exp(logits[1:]).sum()))
    assert widened == pytest.approx(expected, rel=1e-4) and widened > plain


@pytest.fixture(scope="module")
def faces_run(tmp_path_factory):
    """A short real run: 32x32 ORL faces, 25 epochs (about 15 s of training)."""
    home = tmp_path_factory.mktemp("faces")
    result = run_main(["dl-vision", "train", "faces", "--run-name", "short", "--quiet", "--image-size", "32",
                          "--embedding-dim", "32", "--epochs", "25", "--export", "savedmodel"], home)
    assert result.returncode == 0, result.stderr[-3000:]
    return home, home / "saved_models" / "vision" / "faces" / "short"


@pytest.mark.slow
def test_embedding_verifies_unseen_people_with_a_validation_threshold(faces_run):
    from shared.training.runs import load_model
    from shared.training.rundir import open_run
    from apps.vision.faces import embed, faces_serving

    _, run = faces_run
    metrics = json.loads((run / "metrics.json").read_text())
    test, calibration = metrics["test"], metrics["calibration"]
    # Measured: AUC 0.97-0.98, EER 0.08-0.09; chance is AUC 0.5, EER 0.5.
    assert test["roc_auc"] > 0.85 and test["eer"] < 0.25 and test["rank1_identification"] > 0.5, test
    assert test["genuine_pairs"] == 450 and test["impostor_pairs"] == 4500
    # The threshold is the validation people's (recomputed here), not the test people's.
    cfg = FacesConfig(image_size=32, embedding_dim=32)
    data = build_faces_data(cfg)
    faces, people = data.info.extra["verify_val"]
    scores, genuine = pair_trials(embed(faces_serving(load_model(open_run(str(run))), data.info), faces), people)
    assert calibration["threshold"] == pytest.approx(threshold_at_far(scores, genuine, 0.01), abs=1e-4)
    assert calibration["val_far"] <= 0.01 and test["threshold"] == calibration["threshold"]
    info = json.loads((run / "run.json").read_text())["data_info"]
    assert info["extra"]["saved"]["threshold"] == calibration["threshold"]
    assert set(test["eigenfaces_peer"]) >= {"roc_auc", "eer", "tar_at_far_0.01", "rank1_identification"}
    # `evaluate RUN` measures again with the run's own threshold: the same figures.
    from apps.vision.tasks import TASKS
    from shared.training.runs import load_run
    from shared.training import engine

    run_dir, task, cfg, _ = load_run("vision", TASKS, str(run))
    again = engine.evaluate_run(run_dir, task, cfg, verbose=False)["test"]
    assert again["threshold"] == test["threshold"]
    assert again["roc_auc"] == pytest.approx(test["roc_auc"], abs=1e-6)
    assert again["tar_at_threshold"] == pytest.approx(test["tar_at_threshold"], abs=1e-6)


def test_signature_is_the_contract(faces_run):
    _, run = faces_run
    code = f"""
import numpy as np, tensorflow as tf
sig = tf.saved_model.load({str(run / 'saved_model')!r}).signatures["serving_default"]
spec = sig.structured_input_signature[1]["images"]
assert spec.dtype == tf.uint8 and spec.shape.as_list() == [None, 32, 32, 3], spec
out = sig(images=tf.zeros([3, 32, 32, 3], tf.uint8) + tf.constant([0, 90, 200], tf.uint8)[:, None, None, None])
assert list(out) == ["embedding"] and out["embedding"].dtype == tf.float32 and out["embedding"].shape == (3, 32)
assert np.allclose(np.linalg.norm(out["embedding"].numpy(), axis=1), 1.0, atol=1e-5)
print("ok")
"""
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert result.stdout.strip().endswith("ok"), result.stderr[-2000:]


@pytest.mark.slow
def test_enrol_verify_identify(faces_run, tmp_path):
    home, run = faces_run
    photos, people, names = load_orl()
    test_people = json.loads((run / "metrics.json").read_text())["test"]["test_people"]
    assert test_people == 10
    cfg = FacesConfig()
    _, _, unseen = split_people(40, cfg)
    a, b, c = (int(p) for p in unseen[:3])
    path = lambda person, k: tmp_path / f"{names[person]}_{k}.png"  # noqa: E731
    for person in (a, b, c):
        for k in range(10):
            Image.fromarray(photos[person * 10 + k]).save(path(person, k))
    gallery = tmp_path / "gallery.json"
    for person in (a, b):
        result = run_main(["dl-vision", "faces", "enrol", run, *[path(person, k) for k in range(5)],
                              "--name", names[person], "--gallery", gallery], home)
        assert result.returncode == 0, result.stderr[-2000:]
        assert f"{names[person]}: enrolled 5 photo(s), 5 in all" in result.stdout
    assert sorted(json.loads(gallery.read_text())["people"]) == sorted([names[a], names[b]])
    probes = [path(a, k) for k in range(5, 10)]
    result = run_main(["dl-vision", "faces", "identify", run, *probes, "--gallery", gallery, "--json"], home)
    assert result.returncode == 0, result.stderr[-2000:]
    rows = [json.loads(line) for line in result.stdout.strip().splitlines()]
    assert len(rows) == 5 and sum(r["best_match"] == names[a] for r in rows) >= 4
    result = run_main(["dl-vision", "faces", "verify", run, *probes, path(c, 0), "--name", names[a],
                          "--gallery", gallery, "--json"], home)
    rows = [json.loads(line) for line in result.stdout.strip().splitlines()]
    assert result.returncode == 0 and len(rows) == 6
    assert all(r["match"] == (r["similarity"] >= r["threshold"]) for r in rows)
    assert np.mean([r["similarity"] for r in rows[:5]]) > rows[5]["similarity"]  # the same person is closer
    line = error_line(run_main(["dl-vision", "faces", "verify", run, probes[0], "--name", "Nobody",
                                   "--gallery", gallery], home))
    assert line.startswith("dl-vision: error: --name Nobody: not in") and names[a] in line
    line = error_line(run_main(["dl-vision", "faces", "identify", run, probes[0], "--gallery",
                                   tmp_path / "none.json"], home))
    assert "the gallery is empty" in line


def test_local_tfds_lfw_and_person_folders_give_identities(tmp_path):
    """`--data tfds:lfw` (here `tiny_lfw`, TFDS's LFW features: a name and a 250x250 photo) and `--data folder:PATH`,
    both built here from real ORL photos; people with too few photos are left out."""
    import tensorflow_datasets as tfds

    from apps.vision.faces import load_identities
    from shared.errors import UserError
    from tests.conftest import store_tfds

    photos, people, _ = load_orl()
    rgb = lambda k: np.asarray(Image.fromarray(photos[k]).convert("RGB").resize((250, 250)))  # noqa: E731
    examples = [{"label": f"Person_{p}", "image": rgb(p * 10 + k)} for p in range(7) for k in range(4 if p < 6 else 2)]
    store_tfds("tiny_lfw", tfds.features.FeaturesDict({"label": tfds.features.Text(),
                                                  "image": tfds.features.Image(shape=(250, 250, 3))}),
               {"train": examples}, tmp_path / "tfds")
    cfg = FacesConfig(data="tfds:tiny_lfw", data_dir=str(tmp_path / "tfds"), image_size=32, crop=0.8)
    faces, ids, names, source = load_identities(cfg)
    assert faces.shape == (24, 32, 32, 3) and names == tuple(f"Person_{p}" for p in range(6)), names
    assert np.array_equal(np.bincount(ids), [4] * 6) and "6 people with 4+ photos" in source
    data = build_faces_data(cfg)
    assert len(data.info.class_names) == 2 and data.info.num_test == 8

    for p in range(6):
        (tmp_path / "people" / f"p{p}").mkdir(parents=True)
        for k in range(4):
            Image.fromarray(photos[p * 10 + k]).save(tmp_path / "people" / f"p{p}" / f"{k}.png")
    faces, ids, names, _ = load_identities(FacesConfig(data=f"folder:{tmp_path / 'people'}", image_size=32))
    assert faces.shape == (24, 32, 32, 3) and names == tuple(f"p{p}" for p in range(6))
    from apps.vision.faces import face_crop

    assert np.array_equal(faces[0], face_crop(np.asarray(Image.open(tmp_path / 'people/p0/0.png').convert('RGB')), 32))
    with pytest.raises(UserError, match="at least 6 are needed"):
        load_identities(FacesConfig(data=f"folder:{tmp_path / 'people'}", min_images=5))
    (tmp_path / "people" / "p0" / "bad.png").write_bytes(b"not an image")
    with pytest.raises(UserError, match="bad.png: not a readable image"):
        load_identities(FacesConfig(data=f"folder:{tmp_path / 'people'}"))
