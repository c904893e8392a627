"""Camera views of a highway-env scene with exact ground truth from the simulator state.

Both views are rendered from the live state of `env.unwrapped` (a `highway-fast-v0` env made
with `render_mode="rgb_array"`); boxes and masks are computed from the same state, never labelled.

- `bird_eye(env)`: highway-env's own top-down frame (`BEV_CONFIG`: 64x256 px at 4 px/m, the ego
  at 30 % of the width), the other vehicles' boxes pushed through the viewer's world-to-pixel
  transform, and a lane-marking mask that redraws highway-env's stripes (same stripe length,
  spacing and phase) from the `road.network` lane geometry.
- `front_camera(env)`: a numpy-rasterised pinhole dash-cam on the ego (`FRONT_CAMERA`): sky,
  asphalt/off-road ground, painted lane markings, the other vehicles as flat-shaded cuboids with
  a z-buffer; boxes are the tight extent of each vehicle's visible pixels (id buffer), and
  `lanes` gives, TuSimple-style, the column of every lane boundary line at the rows `LANE_ROWS`.

Conventions. World: highway-env metres, x along the road, y to the driver's RIGHT (lanes at
y = 0, 4, 8 ...), heading measured from +x towards +y. Images: uint8 [H, W, 3]; a pixel (i, j)
covers [i, i+1) x [j, j+1) and its centre is (i + 0.5, j + 0.5); boxes are float32
(ymin, xmin, ymax, xmax) in these continuous pixel coordinates with ymax/xmax exclusive (a
one-pixel box is (i, j, i+1, j+1)), clipped to the image. `vehicle_ids` index
`env.unwrapped.road.vehicles`; the ego is never boxed. A vehicle with smaller y (in the lane to
the ego's left) appears higher in the bird's-eye image and in the left half of the front camera.
"""

import os

os.environ.setdefault("SDL_VIDEODRIVER", "offscreen")  # headless; `dummy` renders black frames

import functools
import math

import numpy as np

BEV_CONFIG = {"screen_width": 256, "screen_height": 64, "scaling": 4.0, "centering_position": [0.3, 0.5]}

FRONT_CAMERA = {
    "mount_height": 1.2,        # camera above the road [m], at the ego's (centre) position
    "pitch_deg": 4.0,           # downward tilt of the optical axis
    "hfov_deg": 65.0,           # horizontal field of view
    "near": 0.1,                # near clipping plane [m]
    "max_distance": 80.0,       # vehicles and markings farther ahead [m] are not drawn
    "vehicle_height": 1.5,      # cuboid height [m]
    "marking_width": 0.18,      # painted line width [m] (drawn at least ~1 px wide)
    "min_visible_pixels": 6,    # vehicles with fewer visible pixels get no box
}
LANE_ROW_STEP = 4

SKY_TOP, SKY_HORIZON = (92, 142, 212), (196, 214, 232)
ASPHALT, OFFROAD, MARKING, HAZE = (88, 88, 92), (104, 132, 70), (236, 236, 228), (170, 176, 186)
HAZE_DISTANCE = 400.0  # [m] ground colour blends linearly to HAZE at this distance
# Per-vehicle base colours (saturated, unlike road, ground, sky and markings) and face shades.
VEHICLE_PALETTE = ((200, 40, 40), (40, 80, 200), (230, 150, 30), (150, 50, 170), (30, 150, 150),
                   (215, 195, 40), (125, 65, 30), (230, 90, 150))
FACE_SHADES = (0.85, 1.0, 0.7, 0.55, 1.15)  # rear, front, left, right, top


def vehicle_colors(index):
    """The front camera's face colours of vehicle `index` (rear, front, left, right, top), uint8 [5, 3]."""
    base = np.array(VEHICLE_PALETTE[index % len(VEHICLE_PALETTE)], np.float64)
    return np.clip(np.round(base[None] * np.array(FACE_SHADES)[:, None]), 0, 255).astype(np.uint8)


# ---------------------------------------------------------------------------------- shared


