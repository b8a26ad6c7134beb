"""The training loop: ``fit(cfg, run_dir, resume)``.

RUN_DIR gets ``config.yaml`` (resolved), ``metrics.jsonl`` (one line per iteration: iter, time, lr,
loss, each loss_*, images/s, peak memory; validation lines carry ``"split": "val"``), ``last.pt`` and
``best.pt`` (by validation segm/AP; a hard link to ``last.pt`` when both hold the same state). Resuming
restores model, optimizer, scheduler, scaler, iteration and RNG states; batches are a pure function of
the iteration (see ``sampling``), so on the CPU a run interrupted and resumed ends with the same weights
as an uninterrupted one.
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from gains import outputs
from gains.atomic import atomic_link, atomic_write
from gains.config import PRECISION_NAMES, Config, config_changes, config_to_dict, dump_config, replace, saved_config
from gains.core import parallel as dist
from gains.data.dataset import InstanceDataset, collate
from gains.data.patch import PatchSampler
from gains.data.stats import training_scale
from gains.data.transforms import Compose, PhotometricJitter, RandomFlip, RandomRot90
from gains.engine.checkpoint import load_checkpoint, rng_state, save_checkpoint, set_rng_state
from gains.engine.sampling import IterationBatchSampler, SeededItems
from gains.engine.schedule import TimeBudget, build_optimizer, build_scheduler
from gains.engine.step import NonFiniteLossError, resolve_amp, train_step
from gains.engine.threads import apply_threads
from gains.errors import InputError
from gains.evaluation.evaluator import evaluate
from gains.gamm import GammParams
from gains.intensity import Normalisation
from gains.models.build import build_model
from gains.models.weights import load_weights
from gains.sysinfo import peak_rss_mib

log = logging.getLogger("gains.train")
# settings a run may change when it resumes (a longer run or budget, another device, other logging periods, other
# scoring of the validation split, the test-time scale rule measured from the training set)
RESUMABLE_CHANGES = frozenset({"train.max_iters", "train.max_minutes", "train.device", "train.amp",
                               "train.eval_period", "train.checkpoint_period", "train.log_period", "eval.score_thresh",
                               "eval.max_dets", "model.test_scale", "model.object_size", "train.threads"})
# the files that make a folder a training run: another run there needs --resume or --overwrite
RUN_FILES = ("last.pt", "best.pt", "metrics.jsonl")


def gamm_params(cfg: Config) -> GammParams:
    """The GA-map parameters of ``cfg`` (``GammConfig.params``)."""
    return cfg.gamm.params()


def resolve_data(cfg: Config, run_dir: Path) -> tuple[Path, Path | None, Path | None]:
    """(train json, val json, images dir); synthetic presets are generated into ``run_dir/data`` once."""
    d = cfg.data
    if d.synthetic:
        from gains.data.synth import write_synthetic

        root = run_dir / "data"
        if dist.is_main():
            for split, n, seed in (("train", d.synthetic_train, d.seed), ("val", d.synthetic_val, d.seed + 1)):
                if not (root / split / "annotations.json").exists():
                    write_synthetic(d.synthetic, n, d.synthetic_size, seed, root / split, overwrite=True)
        dist.barrier()
        return root / "train" / "annotations.json", root / "val" / "annotations.json", None
    if not d.train:
        raise ValueError("data.train (a COCO json) or data.synthetic must be set")
    return Path(d.train), Path(d.val) if d.val else None, Path(d.images) if d.images else None


def with_test_scale(cfg: Config, train_json: Path) -> Config:
    """``cfg`` with ``model.test_scale`` / ``object_size`` measured on the training set when unset
    (``gains.data.stats.training_scale``), so the checkpoint carries the scale rule it was trained for."""
    if cfg.model.test_scale is not None:
        return cfg
    scale, size = training_scale(train_json, cfg.model.min_size_test, cfg.model.max_size)
    return replace(cfg, model=replace(cfg.model, test_scale=round(scale, 4), object_size=round(size, 2)))


def patch_sampler(cfg: Config, train_json: Path) -> PatchSampler | None:
    """The window sampler of ``data.crop_size`` (None without it), at the scale predict will apply:
    ``model.test_scale``, measured from the training set when unset (``with_test_scale``), jittered by the spread
    of ``model.min_size_train``. The model's transform must then leave training images at their size
    (``GainsTransform.train_resize``, set by ``fit``)."""
    d = cfg.data
    if d.crop_size is None:
        return None
    scale = with_test_scale(cfg, train_json).model.test_scale
    return PatchSampler.of(d.crop_size, scale, cfg.model.min_size_train, d.crop_focus, d.crop_min_area,
                           d.crop_contacts)


def build_train_dataset(cfg: Config, train_json: Path, images: Path | None, run_dir: Path,
                        crops: bool = True) -> InstanceDataset:
    """The training set of ``cfg``: its augmentations and, for GAInS, GA maps. ``crops``: masks and GA maps as
    crops, which the model's transform makes dense at its input size (CPU training; ``gains.data.crops.dense``
    where a dense stack is needed); False: dense stacks, built in the loader's workers (GPU training). With
    ``data.crop_size`` each item is a window at the network size (``patch_sampler``)."""
    d = cfg.data
    steps: list[Any] = []
    if d.hflip or d.vflip:
        steps.append(RandomFlip(d.hflip, d.vflip))
    if d.rot90:
        steps.append(RandomRot90(d.rot90))
    if d.jitter:
        steps.append(PhotometricJitter())
    gamm = gamm_params(cfg) if cfg.model.variant == "gains" else None
    dataset = InstanceDataset(train_json, images, gamm=gamm,
                              ga_store=cfg.gamm.store if gamm is not None else None,
                              cache_dir=run_dir / "ga_cache", transforms=Compose(steps) if steps else None,
                              keep_empty=d.keep_empty, normalisation=Normalisation.of_model(cfg.model), crops=crops,
                              patch=patch_sampler(cfg, train_json))
    if not len(dataset):
        raise InputError(f"{train_json}: no images, nothing to train on" + ("" if d.keep_empty else
                         " (images without annotations are left out unless data.keep_empty=true)"))
    return dataset


def _peak_memory_mib(device: torch.device) -> float:
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    return peak_rss_mib()


def _truncate_metrics(path: Path, start: int) -> None:
    """Drop lines of iterations >= start (they are redone after a resume)."""
    if not path.exists():
        return
    keep = [ln for ln in path.read_text().splitlines() if ln and json.loads(ln).get("iter", 0) < start]
    atomic_write(path, lambda fh: fh.write(("\n".join(keep) + "\n" if keep else "").encode()))


def open_run(run_dir: Path, resume: bool = False, overwrite: bool = False) -> outputs.Claim:
    """Claim ``run_dir`` for training (``gains.outputs``): a new or empty folder, or a run of ours, locked against a
    second trainer. A folder that already holds a run (``RUN_FILES``) needs ``resume`` (continue it) or
    ``overwrite`` (empty it and start again); a non-empty folder that is not a run of ours is refused either way.

    Raises:
        InputError: ``run_dir`` is not ours, holds a run and neither flag is given, or another process trains in it.
    """
    if resume and overwrite:
        raise InputError("--resume and --overwrite exclude each other: continue the run or start it again")
    held = outputs.claim(run_dir, "run", replace=overwrite)
    trained = [f for f in RUN_FILES if (run_dir / f).exists()]
    if trained and not resume:
        held.release()
        raise InputError(f"{run_dir}: holds a training run ({', '.join(trained)}); pass --resume to continue it or "
                         "--overwrite to start it again")
    return held


def fit(cfg: Config, run_dir: str | Path, resume: bool = False, progress: bool = True,
        clock: Callable[[], float] | None = None, overwrite: bool = False) -> dict[str, Any]:
    """Train ``cfg`` into ``run_dir``; returns a summary (iterations, why it stopped, last losses, best val AP).

    With ``train.max_minutes`` the run stops when its training time reaches the budget (or at
    ``max_iters``, whichever comes first) and its LR schedule runs on the elapsed fraction (``TimeBudget``;
    ``clock`` replaces its ``time.monotonic``). ``RUN_DIR/train_summary.json`` records the iterations
    reached, the reason it stopped, the training seconds, the autocast mode used (``train.amp`` resolved) and the
    CPU threads (``train.threads`` resolved, ``gains.engine.threads``).

    ``run_dir`` is claimed by ``open_run`` (``resume`` / ``overwrite`` for a folder that holds a run). A run that
    fails before its first checkpoint in a folder it made removes that folder again (Ctrl-C keeps it).
    """
    run_dir = Path(run_dir)
    if cfg.model.variant == "gains":
        gamm_params(cfg)  # a bad GAMM setting fails here (ValueError), before anything is written
    device = dist.resolve_device(cfg.train.device, "train.device")
    amp = resolve_amp(cfg.train.amp, device)  # a bad value fails here, before anything is written
    log.info("training on %s in %s (train.amp=%s)", device, PRECISION_NAMES[amp], cfg.train.amp)
    distributed = dist.init_distributed(device)
    if device.type == "cpu":
        threads, why = apply_threads(cfg.train.threads, int(os.environ.get("LOCAL_WORLD_SIZE", "1")))
        log.info("training with %d CPU thread%s (%s)", threads, "s"[: threads != 1], why)
    held = open_run(run_dir, resume, overwrite) if dist.is_main() else None
    try:
        return _train(cfg, run_dir, resume, progress, clock, device, amp, distributed)
    except Exception:
        if held is not None and not any((run_dir / f).exists() for f in ("last.pt", "best.pt")):
            held.discard()  # nothing to resume from: what this run made goes (a folder that was there stays)
        raise
    finally:
        if held is not None:
            held.release()


def _train(cfg: Config, run_dir: Path, resume: bool, progress: bool, clock: Callable[[], float] | None,
           device: torch.device, amp: str, distributed: bool) -> dict[str, Any]:
    """The body of ``fit``, in a claimed run folder."""
    from tqdm import tqdm

    rank, world = dist.rank(), dist.world_size()
    torch.manual_seed(cfg.train.seed)
    train_json, val_json, images = resolve_data(cfg, run_dir)
    cfg = with_test_scale(cfg, train_json)
    if dist.is_main():
        atomic_write(run_dir / "config.yaml", lambda fh: fh.write(dump_config(cfg).encode()))
    train_set = build_train_dataset(cfg, train_json, images, run_dir, crops=device.type == "cpu")
    num_classes = cfg.model.num_classes or len(train_set.category_to_label)
    categories = [{"label": label, "id": cat, "name": train_set.category_names.get(cat, str(cat))}
                  for label, cat in sorted(train_set.label_to_category.items())]
    model = build_model(cfg.model, num_classes)
    model.transform.train_resize = train_set.patch is None  # windows come at the network size
    if train_set.patch is not None:
        p = train_set.patch
        log.info("patch training: %d px windows at scale %.3g (x%.3g-%.3g), %.0f%% centred on a contact, then "
                 "%.0f%% of the rest on an instance", p.crop_size, p.scale, min(p.factors), max(p.factors),
                 100 * p.contacts, 100 * p.focus)
    load_weights(model, cfg.model.weights, cfg.model.backbone, cfg.model.weights_heads)
    model.to(device)
    optimizer = build_optimizer(model, cfg.train.lr, cfg.train.momentum, cfg.train.weight_decay,
                                cfg.train.weight_decay_norm)
    scheduler = build_scheduler(optimizer, cfg.train.warmup_iters, cfg.train.warmup_factor, cfg.train.steps,
                                cfg.train.gamma)
    scaler = torch.amp.GradScaler("cuda", enabled=amp == "fp16")
    start, best, elapsed = 0, -1.0, 0.0
    last_path = run_dir / "last.pt"
    if resume and last_path.exists():
        ckpt = load_checkpoint(last_path)
        saved = config_to_dict(saved_config(ckpt["config"]))
        changed = [k for k in config_changes(saved, config_to_dict(cfg)) if k not in RESUMABLE_CHANGES]
        if changed:
            raise InputError(f"{last_path}: saved with other settings ({', '.join(changed)}); resume with the "
                             "same configuration or train into a new folder")
        model.load_state_dict(ckpt["model"])
        optimizer.load_state_dict(ckpt["optimizer"])
        scheduler.load_state_dict(ckpt["scheduler"])
        scaler.load_state_dict(ckpt["scaler"])
        start, best = int(ckpt["iteration"]), float(ckpt.get("best", -1.0))
        elapsed = float(ckpt.get("elapsed_s") or 0.0)
        set_rng_state(ckpt["rng"][rank] if isinstance(ckpt["rng"], list) else ckpt["rng"])
        log.info("resumed %s at iteration %d", last_path, start)
    if dist.is_main():
        _truncate_metrics(run_dir / "metrics.jsonl", start)
    net = torch.nn.parallel.DistributedDataParallel(model) if distributed else model
    sampler = IterationBatchSampler(len(train_set), cfg.train.batch_size, cfg.train.seed, start,
                                    cfg.train.max_iters, rank, world)
    loader = torch.utils.data.DataLoader(SeededItems(train_set), batch_sampler=sampler, collate_fn=collate,
                                         num_workers=cfg.data.num_workers,
                                         generator=torch.Generator().manual_seed(cfg.train.seed))
    val_set = InstanceDataset(val_json, images, normalisation=Normalisation.of_model(cfg.model)) \
        if val_json is not None else None
    if val_set is not None and val_set.category_to_label != train_set.category_to_label:
        raise ValueError(f"{val_json}: categories differ from {train_json}")
    writer = _tensorboard(run_dir) if dist.is_main() else None
    summary: dict[str, Any] = {"run_dir": str(run_dir), "best_segm_AP": None}
    bar = tqdm(total=cfg.train.max_iters, initial=start, unit="it", desc="train",
               disable=not (progress and dist.is_main()), dynamic_ncols=True)
    net.train()
    budget = TimeBudget(cfg.train.max_minutes, cfg.train.max_iters, elapsed, clock) \
        if cfg.train.max_minutes is not None else None
    stop_reason = "max_iters"
    it = start - 1  # the last iteration run; stays start - 1 when a finished run resumes
    if budget is not None:
        budget.resume()
    waited = time.perf_counter()  # since when the loop waits for the loader (its batch's "data_s")
    for it, (imgs, targets) in enumerate(loader, start=start):
        if budget is not None:
            if budget.exhausted():  # a budgeted run that had already finished
                it, stop_reason = it - 1, "max_minutes"
                break
            factor = budget.lr_factor(cfg.train.warmup_iters, cfg.train.warmup_factor, cfg.train.steps,
                                      cfg.train.gamma)
            for group in optimizer.param_groups:
                group["lr"] = group["initial_lr"] * factor
        t0 = time.perf_counter()
        imgs = [i.to(device) for i in imgs]
        targets = [{k: v.to(device) for k, v in t.items()} for t in targets]
        loss, losses = train_step(net, optimizer, imgs, targets, amp, cfg.train.clip_grad_norm, scaler, it)
        lr = optimizer.param_groups[0]["lr"]
        scheduler.step()
        dt = time.perf_counter() - t0
        done = it + 1
        is_last = done == cfg.train.max_iters
        record = {"iter": it, "time": dt, "data_s": t0 - waited, "lr": lr, "loss": float(loss.detach()),
                  **{k: float(v.detach()) for k, v in losses.items()},
                  "images_per_s": len(imgs) * world / dt, "peak_mem_mib": _peak_memory_mib(device)}
        if budget is not None:
            budget.pause()  # logging, validation and checkpoints do not count
            out_of_time = budget.exhausted()
            if distributed:  # every rank stops at the same iteration
                out_of_time = dist.broadcast_object(out_of_time)
            if out_of_time and not is_last:
                is_last, stop_reason = True, "max_minutes"
            record["elapsed_s"] = budget.elapsed
        if dist.is_main():
            with open(run_dir / "metrics.jsonl", "a") as fh:
                fh.write(json.dumps(record) + "\n")
            if writer is not None:
                for k, v in record.items():
                    writer.add_scalar(f"train/{k}", v, it)
        bar.set_postfix(loss=f"{record['loss']:.3f}", lr=f"{lr:.2g}")
        bar.update(1)
        summary["last"] = record
        improved = False
        if val_set is not None and (is_last or (cfg.train.eval_period and done % cfg.train.eval_period == 0)):
            metrics = evaluate(model, val_set, val_json, device, cfg.eval.max_dets)
            if dist.is_main():
                with open(run_dir / "metrics.jsonl", "a") as fh:
                    fh.write(json.dumps({"iter": it, "split": "val", **metrics}) + "\n")
                log.info("iteration %d: val %s", done, {k: round(v, 4) for k, v in metrics.items()})
            improved = metrics["segm/AP"] > best
            best = max(best, metrics["segm/AP"])
            summary["best_segm_AP"] = best
        extra = {"elapsed_s": budget.elapsed if budget is not None else None, "stop_reason": stop_reason}
        if is_last or (cfg.train.checkpoint_period and done % cfg.train.checkpoint_period == 0):
            _save(last_path, model, optimizer, scheduler, scaler, done, best, cfg, categories, **extra)
            if improved and dist.is_main():  # the same state: one file on disk under both names
                atomic_link(last_path, run_dir / "best.pt")
        elif improved:
            _save(run_dir / "best.pt", model, optimizer, scheduler, scaler, done, best, cfg, categories, **extra)
        if is_last:
            break
        if budget is not None:
            budget.resume()
        waited = time.perf_counter()
    bar.close()
    if writer is not None:
        writer.close()
    summary["iterations"] = max(it + 1, start)
    summary["stop_reason"] = stop_reason
    summary["elapsed_s"] = budget.elapsed if budget is not None else None
    summary["amp"] = amp
    summary["threads"] = torch.get_num_threads()
    if dist.is_main():
        stopped = {k: summary[k] for k in ("iterations", "stop_reason", "elapsed_s", "amp", "threads")}
        stopped["max_minutes"], stopped["max_iters"] = cfg.train.max_minutes, cfg.train.max_iters
        atomic_write(run_dir / "train_summary.json", lambda fh: fh.write(json.dumps(stopped, indent=1).encode()))
    if distributed:
        dist.cleanup()
    return summary


def _save(path: Path, model, optimizer, scheduler, scaler, iteration: int, best: float, cfg: Config,
          categories: list[dict[str, Any]], **extra: Any) -> None:
    """Gather every rank's RNG state, then rank 0 writes the checkpoint atomically."""
    states = dist.all_gather_objects(rng_state())
    if dist.is_main():
        save_checkpoint(path, model=model.state_dict(), optimizer=optimizer.state_dict(),
                        scheduler=scheduler.state_dict(), scaler=scaler.state_dict(), iteration=iteration,
                        best=best, rng=states if len(states) > 1 else states[0], config=config_to_dict(cfg),
                        variant=cfg.model.variant, categories=categories, **extra)
    dist.barrier()


def _tensorboard(run_dir: Path):
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:  # tensorboard is optional
        return None
    return SummaryWriter(str(run_dir / "tb"))


__all__ = ["NonFiniteLossError", "fit"]
