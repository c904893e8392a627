"""The highway-env simulator: environments, the expert, and closed-loop driving with its metrics.

The expert is highway-env's own IDM (longitudinal) and MOBIL (lane change) behaviour models,
evaluated for the ego each step and mapped to the five meta-actions the policy chooses from,
so that expert and policy drive through the same action interface.
"""

import os

os.environ.setdefault("SDL_VIDEODRIVER", "offscreen")  # headless; `dummy` renders black frames

import numpy as np

from shared.errors import UserError

ENV_ID = "highway-fast-v0"
ACTIONS = ("LANE_LEFT", "IDLE", "LANE_RIGHT", "FASTER", "SLOWER")  # DiscreteMetaAction order
LANE_LEFT, IDLE, LANE_RIGHT, FASTER, SLOWER = range(5)
# IDM acceleration (m/s²) above which the expert asks for the next target speed, below which
# for the previous one (measured on 20 seeds: 0 collisions for thresholds 0.1–0.5 / -0.2 – -1).
SPEED_UP, SLOW_DOWN = 0.3, -0.5


def gym_module():
    """gymnasium with highway-env's environments registered, or a one-line UserError."""
    try:
        import gymnasium
        import highway_env  # noqa: F401  (registers the environments)
    except ImportError as e:
        raise UserError(f"the driving simulator is not installed ({e.name} missing): "
                        "run `make setup` or `pip install highway-env==1.12.1`") from None
    return gymnasium


def make_env(render=False, config=None):
    """A `highway-fast-v0` environment (rgb_array rendering when `render`), with `config` overrides."""
    env = gym_module().make(ENV_ID, render_mode="rgb_array" if render else None)
    if config:
        env.unwrapped.configure(config)
    return env


def expert_action(env):
    """The IDM/MOBIL expert's meta-action for the ego's current state: a lane change when MOBIL
    finds one beneficial and safe, else FASTER/SLOWER/IDLE from the IDM acceleration."""
    from highway_env.vehicle.behavior import IDMVehicle

    sim = env.unwrapped
    ego, road = sim.vehicle, sim.road
    idm = IDMVehicle.create_from(ego)
    idm.target_speed = ego.target_speeds[-1]
    index = road.vehicles.index(ego)
    road.vehicles[index] = idm  # the models look up neighbours on the road: see the IDM, not the ego
    try:
        if ego.lane_index == ego.target_lane_index:
            for lane in road.network.side_lanes(ego.lane_index):
                if road.network.get_lane(lane).is_reachable_from(ego.position) and idm.mobil(lane):
                    return LANE_LEFT if lane[2] < ego.lane_index[2] else LANE_RIGHT
        front, rear = road.neighbour_vehicles(idm, ego.lane_index)
        acceleration = idm.acceleration(idm, front, rear)
    finally:
        road.vehicles[index] = ego
    if acceleration < SLOW_DOWN:
        return SLOWER
    if acceleration > SPEED_UP and ego.speed_index < len(ego.target_speeds) - 1:
        return FASTER
    return IDLE


def ego_state(env):
    """float32 [7]: x, y (m), vx, vy (m/s), heading (rad), speed (m/s), lane index."""
    v = env.unwrapped.vehicle
    return np.array([*v.position, *v.velocity, v.heading, v.speed, v.lane_index[2]], np.float32)


def other_states(env):
    """float32 [M, 7] of the other vehicles, as `ego_state`."""
    sim = env.unwrapped
    rows = [[*v.position, *v.velocity, v.heading, v.speed, v.lane_index[2]]
            for v in sim.road.vehicles if v is not sim.vehicle]
    return np.array(rows, np.float32).reshape(-1, 7)


def drive_episode(env, act, seed, on_step=None):
    """Drives one seeded episode with `act(env, observation) -> action`; returns its metrics.
    `on_step(env, observation, action)` sees every state before its action is taken."""
    observation, _ = env.reset(seed=int(seed))
    sim = env.unwrapped
    start_x, lane = float(sim.vehicle.position[0]), sim.vehicle.lane_index[2]
    total, speeds, lane_changes, crashed, steps, done = 0.0, [], 0, False, 0, False
    while not done:
        action = int(act(env, observation))
        if on_step is not None:
            on_step(env, observation, action)
        observation, reward, terminated, truncated, info = env.step(action)
        total += float(reward)
        speeds.append(float(info["speed"]))
        crashed |= bool(info["crashed"])
        lane_changes += sim.vehicle.lane_index[2] != lane
        lane = sim.vehicle.lane_index[2]
        steps += 1
        done = terminated or truncated
    return {"seed": int(seed), "crashed": crashed, "return": total, "mean_speed": float(np.mean(speeds)),
            "lane_changes": int(lane_changes), "distance_m": float(sim.vehicle.position[0]) - start_x, "steps": steps}


def summarize(episodes):
    """Closed-loop figures over episodes: collision rate, mean speed (m/s), mean return, lane
    changes per km and mean episode length (policy steps)."""
    km = sum(e["distance_m"] for e in episodes) / 1000
    return {"episodes": len(episodes),
            "collision_rate": float(np.mean([e["crashed"] for e in episodes])),
            "mean_speed": float(np.mean([e["mean_speed"] for e in episodes])),
            "mean_return": float(np.mean([e["return"] for e in episodes])),
            "lane_changes_per_km": float(sum(e["lane_changes"] for e in episodes) / km) if km > 0 else 0.0,
            "mean_length": float(np.mean([e["steps"] for e in episodes]))}


def drive(act, seeds, env=None, on_step=None, progress=None):
    """`summarize` of one episode per seed, and the episodes' own figures."""
    env = env or make_env()
    episodes = []
    for seed in seeds:
        episodes.append(drive_episode(env, act, seed, on_step))
        if progress is not None:
            progress(len(episodes))
    return summarize(episodes), episodes


def expert(env, observation):
    """`act` for `drive`: the expert."""
    return expert_action(env)


def dagger_states(act, seeds, env=None):
    """(observations float32 [T,5,5], expert actions int32 [T]) of the states `act` visits while it
    drives the seeded episodes, each labelled with what the expert would do there (DAgger)."""
    observations, labels = [], []

    def label(env, observation, action):
        observations.append(np.asarray(observation, np.float32))
        labels.append(expert_action(env))

    drive(act, seeds, env=env, on_step=label)
    return np.stack(observations), np.array(labels, np.int32)
