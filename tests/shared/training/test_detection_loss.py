import keras
import numpy as np
import pytest
import tensorflow as tf

from shared.architectures.detection import Detector
from shared.architectures.detection_postprocess import encode_boxes, xyxy_to_yxyx
from shared.training.detection_loss import (
    assign_targets, detection_loss, detection_step_metrics, generalized_iou, sigmoid_focal_loss,
)

# Four 10×10 anchors (xyxy, as make_anchors gives them) along the top of a 40×20 image.
ANCHORS_XYXY = np.array([[0, 0, 10, 10], [10, 0, 20, 10], [20, 0, 30, 10], [30, 0, 40, 10]], "float32")
ANCHORS = xyxy_to_yxyx(ANCHORS_XYXY)  # yxyx


def _targets(boxes, classes):
    return {"boxes": tf.constant(boxes, tf.float32), "classes": tf.constant(classes, tf.int32)}


def test_assign_targets_thresholds_force_match_and_padding():
    gt = [[[0, 0, 10, 10],     # exactly anchor 0 → positive
           [0, 12, 10, 22],    # anchor 1 IoU 8/12 = 0.67 → positive; anchor 2 IoU 2/18 → negative
           [0, 25, 10, 35],    # anchors 2, 3 IoU 5/15 = 0.33 each: forced onto one of them
           [0, 0, 10, 10]]]    # padding (class -1): ignored although it overlaps anchor 0
    boxes, classes, positive, ignored = assign_targets(ANCHORS, tf.constant(gt, tf.float32),
                                                       tf.constant([[2, 1, 0, -1]]))
    assert positive.numpy().tolist() == [[True, True, True, False]]
    assert classes.numpy().tolist() == [[2, 1, 0, -1]]
    np.testing.assert_allclose(boxes[0, :3], np.array(gt[0][:3], "float32"))
    np.testing.assert_allclose(boxes[0, 3], ANCHORS[3])  # non-positives get their anchor
    assert not ignored.numpy().any()

    # IoU in [neg_iou, pos_iou) → ignored; but the best anchor of a gt is still forced positive.
    gt = [[[0, 0, 10, 14], [0, 0, 10, 0]]]  # anchor 0: IoU 10/14 = 0.71 ; empty box: invalid
    _, _, positive, ignored = assign_targets(ANCHORS, tf.constant(gt, tf.float32), tf.constant([[0, 1]]),
                                             pos_iou=0.8, neg_iou=0.25)
    assert positive.numpy().tolist() == [[True, False, False, False]]  # forced (0.71 < 0.8)
    assert not ignored.numpy().any()  # anchor 1: IoU 40/200 = 0.2 < neg_iou
    _, _, positive, ignored = assign_targets(ANCHORS, tf.constant(gt, tf.float32), tf.constant([[0, 1]]),
                                             pos_iou=0.8, neg_iou=0.15)
    assert ignored.numpy().tolist() == [[False, True, False, False]]


def test_assign_targets_without_objects():
    for gt, cls in (((1, 0, 4), (1, 0)), ((1, 2, 4), (1, 2))):
        boxes, classes, positive, ignored = assign_targets(
            ANCHORS, tf.zeros(gt), -tf.ones(cls, tf.int32))
        assert not positive.numpy().any() and not ignored.numpy().any()
        assert (classes.numpy() == -1).all()
        np.testing.assert_allclose(boxes[0], ANCHORS)


def _perfect_prediction(y_true, num_classes=3, confident=0.999):
    boxes, classes, positive, _ = assign_targets(ANCHORS, y_true["boxes"], y_true["classes"])
    probs = tf.one_hot(classes, num_classes) * (2 * confident - 1) + (1 - confident)
    return {"classes": probs, "boxes": encode_boxes(boxes, ANCHORS[None])}


