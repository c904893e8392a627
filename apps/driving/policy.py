"""`dl-drive train policy`: behaviour cloning of the expert from the Kinematics observation,
DAgger rounds, and the closed-loop evaluation that is the policy's real metric.

Data: the recording's (observation [5,5], expert action) pairs, split by episode (train /
validation / test episodes never share a step). DAgger round r: the policy drives
`cfg.dagger_episodes` new seeded episodes, the expert labels every state it visits, and the
next round trains on the union (`shared.training.engine` runs the rounds).
"""

import os

import numpy as np

from apps.driving import simulator
from apps.driving.recordings import episode_split, load_steps, recording
from shared.tasks import Data, DataInfo
from shared.training.config import layer_widths

OBSERVATION_SHAPE = (5, 5)
# Seeds of the closed-loop evaluation and of DAgger's episodes: far from the recordings' seeds.
EVAL_SEED, DAGGER_SEED = 100_000, 200_000


def _dataset(observations, actions):
    import tensorflow as tf

    return tf.data.Dataset.from_tensor_slices((observations.astype(np.float32), actions.astype(np.int32)))


def build_policy_data(cfg):
    """(observation float32 [5,5], expert action int32) from the recording, split by episode."""
    directory, manifest = recording(cfg.data, cfg.episodes, cfg.record_seed)
    splits = [load_steps(directory, manifest, episodes, ("observation", "action"))
              for episodes in episode_split(manifest, cfg.validation_split, cfg.seed)]
    if cfg.max_train_examples:
        splits[0] = {k: v[:cfg.max_train_examples] for k, v in splits[0].items()}
    arrays = [(s["observation"].reshape(-1, *OBSERVATION_SHAPE), s["action"]) for s in splits]
    info = DataInfo(input_shape=OBSERVATION_SHAPE, input_dtype="float32", class_names=simulator.ACTIONS,
                    num_train=len(arrays[0][1]), num_val=len(arrays[1][1]), num_test=len(arrays[2][1]),
                    source=f"{manifest['episodes']} expert episodes of {manifest['env']} ({directory})",
                    extra={"train_arrays": arrays[0], "eval_episodes": cfg.eval_episodes})
    return Data(*(_dataset(*a) for a in arrays), info)


def build_policy(cfg, info):
    """observation [5,5] -> flatten -> MLP (`cfg.widths`) -> softmax over the five meta-actions."""
    import keras

    from shared import architectures

    inputs = keras.Input(shape=OBSERVATION_SHAPE, dtype="float32", name="observation")
    mlp = architectures.build("mlp", input_shape=OBSERVATION_SHAPE, widths=layer_widths(cfg.hidden, "hidden"),
                              dropout=cfg.dropout, num_classes=len(simulator.ACTIONS))
    return keras.Model(inputs, mlp(inputs), name="policy_mlp")


def policy_serving(model, info):
    """observation float32 [N,5,5] -> {"action_probabilities": float32 [N,5]} (DiscreteMetaAction order)."""
    import keras

    inputs = keras.Input(shape=OBSERVATION_SHAPE, dtype="float32", name="observation")
    return keras.Model(inputs, {"action_probabilities": model(inputs)}, name="policy_serving")


def keras_policy(model):
    """`act` for `simulator.drive`: the most probable action of a Keras policy."""
    import tensorflow as tf

    call = tf.function(lambda x: model(x, training=False), reduce_retracing=True)
    return lambda env, observation: int(np.argmax(call(np.asarray(observation, np.float32)[None])[0]))


def grow_policy_data(model, data, round, directory, cfg):
    """DAgger: the policy drives `cfg.dagger_episodes` new episodes, the expert labels the
    states it visits, and they join the training data (cached as `directory/round-R.npz`)."""
    path = os.path.join(directory, f"round-{round}.npz")
    if os.path.exists(path):
        with np.load(path) as f:
            observations, actions = f["observations"], f["actions"]
    else:
        seeds = range(DAGGER_SEED + round * 10_000, DAGGER_SEED + round * 10_000 + cfg.dagger_episodes)
        observations, actions = simulator.dagger_states(keras_policy(model), seeds)
        os.makedirs(directory, exist_ok=True)
        np.savez(path + ".tmp.npz", observations=observations, actions=actions)
        os.replace(path + ".tmp.npz", path)
    old_x, old_y = data.info.extra["train_arrays"]
    x, y = np.concatenate([old_x, observations]), np.concatenate([old_y, actions])
    info = DataInfo(**{**data.info.__dict__, "num_train": len(y), "extra": {**data.info.extra, "train_arrays": (x, y)}})
    print(f"DAgger round {round}: {len(actions)} states labelled by the expert; {len(y)} training examples", flush=True)
    return Data(_dataset(x, y), data.val, data.test, info)


def policy_report(model, ds, info, plots_dir, episodes=0):
    """Offline action accuracy on the test episodes' expert states (secondary), and, with
    `episodes`, the closed-loop figures of the policy and of the expert on the same seeds."""
    from shared.evaluation.classification import classification_metrics
    from shared.evaluation.predict import predict_dataset

    _, y, probs = predict_dataset(model, ds)
    result = classification_metrics(y, probs, info.class_names)
    if episodes:
        result["closed_loop"] = closed_loop(keras_policy(model), episodes)
    return result, []


def closed_loop(act, episodes, seed=EVAL_SEED, progress=None):
    """{"policy": figures, "expert": figures} over the same `episodes` seeded episodes."""
    seeds = range(seed, seed + episodes)
    env = simulator.make_env()
    policy, _ = simulator.drive(act, seeds, env=env, progress=progress)
    expert, _ = simulator.drive(simulator.expert, seeds, env=env)
    env.close()
    return {"policy": policy, "expert": expert, "seeds": [seed, seed + episodes - 1]}


def load_observation(path, info):
    """One observation [5,5] (or a list of them, from [N,5,5]) from a .npy or JSON file."""
    import json

    from shared.errors import UserError

    try:
        if path.endswith(".npy"):
            array = np.load(path, allow_pickle=False)
        else:
            with open(path) as f:
                array = np.asarray(json.load(f), np.float32)
    except (OSError, ValueError) as e:
        raise UserError(f"{path}: not a .npy or JSON array of observations ({e})") from None
    array = np.asarray(array, np.float32)
    if array.shape[-2:] != OBSERVATION_SHAPE or array.ndim not in (2, 3):
        raise UserError(f"{path}: expected an observation of shape [5, 5] or [N, 5, 5]; got {list(array.shape)}")
    return array if array.ndim == 2 else list(array)


def decode_actions(outputs, info):
    """{"action_probabilities"} -> [{"action", "index", "confidence", "probabilities": {action: p}, "summary"}]."""
    out = []
    for row in np.asarray(outputs["action_probabilities"]):
        k = int(np.argmax(row))
        out.append({"action": simulator.ACTIONS[k], "index": k, "confidence": float(row[k]),
                    "probabilities": {a: float(p) for a, p in zip(simulator.ACTIONS, row)},
                    "summary": f"{simulator.ACTIONS[k]} ({row[k]:.3f})"})
    return out
