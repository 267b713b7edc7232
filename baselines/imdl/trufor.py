"""TruFor (Guillaro et al., CVPR 2023) at the official shapes, and the plain SegFormer segmentation baseline.

Layout of the official checkpoint (``trufor.pth.tar`` -> ``state_dict``; grip-unina/TruFor ``TruFor_train_test/lib/
models/cmx/builder_np_conf.py`` ``myEncoderDecoder``, the same class in IMDLBenCo ``model_zoo/trufor``), read not copied:
- ``dncnn``: Noiseprint++, a 17-layer DnCNN (3 -> 64 x 16 -> 1), first and last convs with bias and no BN, the 15
  middle ones without bias and with BN (momentum 0.1), ReLU except after the last; its one-channel output is tiled to 3;
- ``backbone``: CMX dual MiT-B2 (RGB stream on ImageNet-normalised input, extra stream on the Noiseprint++ map);
- ``decode_head``: all-MLP decoder (embed 512, 2 classes: authentic / manipulated logits);
- ``decode_head_conf``: a second all-MLP decoder (1 channel), the confidence map;
- ``detection``: Linear(8, 128) -> ReLU -> Dropout(0.5) -> Linear(128, 1) on the "confpool" features: weighted
  statistics pooling (min, max, mean, mean square; weights softmax(log w)) of the confidence map (uniform weights)
  and of the localisation logit difference out[:, 1] - out[:, 0] weighted by logsigmoid(confidence).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from baselines.imdl.mit import DecoderHead, DualMixTransformer, MixTransformer, mit_config

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def imagenet_normalise(x: torch.Tensor) -> torch.Tensor:
    mean = torch.tensor(IMAGENET_MEAN, device=x.device, dtype=x.dtype)[None, :, None, None]
    std = torch.tensor(IMAGENET_STD, device=x.device, dtype=x.dtype)[None, :, None, None]
    return (x - mean) / std


def dncnn(in_ch: int = 3, out_ch: int = 1, depth: int = 17, width: int = 64) -> nn.Sequential:
    """Noiseprint++'s DnCNN in the official Sequential order (conv[, BN], ReLU per layer; last layer linear)."""
    layers: list[nn.Module] = []
    for i in range(depth):
        cin = in_ch if i == 0 else width
        cout = out_ch if i == depth - 1 else width
        middle = 0 < i < depth - 1
        layers.append(nn.Conv2d(cin, cout, 3, padding=1, bias=not middle))
        if middle:
            layers.append(nn.BatchNorm2d(cout, momentum=0.1))
        if i < depth - 1:
            layers.append(nn.ReLU(inplace=True))
    return nn.Sequential(*layers)


def weighted_statistics_pooling(x: torch.Tensor, log_w: torch.Tensor | None = None) -> torch.Tensor:
    """[B, C, H, W] -> [B, 4C]: soft min, soft max, weighted mean and mean square (TruFor's confpool)."""
    b, c = x.shape[:2]
    x = x.reshape(b, c, -1)
    log_w = torch.zeros((b, 1, x.shape[-1]), device=x.device, dtype=x.dtype) if log_w is None else log_w.reshape(b, 1, -1)
    log_w = F.log_softmax(log_w, dim=-1)
    w = log_w.exp()
    return torch.cat((-torch.logsumexp(log_w - x, dim=-1), torch.logsumexp(log_w + x, dim=-1),
                      (w * x).sum(-1), (w * x * x).sum(-1)), dim=1)


