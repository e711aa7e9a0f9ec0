"""Procedural material textures: the material table and a numpy image generator per material.

Every material a scene may name is listed in :data:`MATERIALS` with how its texture is laid on a
surface (metres per repeat, or stretched across a road's width, or one facade bay per window).
:func:`texture_image` draws the material's tile as ``uint8 [S, S, 3]`` RGB; images are tileable
and depend only on the material name, so every Renderer builds identical textures. Colours stay
near neutral where the pattern allows: the primitive's ``color`` tints them (the scene palette).
"""

from __future__ import annotations

import zlib
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Material:
    """How a material's texture maps onto geometry.

    ``mapping`` is ``"world"`` (``tile`` metres per repeat along u and v), ``"strip"`` (u repeats
    every ``tile[0]`` metres along a box's own x, v spans its width once: road markings) or
    ``"facade"`` (one texture = ``FACADE_BAYS`` window bays by ``FACADE_BAYS`` storeys, fitted to
    whole bays and storeys of each wall). ``roof`` is the material of a facade box's top face;
    ``emissive`` surfaces ignore lighting (lamps).
    """

    tile: tuple[float, float]
    mapping: str = "world"
    roof: str | None = None
    emissive: bool = False


FACADE_BAYS = 4  # a facade texture holds 4 x 4 window bays
BAY_WIDTH = 3.0  # metres per window bay
STOREY = 3.2  # metres per storey

MATERIALS: dict[str, Material] = {
    "asphalt": Material((4.0, 4.0)),
    "road": Material((6.0, 1.0), "strip"),
    "paving": Material((2.0, 2.0)),
    "concrete": Material((4.0, 4.0)),
    "brick": Material((1.6, 1.6)),
    "facade_brick": Material((BAY_WIDTH, STOREY), "facade", roof="roof"),
    "facade_concrete": Material((BAY_WIDTH, STOREY), "facade", roof="roof"),
    "facade_plaster": Material((BAY_WIDTH, STOREY), "facade", roof="roof"),
    "facade_glass": Material((BAY_WIDTH, STOREY), "facade", roof="roof"),
    "roof": Material((4.0, 4.0)),
    "grass": Material((6.0, 6.0)),
    "dirt": Material((5.0, 5.0)),
    "bark": Material((1.0, 1.5)),
    "leaves": Material((2.0, 2.0)),
    "hedge": Material((1.5, 1.5)),
    "rock": Material((3.0, 3.0)),
    "wood": Material((1.2, 1.2)),
    "plaster": Material((3.0, 3.0)),
    "tile": Material((2.4, 2.4)),
    "carpet": Material((2.0, 2.0)),
    "fabric": Material((1.0, 1.0)),
    "metal": Material((1.0, 1.0)),
    "glass": Material((1.0, 1.0)),
    "paint": Material((2.0, 2.0)),
    "skin": Material((1.0, 1.0)),
    "wool": Material((0.8, 0.8)),
    "water": Material((5.0, 5.0)),
    "light": Material((1.0, 1.0), emissive=True),
}


def material(name: str) -> Material:
    """The :class:`Material` called ``name``; an unknown name raises ``ValueError``."""
    try:
        return MATERIALS[name]
    except KeyError:
        raise ValueError(
            f"unknown material {name!r}; known materials: {', '.join(MATERIALS)}") from None


# --- tileable noise -----------------------------------------------------------------------------

def _noise(rng: np.random.Generator, size: int, scale: float, aspect: float = 1.0) -> np.ndarray:
    """Tileable smooth noise (zero mean, unit std): white noise low-passed in Fourier space.

    ``scale`` is the feature size in pixels; ``aspect`` > 1 stretches features along v (rows).
    """
    white = rng.standard_normal((size, size))
    fy = np.fft.fftfreq(size)[:, None] * aspect
    fx = np.fft.fftfreq(size)[None, :]
    gain = np.exp(-((fx * fx + fy * fy) * (np.pi * scale) ** 2) / 2.0)
    field = np.real(np.fft.ifft2(np.fft.fft2(white) * gain))
    return (field - field.mean()) / (field.std() + 1e-12)


def _fbm(rng: np.random.Generator, size: int, scales: tuple[float, ...]) -> np.ndarray:
    total = sum(_noise(rng, size, s) * (0.6 ** k) for k, s in enumerate(scales))
    return total / np.std(total)


def _grey(value: np.ndarray) -> np.ndarray:
    return np.repeat(value[..., None], 3, axis=-1)


def _colorize(value: np.ndarray, color: tuple[float, float, float]) -> np.ndarray:
    return value[..., None] * np.asarray(color)[None, None, :]


def _cells(size: int, nx: int, ny: int, offset_rows: bool = False) -> tuple[np.ndarray, ...]:
    """Per-pixel cell index and position in the cell (0..1) of an ``nx`` x ``ny`` grid."""
    v, u = np.mgrid[0:size, 0:size] / size
    row = np.floor(v * ny).astype(int)
    shift = np.where(row % 2 == 1, 0.5 / nx, 0.0) if offset_rows else 0.0
    uu = (u + shift) % 1.0
    col = np.floor(uu * nx).astype(int)
    return row, col, (uu * nx) % 1.0, (v * ny) % 1.0


