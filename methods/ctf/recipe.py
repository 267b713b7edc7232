"""What `bench reproduce ctf` runs: supervised burn-in, Unbiased Teacher, LabelMatch and CTF, and at every scale the
table's two other baselines, Soft Teacher (baselines/ssod/soft_teacher.py) and STAC (baselines/ssod/stac.py).

Scales
* smoke: the embedded shapes-coco set (256 train / 64 val images of 64 px, 3 classes), a 10 % labelled split drawn
  by the COCO-standard partial-split code (fold 1: 25 draws, 25 unique labelled images, 231 unlabelled), the tiny
  ResNet-FPN Faster R-CNN, one seed, on one CPU thread (tiny tensors gain nothing from intra-op threads, and an
  oversubscribed runner stalls on them). Stands for COCO-standard 10 %. Schedules (baselines.ssod.configs): a
  shared 500-step burn-in, then 200 semi-supervised steps; the supervised entry trains the burn-in on for the same
  200 steps on the labelled images alone (matched budget, see _supervised). Soft Teacher and STAC start from the
  same shared burn-in and train the same 200 steps (STAC's offline pseudo-labels are made once by the burn-in
  detector before its 200 steps); with them the whole smoke reproduction takes about 155 s of one CPU thread
  (110 s without them), within the 3-minute budget.
* small: COCO-standard 10 % fold 1 with ResNet-50-FPN and a short schedule on one GPU (needs --data-root and the
  ImageNet ResNet-50 weights); first method-vs-baseline evidence, not the paper's numbers. Soft Teacher and STAC
  run their paper configs (below) on the same short schedule and shared burn-in.
* paper: COCO-standard 1 / 5 / 10 % x folds 1-5 (the run's seeds ARE the folds, so the aggregate is the papers'
  mean +- std over the 5 STAC splits) with LabelMatch's 160k paper config (and its 40k ablation config as a second
  LabelMatch run), Unbiased Teacher's COCO config, CTF hosted on the 160k config, and Soft Teacher and STAC at the
  protocol of the table CTF's card cites for them (LabelMatch's re-implementations, docs/performance.md: 32 + 32
  images, 40k iterations, threshold 0.9, from LabelMatch's burn-in; configs soft-teacher-40k / stac-40k, every
  knob and its source in baselines.ssod.configs); VOC07 labelled + VOC12 unlabelled tested on VOC07 test (Soft
  Teacher and STAC at that table's 80k iterations and 8 + 8 images).

Every metric record names the evaluated network (eval_model: the EMA teacher for UT / LabelMatch, the teacher of the
pair DPCO selects for CTF, the supervised-only detector for the supervised baseline) and the test protocol (score
0.001). The burn-in of a given (detector, schedule, data split, seed) is trained once and shared by the runs that
start from it (supervised, LabelMatch, CTF pair 0, ...), under <store>/ctf/_shared/, and so is the supervised-only
model.

Sanity floors (issue 23, bench/sanity.py; see TRIVIAL_FLOOR below): the supervised entry records map_gain@trivial
(its mAP minus a detector that looks at no pixel), every semi-supervised entry map_gain@supervised (its mAP minus
the supervised-only model of the same split, seed and labelled budget, evaluated in the same run).
"""
from __future__ import annotations

import copy
import hashlib
import json
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

from bench.recipe import RunContext, SeedResult, metric_record, torch_threads
from bench.registry import BenchError
from bench.spec import RunSpec

VERSION = 2
METRICS = ["coco_bbox_map@pycocotools", "coco_bbox_ap50@pycocotools"]
SAME_METRICS = {m: m for m in METRICS}
GPU_TRAIN = {"num_workers": 4, "ckpt_every": 2000}  # data loading in workers; resumable every 2,000 steps
IMPLS = {"supervised": "ssod-supervised", "unbiased-teacher": "unbiased-teacher", "labelmatch": "labelmatch",
         "ctf": "ctf", "soft-teacher": "soft-teacher", "stac": "stac"}
SMOKE_ENTRIES = ("supervised", "unbiased-teacher", "labelmatch", "ctf", "soft-teacher", "stac")


# ---------------------------------------------------------------------------------------------------------
# plan