def _fill_convex(us, vs, height, width):
    """Pixels whose centres lie in the convex polygon (us, vs): (i0, j0, bool [h, w]) or None."""
    j0 = max(0, math.ceil(min(us) - 0.5))
    j1 = min(width - 1, math.floor(max(us) - 0.5))
    i0 = max(0, math.ceil(min(vs) - 0.5))
    i1 = min(height - 1, math.floor(max(vs) - 0.5))
    if j1 < j0 or i1 < i0:
        return None
    n = len(us)
    area = sum(us[k] * vs[(k + 1) % n] - us[(k + 1) % n] * vs[k] for k in range(n))
    if abs(area) < 1e-9:
        return None
    sign = 1.0 if area > 0 else -1.0
    cu = np.arange(j0, j1 + 1, dtype=np.float64) + 0.5
    cv = np.arange(i0, i1 + 1, dtype=np.float64)[:, None] + 0.5
    inside = None
    for k in range(n):
        au, av, bu, bv = us[k], vs[k], us[(k + 1) % n], vs[(k + 1) % n]
        edge = ((bu - au) * sign) * (cv - av) - ((bv - av) * sign) * (cu - au) >= 0
        inside = edge if inside is None else inside & edge
    return i0, j0, inside


def _unwrapped(env):
    return getattr(env, "unwrapped", env)


# ---------------------------------------------------------------------------- bird's eye


def _sync_viewer(sim):
    """Make highway-env's viewer follow the env config: `EnvViewer` reads screen size, scaling
    and centering only when it is created (first `render()`), and keeps them across `reset`."""
    from highway_env.envs.common.graphics import EnvViewer

    config, viewer = sim.config, sim.viewer
    size = (int(config["screen_width"]), int(config["screen_height"]))
    if viewer is not None and viewer.sim_surface.get_size() != size:
        viewer = sim.viewer = None  # dropped, not closed: close() would pygame.quit() every viewer
    if viewer is None:
        viewer = sim.viewer = EnvViewer(sim)
    viewer.sim_surface.scaling = config["scaling"]
    viewer.sim_surface.centering_position = list(config["centering_position"])
    viewer.enabled = True  # EnvViewer silently draws nothing when SDL_VIDEODRIVER=dummy
    return viewer


def _line_pixels(p0, p1, thickness):
    """Pixels (rows, cols) of pygame-style lines between integer endpoints p0, p1 [N, 2] (x, y)."""
    d = p1 - p0
    steps = np.maximum(np.abs(d).max(1), 1)
    counts = steps + 1
    seg = np.repeat(np.arange(len(p0)), counts)
    k = np.arange(counts.sum()) - np.repeat(np.cumsum(counts) - counts, counts)
    t = k / steps[seg]
    x = p0[seg, 0] + np.round(t * d[seg, 0]).astype(np.int64)
    y = p0[seg, 1] + np.round(t * d[seg, 1]).astype(np.int64)
    if thickness > 1:  # widen across the major axis
        x_major = np.abs(d[seg, 0]) >= np.abs(d[seg, 1])
        offsets = np.arange(thickness) - (thickness - 1) // 2
        x = (x[:, None] + np.where(x_major[:, None], 0, offsets[None])).ravel()
        y = (y[:, None] + np.where(x_major[:, None], offsets[None], 0)).ravel()
    return y, x


