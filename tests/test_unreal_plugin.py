"""The Unreal Engine plugin's Python: its API use checked against UE 5.6, run against a double.

The ``unreal-stub`` package is the UE 5.6 editor's generated ``unreal.py``. It is indexed here
from its text (classes, bases, methods and properties, module functions, parameter names; the
file is too large and too odd for ``ast``), and every ``unreal.*`` name the plugin uses, with
the keywords it passes, must be in it, as must every name the test double defines.
"""

from __future__ import annotations

import ast
import importlib
import importlib.util
import re
import sys
from pathlib import Path

import numpy as np
import pytest
import unreal_double
from shapely.geometry import MultiPolygon, box

from datagen.navigation import Unreachable
from datagen.planner import PROFILES, Move, Planner

PLUGIN = Path(__file__).resolve().parents[1] / "ue_plugin"
PYTHON = PLUGIN / "Content" / "Python"
ORIGIN = np.array([3.0e7, -2.0e7])  # Unreal cm: 300 km east, 200 km "right" of the origin
FLOOR = 1250.0  # cm


# ------------------------------------------------------------------ the real API, indexed


def _params(text: str) -> list[str]:
    """Parameter names of a ``def`` line's parameter list (top-level commas only)."""
    names, depth, piece, quote = [], 0, "", ""
    for ch in text + ",":
        if quote:
            quote = "" if ch == quote else quote
        elif ch in "\"'":
            quote = ch
        elif ch in "([{":
            depth += 1
        elif ch in ")]}":
            depth -= 1
        elif ch == "," and depth == 0:
            if m := re.match(r"\s*\**(\w+)", piece):
                names.append(m.group(1))
            piece = ""
            continue
        piece += ch
    return names


def stub_index() -> tuple[dict, dict]:
    """``(classes, functions)``: class -> {"bases": [...], "members": {name: params}}, and
    module function -> params, from the installed ``unreal-stub``."""
    spec = importlib.util.find_spec("unreal")
    assert spec is not None, "the unreal-stub package is a test dependency (pip install -e .[test])"
    text = (Path(spec.origin).parent / "unreal.py").read_text(encoding="utf-8-sig")
    classes: dict[str, dict] = {}
    functions: dict[str, list[str]] = {}
    current = None
    for line in text.splitlines():
        if m := re.match(r"class (\w+)(?:\((.*)\))?:", line):
            bases = [re.sub(r"\[.*", "", b).strip() for b in _split(m.group(2) or "")]
            current = classes.setdefault(m.group(1), {"bases": bases, "members": {}})
        elif m := re.match(r"    def (\w+)\((.*)\)", line):
            if current is not None:
                current["members"].setdefault(m.group(1), _params(m.group(2))[1:])
        elif m := re.match(r"    (\w+): [\w.\[\], ]+ = \.\.\.", line):  # an enum's value
            if current is not None:
                current["members"].setdefault(m.group(1), [])
        elif m := re.match(r"def (\w+)\((.*)\)", line):
            functions[m.group(1)] = _params(m.group(2))
            current = None
        elif line and not line.startswith((" ", "#", "@", "class")):
            current = None
    return classes, functions


def _split(text: str) -> list[str]:
    return [p for p in (s.strip() for s in re.split(r",(?![^\[]*\])", text)) if p]


def member(classes: dict, name: str, attr: str) -> list[str] | None:
    """Parameters of ``name.attr`` looked up through the bases, or None when absent."""
    seen, todo = set(), [name]
    while todo:
        cls = todo.pop(0)
        if cls in seen or cls not in classes:
            continue
        seen.add(cls)
        if attr in classes[cls]["members"]:
            return classes[cls]["members"][attr]
        todo += classes[cls]["bases"]
    return None


@pytest.fixture(scope="module")
def api() -> tuple[dict, dict]:
    return stub_index()


def test_the_index_reads_the_real_api(api):
    classes, functions = api
    assert len(classes) > 5000 and "get_editor_subsystem" in functions
    assert member(classes, "Rotator", "__init__") == ["roll", "pitch", "yaw"]  # UE's own order
    assert member(classes, "NavMeshBoundsVolume", "get_actor_bounds") == [
        "only_colliding_components", "include_from_child_actors"]  # inherited from Actor
    assert member(classes, "Vector", "no_such_method") is None
    assert member(classes, "TextureRenderTargetFormat", "RTF_RGBA8") == []  # an enum's value
    assert member(classes, "TextureRenderTargetFormat", "RTF_NOPE") is None


# ------------------------------------------------------------------ the plugin's use of it


