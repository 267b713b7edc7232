"""AirNet (Li et al., CVPR 2022) at the official shape of XLearning-SCU/2022-CVPR-AirNet (`net/*.py`).

Written from the official module tree (names, shapes, data flow read there; code not copied):

* ``E`` (CBDE): a MoCo pair of ResEncoders (``E.E.encoder_q``/``encoder_k``; the key encoder is a momentum
  copy) with a queue of negatives (``E.E.queue`` [dim, K], K = batch_size * dim; ``queue_ptr``). A ResEncoder
  is ``E_pre`` (ResBlock 3 -> C, whose output is the degradation map ``inter``), ``E`` (two stride-2
  ResBlocks C -> 2C -> 4C and a global average pool) and ``mlp`` (4C -> 4C -> 4C). ResBlocks are
  conv-BN-LeakyReLU(0.1)-conv-BN plus a 1x1 conv-BN shortcut, then LeakyReLU.
* ``R`` (DGRN): conv head, ``n_groups`` DGGs of ``n_blocks`` DGBs (+ a conv), a conv, a conv tail. A DGB runs
  DGM -> conv -> DGM -> conv with a residual; a DGM adds a modulated deformable conv (DCNv2; offsets and masks
  from a conv on [feature, inter]) and an SFT (x * gamma(inter) + beta(inter)) to its input.

mmcv's ``modulated_deform_conv2d`` (a CUDA/C++ op) is re-implemented in :func:`modulated_deform_conv` with
``grid_sample`` (DCNv2 arithmetic: per kernel tap, bilinear sampling at the tap's position plus its learned
(dy, dx) offset, zero outside the image, times the tap's mask; the offsets are (dy, dx)-interleaved per tap as
in mmcv). Pure torch, so it runs wherever torch does; tests check it against a per-pixel loop. Training: L1 on the restored image plus the InfoNCE loss of the encoder (``forward`` with a key
view returns both), the encoder-first schedule of the official train.py is the recipe's business.
"""
from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

OFFICIAL: dict[str, Any] = {"n_feats": 64, "n_groups": 5, "n_blocks": 5, "batch_size": 5, "moco_m": 0.999,
                            "moco_t": 0.07}


def _conv(cin: int, cout: int, k: int = 3, bias: bool = True) -> nn.Conv2d:
    return nn.Conv2d(cin, cout, k, padding=k // 2, bias=bias)


def modulated_deform_conv(x: torch.Tensor, offset: torch.Tensor, mask: torch.Tensor, weight: torch.Tensor,
                          padding: int) -> torch.Tensor:
    """DCNv2 (stride 1, dilation 1, one group): x [B,C,H,W], offset [B,2K,H,W] ((dy, dx) per tap, taps in
    row-major kernel order), mask [B,K,H,W], weight [O,C,kh,kw] -> [B,O,H,W] (same size: padding = (k-1)/2)."""
    _, c, h, w = x.shape
    out_c, _, kh, kw = weight.shape
    ys = torch.arange(h, dtype=x.dtype, device=x.device).view(1, h, 1)
    xs = torch.arange(w, dtype=x.dtype, device=x.device).view(1, 1, w)
    sampled = []
    for k in range(kh * kw):
        ky, kx = divmod(k, kw)
        py = ys + (ky - padding) + offset[:, 2 * k]
        px = xs + (kx - padding) + offset[:, 2 * k + 1]
        # normalised to [-1, 1] with align_corners=True: -1 is pixel 0, +1 pixel (size - 1)
        grid = torch.stack([2 * px / max(w - 1, 1) - 1, 2 * py / max(h - 1, 1) - 1], dim=-1)
        tap = F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=True)
        sampled.append(tap * mask[:, k:k + 1])
    cols = torch.stack(sampled, 2)  # [B, C, K, H, W]
    return torch.einsum("bckhw,ock->bohw", cols, weight.reshape(out_c, c, kh * kw))


