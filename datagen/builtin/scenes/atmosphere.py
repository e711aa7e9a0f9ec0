"""The per-episode look: time of day, sun, sky colours and fog drawn from a generator.

:func:`sample_atmosphere` covers dawn to dusk: the sun's elevation and colour follow the hour
(low and orange early and late, high and white at noon), the sky is clear, hazy or overcast, and
fog is absent, light or thick. :func:`atmosphere_settings` is what meta.json records of it.
"""

from __future__ import annotations

import math

import numpy as np

from datagen.builtin.world import Atmosphere

SUNRISE, SUNSET = 6.0, 19.0
SKIES = ("clear", "hazy", "overcast")
FOGS = ("none", "light", "thick")


def _mix(a, b, t: float) -> np.ndarray:
    return np.asarray(a, dtype=np.float64) * (1.0 - t) + np.asarray(b, dtype=np.float64) * t


def _rgb(c: np.ndarray) -> tuple[float, float, float]:
    c = np.clip(c, 0.0, 1.0)
    return float(c[0]), float(c[1]), float(c[2])


def sun_elevation(hour: float, noon_elevation: float) -> float:
    """Sun elevation in degrees at ``hour``: 0 at sunrise and sunset, ``noon_elevation`` midway."""
    return noon_elevation * math.sin(math.pi * (hour - SUNRISE) / (SUNSET - SUNRISE))


def sample_atmosphere(rng: np.random.Generator, indoor: bool = False) -> tuple[Atmosphere, str,
                                                                              str]:
    """An :class:`Atmosphere` plus the names of its sky kind and fog level.

    Indoors the "sun" is the ceiling lighting: steep, softer and warm or cool, with at most a
    faint haze.
    """
    hour = float(rng.uniform(6.6, 18.4))
    noon = float(rng.uniform(40.0, 72.0))
    elevation = sun_elevation(hour, noon)
    azimuth = float(rng.uniform(0.0, 360.0)) + 180.0 * (hour - SUNRISE) / (SUNSET - SUNRISE)
    sky = SKIES[int(rng.choice(3, p=[0.55, 0.3, 0.15]))]
    fog = FOGS[int(rng.choice(3, p=[0.4, 0.4, 0.2]))]
    if indoor:
        elevation = float(rng.uniform(60.0, 80.0))
        fog = "none" if rng.random() < 0.7 else "light"
    el, az = math.radians(elevation), math.radians(azimuth)
    to_sun = np.array([math.cos(el) * math.cos(az), math.cos(el) * math.sin(az), math.sin(el)])

    low = float(np.clip(1.0 - elevation / 30.0, 0.0, 1.0))  # 1 at the horizon, 0 above 30 deg
    sun = _mix((1.0, 0.96, 0.88), (1.0, 0.62, 0.36), low ** 1.5) * (0.85 - 0.2 * low)
    zenith = _mix((0.22, 0.42, 0.82), (0.2, 0.28, 0.55), low) + rng.normal(0, 0.03, 3)
    horizon = _mix((0.68, 0.8, 0.93), (0.96, 0.7, 0.5), low ** 1.2) + rng.normal(0, 0.03, 3)
    ambient = _mix((0.5, 0.52, 0.56), (0.46, 0.42, 0.44), low)
    if sky == "hazy":
        zenith = _mix(zenith, horizon, 0.4)
        sun = sun * 0.85
        ambient = ambient * 1.1
    elif sky == "overcast":
        grey = float(rng.uniform(0.55, 0.75))
        zenith = _mix(zenith, (grey, grey, grey + 0.03), 0.85)
        horizon = _mix(horizon, (grey + 0.1, grey + 0.1, grey + 0.12), 0.8)
        sun = sun * 0.35
        ambient = ambient * 1.45
    if indoor:
        warm = float(rng.uniform(0.0, 1.0))
        sun = _mix((0.62, 0.64, 0.68), (0.7, 0.62, 0.5), warm)
        ambient = _mix((0.5, 0.52, 0.56), (0.56, 0.5, 0.44), warm)
    density = {"none": 0.0, "light": float(rng.uniform(0.003, 0.012)),
               "thick": float(rng.uniform(0.02, 0.045))}[fog]
    fog_color = _mix(horizon, (0.75, 0.77, 0.8), 0.5) if fog != "none" else horizon
    if fog == "thick":  # thick fog washes the sky towards its own colour
        horizon = _mix(horizon, fog_color, 0.8)
        zenith = _mix(zenith, fog_color, 0.5)
        sun = sun * 0.7
        ambient = ambient * 1.15
    atm = Atmosphere(
        time_of_day=round(hour, 4),
        sun_direction=_rgb_dir(-to_sun),
        sun_color=_rgb(sun),
        ambient_color=_rgb(ambient),
        sky_zenith=_rgb(zenith),
        sky_horizon=_rgb(horizon),
        fog_color=_rgb(fog_color),
        fog_density=density,
    )
    return atm, sky, fog


def _rgb_dir(v: np.ndarray) -> tuple[float, float, float]:
    v = v / np.linalg.norm(v)
    return float(v[0]), float(v[1]), float(v[2])


def atmosphere_settings(atm: Atmosphere, sky: str, fog: str) -> dict:
    """The JSON-ready record of an atmosphere for meta.json's ``settings``."""
    to_sun = -np.asarray(atm.sun_direction)
    return {
        "time_of_day": atm.time_of_day,
        "sun_elevation_deg": round(math.degrees(math.asin(float(np.clip(to_sun[2], -1, 1)))), 3),
        "sun_azimuth_deg": round(math.degrees(math.atan2(to_sun[1], to_sun[0])) % 360.0, 3),
        "sun_direction": [round(c, 6) for c in atm.sun_direction],
        "sun_color": [round(c, 4) for c in atm.sun_color],
        "ambient_color": [round(c, 4) for c in atm.ambient_color],
        "sky": sky,
        "sky_zenith": [round(c, 4) for c in atm.sky_zenith],
        "sky_horizon": [round(c, 4) for c in atm.sky_horizon],
        "fog": fog,
        "fog_density": round(atm.fog_density, 6),
        "fog_color": [round(c, 4) for c in atm.fog_color],
    }
