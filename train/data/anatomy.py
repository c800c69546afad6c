"""Renal cortex geometry around one glomerulus, as maps in [0, 1] that stains then light up.

A glomerulus-centred field of view (IFVB-style crop); lengths scale with the image size (512 px ~ 250 um):
- tuft: 4-8 lobules around a hilum (vascular pole); each lobule a cluster of capillary loops (round lumina
  outlined by their walls / basement membranes), mesangial stalks running from the hilum into every lobule;
- Bowman's capsule: a thin elliptical ring outside the tuft, the urinary space between them;
- tubules: packed, rounded cross-sections (epithelium, basement membrane, lumen) filling the rest;
- optional: an arteriole near the hilum, segmental or global sclerosis, nodular mesangial expansion.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np


@dataclass
class Anatomy:
    size: int
    tuft: np.ndarray          # soft mask of the glomerular tuft
    wall: np.ndarray          # capillary walls (glomerular basement membrane)
    mesangium: np.ndarray     # mesangial stalks and interstitial mesangium
    capsule: np.ndarray       # Bowman's capsule
    epithelium: np.ndarray    # tubular epithelium (autofluorescent cytoplasm)
    tbm: np.ndarray           # tubular basement membranes
    vessel: np.ndarray        # arteriolar wall (zeros when the section shows none)
    sclerosis: np.ndarray     # sclerosed tuft segments (zeros when none)
    nodules: np.ndarray       # nodular mesangial expansion (zeros when none)
    loop_walls: list[np.ndarray]  # wall map of a random subset of loops (for wire loops), may be empty
    scale: float              # pixels per pixel-at-512


def smooth_noise(rng: np.random.Generator, size: int, cells: int) -> np.ndarray:
    """Zero-mean, unit-std smooth random field with about `cells` blobs across the frame."""
    coarse = rng.standard_normal((cells + 1, cells + 1)).astype(np.float32)
    mid = max(8 * cells, 16)
    field = cv2.resize(cv2.resize(coarse, (mid, mid), interpolation=cv2.INTER_CUBIC), (size, size),
                       interpolation=cv2.INTER_LINEAR)
    return (field - field.mean()) / (field.std() + 1e-6)


def _sigmoid(signed_distance: np.ndarray, softness: float) -> np.ndarray:
    """Soft inside-mask of a shape from its signed distance (negative inside), edge `softness` px wide."""
    return (0.5 - 0.5 * np.tanh(signed_distance / (2 * softness))).astype(np.float32)


class _Coarse:
    """Smooth geometry evaluated on a grid `factor` times coarser, then upsampled: distances are smooth,
    so this costs little accuracy and saves most of the arithmetic."""

    def __init__(self, size: int, factor: int = 4):
        self.size, small = size, -(-size // factor)
        grid = np.mgrid[0:small, 0:small].astype(np.float32) * np.float32(factor) + np.float32((factor - 1) / 2)
        self.y, self.x = grid

    def distance(self, y: float, x: float) -> np.ndarray:
        return np.hypot(self.y - np.float32(y), self.x - np.float32(x))

    def up(self, field: np.ndarray) -> np.ndarray:
        return cv2.resize(field, (self.size, self.size), interpolation=cv2.INTER_LINEAR)


def _jittered_points(rng, size, spacing, jitter=0.35):
    """Roughly even points (a jittered hexagonal grid) covering a size x size frame, margin included."""
    rows = np.arange(-spacing, size + spacing, spacing * 0.866)
    points = []
    for i, y in enumerate(rows):
        xs = np.arange(-spacing, size + spacing, spacing) + (spacing / 2 if i % 2 else 0)
        points.extend((y, x) for x in xs)
    points = np.asarray(points, np.float32)
    return points + rng.uniform(-jitter, jitter, points.shape).astype(np.float32) * spacing


def _nearest(points: np.ndarray, size: int) -> tuple[np.ndarray, np.ndarray, int]:
    """Distance (px) to the nearest point, that point's label (1..n, a Voronoi partition), and n."""
    seeds = np.full((size, size), 255, np.uint8)
    yx = np.round(points).astype(int)
    yx = yx[(yx[:, 0] >= 0) & (yx[:, 0] < size) & (yx[:, 1] >= 0) & (yx[:, 1] < size)]
    seeds[yx[:, 0], yx[:, 1]] = 0
    count = int((seeds == 0).sum())
    if count == 0:
        return np.full((size, size), float(size), np.float32), np.zeros((size, size), np.int32), 0
    dist, labels = cv2.distanceTransformWithLabels(seeds, cv2.DIST_L2, 5, labelType=cv2.DIST_LABEL_PIXEL)
    return dist, labels, count


