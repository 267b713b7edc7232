"""Faster R-CNN with FPN from torchvision parts, with the training paths the SSOD methods need.

Paper scale: ResNet-50-FPN exactly as in LabelMatch / Unbiased Teacher (torchvision's `resnet_fpn_backbone`:
frozen BatchNorm, stem and stage 1 frozen, 256-channel FPN with P2-P6, one-conv RPN head with 3 anchors per
position, 2-FC box head of 1024, class-agnostic box regression as LabelMatch's config). Smoke scale: the same
detector on a tiny ResNet (one BasicBlock per stage, GroupNorm, widths 16-128) built from scratch (weights=None).

Unlike torchvision's FasterRCNN.forward, the pieces are exposed so that a method can run the RPN and the box head
on pseudo-labels, sample RoIs against reliable AND uncertain boxes (LabelMatch), feed the student's RoIs to the
teacher's box head (proposal self-assignment), and change the classification loss (focal loss in Unbiased
Teacher). Images enter as float tensors [3, H, W] in 0..1, already resized by the data pipeline (the transform
only normalises and pads to a multiple of 32, as mmdet's Pad(size_divisor=32)).
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from baselines.ssod.boxes import batched_nms, box_iou, clip_boxes
from baselines.ssod.roi_align import MultiScaleRoIAlign
from bench.registry import BenchError

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


@dataclass(frozen=True)
class DetectorConfig:
    arch: str = "tiny-resnet-fpn"          # "tiny-resnet-fpn" (smoke) | "resnet50-fpn" (paper)
    num_classes: int = 3                   # foreground classes; label 0 is background
    # tiny backbone (smoke): channels of the four stages and of the FPN
    tiny_widths: tuple[int, ...] = (16, 32, 64, 128)
    fpn_channels: int = 32
    # resnet50-fpn: a local ImageNet checkpoint (torchvision's resnet50-19c8e357.pth, the file LabelMatch loads);
    # None = random initialisation (only for tests and profiling: nothing is downloaded)
    backbone_weights: str | None = None
    trainable_backbone_layers: int = 3     # LabelMatch: frozen_stages=1 (stem + stage 1 frozen)
    # anchors: size = anchor_scale * stride on P2..P6 (mmdet scales=[8] at strides 4..64); the tiny 64-pixel
    # smoke images use scale 2 (anchors 8..128 px) so that their 10-32 px objects have matching anchors
    anchor_scale: float = 8.0
    anchor_ratios: tuple[float, ...] = (0.5, 1.0, 2.0)
    # RPN (LabelMatch train_cfg.rpn / rpn_proposal / test_cfg.rpn)
    rpn_fg_iou: float = 0.7
    rpn_bg_iou: float = 0.3
    rpn_batch_per_image: int = 256
    rpn_positive_fraction: float = 0.5
    rpn_pre_nms_train: int = 2000
    rpn_post_nms_train: int = 1000
    rpn_pre_nms_test: int = 1000
    rpn_post_nms_test: int = 1000
    rpn_nms: float = 0.7
    # box head
    representation_size: int = 1024
    roi_output_size: int = 7
    # mmdet (LabelMatch) uses RoIAlign with adaptive sampling (0) and aligned=True; torchvision uses 2 / False.
    # With a fixed ratio the CPU fast path in roi_align.py is used.
    roi_sampling_ratio: int = 0
    roi_aligned: bool = True
    class_agnostic: bool = True            # LabelMatch: reg_class_agnostic=True
    box_loss: str = "l1"                   # "l1" (mmdet L1Loss, detectron2 smooth-L1 beta 0) | "smooth_l1" (beta 1/9)
    # RoI sampling
    roi_fg_iou: float = 0.5
    roi_batch_per_image: int = 512
    roi_positive_fraction: float = 0.25
    # test-time (LabelMatch test_cfg.rcnn; SSOD papers evaluate with score_thr 0.001)
    test_score_thresh: float = 0.001
    test_nms: float = 0.5
    detections_per_img: int = 100

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> DetectorConfig:
        known = set(cls.__dataclass_fields__)
        unknown = sorted(set(data) - known)
        if unknown:
            raise BenchError(f"DetectorConfig: unknown field {unknown[0]!r}")
        data = {k: tuple(v) if isinstance(v, list) else v for k, v in data.items()}
        return cls(**data)


# ---------------------------------------------------------------------------------------------------------
# backbones

def _group_norm(channels: int) -> nn.GroupNorm:
    # GroupNorm: independent of the batch (2-4 images at smoke) and without running statistics, so a teacher
    # and a student that see different batches normalise alike.
    return nn.GroupNorm(min(8, channels // 4), channels)


class TinyResNet(nn.Module):
    """Stem (3x3 conv, stride 2) and four stages of one BasicBlock each, stride 2 each: outputs at strides 4-32."""

    def __init__(self, widths: tuple[int, ...]):
        super().__init__()
        from torchvision.models.resnet import BasicBlock

        self.stem = nn.Sequential(nn.Conv2d(3, widths[0], 3, 2, 1, bias=False), _group_norm(widths[0]),
                                  nn.ReLU(inplace=True))
        previous = widths[0]
        for i, width in enumerate(widths, start=1):
            down = nn.Sequential(nn.Conv2d(previous, width, 1, 2, bias=False), _group_norm(width))
            setattr(self, f"layer{i}", BasicBlock(previous, width, stride=2, downsample=down, norm_layer=_group_norm))
            previous = width

    def forward(self, x: Tensor) -> Tensor:  # only used through IntermediateLayerGetter
        x = self.stem(x)
        for i in range(1, 5):
            x = getattr(self, f"layer{i}")(x)
        return x


def build_backbone(cfg: DetectorConfig) -> nn.Module:
    from torchvision.models.detection.backbone_utils import (
        BackboneWithFPN,
        _resnet_fpn_extractor,
    )
    from torchvision.ops.feature_pyramid_network import LastLevelMaxPool

    if cfg.arch == "tiny-resnet-fpn":
        body = TinyResNet(cfg.tiny_widths)
        return BackboneWithFPN(body, {f"layer{i}": str(i - 1) for i in range(1, 5)}, list(cfg.tiny_widths),
                               cfg.fpn_channels, extra_blocks=LastLevelMaxPool())
    if cfg.arch == "resnet50-fpn":
        from torchvision.models import resnet50
        from torchvision.ops.misc import FrozenBatchNorm2d

        net = resnet50(weights=None, norm_layer=FrozenBatchNorm2d)
        if cfg.backbone_weights is not None:
            path = Path(cfg.backbone_weights)
            if not path.is_file():
                raise BenchError(f"ImageNet ResNet-50 weights not found: {path} (torchvision's resnet50-19c8e357.pth, "
                                 f"the file LabelMatch initialises from; see `bench assets`)")
            state = torch.load(path, map_location="cpu", weights_only=True)
            missing, unexpected = net.load_state_dict(state, strict=False)
            if [k for k in missing if not k.startswith("fc.")] or unexpected:
                raise BenchError(f"{path} is not a torchvision ResNet-50 checkpoint "
                                 f"(missing {missing[:1]}, unexpected {unexpected[:1]})")
        return _resnet_fpn_extractor(net, cfg.trainable_backbone_layers)
    raise BenchError(f"unknown detector arch {cfg.arch!r}; expected 'tiny-resnet-fpn' or 'resnet50-fpn'")


# ---------------------------------------------------------------------------------------------------------
# RPN

def _make_rpn_class():
    from torchvision.models.detection.rpn import (
        RegionProposalNetwork,
        concat_box_prediction_layers,
    )
    from torchvision.ops import boxes as box_ops

    class RPN(RegionProposalNetwork):
        """torchvision's RPN with an explicit train/test proposal mode (a teacher in eval mode may still need
        losses), an L1 box loss option, and the fast NMS of boxes.py."""

        box_loss_kind = "l1"
        _train_topn = True

        def pre_nms_top_n(self) -> int:
            return self._pre_nms_top_n["training" if self._train_topn else "testing"]

        def post_nms_top_n(self) -> int:
            return self._post_nms_top_n["training" if self._train_topn else "testing"]

        def filter_proposals(self, proposals, objectness, image_shapes, num_anchors_per_level):
            n = proposals.shape[0]
            objectness = objectness.detach().reshape(n, -1)
            levels = torch.cat([torch.full((k,), i, dtype=torch.int64, device=proposals.device)
                                for i, k in enumerate(num_anchors_per_level)]).expand_as(objectness)
            top = self._get_top_n_idx(objectness, num_anchors_per_level)
            rows = torch.arange(n, device=proposals.device)[:, None]
            objectness, levels, proposals = objectness[rows, top], levels[rows, top], proposals[rows, top]
            out_boxes, out_scores = [], []
            for boxes, scores, lvl, shape in zip(proposals, torch.sigmoid(objectness), levels, image_shapes):
                boxes = clip_boxes(boxes, shape)
                keep = box_ops.remove_small_boxes(boxes, self.min_size)
                boxes, scores, lvl = boxes[keep], scores[keep], lvl[keep]
                keep = batched_nms(boxes, scores, lvl, self.nms_thresh)[: self.post_nms_top_n()]
                out_boxes.append(boxes[keep])
                out_scores.append(scores[keep])
            return out_boxes, out_scores

        def compute_loss(self, objectness, pred_bbox_deltas, labels, regression_targets):
            pos, neg = self.fg_bg_sampler(labels)
            pos = torch.where(torch.cat(pos))[0]
            neg = torch.where(torch.cat(neg))[0]
            sampled = torch.cat([pos, neg])
            labels = torch.cat(labels)
            targets = torch.cat(regression_targets)
            if self.box_loss_kind == "l1":
                box = F.l1_loss(pred_bbox_deltas[pos], targets[pos], reduction="sum")
            else:
                box = F.smooth_l1_loss(pred_bbox_deltas[pos], targets[pos], beta=1 / 9, reduction="sum")
            obj = F.binary_cross_entropy_with_logits(objectness.flatten()[sampled], labels[sampled])
            return obj, box / max(sampled.numel(), 1)

        def run(self, images, features: dict[str, Tensor], gt_boxes: list[Tensor] | None,
                train_proposals: bool) -> tuple[list[Tensor], dict[str, Tensor]]:
            """Proposals (train or test top-n) and, if gt_boxes is given, the two RPN losses."""
            feats = list(features.values())
            objectness, deltas = self.head(feats)
            anchors = self.anchor_generator(images, feats)
            per_level = [o[0].shape[0] * o[0].shape[1] * o[0].shape[2] for o in objectness]
            objectness, deltas = concat_box_prediction_layers(objectness, deltas)
            proposals = self.box_coder.decode(deltas.detach(), anchors).view(len(anchors), -1, 4)
            self._train_topn = train_proposals
            boxes, _ = self.filter_proposals(proposals, objectness, images.image_sizes, per_level)
            losses: dict[str, Tensor] = {}
            if gt_boxes is not None:
                labels, matched = self.assign_targets_to_anchors(anchors, [{"boxes": b} for b in gt_boxes])
                targets = self.box_coder.encode(matched, anchors)
                obj, box = self.compute_loss(objectness, deltas, labels, targets)
                losses = {"loss_rpn_cls": obj, "loss_rpn_box": box}
            return boxes, losses

    return RPN


# ---------------------------------------------------------------------------------------------------------
# the detector

@dataclass
class SampledRoIs:
    """RoIs of one image drawn for the box-head loss. kind: 0 reliable positive, 1 uncertain, 2 negative."""

    boxes: Tensor                   # [R, 4] in the image's coordinates
    kind: Tensor                    # [R]
    labels: Tensor                  # [R] class 1..C for kinds 0/1, 0 for negatives
    target_boxes: Tensor            # [R, 4] matched pseudo/GT box (zeros for negatives)
    uncertain_index: Tensor         # [R] index of the matched uncertain box (-1 otherwise)
    extras: dict[str, Tensor] = field(default_factory=dict)


class Detector(nn.Module):
    def __init__(self, cfg: DetectorConfig):
        super().__init__()
        from torchvision.models.detection import _utils as det_utils
        from torchvision.models.detection.anchor_utils import AnchorGenerator
        from torchvision.models.detection.faster_rcnn import TwoMLPHead
        from torchvision.models.detection.rpn import RPNHead

        self.cfg = cfg
        self.backbone = build_backbone(cfg)
        channels = self.backbone.out_channels
        strides = (4, 8, 16, 32, 64)
        sizes = tuple((round(cfg.anchor_scale * s),) for s in strides)
        anchors = AnchorGenerator(sizes, (tuple(cfg.anchor_ratios),) * len(strides))
        self.rpn = _make_rpn_class()(
            anchors, RPNHead(channels, anchors.num_anchors_per_location()[0]),
            cfg.rpn_fg_iou, cfg.rpn_bg_iou, cfg.rpn_batch_per_image, cfg.rpn_positive_fraction,
            {"training": cfg.rpn_pre_nms_train, "testing": cfg.rpn_pre_nms_test},
            {"training": cfg.rpn_post_nms_train, "testing": cfg.rpn_post_nms_test}, cfg.rpn_nms)
        self.rpn.box_loss_kind = cfg.box_loss
        self.box_roi_pool = MultiScaleRoIAlign(["0", "1", "2", "3"], [4, 8, 16, 32], cfg.roi_output_size,
                                               cfg.roi_sampling_ratio, cfg.roi_aligned)
        self.box_head = TwoMLPHead(channels * cfg.roi_output_size ** 2, cfg.representation_size)
        self.cls_score = nn.Linear(cfg.representation_size, cfg.num_classes + 1)
        self.bbox_pred = nn.Linear(cfg.representation_size, 4 if cfg.class_agnostic else 4 * (cfg.num_classes + 1))
        self.box_coder = det_utils.BoxCoder((10.0, 10.0, 5.0, 5.0))  # mmdet target_stds (0.1, 0.1, 0.2, 0.2)
        self.register_buffer("pixel_mean", torch.tensor(IMAGENET_MEAN).view(3, 1, 1), persistent=False)
        self.register_buffer("pixel_std", torch.tensor(IMAGENET_STD).view(3, 1, 1), persistent=False)

    @property
    def num_classes(self) -> int:
        return self.cfg.num_classes

    # -- inputs and features ---------------------------------------------------------------------------
    def prepare(self, images: list[Tensor]):
        """Normalise and zero-pad a list of [3, H, W] images to one batch (sizes rounded up to 32)."""
        from torchvision.models.detection.image_list import ImageList

        sizes = [tuple(img.shape[-2:]) for img in images]
        h = -(-max(s[0] for s in sizes) // 32) * 32
        w = -(-max(s[1] for s in sizes) // 32) * 32
        batch = images[0].new_zeros((len(images), 3, h, w))
        for i, img in enumerate(images):
            batch[i, :, : img.shape[1], : img.shape[2]] = (img - self.pixel_mean) / self.pixel_std
        return ImageList(batch, sizes)

    def extract(self, images: list[Tensor]):
        image_list = self.prepare(images)
        return image_list, self.backbone(image_list.tensors)

    # -- box head ----------------------------------------------------------------------------------------
    def box_forward(self, features: dict[str, Tensor], boxes: list[Tensor]) -> tuple[Tensor, Tensor]:
        """Class logits [R, C+1] and box deltas [R, 4] (class-agnostic) or [R, 4(C+1)] for RoIs given per image."""
        pooled = self.box_roi_pool(features, boxes)
        rep = self.box_head(pooled)
        return self.cls_score(rep), self.bbox_pred(rep)

    def decode(self, deltas: Tensor, rois: Tensor, labels: Tensor | None = None) -> Tensor:
        """Refined boxes [R, 4] of RoIs [R, 4]: the agnostic deltas, or those of `labels` (class-specific)."""
        if deltas.shape[1] > 4:
            if labels is None:
                raise ValueError("class-specific regression needs the labels to decode")
            deltas = deltas.view(len(deltas), -1, 4)[torch.arange(len(deltas)), labels]
        return self.box_coder.decode_single(deltas, rois)

    # -- inference ---------------------------------------------------------------------------------------
    @torch.no_grad()
    def detect(self, images: list[Tensor], score_thresh: float | None = None) -> list[dict[str, Tensor]]:
        """Test-time detections per image: boxes (xyxy in the image's coordinates), scores, labels (1..C)."""
        image_list, features = self.extract(images)
        proposals, _ = self.rpn.run(image_list, features, None, train_proposals=False)
        logits, deltas = self.box_forward(features, proposals)
        return self.postprocess(logits, deltas, proposals, image_list.image_sizes,
                                self.cfg.test_score_thresh if score_thresh is None else score_thresh)

    def postprocess(self, logits: Tensor, deltas: Tensor, proposals: list[Tensor], sizes, score_thresh: float):
        scores_all = F.softmax(logits, dim=-1)
        n_cls = self.cfg.num_classes
        out = []
        start = 0
        for props, size in zip(proposals, sizes):
            k = len(props)
            scores = scores_all[start:start + k, 1:]          # [k, C]
            d = deltas[start:start + k]
            start += k
            if d.shape[1] == 4:
                boxes = clip_boxes(self.box_coder.decode_single(d, props), size)[:, None].expand(k, n_cls, 4)
            else:
                per_class = self.box_coder.decode_single(d.reshape(-1, 4), props.repeat_interleave(n_cls + 1, 0))
                boxes = clip_boxes(per_class, size).view(k, n_cls + 1, 4)[:, 1:]
            labels = torch.arange(1, n_cls + 1, device=logits.device).expand(k, n_cls)
            boxes, scores, labels = boxes.reshape(-1, 4), scores.reshape(-1), labels.reshape(-1)
            keep = (scores > score_thresh) & ((boxes[:, 2] - boxes[:, 0]) >= 1e-2) & ((boxes[:, 3] - boxes[:, 1]) >= 1e-2)
            boxes, scores, labels = boxes[keep], scores[keep], labels[keep]
            keep = batched_nms(boxes, scores, labels, self.cfg.test_nms)[: self.cfg.detections_per_img]
            out.append({"boxes": boxes[keep], "scores": scores[keep], "labels": labels[keep]})
        return out

    # -- training ----------------------------------------------------------------------------------------
    def sample_rois(self, proposals: Tensor, gt_boxes: Tensor, gt_labels: Tensor,
                    unc_boxes: Tensor | None = None, unc_labels: Tensor | None = None) -> SampledRoIs:
        """LabelMatch's RoI sampling (RandomSamplerLM): reliable and uncertain boxes are added as proposals; a
        proposal is a reliable positive if IoU >= fg_iou with a reliable box, else uncertain if IoU >= fg_iou with
        an uncertain box, else negative when below fg_iou with both. Positives fill up to positive_fraction of
        the batch, uncertain ones fill the rest of that quota, negatives the remainder. With no uncertain boxes
        this is the standard Faster R-CNN sampler. Randomness: torch's global generator."""
        cfg = self.cfg
        device = proposals.device
        if unc_boxes is None:
            unc_boxes = proposals.new_zeros((0, 4))
            unc_labels = gt_labels.new_zeros((0,))
        # Uncertain boxes are proposals too (mmdet prepends them and the reliable GT).
        candidates = torch.cat([unc_boxes, gt_boxes, proposals])
        n = len(candidates)
        if len(gt_boxes):
            iou_r, match_r = box_iou(candidates, gt_boxes).max(dim=1)
        else:
            iou_r, match_r = candidates.new_zeros(n), torch.zeros(n, dtype=torch.long, device=device)
        if len(unc_boxes):
            iou_u, match_u = box_iou(candidates, unc_boxes).max(dim=1)
        else:
            iou_u, match_u = candidates.new_zeros(n), torch.zeros(n, dtype=torch.long, device=device)
        is_pos = iou_r >= cfg.roi_fg_iou
        is_unc = ~is_pos & (iou_u >= cfg.roi_fg_iou)
        is_neg = ~is_pos & ~is_unc

        def draw(mask: Tensor, limit: int) -> Tensor:
            idx = mask.nonzero().squeeze(1)
            if len(idx) > limit:
                idx = idx[torch.randperm(len(idx), device=device)[:limit]]
            return idx

        quota = int(cfg.roi_batch_per_image * cfg.roi_positive_fraction)
        pos = draw(is_pos, quota)
        unc = draw(is_unc, quota - len(pos))
        neg = draw(is_neg, cfg.roi_batch_per_image - len(pos) - len(unc))
        idx = torch.cat([pos, unc, neg])
        kind = torch.cat([torch.zeros(len(pos), dtype=torch.long, device=device),
                          torch.ones(len(unc), dtype=torch.long, device=device),
                          torch.full((len(neg),), 2, dtype=torch.long, device=device)])
        labels = torch.zeros(len(idx), dtype=torch.long, device=device)
        targets = candidates.new_zeros((len(idx), 4))
        unc_index = torch.full((len(idx),), -1, dtype=torch.long, device=device)
        if len(pos):
            labels[: len(pos)] = gt_labels[match_r[pos]]
            targets[: len(pos)] = gt_boxes[match_r[pos]]
        if len(unc):
            sl = slice(len(pos), len(pos) + len(unc))
            labels[sl] = unc_labels[match_u[unc]]
            targets[sl] = unc_boxes[match_u[unc]]
            unc_index[sl] = match_u[unc]
        return SampledRoIs(candidates[idx], kind, labels, targets, unc_index)

    def roi_losses(self, logits: Tensor, deltas: Tensor, samples: list[SampledRoIs], hard_weight: Tensor,
                   cls_loss: str = "ce", focal_gamma: float = 1.5) -> dict[str, Tensor]:
        """Box-head losses over the sampled RoIs of a batch (concatenated in `samples` order).

        hard_weight [R]: weight of each RoI in the hard classification / regression losses (1 for reliable
        positives and negatives, 0 for uncertain RoIs unless LabelMatch's mining promoted them).
        Classification: CE (mmdet: mean over RoIs with weight > 0) or softmax focal loss (Unbiased Teacher: gamma
        1.5, summed over RoIs / number of RoIs). Regression: on weighted RoIs with a class label, summed over the 4
        coordinates and divided by the number of sampled RoIs (mmdet avg_factor, detectron2 normalisation).
        """
        labels = torch.cat([s.labels for s in samples])
        rois = torch.cat([s.boxes for s in samples])
        targets = torch.cat([s.target_boxes for s in samples])
        count = max(len(labels), 1)
        ce = F.cross_entropy(logits, labels, reduction="none")
        if cls_loss == "focal":
            p = torch.exp(-ce)
            loss_cls = ((1 - p) ** focal_gamma * ce * hard_weight).sum() / count
        elif cls_loss == "ce":
            loss_cls = (ce * hard_weight).sum() / max(int((hard_weight > 0).sum()), 1)
        else:
            raise BenchError(f"unknown classification loss {cls_loss!r}; expected 'ce' or 'focal'")
        fg = (labels > 0) & (hard_weight > 0)
        if fg.any():
            d = deltas[fg]
            if d.shape[1] > 4:
                d = d.view(len(d), -1, 4)[torch.arange(len(d)), labels[fg]]
            t = self.box_coder.encode_single(targets[fg], rois[fg])
            w = hard_weight[fg][:, None]
            if self.cfg.box_loss == "l1":
                loss_box = ((d - t).abs() * w).sum() / count
            else:
                loss_box = (F.smooth_l1_loss(d, t, beta=1 / 9, reduction="none") * w).sum() / count
        else:
            loss_box = deltas.sum() * 0.0
        return {"loss_roi_cls": loss_cls, "loss_roi_box": loss_box}

    def supervised_losses(self, images: list[Tensor], boxes: list[Tensor], labels: list[Tensor],
                          cls_loss: str = "ce") -> dict[str, Tensor]:
        """The ordinary Faster R-CNN losses on labelled images (labels 1..C)."""
        image_list, features = self.extract(images)
        proposals, losses = self.rpn.run(image_list, features, boxes, train_proposals=True)
        samples = [self.sample_rois(p, b, lab) for p, b, lab in zip(proposals, boxes, labels)]
        logits, deltas = self.box_forward(features, [s.boxes for s in samples])
        weight = logits.new_ones(len(logits))
        losses.update(self.roi_losses(logits, deltas, samples, weight, cls_loss))
        return losses


def build_detector(cfg: DetectorConfig | dict[str, Any]) -> Detector:
    if isinstance(cfg, dict):
        cfg = DetectorConfig.from_dict(cfg)
    return Detector(cfg)


def sum_losses(losses: dict[str, Tensor], weight: float = 1.0, prefix: str = "") -> tuple[Tensor, dict[str, float]]:
    total = sum(losses.values()) * weight
    return total, {f"{prefix}{k}": float(v.detach()) for k, v in losses.items()}

