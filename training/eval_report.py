"""``training eval``'s numbers as people read them: the headline scalars followed during
training (:func:`headline`), the table the command prints (:func:`summary_table`) and the HTML
report (:func:`report_page`: cards, tables, accuracy, drift and agreement plots, the videos).
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from curation.html_page import esc, figure, img, page, save_png, table


def headline(results: dict) -> dict[str, float]:
    """The numbers to follow during training: keyboard and mouse accuracy of the model under
    recorded actions and scripts, the probe's ceiling, unknown share, drift and consistency."""
    out = {}
    for group in ("recorded", "scripts", "ground_truth", "autoencoded"):
        s = results.get(group) or {}
        if s:
            out[f"{group}_keyboard"] = s["keyboard"]
            out[f"{group}_mouse"] = s["direction"]
            out[f"{group}_unknown"] = s["unknown"]
    rec = results["recorded"]
    out.update({"drift_brightness": rec["end_brightness"], "drift_sharpness": rec["end_sharpness"],
                "frame_diff": rec["frame_diff"], "confidence": rec["confidence"]})
    ref = results.get("reference")
    if ref:
        for who, prefix in (("model", "reference"), ("reference_self", "reference_self")):
            out[f"{prefix}_psnr"] = ref[who]["psnr"]
            cosine = ref[who].get("response", {}).get("cosine")
            if cosine is not None:
                out[f"{prefix}_response"] = cosine
    return out


def _reference_rows(ref: dict) -> list[list[str]]:
    rows = []
    for label, who in (("model", "model"), ("reference, another seed", "reference_self")):
        a = ref[who]
        response = a.get("response") or {"cosine": None, "ratio": None}
        rows.append([label, f"{a['psnr']:.2f} dB",
                     f"{a['scripts_psnr']:.2f} dB" if "scripts_psnr" in a else "n/a",
                     "n/a" if response["cosine"] is None else f"{response['cosine']:.3f}",
                     "n/a" if response["ratio"] is None else f"{response['ratio']:.2f}"])
    return rows


REFERENCE_HEADER = ["against the reference", "PSNR, recorded", "PSNR, scripts",
                    "response cosine", "response size ratio"]


def summary_table(results: dict) -> str:
    """A plain-text table of the model beside the probe's ceiling (printed by the CLI)."""
    rows = [("", "keyboard", "mouse", "unknown", "mouse err p50", "confidence", "frame diff")]
    for label, group in (("model, recorded actions", "recorded"),
                         ("model, designed scripts", "scripts"),
                         ("ground truth (ceiling)", "ground_truth"),
                         ("ground truth through the VAE", "autoencoded")):
        s = results.get(group)
        if s:
            rows.append((label, _pct(s["keyboard"]), _pct(s["direction"]), _pct(s["unknown"]),
                         f"{s['mouse_median']:.2f} deg", f"{s['confidence']:.2f}",
                         f"{s['frame_diff']:.1f}"))
    text = _columns(rows)
    if results.get("reference"):
        text += "\n\n" + _columns([REFERENCE_HEADER, *_reference_rows(results["reference"])])
    return text


def _columns(rows: list) -> str:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) for r in rows)


def _pct(x: float) -> str:
    return "n/a" if x is None or math.isnan(x) else f"{100 * x:.1f} %"


def _score_rows(results: dict) -> tuple[list[str], list[list[object]]]:
    keys = results["scored_keys"]
    header = ["rollouts", "frames", "unknown", "keyboard", "mouse (direction)",
              "mouse err p50 / p95 (deg)", *(k.upper() for k in keys), "confidence",
              "frame diff"]
    groups = [("model, recorded actions", results["recorded"]),
              ("ground truth (probe ceiling)", results["ground_truth"]),
              ("ground truth through the VAE (latent ceiling)", results["autoencoded"])]
    if results["scripts"]:
        groups.insert(1, ("model, all scripts", results["scripts"]))
    groups += [(f"script {name}", s) for name, s in results["per_script"].items()]
    rows = [[label, int(s["frames"]), _pct(s["unknown"]), _pct(s["keyboard"]),
             _pct(s["direction"]), f"{s['mouse_median']:.2f} / {s['mouse_p95']:.2f}",
             *(_pct(s[f"key_{k}"]) for k in keys), f"{s['confidence']:.2f}",
             f"{s['frame_diff']:.1f}"] for label, s in groups]
    return header, rows


def _accuracy_png(folder: Path, results: dict) -> str:
    groups = {"recorded": results["recorded"], "ground truth": results["ground_truth"],
              "through the VAE": results["autoencoded"], **results["per_script"]}
    labels = list(groups)
    fig, ax = figure(8.0, 1.0 + 0.3 * len(labels))
    y = np.arange(len(labels))[::-1]
    for offset, (metric, colour, name) in enumerate((("keyboard", "#2f6db5", "keyboard"),
                                                     ("direction", "#e08a1e", "mouse"))):
        values = [0.0 if math.isnan(g[metric]) else g[metric] for g in groups.values()]
        ax.barh(y + 0.2 - 0.4 * offset, values, height=0.38, color=colour, label=name)
    ax.set_yticks(y, labels)
    ax.set_xlim(0, 1)
    ax.set_xlabel("accuracy (probe reading vs given actions; no bar: nothing to score)")
    ax.legend(loc="lower right", fontsize=8)
    return save_png(fig, folder, "accuracy.png")


