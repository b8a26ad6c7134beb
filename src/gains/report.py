"""The HTML report of a training run: metrics, loss curves and, for a few images, the input, the ground
truth, the prediction and the GA maps (ground truth and predicted). One self-contained file (images
embedded as base64 PNG). Imported by the CLI and the demo only.
"""

from __future__ import annotations

import base64
import html
import io
from pathlib import Path
from typing import Any

import numpy as np

from gains.atomic import atomic_write
from gains.config import PRECISION_NAMES, saved_config
from gains.errors import InputError
from gains.evaluation.score import AP_KEYS, PER_IMAGE
from gains.jsonfile import read_json, read_json_lines

METRIC_KEYS = (*AP_KEYS, *PER_IMAGE)


def _png_b64(fig) -> str:
    import matplotlib.pyplot as plt

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=80)
    plt.close(fig)
    return base64.b64encode(buf.getvalue()).decode()


def _loss_figure(lines: list[dict[str, Any]]) -> str | None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    train = [ln for ln in lines if "loss" in ln]
    if not train:
        return None
    its = np.array([ln["iter"] for ln in train])
    fig, axes = plt.subplots(1, 2, figsize=(13, 4), constrained_layout=True)
    keys = [k for k in train[0] if k.startswith("loss")]
    width = max(1, len(its) // 30)
    for k in keys:
        v = np.array([ln[k] for ln in train])
        smooth = np.convolve(v, np.ones(width) / width, mode="valid")
        axes[0].plot(its[width - 1 :], smooth, label=k, lw=2 if k == "loss" else 1)
    axes[0].set_xlabel("iteration")
    axes[0].set_yscale("log")
    axes[0].legend(fontsize=8)
    axes[0].set_title(f"training losses (moving mean of {width})")
    val = [ln for ln in lines if ln.get("split") == "val"]
    if val:
        for k in ("segm/AP", "segm/AP50", "bbox/AP"):
            axes[1].plot([ln["iter"] + 1 for ln in val], [ln[k] for ln in val], "o-", label=k)
        axes[1].legend()
    axes[1].set_title("validation")
    axes[1].set_xlabel("iteration")
    return _png_b64(fig)


def _image_figure(pixels, gt_masks, ga_true, instances, height: int, width: int, title: str, norm) -> str:
    import matplotlib.pyplot as plt

    from gains.formats.ga import ga_image
    from gains.intensity import to_display
    from gains.visualize import ga_composite, outline_overlay

    pred_masks = [i.mask.to_dense(height, width) for i in instances]
    ga_pred = ga_image(instances, height, width)
    fig, ax = plt.subplots(1, 5, figsize=(20, 4.4), constrained_layout=True)
    ax[0].imshow(to_display(pixels, norm))
    ax[0].set_title(title)
    ax[1].imshow(outline_overlay(pixels, gt_masks, normalisation=norm))
    ax[1].set_title(f"ground truth ({len(gt_masks)})")
    ax[2].imshow(outline_overlay(pixels, pred_masks, normalisation=norm))
    ax[2].set_title(f"prediction ({len(pred_masks)})")
    top = max(float(np.max(ga_true)) if len(ga_true) else 1.0, 1.0 + 1e-6)
    ax[3].imshow(ga_composite(list(ga_true), top - 1.0) if len(ga_true) else np.zeros((height, width)), cmap="inferno",
                 vmin=0, vmax=1)
    ax[3].set_title("GA maps, ground truth")
    if ga_pred is not None:
        span = max(float(ga_pred.max()) - 1.0, 1e-6)
        ax[4].imshow(np.clip((ga_pred - 1.0) / span, 0, 1), cmap="inferno", vmin=0, vmax=1)
        ax[4].set_title(f"predicted GA maps: where instances meet\n(max over instances, peak {ga_pred.max():.2f})")
    else:
        ax[4].imshow(np.zeros((height, width)), cmap="inferno", vmin=0, vmax=1)
        ax[4].set_title("GA maps, predicted: " + ("no instance found" if not instances else "n/a (maskrcnn)"))
    for a in ax:
        a.set_axis_off()
    return _png_b64(fig)


def _json_object(path: Path) -> dict[str, Any]:
    """The JSON object in ``path``.

    Raises:
        InputError: unreadable, not JSON, or not an object (one line naming the file).
    """
    doc = read_json(path)
    if not isinstance(doc, dict):
        raise InputError(f"{path}: expected a JSON object, got {type(doc).__name__}")
    return doc


def _what_the_numbers_mean(run_dir: Path, cfg, lines: list[dict[str, Any]], metrics: dict[str, Any]) -> str:
    """One sentence: how the model was trained and on what the metrics were measured."""
    train = [ln for ln in lines if "loss" in ln]
    if not train:
        return ""
    stopped = _json_object(run_dir / "train_summary.json") if (run_dir / "train_summary.json").exists() else {}
    iterations = stopped.get("iterations", train[-1]["iter"] + 1)
    seconds = stopped.get("elapsed_s") or sum(ln.get("time", 0.0) for ln in train)
    start = "from scratch" if cfg.model.weights in ("none", "", None) else f"from {cfg.model.weights}"
    why = " (stopped by its time budget)" if stopped.get("stop_reason") == "max_minutes" else ""
    precision = f" in {PRECISION_NAMES[stopped['amp']]}" if stopped.get("amp") in PRECISION_NAMES else ""
    data = f"synthetic {cfg.data.synthetic} scenes" if cfg.data.synthetic else "its training set"
    scored = metrics.get("n_images") or (cfg.data.synthetic_val if cfg.data.synthetic else None)
    on = f"{scored} held-out images" if scored else "held-out images"
    return (f"A {cfg.model.variant} model ({cfg.model.backbone}) trained {start} on {data} for {iterations} "
            f"iterations in {seconds / 60:.1f} minutes of training{precision}{why}; the metrics are measured on {on} "
            "it never saw (fractions in [0, 1]; segm/AP is the COCO mask AP).")


def build_report(run_dir: str | Path, out: str | Path | None = None, n_images: int = 4, device: str = "cpu",
                 metrics: dict[str, Any] | None = None) -> Path:
    """Write ``RUN_DIR/report.html`` (or ``out``); returns its path.

    ``metrics`` (e.g. from ``gains eval``) is shown when given; else ``RUN_DIR/eval/METRICS.json`` when
    present; else the last validation line of ``metrics.jsonl``.
    """
    from gains.data.dataset import InstanceDataset
    from gains.engine.train import gamm_params, resolve_data
    from gains.inference.predictor import PredictOptions, Predictor

    run_dir = Path(run_dir)
    if not (run_dir / "config.yaml").is_file():
        raise InputError(f"{run_dir}: not a training run folder (no config.yaml)")
    import yaml

    try:
        cfg = saved_config(yaml.safe_load((run_dir / "config.yaml").read_text()))
    except (OSError, yaml.YAMLError) as exc:
        raise InputError(f"{run_dir / 'config.yaml'}: cannot read config ({exc})") from exc
    lines = read_json_lines(run_dir / "metrics.jsonl") if (run_dir / "metrics.jsonl").exists() else []
    if metrics is None and (run_dir / "eval" / "METRICS.json").exists():
        metrics = _json_object(run_dir / "eval" / "METRICS.json")
    if metrics is None:
        val = [ln for ln in lines if ln.get("split") == "val"]
        metrics = val[-1] if val else {}
    _, val_json, images = resolve_data(cfg, run_dir)
    parts = ["<!doctype html><html><head><meta charset='utf-8'><title>gains report</title><style>",
             "body{font-family:system-ui,sans-serif;max-width:1400px;margin:1em auto;padding:0 1em;color:#222}",
             "table{border-collapse:collapse}td,th{border:1px solid #bbb;padding:4px 10px;text-align:right}",
             "img{max-width:100%}h1{font-size:1.6em}</style></head><body>",
             f"<h1>gains report: {html.escape(str(run_dir))}</h1>",
             f"<p>model <b>{html.escape(cfg.model.variant)}</b> ({html.escape(cfg.model.backbone)}, "
             f"{html.escape(cfg.model.norm)}), {len([ln for ln in lines if 'loss' in ln])} iterations logged, "
             f"GAMM {html.escape(cfg.gamm.variant)}.</p>", "<h2>Metrics</h2>"]
    sentence = _what_the_numbers_mean(run_dir, cfg, lines, metrics)
    if sentence:
        parts.append(f"<p>{html.escape(sentence)}</p>")
    rows = [(k, metrics[k]) for k in METRIC_KEYS if metrics.get(k) is not None]
    if rows:
        parts.append("<table><tr><th>metric</th><th>value</th></tr>"
                     + "".join(f"<tr><td>{html.escape(k)}</td><td>{v:.4f}</td></tr>" for k, v in rows) + "</table>")
    else:
        parts.append("<p>No evaluation yet.</p>")
    loss_png = _loss_figure(lines)
    if loss_png:
        parts += ["<h2>Training</h2>", f"<img alt='loss curves' src='data:image/png;base64,{loss_png}'>"]
    if val_json is not None and (run_dir / "last.pt").exists():
        predictor = Predictor.from_checkpoint(run_dir, PredictOptions(device=device))  # as gains predict does
        norm = predictor.normalisation
        ds = InstanceDataset(val_json, images, gamm=gamm_params(cfg), cache_dir=run_dir / "ga_cache",
                             normalisation=norm)
        parts.append(f"<p>Images are shown as the model sees them: input normalisation {html.escape(norm.describe())}."
                     "</p>")
        parts.append("<h2>Examples (validation images)</h2>")
        for k in range(min(n_images, len(ds))):
            _, target = ds[k]
            image = ds.images[k]
            pixels = ds.pixels(k)
            h, w = pixels.shape[:2]
            png = _image_figure(pixels, [m.numpy().astype(bool) for m in target["masks"]],
                                target["ga_maps"].numpy(), predictor.predict(pixels), h, w, image.file_name, norm)
            parts.append(f"<img alt='{html.escape(image.file_name)}' src='data:image/png;base64,{png}'>")
    parts.append("</body></html>")
    path = Path(out) if out is not None else run_dir / "report.html"
    atomic_write(path, lambda fh: fh.write("\n".join(parts).encode()))
    return path