class TruFor(nn.Module):
    """TruFor: Noiseprint++ + CMX + localisation/confidence decoders + confpool detector.

    forward(x in [0, 1], [B, 3, H, W]) -> dict(mask_logits [B, 2, H, W], conf [B, 1, H, W], det [B, 1],
    noiseprint [B, 3, H, W]). ``mask_prob`` = softmax(mask_logits)[:, 1], image score = sigmoid(det)."""

    def __init__(self, backbone: str = "mit-b2", decoder_embed: int = 512, np_depth: int = 17, np_width: int = 64):
        super().__init__()
        cfg = mit_config(backbone)
        self.dncnn = dncnn(3, 1, np_depth, np_width)
        self.backbone = DualMixTransformer(cfg)
        self.decode_head = DecoderHead(cfg.embed_dims, 2, decoder_embed)
        self.decode_head_conf = DecoderHead(cfg.embed_dims, 1, decoder_embed)
        self.detection = nn.Sequential(nn.Linear(8, 128), nn.ReLU(), nn.Dropout(p=0.5), nn.Linear(128, 1))

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        size = x.shape[2:]
        modal = self.dncnn(x).repeat(1, 3, 1, 1)
        feats = self.backbone(imagenet_normalise(x), modal)
        out = F.interpolate(self.decode_head(feats), size=size, mode="bilinear", align_corners=False)
        conf = F.interpolate(self.decode_head_conf(feats), size=size, mode="bilinear", align_corners=False)
        f1 = weighted_statistics_pooling(conf)
        f2 = weighted_statistics_pooling(out[:, 1:2] - out[:, 0:1], F.logsigmoid(conf))
        det = self.detection(torch.cat((f1, f2), dim=-1))
        return {"mask_logits": out, "conf": conf, "det": det, "noiseprint": modal}

    def predict(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(pixel probabilities [B, H, W], image scores [B])."""
        out = self.forward(x)
        return out["mask_logits"].softmax(dim=1)[:, 1], torch.sigmoid(out["det"][:, 0])

    def loss(self, x: torch.Tensor, mask: torch.Tensor, label: torch.Tensor, pos_weight: float = 1.0) -> torch.Tensor:
        """TruFor's objectives trained jointly (bench smoke; the official trains them in phases): cross-entropy of
        the localisation, MSE of the confidence against the true-class probability (TCP) of the detached
        localisation, BCE of the detection logit."""
        out = self.forward(x)
        weight = torch.tensor([1.0, float(pos_weight)], device=x.device)  # pos_weight 1: the official unweighted CE
        seg = F.cross_entropy(out["mask_logits"], mask.long(), weight=weight)
        tcp = out["mask_logits"].detach().softmax(dim=1).gather(1, mask.long()[:, None])
        conf = F.mse_loss(torch.sigmoid(out["conf"]), tcp)
        det = F.binary_cross_entropy_with_logits(out["det"][:, 0], label.float())
        return seg + conf + det


class SegFormerSeg(nn.Module):
    """Plain SegFormer segmentation baseline (MiT + all-MLP decoder, one manipulated-probability channel): no
    forensic trace, no detection head; the image score is the maximum of the pixel map (the usual IMDL rule for a
    segmentation-only model)."""

    def __init__(self, backbone: str = "mit-b2", decoder_embed: int = 256):
        super().__init__()
        cfg = mit_config(backbone)
        self.backbone = MixTransformer(cfg)
        self.decode_head = DecoderHead(cfg.embed_dims, 1, decoder_embed)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        logits = self.decode_head(self.backbone(imagenet_normalise(x)))
        return F.interpolate(logits, size=x.shape[2:], mode="bilinear", align_corners=False)

    def predict(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        prob = torch.sigmoid(self.forward(x))[:, 0]
        return prob, prob.flatten(1).amax(dim=1)

    def loss(self, x: torch.Tensor, mask: torch.Tensor, label: torch.Tensor, pos_weight: float = 1.0) -> torch.Tensor:
        pw = torch.tensor(float(pos_weight), device=x.device)
        return F.binary_cross_entropy_with_logits(self.forward(x)[:, 0], mask.float(), pos_weight=pw)


def build_trufor(**kwargs) -> TruFor:
    return TruFor(**kwargs)


def build_segformer(**kwargs) -> SegFormerSeg:
    return SegFormerSeg(**kwargs)