class DCNLayer(nn.Module):
    """Modulated deformable conv whose offsets and masks come from a conv on [x, inter] (zero-initialised)."""

    def __init__(self, channels: int, kernel: int = 3):
        super().__init__()
        self.kernel, self.padding = kernel, (kernel - 1) // 2
        self.weight = nn.Parameter(torch.empty(channels, channels, kernel, kernel))
        self.register_parameter("bias", None)  # the official DGM builds it with bias=False
        self.conv_offset_mask = nn.Conv2d(2 * channels, 3 * kernel * kernel, kernel, padding=self.padding)
        bound = 1.0 / math.sqrt(channels * kernel * kernel)
        nn.init.uniform_(self.weight, -bound, bound)
        nn.init.zeros_(self.conv_offset_mask.weight)
        nn.init.zeros_(self.conv_offset_mask.bias)

    def forward(self, x: torch.Tensor, inter: torch.Tensor) -> torch.Tensor:
        o1, o2, mask = self.conv_offset_mask(torch.cat([x, inter], 1)).chunk(3, 1)
        return modulated_deform_conv(x, torch.cat([o1, o2], 1), torch.sigmoid(mask), self.weight, self.padding)


class SFTLayer(nn.Module):
    def __init__(self, channels: int):
        super().__init__()
        def branch() -> nn.Sequential:
            return nn.Sequential(nn.Conv2d(channels, channels, 1, bias=False), nn.LeakyReLU(0.1, True),
                                 nn.Conv2d(channels, channels, 1, bias=False))
        self.conv_gamma, self.conv_beta = branch(), branch()

    def forward(self, x: torch.Tensor, inter: torch.Tensor) -> torch.Tensor:
        return x * self.conv_gamma(inter) + self.conv_beta(inter)


class DGM(nn.Module):
    def __init__(self, channels: int):
        super().__init__()
        self.dcn, self.sft = DCNLayer(channels), SFTLayer(channels)

    def forward(self, x: torch.Tensor, inter: torch.Tensor) -> torch.Tensor:
        return x + self.dcn(x, inter) + self.sft(x, inter)


class DGB(nn.Module):
    def __init__(self, channels: int):
        super().__init__()
        self.dgm1, self.dgm2 = DGM(channels), DGM(channels)
        self.conv1, self.conv2 = _conv(channels, channels), _conv(channels, channels)

    def forward(self, x: torch.Tensor, inter: torch.Tensor) -> torch.Tensor:
        out = F.leaky_relu(self.dgm1(x, inter), 0.1)
        out = F.leaky_relu(self.conv1(out), 0.1)
        out = F.leaky_relu(self.dgm2(out, inter), 0.1)
        return self.conv2(out) + x


class DGG(nn.Module):
    def __init__(self, channels: int, n_blocks: int):
        super().__init__()
        self.body = nn.Sequential(*[DGB(channels) for _ in range(n_blocks)], _conv(channels, channels))

    def forward(self, x: torch.Tensor, inter: torch.Tensor) -> torch.Tensor:
        res = x
        for block in self.body[:-1]:
            res = block(res, inter)
        return self.body[-1](res) + x


class DGRN(nn.Module):
    def __init__(self, n_feats: int, n_groups: int, n_blocks: int):
        super().__init__()
        self.head = nn.Sequential(_conv(3, n_feats))
        self.body = nn.Sequential(*[DGG(n_feats, n_blocks) for _ in range(n_groups)], _conv(n_feats, n_feats))
        self.tail = nn.Sequential(_conv(n_feats, 3))

    def forward(self, x: torch.Tensor, inter: torch.Tensor) -> torch.Tensor:
        x = self.head(x)
        res = x
        for group in self.body[:-1]:
            res = group(res, inter)
        return self.tail(self.body[-1](res) + x)


