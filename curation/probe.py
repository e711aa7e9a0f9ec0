"""Camera-motion probe: per-frame camera rotation and direction of travel from pixels alone.

From consecutive frames and known intrinsics (the contract's pinhole from ``fov`` and the frame
size) the probe measures, for every frame ``i`` (the motion from frame ``i-1`` to frame ``i``,
the contract's row convention; row 0 is no motion):

- ``rotation[i]``: the camera's relative rotation ``R_{i-1}^T R_i`` in the contract's camera body
  frame of frame ``i-1`` (+X forward, +Y left, +Z up), and as contract angles ``ypr[i] = (yaw,
  pitch, roll)`` of it (``R = Rz(yaw) Ry(-pitch) Rx(roll)``, degrees);
- ``translation[i]``: the unit direction the camera centre moved in, same frame; zero where the
  window's parallax is too small to say (below ``weak_parallax_px``);
- ``parallax[i]``: how far (90th percentile, pixels at the working width) the tracked points
  move beyond what a pure rotation explains over the window around the frame: the evidence of
  translation, scene-dependent (near walls show more than open fields); ``moving[i]`` when it
  exceeds ``parallax_px``;
- ``confidence[i]`` in [0, 1] and ``known[i]``: frames with too little texture (fewer than
  ``min_tracks`` tracks through the pair, or fewer than ``min_inliers`` of them consistent with
  one camera motion) are unknown, not guessed: identity rotation, no translation.

How (OpenCV): grey frames at ``work_width``; persistent KLT tracks (``goodFeaturesToTrack`` per
cell of a grid, so weak ground texture gets corners too, + pyramidal ``calcOpticalFlowPyrLK``
with a forward-backward check), topped up every frame. Per frame pair, a robust rotation-only
fit (2-point Kabsch RANSAC on bearing vectors, the homography ``H = K R K^-1``). Over a window of
``2 * window + 1`` frames around the pair, an essential matrix (``cv2.findEssentialMat``,
MAGSAC, and a start from the rotation-only fit), refined by Gauss-Newton on the Sampson error,
gives the direction of travel; the pair's rotation is then refined with that direction fixed.
Two views alone confuse a small yaw with a small sideways translation (the bas-relief
ambiguity: a fit can trade a fraction of a degree of yaw for tens of degrees of direction); the
window's longer baseline pins the direction and so the rotation. A pose further from the
rotation-only fit than parallax could pull it is a degenerate (twisted) solution: rejected.

Use :func:`probe_frames` on uint8 ``[T, H, W, 3]`` arrays in memory (generated videos) or
:func:`probe_video` on a file; :mod:`curation.probe_actions` maps the result to the contract's
keys and mouse.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from datagen.rotation import intrinsics

# OpenCV camera (x right, y down, z forward) -> contract camera body (+X forward, +Y left, +Z up):
# the columns are the body coordinates of the OpenCV axes (contract part 2)
BODY_FROM_CV = np.array([[0.0, 0.0, 1.0], [-1.0, 0.0, 0.0], [0.0, -1.0, 0.0]])
DEFAULT_FOV = 90.0  # degrees: the built-in engine's default, for footage that says nothing


class ProbeError(ValueError):
    """Input the probe cannot measure (wrong shapes, an impossible field of view)."""


@dataclass(frozen=True)
class ProbeConfig:
    """Settings of the probe. Pixel values are at ``work_width`` (320 by default); defaults
    suit rendered and game footage at 30 fps."""

    work_width: int = 320  # frames are resized to this width first (0: native size)
    # --- tracking
    max_features: int = 400  # live tracks at most
    grid: tuple[int, int] = (4, 6)  # rows x columns of cells sharing max_features equally
    quality: float = 0.01  # goodFeaturesToTrack quality level, relative to the cell's best
    min_eigen: float = 1e-5  # absolute corner strength (cv2.cornerMinEigenVal) at least
    min_distance: float = 6.0  # px between tracked corners
    lk_window: int = 11  # px, LK window side
    lk_levels: int = 3  # LK pyramid levels above the base
    fb_max_px: float = 0.5  # forward-backward disagreement above which a track is dropped
    still_px: float = 0.05  # median track motion below which a pair is the same image (no
    #                         motion, exactly: a repeated frame stays recognisable as one)
    # --- estimation
    ransac_px: float = 0.5  # inlier threshold of the rotation and essential-matrix fits
    window: int = 2  # frames on each side of a pair for the translation (baseline 2w+1)
    parallax_px: float = 2.2  # window parallax (90th percentile, px) above which the camera
    #                           surely translated (``moving``) ...
    weak_parallax_px: float = 1.0  # ... and above which its direction of travel is measured
    # --- when a frame is unknown
    min_tracks: int = 30  # tracks through the pair
    min_inliers: int = 20  # tracks consistent with the fitted motion
    seed: int = 0  # RANSAC sampling of the rotation fit

    def __post_init__(self) -> None:
        errors = []
        for name in ("quality", "min_distance", "fb_max_px", "still_px", "ransac_px", "parallax_px",
                     "weak_parallax_px", "min_eigen"):
            if not getattr(self, name) > 0:
                errors.append(f"{name} must be positive, got {getattr(self, name)}")
        for name, low in (("max_features", 8), ("lk_window", 3), ("lk_levels", 0),
                          ("window", 0), ("min_tracks", 8), ("min_inliers", 6),
                          ("work_width", 0), ("seed", 0)):
            value = getattr(self, name)
            if not (isinstance(value, int) and value >= low):
                errors.append(f"{name} must be an integer >= {low}, got {value!r}")
        if not (isinstance(self.grid, tuple) and len(self.grid) == 2
                and all(isinstance(v, int) and v >= 1 for v in self.grid)):
            errors.append(f"grid must be (rows, columns) of positive integers, got {self.grid!r}")
        elif isinstance(self.max_features, int) and self.max_features < self.grid[0] * self.grid[1]:
            errors.append(f"max_features ({self.max_features}) must be at least one per grid "
                          f"cell ({self.grid[0] * self.grid[1]})")
        if not self.weak_parallax_px < self.parallax_px:
            errors.append(f"need weak_parallax_px < parallax_px, got {self.weak_parallax_px}, "
                          f"{self.parallax_px}")
        if 0 < self.work_width < 32:
            errors.append(f"work_width must be 0 (native) or at least 32, got {self.work_width}")
        if errors:
            raise ProbeError("invalid ProbeConfig: " + "; ".join(errors))


@dataclass
class ProbeResult:
    """Per-frame camera motion measured by the probe; row ``i`` moves frame ``i-1`` to ``i``
    (row 0: no motion, known). Frames of reference are the contract's camera body frame of
    frame ``i-1``: +X forward, +Y left, +Z up."""

    fov_deg: float  # horizontal field of view used
    size: tuple[int, int]  # (width, height) of the frames measured (the working size)
    rotation: np.ndarray  # float64 [T, 3, 3]: body_i -> body_{i-1} (R_{i-1}^T R_i)
    ypr: np.ndarray  # float64 [T, 3]: rotation as contract angles (yaw, pitch, roll), degrees
    translation: np.ndarray  # float64 [T, 3]: unit direction of travel, 0 where not measured
    parallax: np.ndarray  # float64 [T]: window parallax, px at the working size
    moving: np.ndarray  # bool [T]: parallax above parallax_px: the camera surely translated
    tracks: np.ndarray  # int64 [T]: tracks through the pair
    inliers: np.ndarray  # int64 [T]: tracks consistent with the motion
    residual: np.ndarray  # float64 [T]: median residual of the inliers, px
    confidence: np.ndarray  # float64 [T] in [0, 1]: inlier share x min(1, inliers / 100) x
    #                         exp(-(residual / (2 ransac_px))^2); 0 where unknown
    known: np.ndarray  # bool [T]: measured; False = too little texture (identity, no motion)
    seconds: float = 0.0  # time spent measuring

    @property
    def frames(self) -> int:
        return len(self.known)


def camera_matrix(fov_deg: float, width: int, height: int) -> np.ndarray:
    """The contract's pinhole ``K`` (``fx = fy = (width/2) / tan(fov/2)``, centre at the middle)."""
    fx, fy, cx, cy = intrinsics(fov_deg, width, height)
    return np.array([[fx, 0.0, cx], [0.0, fy, cy], [0.0, 0.0, 1.0]])