def _spec(card, entry: str, scale: str, dataset: str, split: str, args: dict[str, Any], seeds: list[int],
          setting: dict[str, Any], stands_for: dict[str, Any] | None = None, train: dict[str, Any] | None = None):
    return RunSpec(paper=card.slug, entry=entry, impl=IMPLS[entry], args=args, dataset=dataset, split=split,
                   stands_for=stands_for or {}, metrics=list(METRICS), scale=scale, seeds=seeds,
                   train=train or {}, setting=setting, recipe_version=VERSION)


def smoke_args(entry: str) -> dict[str, Any]:
    # matched_supervised: the supervised-only model (the supervised entry, and the reference of every
    # map_gain@supervised) trains on the labelled split for the semi-supervised stage's steps too (_supervised).
    if entry == "ctf":
        return {"config": "smoke-labelmatch", "ctf": {"pairs": 2}, "matched_supervised": True}
    return {"config": f"smoke-{entry}", "matched_supervised": True}


def plan(card, scale: str, data_root: Path | None) -> list[RunSpec]:
    if scale == "smoke":
        # The smoke split is drawn by COCO-standard's own partial-split code at 10 % (fold 1), so it stands for the
        # COCO 10 % claim's setting. It is not mapped to the VOC claim ({unlabeled: voc12}): VOC07 trainval fully
        # labelled + VOC12 unlabelled is about 30 % labelled images (5,011 of 16,551), with the unlabelled ones from
        # another year's collection, which a 10 % draw from one set does not stand for.
        stands = {"dataset": "coco2017", "metrics": SAME_METRICS,
                  "settings": [{"paper": {"label_pct": 10.0}, "ours": {"label_pct": 10.0, "fold": 1}}]}
        return [_spec(card, e, "smoke", "shapes-coco", "val", smoke_args(e), [0], {"label_pct": 10.0, "fold": 1},
                      stands, {"threads": 1}) for e in SMOKE_ENTRIES]
    if scale == "small":
        short = {"burn_in": {"steps": 3000, "batch_size": 8, "lr": 0.01, "milestones": [2400]},
                 "semi": {"steps": 3000, "batch_size": 8, "lr": 0.01}, "ssod": {"act_interval": 500, "act_images": 2000}}
        configs = {"supervised": "labelmatch-40k", "unbiased-teacher": "unbiased-teacher-coco",
                   "labelmatch": "labelmatch-40k", "ctf": "labelmatch-40k", "soft-teacher": "soft-teacher-40k",
                   "stac": "stac-40k"}
        specs = []
        for entry, config in configs.items():
            over = copy.deepcopy(short)
            if entry in ("unbiased-teacher", "soft-teacher", "stac"):
                over["ssod"] = {}  # ACT (LabelMatch's threshold refresh) is not theirs
            args = {"config": config, "overrides": over, **({"ctf": {"pairs": 2}} if entry == "ctf" else {})}
            if entry == "supervised":
                args["only_burn_in"] = True
            specs.append(_spec(card, entry, "small", "coco2017", "val", args, [1],
                               {"label_pct": 10.0, "fold": 1, "train_iters": 3000}, train=GPU_TRAIN))
        return specs
    if scale == "paper":
        specs = []
        for pct in (1.0, 5.0, 10.0):
            setting = {"label_pct": pct, "fold": "mean5"}
            runs = [("supervised", {"config": "labelmatch-160k", "only_burn_in": True}, None),
                    ("unbiased-teacher", {"config": "unbiased-teacher-coco"}, 180000),
                    ("labelmatch", {"config": "labelmatch-160k"}, 160000),
                    ("labelmatch", {"config": "labelmatch-40k"}, 40000),
                    ("ctf", {"config": "labelmatch-160k", "ctf": {"pairs": 2}}, 160000),
                    # the card's Soft Teacher / STAC cells: LabelMatch's fair-comparison runs (40k, 32 + 32)
                    ("soft-teacher", {"config": "soft-teacher-40k"}, 40000),
                    ("stac", {"config": "stac-40k"}, 40000)]
            for entry, args, iters in runs:
                s = dict(setting, **({"train_iters": iters} if iters else {}))
                specs.append(_spec(card, entry, "paper", "coco2017", "val", args, [1, 2, 3, 4, 5], s, train=GPU_TRAIN))
        for entry, args, iters in (("supervised", {"config": "labelmatch-voc", "only_burn_in": True}, None),
                                   ("unbiased-teacher", {"config": "unbiased-teacher-voc"}, None),
                                   ("labelmatch", {"config": "labelmatch-voc"}, None),
                                   ("ctf", {"config": "labelmatch-voc", "ctf": {"pairs": 2}}, None),
                                   ("soft-teacher", {"config": "soft-teacher-voc"}, 80000),
                                   ("stac", {"config": "stac-voc"}, 80000)):
            setting = {"unlabeled": "voc12", **({"train_iters": iters} if iters else {})}
            specs.append(_spec(card, entry, "paper", "voc07", "test", args, [1], setting, train=GPU_TRAIN))
        return specs
    raise BenchError(f"unknown scale {scale!r}; expected smoke, small or paper")