def _bev_marking_mask(road, surface, height, width):
    """uint8 [H, W] mask of the stripes `LaneGraphics.display` draws for every lane (same
    stripes count, phase, clipping, endpoint rounding and width)."""
    from highway_env.road.graphics import LaneGraphics as G
    from highway_env.road.lane import LineType

    count = int(2 * (surface.get_height() + surface.get_width()) / (G.STRIPE_SPACING * surface.scaling))
    starts_all, ends_all = [], []
    for _from, tos in road.network.graph.items():
        for _to, lanes in tos.items():
            for lane in lanes:
                s_origin, _ = lane.local_coordinates(surface.origin)
                s0 = (int(s_origin) // G.STRIPE_SPACING - count // 2) * G.STRIPE_SPACING
                for side in range(2):
                    kind = lane.line_types[side]
                    if kind == LineType.STRIPED:
                        starts = s0 + np.arange(count) * G.STRIPE_SPACING
                        ends = starts + G.STRIPE_LENGTH
                    elif kind == LineType.CONTINUOUS:
                        starts = s0 + np.arange(count) * G.STRIPE_SPACING
                        ends = starts + G.STRIPE_SPACING
                    elif kind == LineType.CONTINUOUS_LINE:
                        starts = np.array([s0])
                        ends = np.array([s0 + count * G.STRIPE_SPACING + G.STRIPE_LENGTH])
                    else:
                        continue
                    lats = [(side - 0.5) * lane.width_at(s) for s in starts]
                    starts, ends = np.clip(starts, 0, lane.length), np.clip(ends, 0, lane.length)
                    for a, b, lat in zip(starts, ends, lats):
                        if abs(a - b) > 0.5 * G.STRIPE_LENGTH:
                            starts_all.append(surface.vec2pix(lane.position(a, lat)))
                            ends_all.append(surface.vec2pix(lane.position(b, lat)))
    mask = np.zeros((height, width), np.uint8)
    if starts_all:
        rows, cols = _line_pixels(np.array(starts_all, np.int64), np.array(ends_all, np.int64),
                                  max(surface.pix(G.STRIPE_WIDTH), 1))
        keep = (rows >= 0) & (rows < height) & (cols >= 0) & (cols < width)
        mask[rows[keep], cols[keep]] = 1
    return mask


def _bev_footprint(vehicle, surface):
    """Pixel corners (us, vs) of a vehicle's body as `VehicleGraphics.display` draws it: centred on
    `vec2pix(position)`, LENGTH x WIDTH, heading snapped to 0 below 2 degrees like the renderer."""
    h = vehicle.heading if abs(vehicle.heading) > 2 * np.pi / 180 else 0.0
    cx, cy = surface.vec2pix(vehicle.position)
    c, s = math.cos(h), math.sin(h)
    half_l, half_w = vehicle.LENGTH * surface.scaling / 2, vehicle.WIDTH * surface.scaling / 2
    corners = [(half_l, -half_w), (half_l, half_w), (-half_l, half_w), (-half_l, -half_w)]
    return [cx + a * c - b * s for a, b in corners], [cy + a * s + b * c for a, b in corners]


def bird_eye(env, config=BEV_CONFIG):
    """highway-env's top-down frame of the current state with exact ground truth.

    `config` (default `BEV_CONFIG`; None keeps the env's own) is applied to the env config if it
    differs, and the viewer is (re)built to match it, so the caller's
    `env.unwrapped.configure(BEV_CONFIG)` before `reset` is optional.

    Returns {"image": uint8 [H, W, 3] (the env's `render()`), "boxes": float32 [M, 4] (ymin, xmin,
    ymax, xmax px) of the other vehicles at least partly in the frame, from position, heading,
    LENGTH, WIDTH and the viewer's world-to-pixel transform, "vehicle_ids": int32 [M] (index in
    `road.vehicles`), "lane_mask": uint8 [H, W] (1 on the lane-marking pixels the renderer drew:
    highway-env's stripes redrawn from the lane geometry, minus the pixels vehicle bodies cover)}.
    """
    sim = _unwrapped(env)
    if sim.render_mode != "rgb_array":
        raise ValueError(f"bird_eye needs an env made with render_mode='rgb_array'; got {sim.render_mode!r}")
    if config is not None and any(sim.config.get(k) != v for k, v in config.items()):
        sim.configure({k: list(v) if isinstance(v, (list, tuple)) else v for k, v in config.items()})
    viewer = _sync_viewer(sim)
    image = np.ascontiguousarray(sim.render())
    surface = viewer.sim_surface
    height, width = image.shape[:2]
    road, ego = sim.road, sim.vehicle

    boxes, ids = [], []
    covered = np.zeros((height, width), bool)
    for index, vehicle in enumerate(road.vehicles):
        if not surface.is_visible(vehicle.position):  # the renderer skips these
            continue
        us, vs = _bev_footprint(vehicle, surface)
        filled = _fill_convex(us, vs, height, width)
        if filled is not None:
            i0, j0, inside = filled
            covered[i0:i0 + inside.shape[0], j0:j0 + inside.shape[1]] |= inside
        if vehicle is ego:
            continue
        box = (max(0.0, math.floor(min(vs))), max(0.0, math.floor(min(us))),
               min(float(height), math.ceil(max(vs))), min(float(width), math.ceil(max(us))))
        if box[2] > box[0] and box[3] > box[1]:
            boxes.append(box)
            ids.append(index)
    mask = _bev_marking_mask(road, surface, height, width)
    mask[covered] = 0
    return {"image": image, "boxes": np.array(boxes, np.float32).reshape(-1, 4),
            "vehicle_ids": np.array(ids, np.int32), "lane_mask": mask}


# --------------------------------------------------------------------------- front camera


def _camera_key(height, width):
    c = FRONT_CAMERA
    return (int(height), int(width), float(c["mount_height"]), float(c["pitch_deg"]), float(c["hfov_deg"]),
            float(c["max_distance"]), float(c["marking_width"]))


@functools.lru_cache(maxsize=8)
def _camera_rays(key):
    """Per-(H, W) constants: focal length, ground rows with their forward distance / depth, the
    per-pixel lateral offsets of the ground points, the background and the per-row colour table."""
    height, width, mount, pitch_deg, hfov_deg, max_distance, marking_width = key
    pitch = math.radians(pitch_deg)
    focal = (width / 2) / math.tan(math.radians(hfov_deg) / 2)
    xr = (np.arange(width) + 0.5 - width / 2) / focal                 # right / depth
    yr = -(np.arange(height) + 0.5 - height / 2) / focal              # up / depth
    forward = math.cos(pitch) + yr * math.sin(pitch)                  # ray (depth = 1) in the ego frame
    up = -math.sin(pitch) + yr * math.cos(pitch)
    ground = up < -mount / 2000.0                                     # hits the road within 2 km
    first = int(np.argmax(ground)) if ground.any() else height
    depth = np.where(ground, mount / np.maximum(-up, 1e-12), np.inf)[first:]  # camera depth of the hit
    along = depth * forward[first:]                                   # forward distance of the hit [m]
    lateral = depth[:, None] * xr[None, :]                            # right offset of the hit [m]
    half_width = np.maximum(marking_width / 2, 0.5 * depth / focal)   # >= ~1 px wide lines

    background = np.empty((height, width, 3), np.uint8)
    t = np.clip((np.arange(height) + 0.5) / max(first, 1), 0, 1)[:, None]
    background[:] = np.round(np.array(SKY_TOP) * (1 - t) + np.array(SKY_HORIZON) * t).astype(np.uint8)[:, None]
    haze = np.clip(along / HAZE_DISTANCE, 0, 1)[:, None, None]
    table = np.array([OFFROAD, ASPHALT, MARKING], np.float64)[None]
    table = np.round(table * (1 - haze) + np.array(HAZE)[None, None] * haze).astype(np.uint8)  # [rows, 3, 3]
    rows = np.arange(len(along))[:, None]
    visible = along <= max_distance
    lane_rows = np.arange(height - 1, first + (int(np.argmax(visible)) if visible.any() else len(along)) - 1,
                          -LANE_ROW_STEP)[::-1]
    for a in (xr, yr, along, depth, lateral, half_width, background, table, lane_rows):
        a.setflags(write=False)
    return {"focal": focal, "pitch": pitch, "first": first, "along": along, "depth": depth,
            "lateral": lateral, "half_width": half_width, "background": background, "table": table,
            "rows": rows, "lane_rows": lane_rows, "xr": xr, "yr": yr}


def lane_rows(height=96, width=192):
    """int [R] image rows of the front camera's `lanes`: every `LANE_ROW_STEP`-th row up from the
    bottom row, while the road there is within `FRONT_CAMERA["max_distance"]`."""
    return _camera_rays(_camera_key(height, width))["lane_rows"]


LANE_ROWS = lane_rows()


def _lane_frame(lane, point):
    """(origin, direction, normal, length, width) of a lane as a straight line; exact for
    StraightLane, the tangent at `point`'s longitudinal position for curved lanes."""
    from highway_env.road.lane import StraightLane

    if type(lane) is StraightLane:
        return (np.asarray(lane.start, float), np.asarray(lane.direction, float),
                np.asarray(lane.direction_lateral, float), float(lane.length), float(lane.width_at(0)))
    s, _ = lane.local_coordinates(point)
    s = float(np.clip(s, 0, lane.length))
    heading = lane.heading_at(s)
    d = np.array([math.cos(heading), math.sin(heading)])
    return lane.position(s, 0) - s * d, d, np.array([-d[1], d[0]]), float(lane.length), float(lane.width_at(s))


def _boundary_lines(sim, point, frames):
    """Lane boundary lines of the ego's road segment, left to right: [(origin, direction, length)]."""
    network = sim.road.network
    index = getattr(sim.vehicle, "lane_index", None) or network.get_closest_lane_index(point)
    lanes = network.graph[index[0]][index[1]]
    ref = frames[id(lanes[0])] if id(lanes[0]) in frames else _lane_frame(lanes[0], point)
    lines = {}
    for lane in lanes:
        o, d, n, length, width = frames[id(lane)] if id(lane) in frames else _lane_frame(lane, point)
        for side in (-0.5, 0.5):
            origin = o + side * width * n
            offset = round(float(np.dot(origin - ref[0], ref[2])), 1)
            lines.setdefault(offset, (origin, d, length))
    return [lines[k] for k in sorted(lines)]


def _draw_vehicle(corners, colors, vid, cam, image, zbuf, idbuf, near):
    """Rasterise the camera-facing faces of a cuboid given its 8 corners in camera coordinates
    [8, 3] (right, up, depth): 0-3 bottom, 4-7 top, ordered rear-left, rear-right, front-right,
    front-left. Returns the touched pixel region (i0, i1, j0, j1) or None."""
    focal, height, width = cam["focal"], image.shape[0], image.shape[1]
    faces = ((0, 1, 5, 4), (2, 3, 7, 6), (3, 0, 4, 7), (1, 2, 6, 5), (4, 5, 6, 7))  # rear front left right top
    centre = corners.mean(0)
    region = None
    for f, face in enumerate(faces):
        pts = corners[list(face)]
        normal = np.cross(pts[1] - pts[0], pts[3] - pts[0])
        if np.dot(normal, pts[0] - centre) < 0:
            normal = -normal  # outward
        d = float(np.dot(normal, pts[0]))
        if d >= -1e-9:  # back face: the camera (origin) is not on its outer side
            continue
        poly = []  # clip against depth >= near (Sutherland-Hodgman, one plane)
        for k in range(4):
            a, b = pts[k], pts[(k + 1) % 4]
            if a[2] >= near:
                poly.append(a)
            if (a[2] >= near) != (b[2] >= near):
                poly.append(a + (b - a) * ((near - a[2]) / (b[2] - a[2])))
        if len(poly) < 3:
            continue
        poly = np.array(poly)
        us = (width / 2 + focal * poly[:, 0] / poly[:, 2]).tolist()
        vs = (height / 2 - focal * poly[:, 1] / poly[:, 2]).tolist()
        filled = _fill_convex(us, vs, height, width)
        if filled is None:
            continue
        i0, j0, inside = filled
        i1, j1 = i0 + inside.shape[0], j0 + inside.shape[1]
        # depth along each pixel ray (x, y, 1): the plane n.P = d gives t = d / n.ray
        denom = normal[0] * cam["xr"][j0:j1][None] + normal[1] * cam["yr"][i0:i1][:, None] + normal[2]
        with np.errstate(divide="ignore", invalid="ignore"):
            z = np.where(inside, d / denom, np.inf)
        zone = zbuf[i0:i1, j0:j1]
        win = inside & (z < zone) & (z > 0)
        zone[win] = z[win]
        idbuf[i0:i1, j0:j1][win] = vid
        image[i0:i1, j0:j1][win] = colors[f]
        region = (i0, i1, j0, j1) if region is None else (
            min(region[0], i0), max(region[1], i1), min(region[2], j0), max(region[3], j1))
    return region


def appearance(rng):
    """A random look for one episode's front frames (domain randomisation): light level,
    asphalt tone and grain, paint wear (markings fade toward the asphalt) and sensor noise.
    The ground truth does not change: a faded marking is still a marking."""
    return {"light": float(rng.uniform(0.55, 1.25)), "asphalt": float(rng.uniform(-25, 25)),
            "grain": float(rng.uniform(2, 10)), "paint": float(rng.uniform(0.3, 1.0)),
            "noise": float(rng.uniform(0, 8)), "seed": int(rng.integers(2**31))}


def _restyle(image, ground, vehicles, first, style, step):
    """`image` under `style` (see `appearance`); `ground` [H-first, W] is 0 off-road, 1 asphalt,
    2 marking; `vehicles` [H, W] marks vehicle pixels. Step `step` draws its own noise."""
    rng = np.random.default_rng([style["seed"], step])
    img = image.astype(np.float32)
    below = img[first:]
    free = ~vehicles[first:]
    road, paint = (ground == 1) & free, (ground == 2) & free
    asphalt = np.float32(ASPHALT[0] + style["asphalt"])
    below[paint] = asphalt + style["paint"] * (below[paint] - asphalt)
    below[road | paint] += style["asphalt"] + rng.normal(0, style["grain"], ((road | paint).sum(), 1))
    img = img * style["light"] + rng.normal(0, style["noise"], img.shape)
    return np.clip(np.rint(img), 0, 255).astype(np.uint8)


def front_camera(env, height=96, width=192, style=None, step=0):
    """A dash-cam view from the ego (`FRONT_CAMERA`) with exact ground truth.

    Returns {"image": uint8 [H, W, 3], "boxes": float32 [M, 4] (ymin, xmin, ymax, xmax px, tight
    extent of each vehicle's visible pixels after occlusion; vehicles with fewer than
    `min_visible_pixels` are dropped), "vehicle_ids": int32 [M] (index in `road.vehicles`),
    "lane_mask": uint8 [H, W] (1 on visible lane-marking pixels), "lanes": float32 [L, R] (column,
    in continuous px, where each of the L lane boundary lines of the ego's road segment, left to
    right, crosses the centre of row `lane_rows(H, W)[r]` — dash gaps included — or -1 where
    that point is off the road segment, outside the image or hidden by a vehicle)}.
    With `style` (`appearance(rng)`), the image is restyled for step `step`; the truth is not.
    """
    sim = _unwrapped(env)
    cam = _camera_rays(_camera_key(height, width))
    conf = FRONT_CAMERA
    ego = sim.vehicle
    pos = np.asarray(ego.position, float)
    ef = np.array([math.cos(ego.heading), math.sin(ego.heading)])   # forward
    er = np.array([-ef[1], ef[0]])                                   # right (y grows to the right)
    first, along, lateral, hw = cam["first"], cam["along"], cam["lateral"], cam["half_width"]
    near_road = (along <= conf["max_distance"])[:, None]

    # ground: road surface and markings, lane by lane (a lane is a straight strip in its frame)
    from highway_env.road.graphics import LaneGraphics as G
    from highway_env.road.lane import LineType

    road_px = np.zeros(lateral.shape, bool)
    marking = np.zeros(lateral.shape, bool)
    frames = {}
    for tos in sim.road.network.graph.values():
        for lanes in tos.values():
            for lane in lanes:
                o, d, n, length, lane_width = frames.setdefault(id(lane), _lane_frame(lane, pos))
                s = (np.dot(pos - o, d) + np.dot(ef, d) * along)[:, None] + np.dot(er, d) * lateral
                r = (np.dot(pos - o, n) + np.dot(ef, n) * along)[:, None] + np.dot(er, n) * lateral
                on_segment = (s >= 0) & (s <= length)
                road_px |= on_segment & (np.abs(r) <= lane_width / 2)
                for side, kind in zip((-0.5, 0.5), lane.line_types):
                    if kind == LineType.NONE:
                        continue
                    line = np.abs(r - side * lane_width) <= hw[:, None]
                    if kind == LineType.STRIPED:
                        line &= np.mod(s, G.STRIPE_SPACING) < G.STRIPE_LENGTH
                    marking |= line & on_segment
    marking &= near_road
    classes = np.where(marking, 2, road_px.astype(np.int8))  # 0 off-road, 1 asphalt, 2 marking
    image = cam["background"].copy()
    image[first:] = cam["table"][cam["rows"], classes]

    # vehicles: cuboids with a z-buffer and an id buffer
    zbuf = np.full((height, width), np.inf)
    idbuf = np.full((height, width), -1, np.int32)
    pitch, mount, near = cam["pitch"], conf["mount_height"], conf["near"]
    cp, sp = math.cos(pitch), math.sin(pitch)
    tall = conf["vehicle_height"]
    regions = {}
    for index, vehicle in enumerate(sim.road.vehicles):
        if vehicle is ego:
            continue
        rel = np.asarray(vehicle.position, float) - pos
        fwd = float(np.dot(rel, ef))
        half_l, half_w = vehicle.LENGTH / 2, vehicle.WIDTH / 2
        if fwd > conf["max_distance"] or fwd < -(half_l + half_w):
            continue
        dh = vehicle.heading - ego.heading
        vf = np.array([math.cos(dh), math.sin(dh)])  # vehicle axes in the ego frame (forward, right)
        vr = np.array([-vf[1], vf[0]])
        centre = np.array([fwd, float(np.dot(rel, er))])
        foot = np.array([centre - half_l * vf - half_w * vr, centre - half_l * vf + half_w * vr,
                         centre + half_l * vf + half_w * vr, centre + half_l * vf - half_w * vr])
        f = np.concatenate([foot[:, 0], foot[:, 0]])
        r = np.concatenate([foot[:, 1], foot[:, 1]])
        c = np.concatenate([np.full(4, -mount), np.full(4, tall - mount)])  # up, relative to the camera
        depth = f * cp - c * sp
        if depth.max() < near:
            continue
        corners = np.stack([r, f * sp + c * cp, depth], 1)
        region = _draw_vehicle(corners, vehicle_colors(index), index, cam, image, zbuf, idbuf, near)
        if region is not None:
            regions[index] = region

    boxes, ids = [], []
    for index, (i0, i1, j0, j1) in sorted(regions.items()):
        mine = idbuf[i0:i1, j0:j1] == index
        if mine.sum() < conf["min_visible_pixels"]:
            continue
        rows, cols = np.flatnonzero(mine.any(1)), np.flatnonzero(mine.any(0))
        boxes.append((i0 + rows[0], j0 + cols[0], i0 + rows[-1] + 1, j0 + cols[-1] + 1))
        ids.append(index)

    lane_mask = np.zeros((height, width), np.uint8)
    lane_mask[first:] = marking
    lane_mask[idbuf >= 0] = 0
    if style is not None:
        image = _restyle(image, classes, idbuf >= 0, first, style, step)

    # lanes: each boundary line crosses row i where its forward distance equals along[i]
    rows = cam["lane_rows"]
    lines = _boundary_lines(sim, pos, frames)
    lanes = np.full((len(lines), len(rows)), -1.0, np.float32)
    at = along[rows - first]
    scale = cam["focal"] / cam["depth"][rows - first]
    for k, (origin, d, length) in enumerate(lines):
        q0f, q0r = float(np.dot(origin - pos, ef)), float(np.dot(origin - pos, er))
        qf, qr = float(np.dot(d, ef)), float(np.dot(d, er))
        if abs(qf) < 1e-6:
            continue
        s = (at - q0f) / qf
        u = width / 2 + (q0r + s * qr) * scale
        ok = (s >= 0) & (s <= length) & (u >= 0) & (u < width)
        cols = np.clip(np.floor(u), 0, width - 1).astype(np.int64)
        ok &= idbuf[rows, cols] < 0
        lanes[k, ok] = u[ok]
    return {"image": image, "boxes": np.array(boxes, np.float32).reshape(-1, 4),
            "vehicle_ids": np.array(ids, np.int32), "lane_mask": lane_mask, "lanes": lanes}