# --- generators: each returns float [S, S, 3] in 0..1 -------------------------------------------

def _asphalt(rng, s):
    v = 0.34 + 0.04 * _fbm(rng, s, (16, 4)) + 0.05 * (rng.random((s, s)) - 0.5)
    return _grey(v)


def _road(rng, s):
    img = _asphalt(rng, s)
    v, u = np.mgrid[0:s, 0:s] / s  # v: across the road, u: along it (one repeat = 6 m)
    centre = (np.abs(v - 0.5) < 0.012) & (u < 0.5)
    edges = (np.abs(v - 0.07) < 0.01) | (np.abs(v - 0.93) < 0.01)
    wear = 0.85 + 0.1 * _noise(rng, s, 3)[..., None]
    img[centre] = (0.92 * wear[centre] * np.array([1.0, 0.86, 0.35]))
    img[edges] = 0.88 * wear[edges]
    return img


def _paving(rng, s):
    row, col, fu, fv = _cells(s, 4, 4)
    slab = rng.uniform(0.8, 1.0, (4, 4))[row, col]
    joint = (np.minimum(fu, 1 - fu) < 0.03) | (np.minimum(fv, 1 - fv) < 0.03)
    v = slab * (0.78 + 0.04 * _fbm(rng, s, (8, 2)))
    return _grey(np.where(joint, 0.45, v))


def _concrete(rng, s):
    v = 0.78 + 0.05 * _fbm(rng, s, (24, 6, 2)) - 0.06 * np.clip(_noise(rng, s, 20), 0, None)
    return _grey(v)


def _brick(rng, s):
    row, col, fu, fv = _cells(s, 4, 16, offset_rows=True)
    shade = rng.uniform(0.7, 1.0, (16, 5))[row, col % 5]
    mortar = (fv < 0.14) | (fu < 0.035)
    brick = _colorize(shade * (0.9 + 0.06 * _noise(rng, s, 2)), (0.78, 0.42, 0.32))
    return np.where(mortar[..., None], np.array([0.78, 0.76, 0.72]), brick)


def _facade(wall: Callable, glass_tint: tuple[float, float, float], frac: tuple[float, float]):
    def make(rng, s):
        img = wall(rng, s)
        bays = FACADE_BAYS
        row, col, fu, fv = _cells(s, bays, bays)
        wx, wy = frac
        inside = (np.abs(fu - 0.5) < wx / 2) & (np.abs(fv - 0.55) < wy / 2)
        frame = (np.abs(fu - 0.5) < wx / 2 + 0.04) & (np.abs(fv - 0.55) < wy / 2 + 0.04)
        lit = rng.random((bays, bays)) < 0.25
        blind = rng.uniform(0.0, 0.45, (bays, bays)) * (rng.random((bays, bays)) < 0.4)
        # glass: darker at the top of each pane (sky reflection gradient), some panes with blinds
        grad = 0.55 + 0.45 * fv
        glass = _colorize(grad * 0.45, glass_tint)
        glass = np.where(lit[row, col][..., None], glass * 0.6 + np.array([0.55, 0.5, 0.38]), glass)
        shade = (fv > 0.55 + wy / 2 - blind[row, col] * wy)
        glass = np.where((inside & shade)[..., None], np.array([0.72, 0.7, 0.64]), glass)
        img = np.where(frame[..., None], 0.35, img)
        return np.where(inside[..., None], glass, img)
    return make


def _plaster(rng, s):
    return _grey(0.86 + 0.03 * _fbm(rng, s, (20, 5, 1.5)))


def _glass_wall(rng, s):
    row, col, fu, fv = _cells(s, 8, 8)
    v = 0.3 + 0.15 * (np.arange(s)[:, None] / s) + 0.02 * _noise(rng, s, 30)
    img = _colorize(np.broadcast_to(v, (s, s)), (0.55, 0.7, 0.85))
    mullion = (fu < 0.06) | (fv < 0.06)
    return np.where(mullion[..., None], 0.25, img)


def _roof(rng, s):
    return _grey(0.5 + 0.05 * _fbm(rng, s, (12, 3)) + 0.06 * (rng.random((s, s)) - 0.5))


def _grass(rng, s):
    base = 0.8 + 0.1 * _fbm(rng, s, (32, 10)) + 0.08 * _noise(rng, s, 1.0)
    blades = 0.08 * np.clip(_noise(rng, s, 0.8), 0, None)
    dry = 0.05 * _noise(rng, s, 24)[..., None] * np.array([1.0, 0.4, -0.6])  # yellowish patches
    return _grey(base + blades) * 0.95 + dry


def _dirt(rng, s):
    v = 0.8 + 0.08 * _fbm(rng, s, (20, 6)) + 0.05 * _noise(rng, s, 1.2)
    pebbles = _noise(rng, s, 1.5) > 2.0
    return np.where(pebbles[..., None], 1.0, _grey(v))