def _on_ellipse(cy, cx, theta, aspect, radius, angle) -> tuple[list[float], list[float]]:
    """Points at elliptical radius `radius` and polar `angle` in the frame of the glomerulus' ellipse
    (major axis along `theta`, minor axis scaled by `aspect`), as (ys, xs) image coordinates."""
    along, across = radius * np.cos(angle), radius * np.sin(angle) * aspect
    xs = cx + along * np.cos(theta) - across * np.sin(theta)
    ys = cy + along * np.sin(theta) + across * np.cos(theta)
    return ys.tolist(), xs.tolist()


def _ring(distance: np.ndarray, radius, width: float) -> np.ndarray:
    return np.exp(-0.5 * ((distance - radius) / width) ** 2).astype(np.float32)


def build_anatomy(rng: np.random.Generator, size: int, *, sclerosis_p: float = 0.2,
                  nodular: bool = False) -> Anatomy:
    """Sample one glomerulus with its surroundings. `nodular` adds Kimmelstiel-Wilson-like nodules."""
    u = size / 512.0
    coarse = _Coarse(size)
    f32 = np.float32

    # Glomerulus: centre (sometimes near the edge: a partial glomerulus), radius, ellipticity.
    spread = 0.32 if rng.random() < 0.15 else 0.10
    cy, cx = (size / 2 + rng.uniform(-spread, spread, 2) * size).tolist()
    radius = rng.uniform(0.24, 0.38) * size
    aspect, theta = rng.uniform(0.78, 1.0), rng.uniform(0, np.pi)
    dy, dx = coarse.y - f32(cy), coarse.x - f32(cx)
    along = dx * f32(np.cos(theta)) + dy * f32(np.sin(theta))
    across = -dx * f32(np.sin(theta)) + dy * f32(np.cos(theta))
    ellipse_r = np.sqrt(along ** 2 + (across / f32(aspect)) ** 2)  # elliptical radius, px
    ellipse_r *= 1 + f32(0.04) * cv2.resize(smooth_noise(rng, 64, 6), ellipse_r.shape[::-1])

    # Lobules around the hilum (vascular pole).
    hilum_angle = rng.uniform(0, 2 * np.pi)
    n_lobules = int(rng.integers(4, 9))
    angles = hilum_angle + np.pi / n_lobules + np.arange(n_lobules) * 2 * np.pi / n_lobules
    angles += rng.uniform(-0.25, 0.25, n_lobules) * 2 * np.pi / n_lobules
    lobule_dist = rng.uniform(0.42, 0.62, n_lobules) * radius
    lobule_r = (rng.uniform(0.36, 0.50, n_lobules) * radius).tolist()
    lob_y, lob_x = _on_ellipse(cy, cx, theta, aspect, lobule_dist, angles)
    lobes = list(zip(lob_y, lob_x, lobule_r, strict=True))
    centre_dist = [coarse.distance(ly, lx) for ly, lx, _ in lobes]
    sdf = np.minimum.reduce([d - f32(lr) for d, (_, _, lr) in zip(centre_dist, lobes, strict=True)]
                            + [ellipse_r - f32(0.45 * radius)])
    sdf = np.maximum(sdf, ellipse_r - f32(radius))  # lobules stay inside the tuft's envelope
    tuft = _sigmoid(coarse.up(sdf), 1.2 * u)

    # Mesangial stalks: hilum -> each lobule centre -> a few branches, as gently bent polylines.
    (hy,), (hx,) = _on_ellipse(cy, cx, theta, aspect, np.array([0.95 * radius]), np.array([hilum_angle]))
    stalk_canvas = np.zeros((size, size), f32)
    thickness = max(1, int(round(rng.uniform(1.5, 3.5) * u)))

    def bent(y0, x0, y1, x1, width):
        steps = 4
        t = np.linspace(0, 1, steps + 1)[:, None]
        line = np.array([[y0, x0]]) * (1 - t) + np.array([[y1, x1]]) * t
        length = float(np.hypot(y1 - y0, x1 - x0))
        line[1:-1] += rng.normal(0, 0.12 * length / steps, (steps - 1, 2))
        cv2.polylines(stalk_canvas, [np.round(line[:, ::-1]).astype(np.int32)], False, 1.0, width)

    for ly, lx, lr in lobes:
        bent(hy, hx, ly, lx, thickness)
        for _ in range(int(rng.integers(2, 5))):
            a = rng.uniform(0, 2 * np.pi)
            reach = rng.uniform(0.4, 0.85) * lr
            bent(ly, lx, ly + reach * np.sin(a), lx + reach * np.cos(a), max(1, thickness - 1))
        cv2.circle(stalk_canvas, (int(lx), int(ly)), int(rng.uniform(3, 7) * u), 1.0, -1)
    stalks = cv2.GaussianBlur(stalk_canvas, (0, 0), 1.5 * u) * tuft

    # Capillary loops inside the tuft: round lumina, walls at a per-loop radius.
    spacing = rng.uniform(17, 27) * u
    centres = _jittered_points(rng, size, spacing)
    cyx = np.clip(np.round(centres).astype(int), 0, size - 1)
    keep = (tuft[cyx[:, 0], cyx[:, 1]] > 0.5) & (stalks[cyx[:, 0], cyx[:, 1]] < 0.5)
    dist, nearest, n_loops = _nearest(centres[keep], size)
    loop_r = (rng.uniform(0.34, 0.5, n_loops + 1) * spacing).astype(f32)
    wall_width = f32(rng.uniform(0.7, 1.2) * u)
    per_pixel_r = loop_r[nearest]
    wall = _ring(dist, per_pixel_r, wall_width) * tuft
    between = np.clip((dist - per_pixel_r - wall_width) / (2 * wall_width), 0, 1) * tuft
    # Most mesangium sits in the angles between loops and at lobule centres; the stalks link them.
    mesangium = np.clip(0.6 * stalks + cv2.GaussianBlur(between, (0, 0), 1.0 * u), 0, 1)

    # Wire-loop candidates: the walls of a random fifth of the loops.
    loop_walls = []
    if n_loops:
        chosen = rng.random(n_loops + 1) < 0.2
        loop_walls.append(wall * chosen[nearest].astype(f32))

    # Nodular mesangial expansion (diabetic nephropathy): round acellular nodules at lobule centres
    # that push the capillary loops to the periphery.
    nodules = np.zeros((size, size), f32)
    if nodular:
        nodule_sdf = [d - f32(rng.uniform(0.25, 0.5) * lr) for d, (_, _, lr) in zip(centre_dist, lobes, strict=True)
                      if rng.random() < 0.7]
        if nodule_sdf:
            nodules = _sigmoid(coarse.up(np.minimum.reduce(nodule_sdf)), 1.5 * u)
            wall *= 1 - nodules
            mesangium = np.maximum(mesangium, 0.8 * nodules)

    # Sclerosis: whole lobules (segmental) or the whole tuft (global) turned into loop-less matrix.
    sclerosis = np.zeros((size, size), f32)
    if rng.random() < sclerosis_p:
        global_ = rng.random() < 0.25
        scar_sdf = [d - f32(lr) for d, (_, _, lr) in zip(centre_dist, lobes, strict=True)
                    if global_ or rng.random() < 0.3]
        if scar_sdf:
            sclerosis = _sigmoid(coarse.up(np.minimum.reduce(scar_sdf)), 3 * u) * tuft
            wall *= 1 - 0.85 * sclerosis
            mesangium = np.maximum(mesangium * (1 - sclerosis), 0.5 * sclerosis)

    # Bowman's capsule and the urinary space.
    ellipse_full = coarse.up(ellipse_r)
    capsule_r = radius * rng.uniform(1.0, 1.08) + rng.uniform(2, 6) * u
    capsule = _ring(ellipse_full, f32(capsule_r), f32(rng.uniform(1.0, 2.0) * u))
    outside = np.clip((ellipse_full - f32(capsule_r + rng.uniform(2, 6) * u)) / f32(3 * u), 0, 1)

    # Tubules: rounded Voronoi cells (inside both the cell, shrunk by an interstitium, and a circle
    # around the cell's centre), an epithelial band inside each, the basement membrane at the outer edge.
    # Computed at half resolution (tubules are large) and upsampled.
    half = (size + 1) // 2
    t_spacing = rng.uniform(42, 70) * u
    t_dist, t_label, n_tubules = _nearest(_jittered_points(rng, half, t_spacing / 2, jitter=0.3), half)
    edges = np.zeros((half, half), np.uint8)
    edges[:, 1:] |= (t_label[:, 1:] != t_label[:, :-1]).astype(np.uint8)
    edges[1:, :] |= (t_label[1:, :] != t_label[:-1, :]).astype(np.uint8)
    to_edge = cv2.distanceTransform(1 - edges, cv2.DIST_L2, 5)
    t_radius = (rng.uniform(0.45, 0.6, n_tubules + 1) * t_spacing / 2).astype(f32)[t_label]
    epi_width = (rng.uniform(0.25, 0.45, n_tubules + 1) * t_spacing).astype(f32)[t_label]
    depth = 2 * np.minimum(to_edge, t_radius - t_dist)  # distance inside the cell's outline, full-size px
    depth = cv2.resize(depth, (size, size), interpolation=cv2.INTER_LINEAR)
    epi_width = cv2.resize(epi_width, (size, size), interpolation=cv2.INTER_NEAREST)
    depth -= f32(rng.uniform(1.5, 4.0) * u)  # the interstitium between tubules
    epithelium = np.clip(depth / f32(u), 0, 1) * np.clip((epi_width - depth) / f32(2 * u), 0, 1)
    epithelium *= outside
    tbm = np.exp(-0.5 * (depth / f32(0.8 * u)) ** 2) * outside

    # An arteriole beside the hilum in some sections.
    vessel = np.zeros((size, size), f32)
    if rng.random() < 0.4:
        vr = rng.uniform(10, 18) * u
        (vy,), (vx,) = _on_ellipse(cy, cx, theta, aspect, np.array([capsule_r + vr / aspect + 6 * u]),
                                   np.array([hilum_angle]))
        vdist = coarse.up(coarse.distance(vy, vx))
        vessel = _sigmoid(f32(0.45 * vr) - vdist, u) * _sigmoid(vdist - f32(vr), u)
        clear = np.clip((vdist - f32(vr + 3 * u)) / f32(3 * u), 0, 1)
        epithelium *= clear
        tbm *= clear

    return Anatomy(size=size, tuft=tuft, wall=wall.astype(f32), mesangium=mesangium.astype(f32),
                   capsule=capsule, epithelium=epithelium.astype(f32), tbm=tbm.astype(f32), vessel=vessel,
                   sclerosis=sclerosis, nodules=nodules, loop_walls=loop_walls, scale=u)
