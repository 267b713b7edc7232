"""LIPT's high-frequency re-parameterisation conv (the "Rep-Conv 3x3" inside every HRM unit).

At training time one 3x3 convolution is the sum of six parallel branches (DBB-style, extended with two
isotropic Sobel branches that favour high-frequency detail):

1. ``dbb_origin``   3x3 conv -> BN
2. ``dbb_1x1``      1x1 conv -> BN
3. ``dbb_avg``      1x1 conv -> BN (border filled with the BN's output for a zero input) -> 3x3 average
                    pool -> BN
4. ``dbb_1x1_kxk``  identity-initialised 1x1 conv -> BN (same border fill) -> 3x3 conv -> BN
5. ``dbb_sobelx``   1x1 conv with bias (border filled with that bias) -> fixed depthwise isotropic Sobel-x
                    mask times a learnable per-channel scale, plus a learnable bias
6. ``dbb_sobely``   the same with the Sobel-y mask

Because every intermediate border is filled with exactly the value a zero input would produce, the sum is
*exactly* one 3x3 convolution of the zero-padded input; :meth:`RepConv3x3.fused_kernel_bias` computes it
(in float64, BN in inference form). Attribute names follow the official code (Lucien66/LIPT
``models/diversebranchblock.py``) so its training checkpoints load unchanged.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

# Isotropic Sobel masks (centre weight sqrt(2) instead of 2), as in the official code: Sobel-x has the
# positive column on the left, Sobel-y the positive row on top.
_R2 = math.sqrt(2.0)
SOBEL_X = ((1.0, 0.0, -1.0), (_R2, 0.0, -_R2), (1.0, 0.0, -1.0))
SOBEL_Y = ((1.0, _R2, 1.0), (0.0, 0.0, 0.0), (-1.0, -_R2, -1.0))

# The learnable Sobel scale and bias start as N(0, SOBEL_INIT_STD^2), the official initialisation.
SOBEL_INIT_STD = 1e-3


# ---------------------------------------------------------------------------------------------------
# Fusion algebra (all on float64 tensors; callers cast the result back).
# ---------------------------------------------------------------------------------------------------
def bn_scale_shift(bn: nn.BatchNorm2d) -> tuple[torch.Tensor, torch.Tensor]:
    """Inference-form BN as y = x * scale + shift (running statistics)."""
    std = (bn.running_var.double() + bn.eps).sqrt()
    gamma = bn.weight.double() if bn.weight is not None else torch.ones_like(std)
    beta = bn.bias.double() if bn.bias is not None else torch.zeros_like(std)
    scale = gamma / std
    return scale, beta - bn.running_mean.double() * scale


def fuse_conv_bn(kernel: torch.Tensor, bn: nn.BatchNorm2d) -> tuple[torch.Tensor, torch.Tensor]:
    """Kernel and bias of ``bn(conv(x, kernel))`` for a bias-free conv."""
    scale, shift = bn_scale_shift(bn)
    return kernel.double() * scale.view(-1, 1, 1, 1), shift


def embed_1x1(kernel: torch.Tensor, size: int = 3) -> torch.Tensor:
    """A 1x1 kernel placed at the centre of a ``size`` x ``size`` kernel."""
    pad = (size - kernel.shape[-1]) // 2
    return F.pad(kernel, [pad, pad, pad, pad])


def compose_1x1_then_kxk(k1: torch.Tensor, b1: torch.Tensor, k2: torch.Tensor, b2: torch.Tensor
                         ) -> tuple[torch.Tensor, torch.Tensor]:
    """Kernel and bias of conv_k2(conv_k1(x) + b1) + b2, where the intermediate border holds b1.

    k1: [M, I, 1, 1], k2: [O, M, k, k]. Exact only because the intermediate map is padded with its bias.
    """
    kernel = torch.einsum("omhw,mi->oihw", k2, k1[:, :, 0, 0])
    bias = b2 + torch.einsum("omhw,m->o", k2, b1)
    return kernel, bias


def average_kernel(channels: int, size: int = 3) -> torch.Tensor:
    """Per-channel ``size`` x ``size`` average pooling written as a dense conv kernel."""
    kernel = torch.zeros(channels, channels, size, size, dtype=torch.float64)
    kernel[torch.arange(channels), torch.arange(channels)] = 1.0 / size**2
    return kernel


# ---------------------------------------------------------------------------------------------------
# Training-time branches
# ---------------------------------------------------------------------------------------------------
def _pad_with(x: torch.Tensor, value: torch.Tensor, pixels: int) -> torch.Tensor:
    """Pad by ``pixels`` on every side with a per-channel constant ``value`` [C]."""
    v = value.view(1, -1, 1, 1)
    return F.pad(x - v, [pixels] * 4) + v


class BNAndPad(nn.Module):
    """BN whose output border is filled with the BN's response to a zero input.

    The fill uses the running statistics (as the official code does); in eval mode this is exactly the value
    a zero-padded input would produce, which is what makes the branch fusable.
    """

    def __init__(self, channels: int, pad_pixels: int):
        super().__init__()
        self.bn = nn.BatchNorm2d(channels)
        self.pad_pixels = pad_pixels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.bn(x)
        if self.pad_pixels == 0:
            return out
        _, shift = bn_scale_shift(self.bn)
        return _pad_with(out, shift.to(out.dtype).detach(), self.pad_pixels)


class ConvBN(nn.Sequential):
    """Bias-free conv followed by BN (keys ``conv.*``, ``bn.*``)."""

    def __init__(self, in_ch: int, out_ch: int, kernel_size: int):
        super().__init__()
        self.add_module("conv", nn.Conv2d(in_ch, out_ch, kernel_size, padding=kernel_size // 2, bias=False))
        self.add_module("bn", nn.BatchNorm2d(out_ch))


class IdentityInitConv1x1(nn.Module):
    """1x1 conv parameterised as identity + a zero-initialised residual weight (needs in == out)."""

    def __init__(self, channels: int):
        super().__init__()
        self.weight = nn.Parameter(torch.zeros(channels, channels, 1, 1))
        self.register_buffer("identity", torch.eye(channels).view(channels, channels, 1, 1), persistent=False)

    def kernel(self) -> torch.Tensor:
        return self.weight + self.identity

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.conv2d(x, self.kernel())


class SobelBranch(nn.Module):
    """1x1 conv (with bias) -> fixed depthwise isotropic Sobel mask x learnable scale, + learnable bias."""

    def __init__(self, in_ch: int, out_ch: int, mask: tuple[tuple[float, ...], ...]):
        super().__init__()
        conv = nn.Conv2d(in_ch, out_ch, 1)  # default init for the 1x1 projection, as in the official code
        self.k0 = nn.Parameter(conv.weight.detach().clone())
        self.b0 = nn.Parameter(conv.bias.detach().clone())
        self.scale = nn.Parameter(torch.randn(out_ch, 1, 1, 1) * SOBEL_INIT_STD)
        self.bias = nn.Parameter(torch.randn(out_ch) * SOBEL_INIT_STD)
        # Fixed, not trained: a buffer (the official code stores it as a frozen Parameter under the same key).
        self.register_buffer("mask", torch.tensor(mask).expand(out_ch, 1, 3, 3).clone())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y0 = F.conv2d(x, self.k0, self.b0)
        y0 = _pad_with(y0, self.b0, 1)  # border = bias, so the composition is one exact 3x3 conv
        return F.conv2d(y0, self.scale * self.mask, self.bias, groups=y0.shape[1])

    def fused_kernel_bias(self) -> tuple[torch.Tensor, torch.Tensor]:
        depthwise = (self.scale.double() * self.mask.double())[:, 0]  # [O, 3, 3]
        kernel = self.k0.double()[:, :, 0, 0, None, None] * depthwise[:, None]  # [O, I, 3, 3]
        bias = self.bias.double() + self.b0.double() * depthwise.sum(dim=(1, 2))
        return kernel, bias


class RepConv3x3(nn.Module):
    """Six-branch training-time 3x3 conv (stride 1, padding 1) that fuses into one plain ``nn.Conv2d``."""

    def __init__(self, in_ch: int, out_ch: int):
        super().__init__()
        self.in_channels, self.out_channels = in_ch, out_ch
        self.dbb_origin = ConvBN(in_ch, out_ch, 3)
        self.dbb_1x1 = ConvBN(in_ch, out_ch, 1)
        self.dbb_avg = nn.Sequential()
        self.dbb_avg.add_module("conv", nn.Conv2d(in_ch, out_ch, 1, bias=False))
        self.dbb_avg.add_module("bn", BNAndPad(out_ch, pad_pixels=1))
        self.dbb_avg.add_module("avg", nn.AvgPool2d(3, stride=1, padding=0))
        self.dbb_avg.add_module("avgbn", nn.BatchNorm2d(out_ch))
        # The 1x1 -> 3x3 branch keeps in_ch internal channels, so its first conv starts as the identity.
        self.dbb_1x1_kxk = nn.Sequential()
        self.dbb_1x1_kxk.add_module("idconv1", IdentityInitConv1x1(in_ch))
        self.dbb_1x1_kxk.add_module("bn1", BNAndPad(in_ch, pad_pixels=1))
        self.dbb_1x1_kxk.add_module("conv2", nn.Conv2d(in_ch, out_ch, 3, padding=0, bias=False))
        self.dbb_1x1_kxk.add_module("bn2", nn.BatchNorm2d(out_ch))
        self.dbb_sobelx = SobelBranch(in_ch, out_ch, SOBEL_X)
        self.dbb_sobely = SobelBranch(in_ch, out_ch, SOBEL_Y)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (self.dbb_origin(x) + self.dbb_1x1(x) + self.dbb_avg(x) + self.dbb_1x1_kxk(x)
                + self.dbb_sobelx(x) + self.dbb_sobely(x))

    @torch.no_grad()
    def fused_kernel_bias(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Kernel [out, in, 3, 3] and bias [out] (float64) of the equivalent plain conv (BN in eval form)."""
        k_origin, b_origin = fuse_conv_bn(self.dbb_origin.conv.weight, self.dbb_origin.bn)

        k_1x1, b_1x1 = fuse_conv_bn(self.dbb_1x1.conv.weight, self.dbb_1x1.bn)
        k_1x1 = embed_1x1(k_1x1)

        k_a1, b_a1 = fuse_conv_bn(self.dbb_avg.conv.weight, self.dbb_avg.bn.bn)
        k_a2, b_a2 = fuse_conv_bn(average_kernel(self.out_channels).to(k_a1.device), self.dbb_avg.avgbn)
        k_avg, b_avg = compose_1x1_then_kxk(k_a1, b_a1, k_a2, b_a2)

        k_s1, b_s1 = fuse_conv_bn(self.dbb_1x1_kxk.idconv1.kernel(), self.dbb_1x1_kxk.bn1.bn)
        k_s2, b_s2 = fuse_conv_bn(self.dbb_1x1_kxk.conv2.weight, self.dbb_1x1_kxk.bn2)
        k_seq, b_seq = compose_1x1_then_kxk(k_s1, b_s1, k_s2, b_s2)

        k_sx, b_sx = self.dbb_sobelx.fused_kernel_bias()
        k_sy, b_sy = self.dbb_sobely.fused_kernel_bias()

        kernel = k_origin + k_1x1 + k_avg + k_seq + k_sx + k_sy
        bias = b_origin + b_1x1 + b_avg + b_seq + b_sx + b_sy
        return kernel, bias

    def to_conv(self) -> nn.Conv2d:
        """A new plain 3x3 conv equal to this block in eval mode (same dtype and device)."""
        ref = self.dbb_origin.conv.weight
        conv = nn.Conv2d(self.in_channels, self.out_channels, 3, padding=1).to(device=ref.device, dtype=ref.dtype)
        kernel, bias = self.fused_kernel_bias()
        with torch.no_grad():
            conv.weight.copy_(kernel.to(ref.dtype))
            conv.bias.copy_(bias.to(ref.dtype))
        return conv


def fold_conv_bn(conv: nn.Conv2d, bn: nn.BatchNorm2d) -> tuple[torch.Tensor, torch.Tensor]:
    """Kernel and bias (float64) of ``bn(conv(x))`` for a conv that may carry its own bias."""
    scale, shift = bn_scale_shift(bn)
    kernel = conv.weight.double() * scale.view(-1, 1, 1, 1)
    bias = shift if conv.bias is None else shift + conv.bias.double() * scale
    return kernel, bias
