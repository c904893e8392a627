"""Camera views: ground truth checked against the pixels on real highway-env scenes."""

import time

import numpy as np
import pytest

from apps.driving import views  # sets SDL_VIDEODRIVER before pygame is imported

gym = pytest.importorskip("gymnasium")
pytest.importorskip("highway_env")

H, W = 96, 192
ROAD_GREY = (100, 100, 100)


@pytest.fixture(scope="module")
def env():
    env = gym.make("highway-fast-v0", render_mode="rgb_array")
    env.unwrapped.configure(views.BEV_CONFIG)
    yield env
    env.close()


def scene(env, ego_lane, others, ego_x=432.0):
    """A known state: the ego at (ego_x, 4 * ego_lane) heading along +x, and one other vehicle at
    each (ahead [m], lane) of `others`; returns the others' indices in road.vehicles."""
    env.reset(seed=0)
    sim = env.unwrapped
    ego, pool = sim.vehicle, [v for v in sim.road.vehicles if v is not sim.vehicle]
    ego.position, ego.heading = np.array([ego_x, 4.0 * ego_lane]), 0.0
    ego.lane_index = ("0", "1", ego_lane)
    for vehicle, (ahead, lane) in zip(pool, others):
        vehicle.position, vehicle.heading = np.array([ego_x + ahead, 4.0 * lane]), 0.0
    sim.road.vehicles = [ego, *pool[:len(others)]]
    return list(range(1, len(others) + 1))


def front_box(result, vehicle_id):
    ids = result["vehicle_ids"].tolist()
    return result["boxes"][ids.index(vehicle_id)] if vehicle_id in ids else None


def test_bird_eye_boxes_are_on_the_drawn_vehicles(env):
    from highway_env.vehicle.graphics import VehicleGraphics

    checked = 0
    for seed in range(3):
        env.reset(seed=seed)
        for _ in range(seed):
            env.step(1)
        result = views.bird_eye(env)
        image, boxes, ids = result["image"], result["boxes"], result["vehicle_ids"]
        assert image.shape == (64, 256, 3) and image.dtype == np.uint8
        assert boxes.dtype == np.float32 and boxes.shape == (len(ids), 4) and ids.dtype == np.int32
        assert result["lane_mask"].shape == (64, 256) and result["lane_mask"].dtype == np.uint8
        vehicles = env.unwrapped.road.vehicles
        assert vehicles.index(env.unwrapped.vehicle) not in ids.tolist()
        assert np.all(boxes[:, :2] >= 0) and np.all(boxes[:, 2] <= 64) and np.all(boxes[:, 3] <= 256)
        assert np.all(boxes[:, 2:] > boxes[:, :2])
        for (y0, x0, y1, x1), index in zip(boxes, ids):
            if y1 - y0 < 6 or x1 - x0 < 6:  # mostly outside the frame: centre may be on the outline
                continue
            colour = tuple(image[int((y0 + y1) / 2), int((x0 + x1) / 2)])
            assert colour == VehicleGraphics.get_color(vehicles[index]) and colour != ROAD_GREY
            checked += 1
    assert checked >= 3


def test_bird_eye_lane_mask_is_the_drawn_markings(env):
    for seed in (0, 1):
        env.reset(seed=seed)
        result = views.bird_eye(env)
        image, mask = result["image"], result["lane_mask"].astype(bool)
        white = (image == 255).all(-1)  # LaneGraphics draws in WorldSurface.WHITE
        precision, recall = (mask & white).sum() / mask.sum(), (mask & white).sum() / white.sum()
        print(f"bird's-eye lane mask: {precision:.3f} of mask pixels white, {recall:.3f} of white in mask")
        assert mask.sum() > 300 and precision >= 0.9 and recall >= 0.9
        assert not mask[(image == ROAD_GREY).all(-1)].any()
        surface = env.unwrapped.viewer.sim_surface
        for lane_y in (0.0, 4.0, 8.0):  # lane centres, 2 m from any marking
            row = surface.pos2pix(0.0, lane_y)[1]
            if 0 <= row < 64:
                assert not mask[row].any()


def test_bird_eye_follows_the_config_after_a_first_render():
    env = gym.make("highway-fast-v0", render_mode="rgb_array")  # default 600x150 viewer
    env.reset(seed=0)
    assert env.render().shape == (150, 600, 3)
    result = views.bird_eye(env)
    assert result["image"].shape == (64, 256, 3)
    assert env.unwrapped.viewer.sim_surface.scaling == 4.0  # not closed: pygame.quit() is global


def test_front_camera_vehicle_ahead_is_centred_and_coloured(env):
    (near,) = scene(env, 1, [(20.0, 1)])
    result = views.front_camera(env)
    assert result["image"].shape == (H, W, 3) and result["image"].dtype == np.uint8
    assert result["lane_mask"].shape == (H, W) and result["lane_mask"].dtype == np.uint8
    assert result["lanes"].shape == (4, len(views.LANE_ROWS)) and result["lanes"].dtype == np.float32
    assert result["vehicle_ids"].tolist() == [near]
    y0, x0, y1, x1 = front_box(result, near)
    assert abs((x0 + x1) / 2 - W / 2) <= 2
    assert y1 < H and y0 > 20
    pixels = result["image"][int(y0):int(y1), int(x0):int(x1)].reshape(-1, 3)
    colours = views.vehicle_colors(near)
    is_vehicle = (pixels[:, None] == colours[None]).all(-1).any(-1)
    assert is_vehicle.mean() >= 0.95


