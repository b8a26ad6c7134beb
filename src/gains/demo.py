"""``gains demo``: the main job end to end on generated data, with no data and no network.

1. synthesise overlapping-cell scenes (train and held-out validation sets);
2. compute their GA maps into a store (isbi variant);
3. train GAInS (ResNet-18 + GroupNorm, from the shipped ``nuclei`` model's weights, or from scratch with
   ``weights="none"``) on the CPU for a wall-clock budget (``train.max_minutes``: the same minutes on a machine
   of any speed, the LR schedule on the elapsed fraction);
4. evaluate on the held-out set with every metric;
5. predict a few held-out images (overlays, label images, GA maps);
6. write ``report.html``: metrics, loss curves, and input / ground truth / prediction / GA maps.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

from gains import outputs, zoo
from gains.config import PRECISION_NAMES, config_from_dict
from gains.errors import InputError

log = logging.getLogger("gains.demo")


# the demo's start: in the same 3.5 minutes it reached held-out segm/AP 0.68 from nuclei, 0.49 from scratch
# (docs/BENCHMARKS.md, "The demo")
DEMO_START = "nuclei"
# the anchors of the shipped models (nuclei, overlap), so that a start from one keeps its RPN's levels' meaning
ZOO_ANCHORS = [8, 16, 32, 64, 128]


def demo_config(minutes: float, size: int, n_train: int, n_val: int, workers: int = 0, iters: int = 1000,
                weights: str = "none") -> dict:
    """The demo's training config: a budget of ``minutes``; ``iters`` is the cap and the schedule's shape
    (warm-up over its first 5%, decays at 80% and 93%); ``weights`` a start (a shipped model's name: its anchors
    too) or ``none`` (from scratch)."""
    start = {} if weights == "none" else {"weights": weights, "anchor_sizes": ZOO_ANCHORS}
    return {
        "data": {"synthetic": "overlap", "synthetic_train": n_train, "synthetic_val": n_val, "synthetic_size": size,
                 "hflip": 0.5, "vflip": 0.5, "rot90": 0.5, "num_workers": workers},
        "gamm": {"variant": "isbi", "target_category": 1},
        "model": {"variant": "gains", "backbone": "resnet18", "norm": "gn", "trainable_layers": 5,
                  "min_size_train": [size - 32, size, size + 32], "min_size_test": size, "max_size": 2 * size,
                  "rpn_pre_nms_top_n_train": 600, "rpn_post_nms_top_n_train": 300, "rpn_pre_nms_top_n_test": 300,
                  "rpn_post_nms_top_n_test": 150, "box_batch_size_per_image": 64, "detections_per_img": 50,
                  "ga_rois_per_image": 16, **start},
        "train": {"device": "cpu", "max_iters": iters, "max_minutes": minutes, "batch_size": 2, "lr": 0.02,
                  "warmup_iters": max(1, iters // 20), "steps": [int(iters * 0.8), int(iters * 0.93)],
                  "clip_grad_norm": 10.0, "amp": "auto", "checkpoint_period": 0, "eval_period": 40,
                  "log_period": 20},
    }


def run_demo(out: str | Path, minutes: float = 3.5, size: int = 256, n_train: int = 40, n_val: int = 10,
             progress: bool = True, weights: str = DEMO_START) -> Path:
    """Run every stage into ``out`` (training for ``minutes`` of wall-clock time, from ``weights``); returns
    ``report.html``.

    ``out`` is claimed as in ``gains.outputs``: a new or empty folder, or the folder of an earlier demo (emptied
    and redone); a demo that fails removes the folder it made.
    """
    if weights != "none" and not zoo.is_name(weights) and not Path(weights).exists():
        zoo.check_spec(weights)  # a bare word: the one-line error that lists the shipped models
        raise InputError(f"--weights {weights}: no such checkpoint or run folder")
    out = Path(out)
    with outputs.claim(out, "demo", replace=True):
        return _stages(out, minutes, size, n_train, n_val, progress, weights)


def _stages(out: Path, minutes: float, size: int, n_train: int, n_val: int, progress: bool, weights: str) -> Path:
    """The six stages of ``run_demo`` into the claimed folder ``out``; returns ``report.html``."""
    from gains.data.synth import write_synthetic
    from gains.engine.train import fit
    from gains.gamm import GammParams, run_gamm
    from gains.inference.eval_run import evaluate_checkpoint
    from gains.inference.predict_run import predict_files
    from gains.inference.predictor import PredictOptions
    from gains.report import build_report

    t0 = time.perf_counter()
    run = out / "run"
    outputs.mark(run, "run")  # the training run's folder, which gets its data first
    data = run / "data"
    for split, n, seed in (("train", n_train, 0), ("val", n_val, 1)):  # where the training run expects them
        write_synthetic("overlap", n, size, seed, data / split, overwrite=True)
    log.info("1/6 synthesised %d + %d overlap scenes (%.1f s)", n_train, n_val, time.perf_counter() - t0)
    params = GammParams.for_variant("isbi", target_category=1)
    store = out / "ga_maps"
    gamm = run_gamm(data / "train" / "annotations.json", data / "train" / "images", params, out=store, workers=2,
                    overwrite=True, progress=False)
    log.info("2/6 %d GA maps in %.1f s -> %s", gamm.n_maps, gamm.seconds, store)
    raw = demo_config(minutes, size, n_train, n_val, weights=weights)
    raw["gamm"]["store"] = str(store)
    t = time.perf_counter()
    summary = fit(config_from_dict(raw), run, resume=False, progress=progress)
    log.info("3/6 trained %d iterations in %.0f s (%s; budget %.1f min; %.0f s so far)", summary["iterations"],
             time.perf_counter() - t, PRECISION_NAMES[summary["amp"]], minutes, time.perf_counter() - t0)
    t = time.perf_counter()
    metrics = evaluate_checkpoint(run, data / "val", "all", run / "eval", PredictOptions(device="cpu"))
    log.info("4/6 held-out segm/AP %.3f, aji_gains %.3f (%.0f s)", metrics["segm/AP"], metrics["aji_gains"],
             time.perf_counter() - t)
    t = time.perf_counter()
    val_images = sorted((data / "val" / "images").glob("*.png"))[:3]
    predict_files(run, val_images, out / "predictions", ["coco", "labels", "overlay", "ga"],
                  PredictOptions(device="cpu"), progress=False)
    log.info("5/6 predictions -> %s (%.0f s)", out / "predictions", time.perf_counter() - t)
    t = time.perf_counter()
    report = build_report(run, out / "report.html", metrics=metrics)
    log.info("6/6 report -> %s (%.0f s; %.0f s in all)", report, time.perf_counter() - t, time.perf_counter() - t0)
    return report