# ---------------------------------------------------------------------------------------------------------
# data

class Splits:
    """The labelled / unlabelled training sets and the evaluation set of one spec and fold."""

    def __init__(self, spec: RunSpec, fold: int, data_root: Path | None):
        from bench.data.formats import open_dataset

        if spec.dataset == "shapes-coco":
            from bench.data.smoke import labelled_split, shapes_coco

            pct = float(spec.setting.get("label_pct", 10.0))
            self.labelled, self.unlabelled = labelled_split(pct, fold)
            self.test = shapes_coco("val")
            self.split_info = {"family": "stac-partial (bench.data.coco.coco_partial_split)", "percent": pct,
                               "fold": fold}
        elif spec.dataset == "coco2017":
            pct = float(spec.setting["label_pct"])
            self.labelled = open_dataset("coco2017", "train", data_root, partial_percent=pct, partial_seed=fold,
                                         partial_part="labeled")
            self.unlabelled = open_dataset("coco2017", "train", data_root, partial_percent=pct, partial_seed=fold,
                                           partial_part="unlabeled")
            self.test = open_dataset("coco2017", "val", data_root)
            self.split_info = {"family": "stac-partial", "percent": pct, "fold": fold,
                               "files": f"instances_train2017.{fold}@{int(pct)}[-unlabeled].json (made on the fly)"}
        elif spec.dataset == "voc07":
            self.labelled = open_dataset("voc07", "trainval", data_root)
            self.unlabelled = open_dataset("voc12", "trainval", data_root)
            self.test = open_dataset("voc07", "test", data_root)
            self.split_info = {"family": "voc07-trainval + voc12-trainval (single split)"}
        else:
            raise BenchError(f"the ctf recipe has no data for dataset {spec.dataset!r}")
        self.split_info["labelled_images"] = len(self.labelled)
        self.split_info["unlabelled_images"] = len(self.unlabelled)

    def first_test_images(self, n: int) -> None:
        """Evaluate on the first ``n`` test images only (a rehearsal): the ground truth shrinks with them, so
        COCOeval scores exactly the images that were detected."""
        if n >= len(self.test):
            return
        from bench.data.coco import CocoDataset

        data = self.test.data
        keep = data["images"][:n]
        ids = {img["id"] for img in keep}
        subset = {**data, "images": keep, "annotations": [a for a in data["annotations"] if a["image_id"] in ids]}
        self.test = CocoDataset(self.test.images_dir, data=subset, name=f"{self.test.name}[:{n}]")
        self.split_info["test_images"] = n

    @property
    def ground_truth(self) -> dict[str, Any]:
        return self.test.data

    @property
    def categories(self):
        return self.labelled.data["categories"] if hasattr(self.labelled, "data") else self.test.data["categories"]


# ---------------------------------------------------------------------------------------------------------
# one seed

def _fold_of(spec: RunSpec, seed: int) -> int:
    """COCO-standard at paper/small scale: the run's seed is the fold (STAC split seed 1-5)."""
    if spec.dataset == "coco2017":
        return seed
    return int(spec.setting.get("fold", 1))


def _recipe_config(spec: RunSpec, data_root: Path | None):
    from baselines.ssod.configs import named_config, with_overrides

    weights = None
    if spec.scale != "smoke":
        weights = str(Path(data_root or ".") / "pretrained" / "resnet50-19c8e357.pth")
    return with_overrides(named_config(spec.args["config"], weights), spec.args.get("overrides"))