def _bark(rng, s):
    streak = _noise(rng, s, 3, aspect=6.0)
    return _colorize(0.75 + 0.13 * streak + 0.04 * _noise(rng, s, 1), (1.0, 0.9, 0.8))


def _leaves(rng, s):
    clumps = _noise(rng, s, 6)
    v = 0.75 + 0.18 * clumps + 0.07 * _noise(rng, s, 1.2)
    v = np.where(clumps < -1.0, 0.45, v)  # gaps between leaf clusters
    return _colorize(v, (1.0, 1.0, 0.9))


def _hedge(rng, s):
    return _colorize(0.72 + 0.16 * _noise(rng, s, 2.5) + 0.06 * _noise(rng, s, 0.8),
                     (1.0, 1.0, 0.92))


def _rock(rng, s):
    v = 0.75 + 0.1 * _fbm(rng, s, (30, 10, 3))
    cracks = np.abs(_noise(rng, s, 8)) < 0.05
    lichen = _noise(rng, s, 6) > 1.4
    img = _grey(np.where(cracks, v * 0.55, v))
    return np.where(lichen[..., None], img * np.array([0.85, 0.95, 0.7]), img)


def _wood(rng, s):
    row, _, _, fv = _cells(s, 1, 6)
    plank = rng.uniform(0.8, 1.0, 6)[row]
    grain = 0.06 * _noise(rng, s, 3, aspect=0.12)
    gap = (fv < 0.05)
    return _colorize(np.where(gap, 0.45, plank * (0.85 + grain)), (1.0, 0.88, 0.72))


def _tile(rng, s):
    row, col, fu, fv = _cells(s, 4, 4)
    shade = rng.uniform(0.9, 1.0, (4, 4))[row, col]
    grout = (fu < 0.04) | (fv < 0.04)
    return _grey(np.where(grout, 0.55, shade * (0.92 + 0.02 * _noise(rng, s, 4))))


def _carpet(rng, s):
    return _grey(0.8 + 0.06 * _noise(rng, s, 0.7) + 0.05 * _noise(rng, s, 12))


def _fabric(rng, s):
    v, u = np.mgrid[0:s, 0:s]
    weave = 0.04 * np.sign(np.sin(u * np.pi / 2) * np.sin(v * np.pi / 2))
    return _grey(0.85 + weave + 0.04 * _noise(rng, s, 6))


def _metal(rng, s):
    return _grey(0.72 + 0.06 * _noise(rng, s, 1.0, aspect=0.05) + 0.04 * _noise(rng, s, 20))


def _glass(rng, s):
    v = 0.25 + 0.25 * (1.0 - np.arange(s)[:, None] / s)
    return _colorize(np.broadcast_to(v, (s, s)), (0.75, 0.85, 1.0))


def _paint(rng, s):
    return _grey(0.9 + 0.015 * _noise(rng, s, 10))


def _wool(rng, s):
    return _grey(0.85 + 0.1 * _noise(rng, s, 1.5))


def _water(rng, s):
    ripple = _noise(rng, s, 3, aspect=0.4)
    return _colorize(0.75 + 0.15 * ripple, (0.8, 0.95, 1.0))


def _light(rng, s):
    return _grey(np.ones((s, s)))


_GENERATORS: dict[str, Callable[[np.random.Generator, int], np.ndarray]] = {
    "asphalt": _asphalt, "road": _road, "paving": _paving, "concrete": _concrete,
    "brick": _brick,
    "facade_brick": _facade(lambda rng, s: _brick(rng, s) * 1.15, (0.7, 0.8, 0.95), (0.45, 0.5)),
    "facade_concrete": _facade(_concrete, (0.6, 0.75, 0.9), (0.6, 0.55)),
    "facade_plaster": _facade(_plaster, (0.7, 0.75, 0.85), (0.4, 0.55)),
    "facade_glass": _facade(_glass_wall, (0.5, 0.7, 0.9), (0.86, 0.8)),
    "roof": _roof, "grass": _grass, "dirt": _dirt, "bark": _bark, "leaves": _leaves,
    "hedge": _hedge, "rock": _rock, "wood": _wood, "plaster": _plaster, "tile": _tile,
    "carpet": _carpet, "fabric": _fabric, "metal": _metal, "glass": _glass, "paint": _paint,
    "skin": _paint, "wool": _wool, "water": _water, "light": _light,
}

TEXTURE_SIZE = {"road": 128, "grass": 256, "dirt": 256, "facade_brick": 256, "facade_concrete": 256,
                "facade_plaster": 256, "facade_glass": 256}


def texture_image(name: str) -> np.ndarray:
    """The tileable texture of material ``name`` as ``uint8 [S, S, 3]`` RGB (row 0 = v = 0)."""
    material(name)
    size = TEXTURE_SIZE.get(name, 128)
    rng = np.random.default_rng(zlib.crc32(name.encode()))
    img = _GENERATORS[name](rng, size)
    return np.ascontiguousarray(np.clip(np.rint(img * 255.0), 0, 255).astype(np.uint8))
