"""`dl-drive drive` (a policy in closed loop, side by side with the expert) and the GIF clips of
`view` and `drive --record`."""

import json
import os

import numpy as np

from apps.driving import simulator
from shared.errors import UserError


def write_gif(frames, path, fps=5):
    """Writes uint8 [H,W,3] frames as an animated GIF (atomically); returns `path`."""
    from PIL import Image

    if not frames:
        raise UserError(f"{path}: nothing to draw (no frames)")
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    images = [Image.fromarray(f) for f in frames]
    tmp = path + ".tmp.gif"
    images[0].save(tmp, save_all=True, append_images=images[1:], duration=int(1000 / fps), loop=0)
    os.replace(tmp, path)
    return path


def draw(image, boxes=(), mask=None, caption="", scale=3):
    """The frame upscaled `scale`x with lane-marking pixels tinted, boxes outlined and a caption."""
    from PIL import Image, ImageDraw

    frame = np.asarray(image, np.uint8).copy()
    if mask is not None:
        frame[np.asarray(mask) > 0] = (255, 64, 64)
    picture = Image.fromarray(frame).resize((frame.shape[1] * scale, frame.shape[0] * scale), Image.NEAREST)
    pen = ImageDraw.Draw(picture)
    for ymin, xmin, ymax, xmax in np.asarray(boxes, np.float32).reshape(-1, 4):
        pen.rectangle([xmin * scale, ymin * scale, xmax * scale, ymax * scale], outline=(0, 255, 0), width=2)
    if caption:
        pen.text((4, 2), caption, fill=(255, 255, 0))
    return np.asarray(picture)


def view_recording(directory, out, episode=0, view="front"):
    """A GIF of one recorded episode's `view` frames with the true boxes and lane markings drawn."""
    from apps.driving.record import read_manifest
    from apps.driving.recordings import step_dataset

    manifest = read_manifest(directory)
    if not manifest.get("views"):
        raise UserError(f"{directory}: recorded with --no-views; it has no frames to draw")
    if not 0 <= episode < manifest["episodes"]:
        raise UserError(f"--episode: expected 0 … {manifest['episodes'] - 1}; got {episode}")
    keys = [f"{view}/image", f"{view}/boxes", f"{view}/lane_mask", "action"]
    frames = [draw(s[keys[0]].numpy(), s[keys[1]].numpy(), s[keys[2]].numpy(),
                   f"expert: {simulator.ACTIONS[int(s['action'])]}")
              for s in step_dataset(directory, manifest, [episode], keys)]
    return write_gif(frames, out)


def view_run(path, out, episode=None, min_score=0.5):
    """A GIF of a detect or lanes run's predictions (boxes with score >= `min_score`, or the
    predicted marking mask) on one of its recording's test episodes (default: the first)."""
    import tensorflow as tf

    from apps.driving.recordings import episode_split, recording, step_dataset
    from apps.driving.tasks import TASKS
    from shared.training.runs import load_run
    from shared.training.runs import load_model

    run, task, cfg, info = load_run("drive", TASKS, path)
    if run.task not in ("detect", "lanes"):
        raise UserError(f"{path}: a {run.task} run; `view` draws detect or lanes runs (a policy: `drive --record`)")
    directory, manifest = recording(cfg.data, cfg.episodes, cfg.record_seed)
    episode = episode_split(manifest, cfg.validation_split, cfg.seed)[2][0] if episode is None else episode
    if not 0 <= episode < manifest["episodes"]:
        raise UserError(f"--episode: expected 0 … {manifest['episodes'] - 1}; got {episode}")
    serving = task.serving_model(load_model(run), info)
    call = tf.function(lambda x: serving(x, training=False))
    key = f"{cfg.view}/image"
    frames = []
    for step in step_dataset(directory, manifest, [episode], [key]):
        image = step[key].numpy()
        outputs = {k: v.numpy()[0] for k, v in call(image[None]).items()}
        if run.task == "detect":
            n = int(outputs["num_detections"])
            keep = outputs["scores"][:n] >= min_score
            frames.append(draw(image, outputs["boxes"][:n][keep], caption=f"{int(keep.sum())} vehicles"))
        else:
            frames.append(draw(image, mask=outputs["mask"], caption="predicted markings"))
    return write_gif(frames, out)


def savedmodel_policy(path):
    """`act` for `simulator.drive` from an exported policy SavedModel (plain TensorFlow)."""
    import tensorflow as tf

    serve = tf.saved_model.load(path).signatures["serving_default"]

    def act(env, observation):
        x = tf.constant(np.asarray(observation, np.float32)[None])
        return int(np.argmax(serve(observation=x)["action_probabilities"].numpy()[0]))
    return act


def _policy(run, choice):
    from apps.driving.policy import keras_policy
    from shared.training.runs import load_model

    saved = run.file("saved_model")
    if choice == "savedmodel" or (choice == "auto" and os.path.isdir(saved)):
        if not os.path.isdir(saved):
            raise UserError(f"{run.path}: no exported SavedModel; run `dl-drive export {run.path} --format savedmodel`")
        return savedmodel_policy(saved), "savedmodel"
    return keras_policy(load_model(run)), "keras"


def drive_command(run, args):
    """Drives `args.episodes` seeded episodes with the run's policy and with the expert; prints both."""
    from apps.driving.policy import EVAL_SEED, closed_loop
    from apps.driving.recordings import progress_bar

    if run.task != "policy":
        raise UserError(f"{run.path}: a {run.task} run; `drive` needs a policy run")
    if args.episodes < 1:
        raise UserError(f"--episodes: expected at least 1; got {args.episodes}")
    act, source = _policy(run, args.model)
    seed = EVAL_SEED if args.seed is None else args.seed
    figures = closed_loop(act, args.episodes, seed=seed, progress=progress_bar(args.episodes))
    figures["driver"] = source
    if args.record:
        figures["clip"] = record_clip(act, seed, args.record)
    if args.json:
        print(json.dumps(figures))
        return
    print(f"{args.episodes} episodes, seeds {seed}…{seed + args.episodes - 1}, policy from the {source}")
    print(f"{'':10s} {'collisions':>10s} {'speed m/s':>10s} {'return':>8s} {'lane ch./km':>12s} {'length':>7s}")
    for who in ("policy", "expert"):
        f = figures[who]
        print(f"{who:10s} {f['collision_rate']:10.3f} {f['mean_speed']:10.2f} {f['mean_return']:8.2f} "
              f"{f['lane_changes_per_km']:12.2f} {f['mean_length']:7.1f}")
    if args.record:
        print(figures["clip"])


def record_clip(act, seed, path):
    """Drives the episode of `seed` again (it is deterministic) on a rendering simulator and
    writes its bird's-eye frames, with each step's action, as a GIF."""
    from apps.driving.views import BEV_CONFIG, bird_eye

    frames = []
    env = simulator.make_env(render=True, config=BEV_CONFIG)
    simulator.drive_episode(env, act, seed, on_step=lambda env, observation, action: frames.append(
        draw(bird_eye(env)["image"], caption=simulator.ACTIONS[action], scale=2)))
    env.close()
    return write_gif(frames, path)