@pytest.mark.parametrize("box_loss", ["smooth_l1", "giou"])
def test_loss_shape_values_and_padding_invariance(box_loss):
    loss = detection_loss(ANCHORS_XYXY, num_classes=3, box_loss=box_loss)
    y = _targets([[[0, 0, 10, 10], [0, 0, 0, 0]], [[0, 21, 10, 29], [0, 0, 10, 10]]], [[1, -1], [2, 0]])
    perfect = _perfect_prediction(y)
    value = loss(y, perfect)
    assert value.shape == (2,) and value.dtype == tf.float32
    assert np.all(value.numpy() < 1e-4)

    # Wrong boxes and classes cost more; extra padding rows change nothing.
    wrong = {"classes": 1.0 - perfect["classes"], "boxes": perfect["boxes"] + 1.0}
    worse = loss(y, wrong).numpy()
    assert np.all(worse > 1.0)
    padded = _targets(np.concatenate([y["boxes"].numpy(), np.zeros((2, 3, 4))], 1),
                      np.concatenate([y["classes"].numpy(), -np.ones((2, 3))], 1))
    np.testing.assert_allclose(loss(padded, wrong).numpy(), worse, rtol=1e-6)

    # An image without objects: only the focal term over negatives, unnormalised (max(1, 0)).
    empty = _targets(np.zeros((1, 0, 4)), np.zeros((1, 0)))
    preds = {"classes": tf.fill((1, 4, 3), 0.5), "boxes": tf.zeros((1, 4, 4))}
    expected = 4 * 3 * 0.75 * 0.5**2 * np.log(2)
    np.testing.assert_allclose(loss(empty, preds).numpy(), [expected], rtol=1e-5)


def test_focal_loss_matches_reference_and_uses_keras_logits():
    logits = tf.constant([[-3.0, 0.0, 2.0, 9.0]])
    targets = tf.constant([[0.0, 1.0, 1.0, 0.0]])
    p = tf.sigmoid(logits).numpy()
    ce = -(targets * np.log(p) + (1 - targets) * np.log(1 - p))
    p_t = np.where(targets == 1, p, 1 - p)
    ref = np.where(targets == 1, 0.25, 0.75) * (1 - p_t) ** 2 * ce
    from_probs = sigmoid_focal_loss(targets, tf.sigmoid(logits))
    np.testing.assert_allclose(from_probs, ref, rtol=1e-4)
    probs = keras.activations.sigmoid(tf.constant([[-30.0, -30.0]]))  # saturated, logits recorded
    assert hasattr(probs, "_keras_logits")
    with tf.GradientTape() as tape:
        tape.watch(probs._keras_logits)
        value = sigmoid_focal_loss(tf.constant([[1.0, 0.0]]), probs)
    np.testing.assert_allclose(value[0, 0], 0.25 * 30.0, rtol=1e-4)  # not clipped at -log(1e-7)
    assert abs(tape.gradient(value, probs._keras_logits)[0, 0]) > 0.1


def test_generalized_iou():
    a = tf.constant([[0.0, 0, 10, 10], [0, 0, 10, 10], [0, 0, 10, 10]])
    b = tf.constant([[0.0, 0, 10, 10], [0, 5, 10, 15], [0, 20, 10, 30]])
    np.testing.assert_allclose(generalized_iou(a, b), [1.0, 1 / 3, -1 / 3], rtol=1e-5)