def unreal_uses(path: Path) -> list[tuple[str, str | None, list[str], int, int]]:
    """``(name, attr, keywords, positional, line)`` for every ``unreal.name`` /
    ``unreal.name.attr`` in a file, with the keywords and the number of positional arguments
    of the call it makes (none when it is not called)."""
    tree = ast.parse(path.read_text())
    calls = {id(n.func): ([k.arg for k in n.keywords if k.arg], len(n.args))
             for n in ast.walk(tree) if isinstance(n, ast.Call)}
    uses = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) \
                and node.value.id == "unreal":
            uses.append((node.attr, None, *calls.get(id(node), ([], 0)), node.lineno))
        elif isinstance(node, ast.Attribute) and isinstance(node.value, ast.Attribute) \
                and isinstance(node.value.value, ast.Name) and node.value.value.id == "unreal":
            uses.append((node.value.attr, node.attr, *calls.get(id(node), ([], 0)),
                         node.lineno))
    return uses


def test_every_unreal_name_the_plugin_uses_exists_in_ue_5_6(api):
    classes, functions = api
    files = sorted(PYTHON.rglob("*.py"))
    assert files
    problems, checked = [], 0
    for path in files:
        for name, attr, keywords, positional, line in unreal_uses(path):
            where = f"{path.relative_to(PLUGIN)}:{line} unreal.{name}" + (f".{attr}" if attr
                                                                         else "")
            checked += 1
            if name not in classes and name not in functions:
                problems.append(f"{where}: no such class or function")
                continue
            if attr is None:
                params = functions.get(name) or member(classes, name, "__init__") or []
            else:
                params = member(classes, name, attr)
                if params is None:
                    problems.append(f"{where}: {name} has no {attr}")
                    continue
            unknown = [k for k in keywords if k not in params]
            if unknown:
                problems.append(f"{where}: no keyword(s) {unknown} (has {params})")
            if positional > len(params) or set(keywords) & set(params[:positional]):
                problems.append(f"{where}: {positional} positional argument(s) and {keywords} "
                                f"do not fit {params}")
    assert checked >= 8 and problems == []