def _drift_png(folder: Path, results: dict) -> str:
    fig = Figure(figsize=(10.0, 3.0), dpi=110)
    FigureCanvasAgg(fig)
    titles = {"brightness": "brightness shift vs frame 0 (0-255)",
              "contrast": "contrast ratio to frame 0", "sharpness": "sharpness ratio to frame 0",
              "frame_diff": "frame-to-frame difference (0-255)"}
    for i, key in enumerate(titles):
        ax = fig.add_subplot(1, 4, i + 1)
        for group, curves in results["curves"].items():
            ax.plot(curves[key], label=group.replace("_", " "))
        ax.set_title(titles[key], fontsize=8)
        ax.set_xlabel("frame", fontsize=8)
        ax.tick_params(labelsize=7)
        ax.spines[["top", "right"]].set_visible(False)
    fig.axes[0].legend(fontsize=7)
    return save_png(fig, folder, "drift.png")


def _reference_png(folder: Path, ref: dict) -> str:
    fig, ax = figure(6.0, 2.6)
    for who, label in (("model", "model"), ("reference_self", "reference, another seed")):
        curve = ref[who]["psnr_curve"]
        ax.plot(range(1, len(curve)), curve[1:], label=label)
    ax.set_xlabel("frame (recorded actions)")
    ax.set_ylabel("PSNR against the reference (dB)")
    ax.legend(fontsize=8)
    return save_png(fig, folder, "reference.png")


def report_page(results: dict, folder: Path, videos: list[tuple[str, str]]) -> str:
    """The HTML page of ``results`` (:func:`training.evaluate.evaluate`'s): cards, tables and
    plots (written into ``folder``) and the ``videos`` (``(label, file name)``)."""
    rec, truth = results["recorded"], results["ground_truth"]
    scripts = results["scripts"] or {}
    cards = [("keyboard, recorded", f"{_pct(rec['keyboard'])} / {_pct(truth['keyboard'])}"),
             ("mouse, recorded", f"{_pct(rec['direction'])} / {_pct(truth['direction'])}")]
    if scripts:
        cards += [("keyboard, scripts", _pct(scripts["keyboard"])),
                  ("mouse, scripts", _pct(scripts["direction"]))]
    header, rows = _score_rows(results)
    parts = [
        f"<h1>Model evaluation: step {results['step']}</h1><div class=sub>action space "
        f"{esc(results['space'])} &middot; {len(results['clips'])} held-out clip(s) of "
        f"{results['frames']} frames &middot; scripts of {results['script_frames']} frames "
        f"&middot; fov {results['fov']:.1f} deg at {results['fps']:g} fps</div>",
        "<div class=cards>" + "".join(f"<div class=card><b>{esc(v)}</b>{esc(k)}</div>"
                                      for k, v in cards) + "</div>",
        "<p>Accuracy is the camera-motion probe's reading of the video against the actions the "
        "model was given (model / the same probe on the ground-truth clips, its ceiling; "
        "the clips through the run's VAE are the ceiling of a model generating its latents). "
        "<i>keyboard</i>: frames where every scored movement key agrees; <i>mouse</i>: frames "
        "moving more than 0.5 deg where the probed turn lies within 45 deg of the given one "
        "(unknown frames count as misses). See docs/training.md.</p>",
        "<h2>Accuracy</h2>", table(header, rows, set(range(1, len(header)))),
        img(_accuracy_png(folder, results), "accuracy per source and script"),
        "<h2>Drift and temporal consistency</h2>",
        img(_drift_png(folder, results), "drift curves"),
    ]
    if results.get("reference"):
        ref = results["reference"]
        parts += [
            f"<h2>Against the reference (step {ref['step']})</h2>",
            "<p>The reference run's rollouts from the same first frames under the same inputs, "
            "compared pixel by pixel (training.agreement): PSNR of the model's frames against "
            "the reference's, and how the model's response to the scripts (each script's "
            "rollout minus the mean over scripts) lines up with the reference's (cosine 1: "
            "the same way; size ratio 1: as much). The reference against itself at another "
            "noise seed is what a model that played exactly like it would reach.</p>",
            table(REFERENCE_HEADER, _reference_rows(ref), {1, 2, 3, 4}),
            img(_reference_png(folder, ref), "PSNR against the reference per frame")]
    if videos:
        parts.append("<h2>Videos</h2><div class=grid>" + "".join(
            f"<figure><video src='{esc(name)}' controls loop muted playsinline></video>"
            f"<figcaption>{esc(label)}</figcaption></figure>" for label, name in videos)
            + "</div>")
    return page(f"Model evaluation: step {results['step']}", parts, results)