def _burn_in_schedule(recipe, spec: RunSpec, splits: Splits):
    """The burn-in schedule: LabelMatch's split-sized one at paper scale, else the config's; fields the spec's
    args["overrides"]["burn_in"] names win in both cases (the paper plan names none)."""
    from baselines.ssod.configs import Schedule, coco_burn_in

    schedule = recipe.burn_in
    # Soft Teacher and STAC at paper scale start from LabelMatch's burn-in (their load_from), so they share it
    from_labelmatch_burn_in = recipe.method in ("labelmatch", "soft-teacher", "stac")
    if spec.scale == "paper" and spec.dataset == "coco2017" and from_labelmatch_burn_in:
        schedule = coco_burn_in(len(splits.labelled), float(spec.setting["label_pct"]))
    elif spec.scale == "paper" and spec.dataset == "voc07" and from_labelmatch_burn_in:
        # LabelMatch's VOC burn-in: baseline_ssod with times = 1 (12 epochs of VOC07 trainval at 16 images)
        per_epoch = -(-len(splits.labelled) // 16)
        schedule = Schedule(steps=12 * per_epoch, batch_size=16, lr=0.02,
                            milestones=(8 * per_epoch, 11 * per_epoch))
    else:
        return schedule  # the config's own, overrides already applied by with_overrides
    override = (spec.args.get("overrides") or {}).get("burn_in") or {}
    return replace(schedule, **{k: tuple(v) if isinstance(v, list) else v for k, v in override.items()})


def _semi_schedule(recipe, spec: RunSpec, splits: Splits):
    """The semi-supervised schedule: the config's, except STAC at paper scale on COCO, whose LabelMatch runner
    counts epochs of the unlabelled split (baselines.ssod.configs.stac_epoch_steps); fields the spec's
    args["overrides"]["semi"] names win (the paper plan names none)."""
    from baselines.ssod.configs import stac_epoch_steps

    semi = recipe.semi
    if not (spec.scale == "paper" and spec.dataset == "coco2017" and recipe.method == "stac"):
        return semi
    steps = stac_epoch_steps(len(splits.unlabelled), float(spec.setting["label_pct"]), semi.batch_size, semi.steps)
    override = (spec.args.get("overrides") or {}).get("semi") or {}
    return replace(semi, steps=steps, **{k: tuple(v) if isinstance(v, list) else v for k, v in override.items()})


def _shared_dir(ctx: RunContext, key_data: dict[str, Any], kind: str = "burnin") -> Path:
    key = hashlib.sha256(json.dumps(key_data, sort_keys=True, default=str).encode()).hexdigest()[:16]
    return ctx.handle.dir.parent / "_shared" / f"{kind}-{key}"


def _workers(spec: RunSpec) -> int:
    """DataLoader workers: the spec's; a CPU rehearsal keeps the worker path with one (4 only fight for cores)."""
    workers = int(spec.train.get("num_workers", 0))
    return min(workers, 1) if spec.is_rehearsal else workers


def _burn_in(recipe, schedule, spec: RunSpec, splits: Splits, cats, seed: int, ctx: RunContext):
    from baselines.ssod.train import burn_in, new_detector

    cls_loss = recipe.burn_in_loss()
    key = {"version": VERSION, "detector": recipe.detector.to_dict(), "schedule": schedule.__dict__,
           "view": recipe.burn_in_view.__dict__, "cls_loss": cls_loss, "dataset": spec.dataset,
           "split": splits.split_info, "seed": seed, "threads": spec.train.get("threads")}
    out = _shared_dir(ctx, key)
    detector = new_detector(recipe.detector, seed)
    ctx.log(f"  burn-in (seed {seed}, {schedule.steps} steps) -> {out}")
    return burn_in(detector, splits.labelled, cats, schedule, recipe.burn_in_view, out, seed, cls_loss,
                   device=ctx.device, ckpt_every=spec.train.get("ckpt_every", 0),
                   num_workers=_workers(spec)), out


def _supervised(recipe, schedule, spec: RunSpec, splits: Splits, cats, seed: int, ctx: RunContext):
    """The supervised-only model of this (split, seed): the shared burn-in and, where the spec asks for a matched
    budget (smoke: args["matched_supervised"]), that burn-in trained on for the semi-supervised stage's steps on
    the labelled split alone (the stage's labelled images per step, its LR; the burn-in view and loss). So the
    semi-supervised entries and their supervised reference see the same labelled images for the same number of
    steps, and a gain can only come from the unlabelled images. Without the flag (small / paper scale) it is the
    burn-in alone, LabelMatch's supervised baseline. Trained once per key under <store>/ctf/_shared/."""
    from baselines.ssod.train import burn_in

    network, burn_dir = _burn_in(recipe, schedule, spec, splits, cats, seed, ctx)
    if not spec.args.get("matched_supervised") or recipe.semi is None:
        return network, burn_dir, f"burn-in detector ({schedule.steps} steps, supervised only)"
    key = {"burn_in": burn_dir.name, "schedule": recipe.semi.__dict__, "view": recipe.burn_in_view.__dict__,
           "cls_loss": recipe.burn_in_loss()}
    out = _shared_dir(ctx, key, "supervised")
    ctx.log(f"  supervised-only continuation ({recipe.semi.steps} labelled steps) -> {out}")
    network = burn_in(network, splits.labelled, cats, recipe.semi, recipe.burn_in_view, out, seed,
                      recipe.burn_in_loss(), device=ctx.device, ckpt_every=spec.train.get("ckpt_every", 0),
                      num_workers=_workers(spec))
    return network, out, f"supervised only ({schedule.steps} burn-in + {recipe.semi.steps} labelled steps)"


def _supervised_map(recipe, schedule, spec: RunSpec, splits: Splits, cats, seed: int, ctx: RunContext):
    """mAP of the supervised-only model of this seed on the test set (the reference of map_gain@supervised)."""
    from baselines.ssod.evaluate import predict, score

    network, _, what = _supervised(recipe, schedule, spec, splits, cats, seed, ctx)
    results = predict(network, splits.test, cats, recipe.augment.test_resize, device=ctx.device)
    return score(splits.ground_truth, results)["coco_bbox_map@pycocotools"].value, what


# Sanity floors (bench/sanity.py), in mAP points.
# * supervised entry, map_gain@trivial: its mAP minus that of baselines.ssod.evaluate.trivial_detections (each
#   class's mean labelled box at every test image, scored by the class prior; about 0.02 mAP on shapes-coco). A
#   detector that localises anything at all is far above it; 5 points asks for a real detector, not a lucky box.
# * semi-supervised entries, map_gain@supervised: their mAP minus the supervised-only model's (_supervised: same
#   split, same seed, same labelled budget). The floor is 0: the unlabelled images must help at all.
TRIVIAL_FLOOR = 5.0
SUPERVISED_FLOOR = 0.0


def _sanity(spec: RunSpec, value: float, splits: Splits, n: int, setting: dict[str, Any], supervised):
    from bench.sanity import sanity_record

    if supervised is None:
        from baselines.ssod.evaluate import score, trivial_detections

        if getattr(splits.labelled, "data", None) is None:
            return None  # no COCO dict to take the labelled boxes' statistics from
        trivial = score(splits.ground_truth, trivial_detections(splits.labelled.data, splits.test.data))
        trivial_map = trivial["coco_bbox_map@pycocotools"].value
        return sanity_record("map_gain@trivial", value - trivial_map, n, floor=TRIVIAL_FLOOR,
                             trivial="mean labelled box per class, class-prior score",
                             trivial_value=trivial_map, setting=setting,
                             note="a real detector: 5 mAP points above a detector that looks at no pixel")
    supervised_map, what = supervised
    return sanity_record("map_gain@supervised", value - supervised_map, n, floor=SUPERVISED_FLOOR,
                         trivial=what, trivial_value=supervised_map, setting=setting,
                         note="the unlabelled images must add mAP over supervised-only training on the same budget")


def _evaluate(network, splits: Splits, cats, recipe, seed: int, ctx: RunContext, eval_model: str):
    from baselines.ssod.evaluate import TEST_PROTOCOL, predict, score

    handle = ctx.handle
    if handle.shard_done(seed, "detections"):
        rows = [r for r in handle.read_items(seed) if r.get("kind") == "detection"]
        results = [{k: r[k] for k in ("image_id", "category_id", "bbox", "score")} for r in rows]
    else:
        t0 = time.perf_counter()
        results = predict(network, splits.test, cats, recipe.augment.test_resize, device=ctx.device)
        handle.write_shard(seed, "detections", [{"kind": "detection", **r} for r in results])
        ctx.log(f"  evaluate: {len(splits.test)} test images detected in {time.perf_counter() - t0:.0f} s")
    scored = score(splits.ground_truth, results)
    if not handle.shard_done(seed, "images"):
        handle.write_shard(seed, "images", [{"kind": "image", **row}
                                             for row in scored["coco_bbox_map@pycocotools"].extra["per_image"]])
    digest = hashlib.sha256(json.dumps(results, sort_keys=True).encode()).hexdigest()
    protocol = dict(TEST_PROTOCOL, eval_model=eval_model)
    return scored, protocol, digest


def _rehearsal(spec: RunSpec, recipe, schedule, splits: Splits):
    """A rehearsal's caps: every stage's steps (burn-in, semi-supervised, the supervised continuation) through
    max_steps; the test images and LabelMatch's ACT images (unlabelled images scored to refresh the
    thresholds) through max_samples."""
    def capped(stage):
        return None if stage is None else replace(stage, steps=spec.capped("max_steps", stage.steps))

    ssod = recipe.ssod
    if ssod is not None and ssod.act_images:
        ssod = replace(ssod, act_images=spec.capped("max_samples", ssod.act_images))
    splits.first_test_images(spec.capped("max_samples", len(splits.test)))
    return replace(recipe, semi=capped(recipe.semi), ssod=ssod), capped(schedule)


def _setting(spec: RunSpec, seed: int) -> dict[str, Any]:
    setting = dict(spec.setting)
    if setting.get("fold") == "mean5" and list(spec.seeds) != [1, 2, 3, 4, 5]:
        setting["fold"] = seed  # a partial set of folds is not the papers' 5-fold mean
    return setting


def run_seed(spec: RunSpec, seed: int, ctx: RunContext) -> SeedResult:
    from bench.train.progress import reporting  # here: importing bench.train imports torch

    # reporting: training and sampling phases print milestone lines through ctx.log when not on a terminal
    with torch_threads(spec.train.get("threads")), reporting(ctx.log, ctx.show_progress):
        return _run_seed(spec, seed, ctx)


def _run_seed(spec: RunSpec, seed: int, ctx: RunContext) -> SeedResult:
    from baselines.ssod.data import CategoryMap, SemiPairs
    from baselines.ssod.methods import MeanTeacher
    from baselines.ssod.pseudo import label_prior
    from baselines.ssod.train import act_images, semi_stage
    from bench.profile import count_params

    t0 = time.perf_counter()
    fold = _fold_of(spec, seed)
    splits = Splits(spec, fold, ctx.data_root)
    cats = CategoryMap(splits.categories)
    recipe = _recipe_config(spec, ctx.data_root)
    if recipe.detector.num_classes != len(cats):
        recipe = replace(recipe, detector=replace(recipe.detector, num_classes=len(cats)))
    schedule = _burn_in_schedule(recipe, spec, splits)
    recipe = replace(recipe, semi=_semi_schedule(recipe, spec, splits))
    if spec.is_rehearsal:
        recipe, schedule = _rehearsal(spec, recipe, schedule, splits)
    work = ctx.work_dir(seed)
    provenance: dict[str, Any] = {"dataset_fingerprint": splits.labelled.fingerprint(), "split": splits.split_info,
                                  "test_fingerprint": splits.test.fingerprint(), "config": spec.args["config"],
                                  "recipe": recipe.to_dict()}
    train_cost: dict[str, Any] = {"burn_in_steps": schedule.steps}
    is_ctf = spec.entry == "ctf"

    supervised = None
    if recipe.method == "supervised" or spec.args.get("only_burn_in"):
        network, burn_dir, eval_model = _supervised(recipe, schedule, spec, splits, cats, seed, ctx)
        provenance["checkpoint_dir"] = str(burn_dir)
        if spec.args.get("matched_supervised") and recipe.semi is not None:
            train_cost["supervised_steps"] = recipe.semi.steps
    else:
        labelled_data = splits.labelled.data
        nbar, ratio = label_prior(labelled_data["annotations"], len(labelled_data["images"]), cats.cat_ids)
        if is_ctf:
            from methods.ctf.ctf import CTF, CTFConfig

            ctf_cfg = CTFConfig.from_dict(spec.args.get("ctf", {}))
            # Pair k's burn-in uses seed + k: its own initialisation and data order (diverse teachers).
            detectors = [_burn_in(recipe, schedule, spec, splits, cats, seed + k, ctx)[0] for k in range(ctf_cfg.pairs)]
            module = CTF(detectors, recipe.ssod, ctf_cfg, nbar, ratio)
            provenance["ctf"] = ctf_cfg.to_dict()
        elif recipe.method in ("soft-teacher", "stac"):
            module, pairs = _baseline_module(recipe, schedule, spec, splits, cats, seed, ctx, provenance)
        else:
            detector, _ = _burn_in(recipe, schedule, spec, splits, cats, seed, ctx)
            module = MeanTeacher(detector, recipe.ssod, nbar, ratio)
        if recipe.method not in ("soft-teacher", "stac"):
            pairs = SemiPairs(splits.labelled, splits.unlabelled, cats, recipe.augment, cache=spec.scale == "smoke")
        refresh = None
        if recipe.ssod.method == "labelmatch":
            def refresh(step: int) -> dict[str, float]:
                images = act_images(splits.unlabelled, cats, recipe.ssod.act_images, seed, step,
                                    recipe.augment.test_resize)
                return module.refresh_thresholds([img.to(ctx.device) for img in images])
        ctx.log(f"  {spec.entry}: semi-supervised stage, {recipe.semi.steps} steps")
        semi_stage(module, pairs, recipe.semi, work / "semi", seed, refresh, recipe.ssod.act_interval,
                   device=ctx.device, ckpt_every=spec.train.get("ckpt_every", 0),
                   num_workers=_workers(spec))
        network = module.eval_network()
        train_cost["semi_steps"] = recipe.semi.steps
        if is_ctf:
            best = module.eval_pair()
            eval_model = f"teacher of pair {best} (DPCO-selected, lowest accumulated labelled loss)"
            provenance["dpco"] = {"accumulated": [float(v) for v in module.accumulated],
                                  "selections": [int(v) for v in module.selections], "evaluated_pair": best}
            train_cost["trained_networks"] = 2 * ctf_cfg.pairs
        elif recipe.method == "stac":
            eval_model = "student (STAC has no teacher while training)"
        else:
            eval_model = "teacher (EMA)"
        if recipe.method not in ("soft-teacher", "stac"):
            provenance["pseudo_thresholds"] = _thresholds(module)
        provenance["pseudo_boxes_per_image"] = _pseudo_counts(module)
        provenance["checkpoint_dir"] = str(work / "semi")
        supervised = _supervised_map(recipe, schedule, spec, splits, cats, seed, ctx)

    scored, protocol, digest = _evaluate(network, splits, cats, recipe, seed, ctx, eval_model)
    provenance["eval_model"] = eval_model
    provenance["detections_sha256"] = digest
    setting = _setting(spec, seed)
    n = len(splits.test)
    metrics = [metric_record(name, result.value, n, setting, protocol) for name, result in scored.items()]
    sanity = _sanity(spec, scored["coco_bbox_map@pycocotools"].value, splits, n, setting, supervised)
    metrics += [sanity] if sanity is not None else []
    cost = {"params_m": count_params(network, trainable_only=False) / 1e6,
            "gmacs": _gmacs(network, splits, recipe, ctx.device), "wall_s": time.perf_counter() - t0, **train_cost}
    return SeedResult(metrics=metrics, cost=cost, provenance=provenance)


def _baseline_module(recipe, schedule, spec: RunSpec, splits: Splits, cats, seed: int, ctx: RunContext,
                     provenance: dict[str, Any]):
    """Soft Teacher or STAC on the shared burn-in: (the module the semi-supervised stage trains, its data)."""
    cache = spec.scale == "smoke"
    detector, _ = _burn_in(recipe, schedule, spec, splits, cats, seed, ctx)
    if recipe.method == "soft-teacher":
        from baselines.ssod.soft_teacher import SoftTeacher, SoftTeacherPairs

        return SoftTeacher(detector, recipe.ssod), SoftTeacherPairs(splits.labelled, splits.unlabelled, cats,
                                                                    recipe.augment, cache=cache,
                                                                    views=recipe.ssod.views)
    from baselines.ssod.stac import STAC, STACPairs, offline_pseudo_labels
    from baselines.ssod.train import new_detector

    t0 = time.perf_counter()
    pseudo = offline_pseudo_labels(detector.to(ctx.device), splits.unlabelled, cats, recipe.ssod.score_thresh,
                                   recipe.augment.test_resize, device=ctx.device, keep_best=recipe.ssod.keep_best)
    ctx.log(f"  stac: {len(pseudo)} unlabelled images labelled offline by the burn-in detector in "
            f"{time.perf_counter() - t0:.0f} s")
    provenance["stac_offline_boxes"] = sum(len(p[1]) for p in pseudo)
    if recipe.ssod.student_init == "fresh":
        detector = new_detector(recipe.detector, seed)
    return STAC(detector, recipe.ssod, pseudo), STACPairs(splits.labelled, splits.unlabelled, cats, recipe.augment,
                                                         pseudo, cache=cache, views=recipe.ssod.views)


def _gmacs(network, splits: Splits, recipe, device: str) -> float:
    """MACs of one test-time forward on the first test image (its number of proposals as the network gives)."""
    from baselines.ssod.augment import resize
    from baselines.ssod.data import image_tensor
    from bench.profile import count_macs

    image = image_tensor(splits.test[0]["image"])
    image = resize(image, image.new_zeros((0, 4)), recipe.augment.test_resize)[0].to(device)
    return count_macs(lambda: network.detect([image])) / 1e9


def _pseudo_counts(module) -> dict[str, Any]:
    if hasattr(module, "pairs"):
        return {f"pair{k}": p.pseudo_per_image() for k, p in enumerate(module.pairs)}
    return module.pseudo_per_image()


def _thresholds(module) -> dict[str, Any]:
    if hasattr(module, "pairs"):
        return {f"pair{k}": _thresholds(p) for k, p in enumerate(module.pairs)}
    return {"reliable": [round(float(v), 4) for v in module.thr_pos], "uncertain": [round(float(v), 4) for v in module.thr_unc]}


# ---------------------------------------------------------------------------------------------------------
# profile

def profile(scale: str, device: str = "cpu", repeats: int = 10, measure_latency: bool | None = None,
            progress: Any = None) -> list[dict[str, Any]]:
    """Inference cost of the evaluated detector (one image; the same network for every entry: CTF trains K
    pairs but evaluates one teacher) and the number of networks each entry trains. Latency per bench.profile's
    policy (on CPU only at smoke scale unless measure_latency)."""
    import torch

    from baselines.ssod.configs import named_config
    from baselines.ssod.detector import build_detector
    from bench.profile import ProfileJob, count_macs, count_params, latency_plan, run_profile

    plan = latency_plan(scale, device, repeats, measure_latency)
    name, size = ("smoke-labelmatch", (64, 64)) if scale == "smoke" else ("labelmatch-160k", (800, 1216))

    def measure() -> tuple[dict[str, Any], Any]:
        detector = build_detector(named_config(name).detector).to(plan.device).eval()
        image = [torch.rand(3, *size, device=plan.device)]

        @torch.no_grad()
        def detect() -> Any:
            return detector.detect(image)

        return ({"params_m": count_params(detector, trainable_only=False) / 1e6, "gmacs": count_macs(detect) / 1e9,
                 "nfe": 1, "image_size": list(size)}, detect)

    (detector,) = run_profile([ProfileJob(f"detector ({name}, shared by every entry)", measure)], plan, progress)
    return [{"entry": entry, **detector, "trained_networks": networks}
            for entry, networks in (("supervised", 1), ("unbiased-teacher", 2), ("labelmatch", 2), ("ctf", 4),
                                    ("soft-teacher", 2), ("stac", 1))]