def test_every_editor_property_the_plugin_names_exists_in_ue_5_6():
    """``get_editor_property("name")`` / ``set_editor_property("name", ...)``: each name must
    be one of the editor properties the real API documents (on some class: the receiver's type
    is not known statically)."""
    spec = importlib.util.find_spec("unreal")
    text = (Path(spec.origin).parent / "unreal.py").read_text(encoding="utf-8-sig")
    documented = set(re.findall(r"^    - ``(\w+)`` \(", text, flags=re.M))
    assert {"capture_component2d", "fov_angle", "texture_target", "tags"} <= documented
    used = []
    for path in sorted(PYTHON.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and \
                    node.func.attr in ("get_editor_property", "set_editor_property"):
                name = node.args[0]
                assert isinstance(name, ast.Constant), f"{path.name}:{node.lineno}"
                used.append(name.value)
    assert len(used) >= 6 and sorted(set(used) - documented) == []


def test_the_double_defines_only_what_unreal_has(api):
    classes, functions = api
    module = unreal_double.make_unreal(box(0, 0, 100, 100), [], 0.0, None)
    problems = []
    for name, value in vars(module).items():
        if name.startswith("__"):
            continue
        if isinstance(value, type):
            if name not in classes:
                problems.append(f"class {name}")
                continue
            for attr in [*vars(value), *getattr(value, "__annotations__", {})]:
                if not attr.startswith("_") and member(classes, name, attr) is None:
                    problems.append(f"{name}.{attr}")
        elif callable(value) and name not in functions:
            problems.append(f"function {name}")
    path = unreal_double.NavigationPath([], True)  # instance attributes too
    problems += [f"NavigationPath.{a}" for a in vars(path)
                 if not a.startswith("_") and member(classes, "NavigationPath", a) is None]
    vector = unreal_double.Vector()
    problems += [f"Vector.{a}" for a in vars(vector) if member(classes, "Vector", a) is None]
    assert problems == []


def test_only_the_adapter_imports_unreal():
    for path in sorted(PYTHON.rglob("*.py")):
        tree = ast.parse(path.read_text())
        imports = {a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
        imports |= {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)}
        assert ("unreal" in imports) == (path.name == "adapter.py"), path


# ------------------------------------------------------------------ running against the double


@pytest.fixture
def adapter(monkeypatch):
    """``worldforge_ue.adapter`` imported against a double of a level: a 40 x 30 m floor far
    from the origin with a 20 m wall across its middle, a 1 x 1 m island out of reach."""
    x0, y0 = ORIGIN
    floor = box(x0, y0, x0 + 4000, y0 + 3000)
    wall = box(x0 + 1950, y0, x0 + 2050, y0 + 2000)  # leaves a 10 m gap at +Y
    level = MultiPolygon([floor, box(x0 + 4400, y0, x0 + 4500, y0 + 100)])  # and an island
    bounds = (unreal_double.Vector(x0 + 2250, y0 + 1500, FLOOR),
              unreal_double.Vector(2250, 1500, 300))
    fake = unreal_double.make_unreal(level, [wall], FLOOR, bounds)
    monkeypatch.setitem(sys.modules, "unreal", fake)
    monkeypatch.syspath_prepend(str(PYTHON))
    sys.modules.pop("worldforge_ue.adapter", None)
    module = importlib.import_module("worldforge_ue.adapter")
    yield module
    sys.modules.pop("worldforge_ue.adapter", None)


def contract(x_cm: float, y_cm: float) -> np.ndarray:
    return np.array([x_cm / 100.0, -y_cm / 100.0])


def test_paths_come_back_in_the_contracts_frame_round_the_wall(adapter):
    nav = adapter.UnrealNavigator(adapter.editor_world(), 0.35)
    x0, y0 = ORIGIN
    assert np.allclose(nav.bounds[:, :2], [contract(x0, y0 + 3000), contract(x0 + 4500, y0)])
    start, goal = contract(x0 + 500, y0 + 500), contract(x0 + 3500, y0 + 500)
    path = nav.find_path(start, goal)
    assert np.allclose(path[0], start, atol=1e-6) and np.allclose(path[-1], goal, atol=1e-6)
    assert (-path[:, 1] * 100 > y0 + 2000).any()  # round the wall's end at Unreal +Y, i.e. -y
    assert np.hypot(*np.diff(path, axis=0).T).sum() > 40.0  # not through it (30 m straight)
    with pytest.raises(Unreachable, match="not on the NavMesh"):
        nav.find_path(start, contract(x0 - 5000, y0))
    with pytest.raises(Unreachable, match="no complete path"):
        nav.find_path(start, contract(x0 + 4450, y0 + 50))  # the island
    stats = nav.stats()
    assert stats["queries"] >= 7 and 0 < stats["median_ms"] <= stats["max_ms"]


def test_random_points_are_on_the_mesh_and_the_same_for_a_seed(adapter):
    nav = adapter.UnrealNavigator(adapter.editor_world(), 0.35)
    points = [nav.random_point(np.random.default_rng(3)) for _ in range(2)]
    assert np.array_equal(points[0], points[1])
    rng = np.random.default_rng(4)
    many = np.array([nav.random_point(rng) for _ in range(200)])
    ue = np.column_stack([many[:, 0] * 100, -many[:, 1] * 100])
    x0, y0 = ORIGIN
    on_floor = (ue[:, 0] >= x0) & (ue[:, 0] <= x0 + 4000) & (ue[:, 1] >= y0) & (ue[:, 1] <= y0
                                                                                  + 3000)
    assert on_floor.mean() > 0.95  # by area: the island is 0.1 % of it
    assert (ue[:, 0] < x0 + 2000).mean() == pytest.approx(0.5, abs=0.1)


def test_the_shared_planner_runs_on_unreals_navmesh_deterministically(adapter):
    """The behaviour layer, unchanged, on the Unreal navigator: same seed, same activities."""
    def plan(seed: int) -> list:
        nav = adapter.UnrealNavigator(adapter.editor_world(), 0.35)
        planner = Planner(nav, np.random.default_rng(seed), PROFILES["balanced"])
        position = nav.random_point(np.random.default_rng(seed + 100))
        out = []
        for _ in range(12):
            activity = planner.next(position)
            if isinstance(activity, Move):
                position = activity.path[-1]
            out.append(activity)
        return out

    first, again = plan(5), plan(5)
    moves = [a for a in first if isinstance(a, Move)]
    assert len(moves) >= 4
    for a, b in zip(first, again, strict=True):
        assert type(a) is type(b)
        if isinstance(a, Move):
            assert np.array_equal(a.path, b.path) and (a.gait, a.mode) == (b.gait, b.mode)


def test_a_level_without_navmesh_bounds_is_refused_by_name(monkeypatch):
    fake = unreal_double.make_unreal(box(0, 0, 1000, 1000), [], 0.0, None)
    monkeypatch.setitem(sys.modules, "unreal", fake)
    monkeypatch.syspath_prepend(str(PYTHON))
    sys.modules.pop("worldforge_ue.adapter", None)
    module = importlib.import_module("worldforge_ue.adapter")
    with pytest.raises(RuntimeError, match="no NavMeshBoundsVolume"):
        module.UnrealNavigator(module.editor_world(), 0.35)
    sys.modules.pop("worldforge_ue.adapter", None)


def test_the_plugin_descriptor_needs_only_python_and_enhanced_input():
    import json

    descriptor = json.loads((PLUGIN / "WorldforgeRecorder.uplugin").read_text())
    assert descriptor["FileVersion"] == 3 and descriptor["CanContainContent"] is True
    assert "Modules" not in descriptor  # no C++ to build
    assert {p["Name"] for p in descriptor["Plugins"]} == {"PythonScriptPlugin", "EnhancedInput"}
