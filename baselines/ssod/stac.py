"""STAC (Sohn et al. 2020; google-research/ssl_detection, restated) on the SSOD core: OFFLINE pseudo-labels from a
supervised teacher, then a detector trained on labelled images plus strongly augmented pseudo-labelled ones.

1. Teacher: the supervised burn-in detector. It labels every unlabelled image ONCE, before training, at the test
   view and test protocol (score 0.001, NMS 0.5, 100 per image). Filtering (data.py, get_pseudo_gt): an image keeps
   the detections whose score is >= min(0.9, its best score): the confident boxes, or, when none reaches 0.9, the
   image's top-scoring box(es), so every image with a detection keeps at least one. Labels never change afterwards.
   (An image with no detection at all trains with no box, all its RoIs background; the official data flow drops
   such a pair. At score 0.001 the case hardly occurs.)
2. Student: labelled images with the default view (resize + flip); each unlabelled image with its offline boxes
   through strong_aug.strong_view with STAC's choice of in-box or global affine (colour and geometric op in random
   order, then cutout). If the augmentation leaves no box, the image is used un-augmented (as the official
   preprocessor falls back). Loss = supervised + lambda x (the same Faster R-CNN losses on the pseudo-labelled
   images), lambda = 2 (TRAIN.WU). The student is evaluated (there is no teacher during training).
   Initialisation: the burn-in detector, as LabelMatch's re-implementation (configs/stac: load_from the baseline),
   whose numbers CTF's table cites; the original STAC re-initialises the student from ImageNet weights
   (`student_init: fresh` builds a new detector from the seed).

LabelMatch's re-implementation (hikvision-research/SSOD configs/stac/stac_standard.py, core/hooks/stac_hooks.py,
models/detectors/stac.py) differs in two more knobs, both set by baselines.ssod.configs' stac-40k / stac-voc:
* its STACHook writes the detections with score > 0.9 and nothing else: no best-box fallback
  (`keep_best=False`);
* its views (`views="labelmatch"`): labelled = resize + flip + UT-strong colour (AugmentationUT, no erasing);
  unlabelled = one flip, resize, UT-strong colour + three random erasings that leave the boxes as they are
  (AugmentationUT(use_re=True, use_box=False)), no geometric op.
Not reproduced: the hook's text file rounds the boxes down to whole pixels.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import torch
from torch import Tensor, nn

from baselines.ssod.augment import (
    ResizeSpec,
    colour_strong,
    hflip,
    labelled_view,
    random_erasing,
    resize,
)
from baselines.ssod.boxes import scale_boxes
from baselines.ssod.data import CategoryMap, SemiPairs
from baselines.ssod.detector import Detector
from baselines.ssod.methods import floats, total
from baselines.ssod.strong_aug import strong_view
from bench.registry import BenchError


@dataclass(frozen=True)
class STACConfig:
    method: str = "stac"
    score_thresh: float = 0.9           # TRAIN.CONFIDENCE
    unsup_weight: float = 2.0           # TRAIN.WU (lambda)
    student_init: str = "burn-in"       # "burn-in" (LabelMatch's re-implementation) | "fresh" (original STAC)
    keep_best: bool = True              # False: LabelMatch's STACHook (score > thresh only, no best-box fallback)
    views: str = "official"             # "official" (box-aware strong_view) | "labelmatch" (UT strong, boxes kept)
    cls_loss: str = "ce"
    act_interval: int = 0
    act_images: int = 0                 # no ACT images to score (the recipe's caps read it)

    def __post_init__(self) -> None:
        if self.method != "stac":
            raise BenchError(f"STACConfig is for method 'stac', got {self.method!r}")
        if self.student_init not in ("burn-in", "fresh"):
            raise BenchError(f"student_init must be 'burn-in' or 'fresh', got {self.student_init!r}")
        if self.views not in ("official", "labelmatch"):
            raise BenchError(f"views must be 'official' or 'labelmatch', got {self.views!r}")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


# ---------------------------------------------------------------------------------------------------------
# offline pseudo-labels

def confident_detections(scores: Tensor, thresh: float, keep_best: bool = True) -> Tensor:
    """STAC's filter for one image: scores >= min(thresh, max score); no detection keeps nothing. Without
    keep_best, LabelMatch's: scores > thresh."""
    if len(scores) == 0:
        return torch.zeros(0, dtype=torch.bool, device=scores.device)
    if not keep_best:
        return scores > thresh
    return scores >= torch.clamp(scores.max(), max=thresh)


