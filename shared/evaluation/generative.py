"""Measures of generated images: the Fréchet distance between feature distributions (FID's
formula, Heusel et al. 2017, on a chosen classifier's features instead of Inception's) and
how often a classifier reads the requested label back."""

import numpy as np


def frechet_distance(a, b):
    """||mu_a - mu_b||^2 + Tr(S_a + S_b - 2 (S_a S_b)^(1/2)) of feature rows a [N, D], b [M, D]."""
    from scipy import linalg

    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    mu_a, mu_b = a.mean(0), b.mean(0)
    cov_a, cov_b = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    root, _ = linalg.sqrtm(cov_a @ cov_b, disp=False)
    if not np.isfinite(root).all():  # near-singular product: regularise as the reference FID code does
        eps = 1e-6 * np.eye(len(cov_a))
        root = linalg.sqrtm((cov_a + eps) @ (cov_b + eps))
    return float(np.sum((mu_a - mu_b) ** 2) + np.trace(cov_a + cov_b - 2 * np.real(root)))


def feature_model(classifier):
    """images -> penultimate features (the input of the Dense head) of a classifier built as
    `inputs -> preprocessing layers -> backbone`, like every dlsuite classify run."""
    import keras

    backbone = classifier.layers[-1]
    dense = [layer for layer in backbone.layers if isinstance(layer, keras.layers.Dense)]
    if not isinstance(backbone, keras.Model) or not dense or dense[-1] is not backbone.layers[-1]:
        raise ValueError(f"{classifier.name}: expected a classifier whose last layer is a backbone "
                         "ending in a Dense head")
    x = classifier.inputs[0]
    y = x
    for layer in classifier.layers[1:-1]:
        y = layer(y)
    features = keras.Model(backbone.inputs, dense[-1].input)(y)
    return keras.Model(x, features, name=f"{classifier.name}_features")


def label_accuracy(probabilities, labels, class_names):
    """How often the classifier reads back the requested label: overall and per label."""
    predicted = np.asarray(probabilities).argmax(-1)
    labels = np.asarray(labels)
    per_label = {name: float(np.mean(predicted[labels == k] == k)) for k, name in enumerate(class_names)
                 if np.any(labels == k)}
    return float(np.mean(predicted == labels)), per_label