def ypr_of(rotation: np.ndarray) -> np.ndarray:
    """``[..., 3]`` (yaw, pitch, roll) degrees of ``R = Rz(yaw) Ry(-pitch) Rx(roll)``."""
    m = np.asarray(rotation)
    yaw = np.degrees(np.arctan2(m[..., 1, 0], m[..., 0, 0]))
    pitch = np.degrees(np.arctan2(m[..., 2, 0], np.hypot(m[..., 2, 1], m[..., 2, 2])))
    roll = np.degrees(np.arctan2(m[..., 2, 1], m[..., 2, 2]))
    return np.stack([yaw, pitch, roll], axis=-1)


# --- geometry helpers ------------------------------------------------------------------------

def _skew(v: np.ndarray) -> np.ndarray:
    return np.array([[0.0, -v[2], v[1]], [v[2], 0.0, -v[0]], [-v[1], v[0], 0.0]])


def _expmap(w: np.ndarray) -> np.ndarray:
    return cv2.Rodrigues(np.asarray(w, dtype=np.float64).reshape(3, 1))[0]


def _angle(a: np.ndarray, b: np.ndarray) -> float:
    """Angle (radians) of the rotation between rotation matrices ``a`` and ``b``."""
    return float(np.arccos(np.clip((np.trace(a @ b.T) - 1.0) / 2.0, -1.0, 1.0)))