@torch.no_grad()
def offline_pseudo_labels(teacher: Detector, unlabelled: Any, cats: CategoryMap, thresh: float, view: ResizeSpec,
                          device: str = "cpu", batch_size: int = 16,
                          keep_best: bool = True) -> list[tuple[Tensor, Tensor]]:
    """(boxes in the image's own coordinates, labels 1..C) per unlabelled image, in the set's order."""
    from baselines.ssod.data import _Items

    items = _Items(unlabelled, cats, cache=False)
    was_training = teacher.training
    teacher.eval()
    out: list[tuple[Tensor, Tensor]] = []
    for start in range(0, len(items), batch_size):
        images, factors = [], []
        for i in range(start, min(start + batch_size, len(items))):
            image = items.get(i)[0]
            resized, _, factor = resize(image, image.new_zeros((0, 4)), view)
            images.append(resized.to(device))
            factors.append(factor)
        for det, (sx, sy) in zip(teacher.detect(images), factors):
            keep = confident_detections(det["scores"], thresh, keep_best)
            out.append((scale_boxes(det["boxes"][keep], 1.0 / sx, 1.0 / sy).cpu(), det["labels"][keep].cpu()))
    teacher.train(was_training)
    return out


# ---------------------------------------------------------------------------------------------------------
# data

class STACPairs(SemiPairs):
    """SemiPairs whose unlabelled images carry their offline pseudo-boxes through the strong view."""

    def __init__(self, labelled: Any, unlabelled: Any, cats: CategoryMap, aug, pseudo: Sequence[tuple[Tensor, Tensor]],
                 cache: bool = True, views: str = "official"):
        super().__init__(labelled, unlabelled, cats, aug, cache)
        if len(pseudo) != len(self.unlabelled):
            raise BenchError(f"{len(pseudo)} pseudo-label sets for {len(self.unlabelled)} unlabelled images")
        self.pseudo = list(pseudo)
        self.views = views

    def __getitem__(self, index: int) -> dict[str, Any]:
        labelmatch = self.views == "labelmatch"
        pick = int(torch.randint(0, len(self.labelled), ()))
        image, boxes, labels, _ = self.labelled.get(pick)
        image, boxes = labelled_view(image, boxes, self.aug, colour=labelmatch and self.aug.labelled_colour)
        u_image, _, _, u_id = self.unlabelled.get(index)
        u_boxes, u_labels = self.pseudo[index]
        u_image, u_boxes, _ = resize(u_image, u_boxes, self.aug.student_resize or self.aug.labelled_resize)
        if float(torch.rand(())) < self.aug.flip_prob:
            u_image, u_boxes = hflip(u_image, u_boxes)
        if labelmatch:  # UT-strong colour ops and erasing: pixels only, the boxes stay
            if self.aug.student_colour:
                u_image = colour_strong(u_image)
            if self.aug.student_erasing:
                u_image = random_erasing(u_image)
        elif len(u_boxes):
            strong, moved, keep, _ = strong_view(u_image, u_boxes, in_box=True)
            if bool(keep.any()):  # else: the un-augmented image and boxes, as the official fallback
                u_image, u_boxes, u_labels = strong, moved[keep], u_labels[keep]
        else:
            u_image = strong_view(u_image, u_boxes, in_box=False)[0]
        return {"images": [image, u_image], "boxes": [boxes, u_boxes], "labels": [labels, u_labels],
                "unlabelled": [False, True], "u_image_id": u_id}


# ---------------------------------------------------------------------------------------------------------
# the module the shared loop trains

class STAC(nn.Module):
    def __init__(self, detector: Detector, cfg: STACConfig, pseudo: Sequence[tuple[Tensor, Tensor]]):
        super().__init__()
        self.cfg = cfg
        self.student = detector
        n = max(len(pseudo), 1)
        self.offline_boxes_per_image = sum(len(p[1]) for p in pseudo) / n

    def forward(self, batch: dict[str, Any]) -> tuple[Tensor, dict[str, float]]:
        flags = [flag for item in batch["unlabelled"] for flag in item]  # collate keeps one list per pair
        parts = {}
        for name, wanted in (("sup", False), ("unsup", True)):
            idx = [i for i, f in enumerate(flags) if f == wanted]
            parts[name] = self.student.supervised_losses([batch["images"][i] for i in idx],
                                                         [batch["boxes"][i] for i in idx],
                                                         [batch["labels"][i] for i in idx], "ce")
        loss = total(parts["sup"]) + total(parts["unsup"], self.cfg.unsup_weight)
        return loss, {**floats(parts["sup"], "sup_"), **floats(parts["unsup"], "unsup_")}

    def pseudo_per_image(self) -> dict[str, float]:
        return {"offline": self.offline_boxes_per_image}

    def after_step(self) -> None:
        pass  # no teacher: the labels are fixed offline

    def eval_network(self) -> Detector:
        return self.student
