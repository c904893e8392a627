import keras
import numpy as np
import pytest
import tensorflow as tf

from shared.architectures.counterfactual import CounterfactualNet, dropout_masks

X = np.random.default_rng(0).normal(size=(6, 5)).astype("float32")
TINY = dict(input_dim=5, copies=3, representation=(8, 8), head=(4,), dropout=0.1)


def _outcome_loss(y, out):
    return tf.reduce_mean((out["y0"] - 1.0) ** 2 + (out["y1"] + 1.0) ** 2)


SPECS = {  # run through run_builder_test by test_registry
    "counterfactual": lambda: dict(init_kwargs=dict(**TINY), x=X, loss=_outcome_loss,
                                   expected_output_shape={"y0": (6, 3), "y1": (6, 3), "propensity": (6, 3),
                                                          "epsilon": (6, 3), "phi": (6, 3, 8)}),
}


def test_copies_are_independent_networks():
    """Copy r's outputs depend on copy r's weights only."""
    keras.utils.set_random_seed(0)
    net = CounterfactualNet(**TINY)
    before = {k: v.numpy() for k, v in net(X).items()}
    kernel = net.phi_layers[0].kernel
    kernel.assign(tf.tensor_scatter_nd_update(kernel, [[1]], kernel[1:2] * 3.0))
    after = {k: v.numpy() for k, v in net(X).items()}
    assert np.allclose(before["y0"][:, [0, 2]], after["y0"][:, [0, 2]]) and not np.allclose(before["y0"][:, 1], after["y0"][:, 1])


def test_fixed_masks_give_reproducible_monte_carlo_samples():
    keras.utils.set_random_seed(0)
    net = CounterfactualNet(**TINY)
    masks = dropout_masks(net, samples=4, seed=7, rate=0.1)
    assert [m.shape for m in masks] == [(4, 1, 3, 8), (4, 1, 3, 8), (4, 1, 3, 4), (4, 1, 3, 4)]
    first, second = net(X, masks=masks), net(X, masks=masks)
    assert first["y1"].shape == (4, 6, 3) and np.allclose(first["y1"], second["y1"])
    assert np.std(first["y1"].numpy(), axis=0).mean() > 0  # samples differ from each other


def test_propensity_head_trains_the_representation_only_in_dragonnet():
    for dragonnet in (False, True):
        net = CounterfactualNet(**TINY, propensity_head=dragonnet)
        with tf.GradientTape() as tape:
            loss = tf.reduce_mean(net(X)["propensity"])
        grad = tape.gradient(loss, net.phi_layers[0].kernel)
        assert (grad is not None and float(tf.reduce_max(tf.abs(grad))) > 0) == dragonnet


def test_arguments_are_validated():
    with pytest.raises(ValueError, match="Received: copies=0"):
        CounterfactualNet(5, copies=0)
    with pytest.raises(ValueError, match="Received: head"):
        CounterfactualNet(5, head=())


def test_a_subset_carries_only_the_chosen_copies():
    keras.utils.set_random_seed(0)
    net = CounterfactualNet(**TINY, propensity_head=True)
    net.epsilon.assign([0.1, 0.2, 0.3])
    full, part = net(X), net.subset([2, 0])(X)
    for key in ("y0", "y1", "propensity", "epsilon"):
        assert np.allclose(part[key], tf.gather(full[key], [2, 0], axis=-1), atol=1e-6)
    assert net.subset([1]).count_params() * 3 == net.count_params()