def test_under_strategy_tf_function_dynamic_objects_and_gradients():
    model = Detector(input_shape=(32, 32, 3), num_classes=2, backbone_filters=(4, 4, 4), min_level=2,
                     max_level=3, fpn_filters=4, head_convs=1, head_filters=4)
    anchors = model.anchors()
    loss = detection_loss(anchors, 2)
    metrics = detection_step_metrics(anchors, 2)
    strategy = tf.distribute.MirroredStrategy(["/cpu:0"])
    x = tf.random.stateless_uniform((2, 32, 32, 3), seed=(0, 1))

    @tf.function(input_signature=[tf.TensorSpec((None, None, 4)), tf.TensorSpec((None, None), tf.int32)])
    def step(boxes, classes):
        def replica(boxes, classes):
            y = {"boxes": boxes, "classes": classes}
            with tf.GradientTape() as tape:
                pred = model(x, training=True)
                per_example = loss(y, pred)
                mean = tf.reduce_mean(per_example)
            grads = tape.gradient(mean, model.trainable_variables)
            finite = tf.reduce_all([tf.reduce_all(tf.math.is_finite(g)) for g in grads])
            return per_example, finite, metrics["positives"](y, pred), metrics["box_loss"](y, pred)

        return strategy.run(replica, args=(boxes, classes))

    cases = [
        (np.zeros((2, 0, 4), "float32"), np.zeros((2, 0), "int32")),
        (np.array([[[2, 3, 9, 12]], [[0, 0, 0, 0]]], "float32"), np.array([[1], [-1]], "int32")),
        (np.array([[[2, 3, 9, 12], [10, 10, 30, 30], [0, 0, 0, 0]]] * 2, "float32"),
         np.array([[1, 0, -1]] * 2, "int32")),
    ]
    for boxes, classes in cases:
        per_example, finite, positives, box = (t.numpy() for t in step(boxes, classes))
        assert per_example.shape == (2,) and np.isfinite(per_example).all() and finite
        num_objects = (classes >= 0).sum(1)
        assert np.all((positives > 0) == (num_objects > 0))  # forced matches: every object has one
        assert np.all(box[num_objects == 0] == 0)


def test_tiny_detector_learns_one_box():
    keras.utils.set_random_seed(0)
    model = Detector(input_shape=(32, 32, 3), num_classes=2, backbone_filters=(8, 8, 8), min_level=2,
                     max_level=3, fpn_filters=8, head_convs=1, head_filters=8)
    loss = detection_loss(model.anchors(), 2, box_loss="giou")
    x = np.zeros((4, 32, 32, 3), "float32")
    boxes = np.array([[4, 4, 12, 14], [16, 8, 28, 20], [2, 18, 12, 30], [20, 20, 30, 30]], "float32")
    for i, (y0, x0, y1, x1) in enumerate(boxes.astype(int)):
        x[i, y0:y1, x0:x1] = 1.0
    y = {"boxes": tf.constant(boxes[:, None]), "classes": tf.constant([[0], [1], [0], [1]])}
    opt = keras.optimizers.Adam(1e-2)

    @tf.function
    def train_step():
        with tf.GradientTape() as tape:
            value = tf.reduce_mean(loss(y, model(x, training=True)))
        opt.apply_gradients(zip(tape.gradient(value, model.trainable_variables), model.trainable_variables))
        return value

    history = [float(train_step()) for _ in range(30)]
    assert np.mean(history[-3:]) < 0.3 * history[0]  # observed 1.72 → ~0.15


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(num_classes=0), "num_classes"),
        (dict(alpha=1.0), "alpha"),
        (dict(gamma=-1), "gamma"),
        (dict(box_loss="l2"), "box_loss"),
        (dict(pos_iou=0.3, neg_iou=0.4), "neg_iou"),
        (dict(anchors=np.zeros((3, 5))), "anchors"),
    ],
)
def test_invalid_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match) as info:
        detection_loss(**{"anchors": ANCHORS_XYXY, "num_classes": 3, **kwargs})
    assert "Received" in str(info.value)


@pytest.mark.parametrize("box_loss", ["smooth_l1", "giou"])
def test_xla_compiles(box_loss):
    loss = detection_loss(ANCHORS_XYXY, 3, box_loss=box_loss)
    y = _targets([[[0, 0, 10, 10], [0, 0, 0, 0]], [[0, 21, 10, 29], [0, 0, 10, 10]]], [[1, -1], [2, 0]])
    pred = {"classes": tf.fill((2, 4, 3), 0.3), "boxes": tf.fill((2, 4, 4), 0.5)}
    np.testing.assert_allclose(tf.function(loss, jit_compile=True)(y, pred), loss(y, pred), rtol=1e-5)
