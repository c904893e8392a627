"""The other face-detection design: a face / non-face classifier of 24x24 windows slid over an
image pyramid, then non-maximum suppression (Rowley-Kanade style). It is measured beside the
detector (`face_detection_report`), trained on the same training scenes: positives are the
scenes' face squares (with small shifts and scales, and mirrored), negatives windows that
overlap no face (IoU < 0.3: random ones, the pasted non-faces among them, and near misses),
then once more with the false detections of the first fit (hard negatives). The classifier
is fully convolutional, so one call scores every window of a pyramid level; its score
threshold is chosen on the validation scenes (best F1), as the detector's is."""

import keras
import numpy as np
import tensorflow as tf

WINDOW = 24
MAP_STRIDE = 2  # input pixels between neighbouring scores (one 2x2 pooling)
SIDES = (14, 18, 22, 28, 35, 44, 55, 68)  # face sides searched (pyramid scale WINDOW / side)
NEGATIVE_IOU = 0.3


def window_classifier():
    """uint8 [N, H, W, 3] -> P(face) [N, (H - 2) // 2 - 10, (W - 2) // 2 - 10, 1]: one score per
    24x24 window, every 2 px (an H = W = 24 input gives one)."""
    images = keras.Input((None, None, 3), dtype="uint8", name="images")
    x = keras.layers.Rescaling(1 / 255)(images)
    x = keras.layers.Conv2D(16, 3, activation="relu")(x)
    x = keras.layers.MaxPooling2D(2)(x)
    x = keras.layers.Conv2D(32, 3, activation="relu")(x)
    x = keras.layers.Conv2D(64, 9, activation="relu")(x)  # the rest of the 24x24 window
    return keras.Model(images, keras.layers.Conv2D(1, 1, activation="sigmoid")(x), name="face_windows")


def _crop(image, box):
    y0, x0, y1, x1 = (int(round(v)) for v in box)
    return tf.image.resize(image[max(0, y0):y1, max(0, x0):x1], (WINDOW, WINDOW)).numpy()


def _max_iou(box, faces):
    from shared.export.parity import box_iou

    return box_iou(np.asarray([box], np.float32), faces).max() if len(faces) else 0.0


def training_windows(images, boxes, classes, seed, negatives_per_scene=4):
    """(windows uint8 [M, 24, 24, 3], labels [M]) cut from scenes: each face 3 times (exact, and
    shifted/scaled by up to 10 %), mirrored at random; negatives with IoU < 0.3 to every face:
    random windows and, per face, a near miss (a part of the face, or the face half off-centre)."""
    rng = np.random.default_rng(seed)
    windows, labels = [], []
    size = images.shape[1]
    for image, box, cls in zip(images, boxes, classes):
        faces = box[cls >= 0]
        negatives = []
        for y0, x0, y1, x1 in faces:
            side = y1 - y0
            for jitter in range(3):
                s = side * (rng.uniform(0.9, 1.1) if jitter else 1.0)
                dy, dx = (rng.uniform(-0.1, 0.1, 2) * side) if jitter else (0.0, 0.0)
                cy, cx = (y0 + y1) / 2 + dy, (x0 + x1) / 2 + dx
                window = _crop(image, (cy - s / 2, cx - s / 2, cy + s / 2, cx + s / 2))
                windows.append(window[:, ::-1] if rng.random() < 0.5 else window)
                labels.append(1)
            s = side * rng.uniform(0.35, 0.55)  # a part of the face
            y, x = y0 + rng.uniform(0, side - s), x0 + rng.uniform(0, side - s)
            negatives.append((y, x, y + s, x + s))
            dy, dx = rng.choice([-1, 1], 2) * rng.uniform(0.5, 0.8, 2) * side  # the face half off-centre
            negatives.append((y0 + dy, x0 + dx, y1 + dy, x1 + dx))
        for _ in range(8 * negatives_per_scene):
            side = rng.uniform(SIDES[0], min(SIDES[-1], size))
            y, x = rng.uniform(0, size - side, 2)
            negatives.append((y, x, y + side, x + side))
        found = 0
        for y0, x0, y1, x1 in negatives:
            if min(y0, x0) < 0 or max(y1, x1) > size or _max_iou((y0, x0, y1, x1), faces) >= NEGATIVE_IOU:
                continue
            windows.append(_crop(image, (y0, x0, y1, x1)))
            labels.append(0)
            found += 1
            if found == negatives_per_scene + 2 * len(faces):
                break
    return np.clip(np.rint(np.stack(windows)), 0, 255).astype(np.uint8), np.asarray(labels, np.float32)