class EncResBlock(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int = 1):
        super().__init__()
        self.backbone = nn.Sequential(nn.Conv2d(cin, cout, 3, stride, 1, bias=False), nn.BatchNorm2d(cout),
                                      nn.LeakyReLU(0.1, True), nn.Conv2d(cout, cout, 3, 1, 1, bias=False),
                                      nn.BatchNorm2d(cout))
        self.shortcut = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.leaky_relu(self.backbone(x) + self.shortcut(x), 0.1)


class ResEncoder(nn.Module):
    def __init__(self, width: int):
        super().__init__()
        self.E_pre = EncResBlock(3, width)
        self.E = nn.Sequential(EncResBlock(width, 2 * width, 2), EncResBlock(2 * width, 4 * width, 2),
                               nn.AdaptiveAvgPool2d(1))
        dim = 4 * width
        self.mlp = nn.Sequential(nn.Linear(dim, dim), nn.LeakyReLU(0.1, True), nn.Linear(dim, dim))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        inter = self.E_pre(x)
        fea = self.E(inter).flatten(1)
        return fea, self.mlp(fea), inter


class MoCo(nn.Module):
    def __init__(self, width: int, queue_size: int, m: float, t: float):
        super().__init__()
        self.m, self.t = m, t
        self.encoder_q, self.encoder_k = ResEncoder(width), ResEncoder(width)
        self.encoder_k.load_state_dict(self.encoder_q.state_dict())
        for p in self.encoder_k.parameters():
            p.requires_grad = False
        dim = 4 * width
        self.register_buffer("queue", F.normalize(torch.randn(dim, queue_size), dim=0))
        self.register_buffer("queue_ptr", torch.zeros(1, dtype=torch.long))

    def forward(self, im_q: torch.Tensor, im_k: torch.Tensor | None = None):
        fea, q, inter = self.encoder_q(im_q)
        if im_k is None:
            return fea, inter, None
        q = F.normalize(q, dim=1)
        with torch.no_grad():
            for pq, pk in zip(self.encoder_q.parameters(), self.encoder_k.parameters(), strict=True):
                pk.mul_(self.m).add_(pq.detach(), alpha=1.0 - self.m)
            k = F.normalize(self.encoder_k(im_k)[1], dim=1)
        logits = torch.cat([(q * k).sum(1, keepdim=True), q @ self.queue.clone().detach()], 1) / self.t
        with torch.no_grad():  # enqueue the keys (wrapping around the queue)
            n, size = k.shape[0], self.queue.shape[1]
            ptr = int(self.queue_ptr)
            idx = (torch.arange(n) + ptr) % size
            self.queue[:, idx] = k.T
            self.queue_ptr[0] = (ptr + n) % size
        return fea, inter, logits


class CBDE(nn.Module):
    def __init__(self, width: int, queue_size: int, m: float, t: float):
        super().__init__()
        self.E = MoCo(width, queue_size, m, t)


class AirNet(nn.Module):
    """``forward(x)`` restores (blind: no task input); ``forward(x, x_key)`` also returns the contrastive logits
    (positive first), for the InfoNCE loss."""

    blind = True

    def __init__(self, n_feats: int = 64, n_groups: int = 5, n_blocks: int = 5, batch_size: int = 5,
                 moco_m: float = 0.999, moco_t: float = 0.07):
        super().__init__()
        self.R = DGRN(n_feats, n_groups, n_blocks)
        # the degradation map ``inter`` has the encoder's first width, which must equal the restorer's
        self.E = CBDE(n_feats, batch_size * 4 * n_feats, moco_m, moco_t)

    def forward(self, x: torch.Tensor, x_key: torch.Tensor | None = None):
        _, inter, logits = self.E.E(x, x_key if self.training else None)
        restored = self.R(x, inter)
        return restored if logits is None else (restored, logits)


def build(variant: str = "official", **overrides: Any) -> AirNet:
    cfg = dict(OFFICIAL) if variant == "official" else {}
    cfg.update(overrides)
    return AirNet(**cfg)