def test_front_camera_distance_and_occlusion(env):
    (vehicle,) = scene(env, 1, [(20.0, 1)])
    near = front_box(views.front_camera(env), vehicle)
    (vehicle,) = scene(env, 1, [(40.0, 1)])
    far = front_box(views.front_camera(env), vehicle)
    assert far[3] - far[1] < near[3] - near[1] and far[2] - far[0] < near[2] - near[0]
    assert far[2] < near[2]  # its bottom is higher: closer to the horizon
    front, hidden = scene(env, 1, [(20.0, 1), (40.0, 1)])
    result = views.front_camera(env)
    assert result["vehicle_ids"].tolist() == [front]
    np.testing.assert_array_equal(front_box(result, front), near)
    # left lane appears left, right lane right; behind and beyond 80 m are not drawn
    left, right, behind, beyond = scene(env, 1, [(25.0, 0), (25.0, 2), (-15.0, 1), (90.0, 1)])
    result = views.front_camera(env)
    assert result["vehicle_ids"].tolist() == [left, right]
    assert front_box(result, left)[3] < W / 2 < front_box(result, right)[1]


def test_front_camera_near_vehicles_are_clipped(env):
    # right beside (its inner side runs from behind the camera to 4.5 m ahead, 1.5 m to the
    # right), in the left lane 3 m ahead, and ahead in the ego's lane
    beside, left, ahead = ids = scene(env, 1, [(2.0, 1.625), (3.0, 0), (12.0, 1)])
    result = views.front_camera(env)
    boxes = result["boxes"]
    assert result["vehicle_ids"].tolist() == ids
    y0, x0, y1, x1 = front_box(result, beside)
    assert x0 > W / 2 and x1 == W and y1 == H
    assert front_box(result, left)[3] < W / 2 and front_box(result, left)[1] == 0
    assert np.all(np.isfinite(boxes)) and np.all(boxes[:, :2] >= 0)
    assert np.all(boxes[:, 2] <= H) and np.all(boxes[:, 3] <= W)


def test_front_camera_lanes(env):
    # ego in the left lane: solid left edge (line 0), dashed line 1 on its right; ego_x puts the
    # ground 1.5-4.5 m ahead (the nearest rows where the lines are in view) on a dash
    scene(env, 0, [], ego_x=431.5)
    result = views.front_camera(env)
    lanes, mask, rows = result["lanes"], result["lane_mask"], views.LANE_ROWS
    left, right = lanes[0], lanes[1]
    assert rows[-1] == H - 1 and np.all(np.diff(rows) == 4)
    valid = (left >= 0) & (right >= 0)
    assert valid.sum() >= len(rows) - 2
    lowest = np.flatnonzero(valid)[-1]
    assert rows[lowest] >= H - 8 and left[lowest] < W / 2 < right[lowest]
    gap = (right - left)[valid]
    assert np.all(np.diff(gap) > 0) and gap[0] < 0.3 * gap[-1]  # converging towards the horizon
    for line in (left, right):
        nearest = np.flatnonzero(line >= 0)[-4:]
        assert all(mask[rows[k], int(line[k])] == 1 for k in nearest)
    # lines are ordered left to right; the far right edge leaves the view near the bottom
    assert np.all(np.diff(lanes[:, 0]) > 0) and lanes[3, -1] == -1
    assert not mask[:rows[0] - 4].any()  # nothing painted above the horizon


def test_front_camera_lane_points_hidden_by_a_vehicle(env):
    scene(env, 0, [])
    clear = views.front_camera(env)["lanes"]
    (straddling,) = scene(env, 0, [(12.0, 0.5)])  # across the ego's right boundary line
    result = views.front_camera(env)
    hidden = (clear >= 0) & (result["lanes"] == -1)
    assert hidden[1].any() and not hidden[0].any()
    y0, x0, y1, x1 = front_box(result, straddling)
    for r in np.flatnonzero(hidden[1]):
        assert y0 <= views.LANE_ROWS[r] < y1 and x0 <= clear[1, r] < x1
        assert result["lane_mask"][views.LANE_ROWS[r], int(clear[1, r])] == 0


def test_views_are_deterministic_and_fast(env):
    env.reset(seed=3)
    for _ in range(3):
        env.step(1)
    a, b = views.front_camera(env), views.front_camera(env)
    c, d = views.bird_eye(env), views.bird_eye(env)
    for x, y in ((a, b), (c, d)):
        assert x.keys() == y.keys()
        for key in x:
            np.testing.assert_array_equal(x[key], y[key])
    times = []
    for _ in range(20):
        start = time.perf_counter()
        views.front_camera(env)
        times.append(time.perf_counter() - start)
    ms = 1000 * float(np.median(times))
    print(f"front_camera: {ms:.2f} ms/frame ({len(a['vehicle_ids'])} vehicles)")
    assert ms <= 50


def test_an_episode_appearance_restyles_pixels_but_not_the_truth(env):
    env.reset(seed=1)
    clean = views.front_camera(env)
    style = views.appearance(np.random.default_rng(0))
    a, b = views.front_camera(env, style=style, step=3), views.front_camera(env, style=style, step=3)
    assert np.array_equal(a["image"], b["image"])  # deterministic for (style, step)
    assert not np.array_equal(a["image"], views.front_camera(env, style=style, step=4)["image"])  # fresh noise
    assert np.abs(a["image"].astype(int) - clean["image"]).mean() > 3
    for key in ("boxes", "vehicle_ids", "lane_mask", "lanes"):
        assert np.array_equal(a[key], clean[key]), key