def hard_negatives(model, images, boxes, classes, limit=4):
    """Windows the classifier takes for faces (score >= 0.5) that overlap no face (IoU < 0.3):
    up to `limit` per scene, the highest-scoring first (bootstrapping, as Rowley et al. and
    Viola-Jones train their detectors)."""
    found_boxes, found_scores = pyramid_detect(model, images, min_score=0.5, iou=0.5)
    windows = []
    for image, box, cls, candidates in zip(images, boxes, classes, found_boxes):
        faces = box[cls >= 0]
        wrong = [b for b in candidates if _max_iou(b, faces) < NEGATIVE_IOU][:limit]
        windows += [_crop(image, b) for b in wrong]
    return np.clip(np.rint(np.asarray(windows).reshape(-1, WINDOW, WINDOW, 3)), 0, 255).astype(np.uint8)


def train_window_classifier(images, boxes, classes, seed, epochs=6, mining_epochs=3):
    """The classifier fitted on windows of the given training scenes (Keras `fit`, seeded),
    then once more with the false detections it makes on them added as negatives."""
    keras.utils.set_random_seed(seed)
    x, y = training_windows(images, boxes, classes, seed)
    model = window_classifier()
    model.compile(optimizer=keras.optimizers.Adam(2e-3), loss="binary_crossentropy")
    model.fit(x, y[:, None, None, None], batch_size=128, epochs=epochs, shuffle=True, verbose=0)
    hard = hard_negatives(model, images, boxes, classes)
    x, y = np.concatenate([x, hard]), np.concatenate([y, np.zeros(len(hard), np.float32)])
    model.fit(x, y[:, None, None, None], batch_size=128, epochs=mining_epochs, shuffle=True, verbose=0)
    return model


def pyramid_detect(model, images, min_score=0.05, iou=0.3, max_detections=20):
    """Per image (boxes float32 [K, 4] (ymin, xmin, ymax, xmax) px, scores [K]): every pyramid
    level (the image resized by 24 / side for each searched face side) scored in one call,
    windows scoring >= `min_score` mapped back to image pixels, then non-maximum suppression."""
    images = np.asarray(images)
    height, width = images.shape[1:3]
    found = [[] for _ in images]
    for side in SIDES:
        scale = WINDOW / side
        h, w = int(round(height * scale)), int(round(width * scale))
        if min(h, w) < WINDOW:
            continue
        level = tf.cast(tf.round(tf.image.resize(images, (h, w), antialias=True)), tf.uint8)
        scores = model.predict(level, batch_size=64, verbose=0)[..., 0]
        sy, sx = h / height, w / width  # the level's exact scales
        for i, score in enumerate(scores):
            rows, cols = np.nonzero(score >= min_score)
            y0, x0 = rows * MAP_STRIDE, cols * MAP_STRIDE
            found[i].append(np.column_stack([y0 / sy, x0 / sx, (y0 + WINDOW) / sy, (x0 + WINDOW) / sx,
                                             score[rows, cols]]))
    out_boxes, out_scores = [], []
    for rows in found:
        rows = np.concatenate(rows) if rows else np.zeros((0, 5))
        keep = tf.image.non_max_suppression(rows[:, :4].astype(np.float32), rows[:, 4].astype(np.float32),
                                            max_detections, iou_threshold=iou).numpy()
        out_boxes.append(rows[keep, :4].astype(np.float32))
        out_scores.append(rows[keep, 4].astype(np.float32))
    return out_boxes, out_scores