def _kabsch(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``R`` minimising ``sum ||b - R a||^2`` (rows are vectors), batched over leading axes."""
    h = np.swapaxes(a, -1, -2) @ b
    u, _, vt = np.linalg.svd(h)
    v = np.swapaxes(vt, -1, -2)
    ut = np.swapaxes(u, -1, -2)
    fix = np.ones(h.shape[:-2] + (3,))
    fix[..., 2] = np.sign(np.linalg.det(v @ ut))
    return (v * fix[..., None, :]) @ ut


def _normalised(p: np.ndarray, k: np.ndarray) -> np.ndarray:
    """Pixels ``[N, 2]`` -> normalised homogeneous image points ``[N, 3]`` (z = 1)."""
    return np.column_stack([(p - k[:2, 2]) / k[0, 0], np.ones(len(p))])


def _rot_residual(r: np.ndarray, x0: np.ndarray, x1: np.ndarray, f: float) -> np.ndarray:
    """Pixel distance between ``x1`` and ``x0`` rotated by ``r`` (OpenCV: points of camera 0
    into camera 1)."""
    y = x0 @ r.T
    y = y[:, :2] / np.maximum(y[:, 2:3], 1e-9)
    return f * np.linalg.norm(y - x1[:, :2], axis=1)


def _fit_rotation(x0: np.ndarray, x1: np.ndarray, f: float, thr_px: float,
                  rng: np.random.Generator, hypotheses: int = 64
                  ) -> tuple[np.ndarray, np.ndarray]:
    """Robust rotation-only fit (``x1 ~ R x0``): 2-point Kabsch RANSAC on bearing vectors, then
    Kabsch refits on the inliers. Returns ``R`` and the inlier mask."""
    b0 = x0 / np.linalg.norm(x0, axis=1, keepdims=True)
    b1 = x1 / np.linalg.norm(x1, axis=1, keepdims=True)
    idx = rng.integers(0, len(b0), size=(hypotheses, 2))
    rs = _kabsch(b0[idx], b1[idx])
    cos = np.einsum("mij,nj,ni->mn", rs, b0, b1)
    inl = cos > np.cos(thr_px / f)
    r = rs[int(np.argmax(inl.sum(axis=1)))]
    mask = inl[int(np.argmax(inl.sum(axis=1)))]
    for _ in range(3):
        if mask.sum() < 3:
            break
        r = _kabsch(b0[mask], b1[mask])
        mask = _rot_residual(r, x0, x1, f) < thr_px
    return r, mask


def _sampson(r: np.ndarray, t: np.ndarray, x0: np.ndarray, x1: np.ndarray, f: float
             ) -> np.ndarray:
    """Signed Sampson distance (px) of each pair to the epipolar geometry ``E = [t]x R``."""
    e = _skew(t) @ r
    ex0 = x0 @ e.T
    etx1 = x1 @ e
    num = np.sum(x1 * ex0, axis=1)
    den = ex0[:, 0] ** 2 + ex0[:, 1] ** 2 + etx1[:, 0] ** 2 + etx1[:, 1] ** 2
    return f * num / np.sqrt(den + 1e-30)


def _sampson_jacobian(r: np.ndarray, t: np.ndarray, x0: np.ndarray, x1: np.ndarray,
                      f: float, fix_t: bool) -> tuple[np.ndarray, np.ndarray, tuple]:
    """Residuals ``[N]`` and their Jacobian ``[N, 3 or 5]`` for the updates ``R <- exp(w) R``
    and ``t <- normalise(t + a u + b v)`` (``u, v`` span the tangent plane at ``t``)."""
    e = _skew(t) @ r
    ex0 = x0 @ e.T
    etx1 = x1 @ e
    num = np.sum(x1 * ex0, axis=1)
    den = ex0[:, 0] ** 2 + ex0[:, 1] ** 2 + etx1[:, 0] ** 2 + etx1[:, 1] ** 2 + 1e-30
    sq = np.sqrt(den)
    res = f * num / sq
    helper = np.array([1.0, 0.0, 0.0]) if abs(t[0]) < 0.9 else np.array([0.0, 1.0, 0.0])
    u = np.cross(t, helper)
    u /= np.linalg.norm(u)
    v = np.cross(t, u)
    gens = [_skew(t) @ _skew(axis) @ r for axis in np.eye(3)]
    if not fix_t:
        gens += [_skew(u) @ r, _skew(v) @ r]
    cols = []
    for g in gens:
        gx0 = x0 @ g.T
        gtx1 = x1 @ g
        dnum = np.sum(x1 * gx0, axis=1)
        dden = 2.0 * (ex0[:, 0] * gx0[:, 0] + ex0[:, 1] * gx0[:, 1]
                      + etx1[:, 0] * gtx1[:, 0] + etx1[:, 1] * gtx1[:, 1])
        cols.append(f * (dnum / sq - 0.5 * num * dden / (den * sq)))
    return res, np.column_stack(cols), (u, v)


def _refine(r: np.ndarray, t: np.ndarray, x0: np.ndarray, x1: np.ndarray, f: float,
            thr_px: float, fix_t: bool = False, rounds: int = 3, iters: int = 4
            ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Gauss-Newton on the Sampson error with Huber weights; the inliers (within ``thr_px``, or
    3 robust sigmas if the noise is larger) are re-selected each round."""
    mask = np.ones(len(x0), dtype=bool)
    for _ in range(rounds):
        xa, xb = x0[mask], x1[mask]
        if len(xa) < 6:
            break
        for _ in range(iters):
            res, jac, (u, v) = _sampson_jacobian(r, t, xa, xb, f, fix_t)
            a = np.abs(res)
            wgt = np.where(a <= 0.3, 1.0, 0.3 / np.maximum(a, 1e-12))
            jw = jac * wgt[:, None]
            step = np.linalg.solve(jw.T @ jac + 1e-9 * np.eye(jac.shape[1]), -jw.T @ res)
            r = _expmap(step[:3]) @ r
            if not fix_t:
                t = t + step[3] * u + step[4] * v
                t = t / np.linalg.norm(t)
            if np.abs(step).max() < 1e-8:
                break
        res = np.abs(_sampson(r, t, x0, x1, f))
        mask = res < max(thr_px, 3.0 * 1.4826 * float(np.median(res[mask])))
    return r, t, mask


def _t_given_r(r: np.ndarray, x0: np.ndarray, x1: np.ndarray) -> np.ndarray:
    """Translation direction minimising the algebraic epipolar error for a fixed rotation."""
    n = np.cross(x0 @ r.T, x1)
    return np.linalg.svd(n, full_matrices=False)[2][-1]


def _cheiral_sign(r: np.ndarray, t: np.ndarray, x0: np.ndarray, x1: np.ndarray) -> float:
    """+1 if most points triangulate in front of both cameras with translation ``t`` (OpenCV:
    ``X1 = R X0 + t``), else -1."""
    a = x0 @ r.T
    aa, bb, ab = np.sum(a * a, 1), np.sum(x1 * x1, 1), np.sum(a * x1, 1)
    at, bt = a @ t, x1 @ t
    det = np.maximum(aa * bb - ab * ab, 1e-18)
    l0 = (-at * bb + ab * bt) / det  # depth of the point along x0 (camera 0)
    l1 = (aa * bt - ab * at) / det  # ... along x1 (camera 1)
    score = np.sum((l0 > 0) & (l1 > 0)) - np.sum((l0 < 0) & (l1 < 0))
    return 1.0 if score >= 0 else -1.0


def _cost(r: np.ndarray, t: np.ndarray, x0: np.ndarray, x1: np.ndarray, f: float, c: float
          ) -> float:
    res = _sampson(r, t, x0, x1, f)
    return float(np.sum(np.minimum(res * res, c * c)))


def _free_pose(p0: np.ndarray, p1: np.ndarray, k: np.ndarray, r_rot: np.ndarray,
               cfg: ProbeConfig) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
    """Rotation and unit translation (OpenCV: ``X1 = R X0 + t``) of a pair with parallax, or
    None. Two starts (the essential matrix's pose, the rotation-only fit), each refined on the
    Sampson error; the cheaper wins. A pose further from the rotation-only fit than the
    parallax could pull it is a degenerate (twisted) solution and rejected."""
    f = k[0, 0]
    x0, x1 = _normalised(p0, k), _normalised(p1, k)
    try:
        e, emask = cv2.findEssentialMat(p0, p1, k, cv2.USAC_MAGSAC, 0.999, cfg.ransac_px)
    except cv2.error:  # a degenerate sample set (the 5-point solver's polynomial)
        e, emask = None, None
    starts = []
    if e is not None and e.shape[1:] == (3,) and emask is not None \
            and emask.sum() >= cfg.min_inliers:
        ein = emask.ravel().astype(bool)
        try:
            _, r_e, t_e, _ = cv2.recoverPose(e[:3], p0[ein], p1[ein], k)
            starts.append((r_e, t_e.ravel()))
        except cv2.error:
            pass
    else:
        ein = np.ones(len(p0), dtype=bool)
    starts.append((r_rot, _t_given_r(r_rot, x0[ein], x1[ein])))
    best = None
    for r, t in starts:
        r, t, _ = _refine(r, t, x0[ein], x1[ein], f, cfg.ransac_px)
        cost = _cost(r, t, x0, x1, f, cfg.ransac_px)
        if best is None or cost < best[0]:
            best = (cost, r, t)
    _, r, t = best
    res_rot = _rot_residual(r_rot, x0, x1, f)
    if _angle(r, r_rot) > 2.0 * float(np.percentile(res_rot, 90)) / f + np.radians(0.5):
        return None
    mask = np.abs(_sampson(r, t, x0, x1, f)) < cfg.ransac_px
    if mask.sum() < cfg.min_inliers:
        return None
    return r, t * _cheiral_sign(r, t, x0[mask], x1[mask]), mask


# --- tracking --------------------------------------------------------------------------------

class _Tracker:
    """Persistent KLT tracks: per frame, the ids and positions of the live tracks."""

    def __init__(self, cfg: ProbeConfig) -> None:
        self.cfg = cfg
        self.ids: list[np.ndarray] = []
        self.pts: list[np.ndarray] = []
        self.detected: list[int] = []  # corners found in each frame (texture)
        self._next = 0
        self._prev: np.ndarray | None = None
        self._lk = dict(winSize=(cfg.lk_window, cfg.lk_window), maxLevel=cfg.lk_levels,
                        criteria=(cv2.TERM_CRITERIA_EPS | cv2.TERM_CRITERIA_COUNT, 30, 0.01))

    def add(self, g: np.ndarray) -> None:
        cfg = self.cfg
        ids, pts = np.zeros(0, np.int64), np.zeros((0, 2), np.float32)
        if self._prev is not None and len(self.pts[-1]):
            p0 = self.pts[-1].reshape(-1, 1, 2)
            p1, st, _ = cv2.calcOpticalFlowPyrLK(self._prev, g, p0, None, **self._lk)
            pb, st2, _ = cv2.calcOpticalFlowPyrLK(g, self._prev, p1, None, **self._lk)
            q = p1.reshape(-1, 2)
            h, w = g.shape
            ok = (st.ravel() == 1) & (st2.ravel() == 1)
            ok &= np.linalg.norm((pb - p0).reshape(-1, 2), axis=1) < cfg.fb_max_px
            ok &= (q[:, 0] >= 0) & (q[:, 0] <= w - 1) & (q[:, 1] >= 0) & (q[:, 1] <= h - 1)
            ids, pts = self.ids[-1][ok], q[ok]
        found = 0
        if len(pts) < 0.8 * cfg.max_features:
            new = self._detect(g, pts)
            if len(new):
                found = len(new)
                ids = np.concatenate([ids, np.arange(self._next, self._next + found)])
                pts = np.concatenate([pts, new]).astype(np.float32)
                self._next += found
        self.ids.append(ids)
        self.pts.append(pts)
        self.detected.append(found)
        self._prev = g

    def _detect(self, g: np.ndarray, live: np.ndarray) -> np.ndarray:
        """New corners ``[M, 2]`` away from the ``live`` ones: an equal share of
        ``max_features`` per cell of a ``grid`` over the image (corner quality relative to the
        cell's best, so weak but trackable ground texture is not crowded out by a busy skyline),
        at least ``min_eigen`` strong (flat sky and walls give none)."""
        cfg = self.cfg
        h, w = g.shape
        rows, cols = cfg.grid
        mask = np.full(g.shape, 255, np.uint8)
        for x, y in live:
            cv2.circle(mask, (int(round(x)), int(round(y))), int(cfg.min_distance), 0, -1)
        eig = cv2.cornerMinEigenVal(g, 5, 3)
        have = np.zeros((rows, cols), dtype=np.int64)
        if len(live):
            r = np.clip((live[:, 1] * rows / h).astype(int), 0, rows - 1)
            c = np.clip((live[:, 0] * cols / w).astype(int), 0, cols - 1)
            np.add.at(have, (r, c), 1)
        quota = cfg.max_features // (rows * cols)
        out = []
        for r in range(rows):
            for c in range(cols):
                want = quota - have[r, c]
                if want <= 0:
                    continue
                y0, y1 = r * h // rows, (r + 1) * h // rows
                x0, x1 = c * w // cols, (c + 1) * w // cols
                cell = cv2.goodFeaturesToTrack(g[y0:y1, x0:x1], int(want), cfg.quality,
                                               cfg.min_distance, mask=mask[y0:y1, x0:x1],
                                               blockSize=5)
                if cell is None:
                    continue
                cell = cell.reshape(-1, 2) + (x0, y0)
                strong = eig[cell[:, 1].astype(int), cell[:, 0].astype(int)] >= cfg.min_eigen
                out.append(cell[strong])
        return np.concatenate(out) if out else np.zeros((0, 2), np.float32)

    def matches(self, a: int, b: int) -> tuple[np.ndarray, np.ndarray]:
        """Pixel positions ``[N, 2]`` in frames ``a`` and ``b`` of the tracks alive in both."""
        _, ia, ib = np.intersect1d(self.ids[a], self.ids[b], assume_unique=True,
                                   return_indices=True)
        return self.pts[a][ia].astype(np.float64), self.pts[b][ib].astype(np.float64)


def _grey(frame: np.ndarray, width: int) -> np.ndarray:
    frame = np.asarray(frame)
    if frame.ndim != 3 or frame.shape[2] != 3 or frame.dtype != np.uint8:
        raise ProbeError(f"frames must be uint8 [H, W, 3] RGB, got {frame.dtype} "
                         f"{list(frame.shape)}")
    g = cv2.cvtColor(frame, cv2.COLOR_RGB2GRAY)
    if width and g.shape[1] != width:
        height = max(2, int(round(g.shape[0] * width / g.shape[1])))
        g = cv2.resize(g, (width, height), interpolation=cv2.INTER_AREA)
    return g


# --- the probe -------------------------------------------------------------------------------

def probe_frames(frames: np.ndarray | Iterable[np.ndarray], fov_deg: float = DEFAULT_FOV,
                 cfg: ProbeConfig | None = None) -> ProbeResult:
    """Measure the camera motion of ``frames`` (uint8 RGB ``[T, H, W, 3]``, or an iterable of
    ``[H, W, 3]`` frames, e.g. :func:`datagen.video.read_frames`) seen through a pinhole of
    horizontal field of view ``fov_deg`` (degrees). See the module docstring."""
    cfg = cfg or ProbeConfig()
    if not 1.0 <= float(fov_deg) <= 179.0:
        raise ProbeError(f"fov must be in 1..179 degrees, got {fov_deg}")
    start = time.perf_counter()
    tracker = _Tracker(cfg)
    size = None
    for frame in frames:
        g = _grey(frame, cfg.work_width)
        if size is not None and g.shape[::-1] != size:
            raise ProbeError(f"frame {len(tracker.ids)} is {g.shape[1]}x{g.shape[0]}, the first "
                             f"was {size[0]}x{size[1]}")
        size = g.shape[::-1]
        tracker.add(g)
    n = len(tracker.ids)
    if n == 0:
        raise ProbeError("no frames to probe")
    k = camera_matrix(float(fov_deg), *size)
    f = k[0, 0]
    rng = np.random.default_rng(cfg.seed)

    # 1. each pair: tracks and the rotation-only fit
    r_rot = np.tile(np.eye(3), (n, 1, 1))  # OpenCV convention: X_i = R X_{i-1}
    known = np.ones(n, dtype=bool)
    tracks = np.zeros(n, dtype=np.int64)
    inliers = np.zeros(n, dtype=np.int64)
    residual = np.zeros(n)
    still = np.zeros(n, dtype=bool)
    for i in range(1, n):
        p0, p1 = tracker.matches(i - 1, i)
        tracks[i] = len(p0)
        if len(p0) < cfg.min_tracks:
            known[i] = False
            continue
        if np.median(np.linalg.norm(p1 - p0, axis=1)) < cfg.still_px:
            still[i], inliers[i] = True, len(p0)  # the same image: no motion at all
            continue
        x0, x1 = _normalised(p0, k), _normalised(p1, k)
        r, mask = _fit_rotation(x0, x1, f, cfg.ransac_px, rng)
        r_rot[i], inliers[i] = r, mask.sum()
        residual[i] = float(np.median(_rot_residual(r, x0, x1, f)[mask])) if mask.any() else 0
    # (a pair with few rotation-only inliers may still be a translating camera: decided below)

    # 2. each window around a pair: parallax, and the direction of travel where there is some
    parallax = np.zeros(n)
    moving = np.zeros(n, dtype=bool)
    centre = np.zeros((n, 3))  # direction of travel in camera i-1 (OpenCV axes)
    for i in range(1, n):
        if not known[i] or still[i]:
            continue
        a, b = i - 1, i  # widen to the window, through known pairs only
        while a > 0 and i - 1 - a < cfg.window and known[a]:
            a -= 1
        while b < n - 1 and b - i < cfg.window and known[b + 1]:
            b += 1
        p0, p1 = tracker.matches(a, b)
        if len(p0) < cfg.min_tracks:
            continue
        r_ab = np.eye(3)
        for j in range(a + 1, b + 1):
            r_ab = r_rot[j] @ r_ab
        x0, x1 = _normalised(p0, k), _normalised(p1, k)
        res = _rot_residual(r_ab, x0, x1, f)
        r_w, mask = _fit_rotation(x0, x1, f, cfg.ransac_px, rng)
        if _rot_residual(r_w, x0, x1, f).sum() < res.sum():
            res = _rot_residual(r_w, x0, x1, f)
        else:
            r_w = r_ab
        parallax[i] = float(np.percentile(res, 90))
        if parallax[i] <= cfg.weak_parallax_px:
            continue
        free = _free_pose(p0, p1, k, r_w, cfg)
        if free is None:
            continue
        r_free, t_free, _ = free
        r_a_prev = np.eye(3)  # camera a -> camera i-1
        for j in range(a + 1, i):
            r_a_prev = r_rot[j] @ r_a_prev
        centre[i] = r_a_prev @ (-r_free.T @ t_free)
        centre[i] /= np.linalg.norm(centre[i])
        moving[i] = parallax[i] > cfg.parallax_px

    # 3. each translating pair: its rotation with the window's direction of travel fixed
    r_cv = r_rot.copy()
    for i in np.flatnonzero(np.any(centre != 0, axis=1)):
        p0, p1 = tracker.matches(i - 1, i)
        x0, x1 = _normalised(p0, k), _normalised(p1, k)
        r, _, mask = _refine(r_rot[i], -r_rot[i] @ centre[i], x0, x1, f, cfg.ransac_px,
                             fix_t=True)
        if _angle(r, r_rot[i]) > 2.0 * float(np.percentile(
                _rot_residual(r_rot[i], x0, x1, f), 90)) / f + np.radians(0.5):
            continue  # refinement ran off: keep the rotation-only fit
        r_cv[i], inliers[i] = r, mask.sum()
        residual[i] = float(np.median(np.abs(_sampson(r, -r @ centre[i], x0, x1, f))[mask]))

    # 4. too little texture: too few tracks, or too few of them agree on one camera motion
    known &= inliers >= cfg.min_inliers
    known[0] = True
    r_cv[~known] = np.eye(3)
    centre[~known] = 0.0
    moving &= known
    parallax[~known] = 0.0

    rotation = np.einsum("ij,njk,kl->nil", BODY_FROM_CV, r_cv.transpose(0, 2, 1),
                         BODY_FROM_CV.T)
    translation = centre @ BODY_FROM_CV.T
    share = inliers / np.maximum(tracks, 1)
    confidence = np.where(known, np.clip(share, 0, 1) * np.clip(inliers / 100.0, 0, 1)
                          * np.exp(-((residual / (2 * cfg.ransac_px)) ** 2)), 0.0)
    confidence[0] = 1.0
    return ProbeResult(
        fov_deg=float(fov_deg), size=(int(size[0]), int(size[1])), rotation=rotation,
        ypr=ypr_of(rotation), translation=translation, parallax=parallax, moving=moving,
        tracks=tracks, inliers=inliers, residual=residual, confidence=confidence, known=known,
        seconds=time.perf_counter() - start)


def probe_video(path: str | Path, fov_deg: float = DEFAULT_FOV,
                cfg: ProbeConfig | None = None) -> ProbeResult:
    """:func:`probe_frames` on every frame of a video file (decoded as it goes)."""
    from datagen.video import read_frames

    return probe_frames(read_frames(path), fov_deg, cfg)
