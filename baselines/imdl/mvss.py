"""MVSS-Net (Chen et al., ICCV 2021; Dong et al., TPAMI 2022) at the official shapes.

Layout of dong03/MVSS-Net's ``mvssnet.py`` as IMDLBenCo re-hosts it (``model_zoo/mvss_net/mvssnet.py``), read not copied:
- ``model``: a ResNet-50 whose layer4 keeps stride 1 and dilates its blocks with rates (1, 2, 4) (DeepLab-v3 style;
  output stride 16); the ImageNet ``fc`` stays in the module (and in the checkpoint) although unused;
- edge-supervised branch: ``sobel_x{k}``/``sobel_y{k}`` (fixed Sobel conv from the stage's channels to 1, then BN),
  ``erb_db_{1-4}`` (ERB from 256/512/1024/2048 channels to nclass) and ``erb_trans_{1-3}`` (ERB nclass -> nclass);
  an ERB is conv1x1 -> (conv3x3 -> BN -> ReLU -> conv3x3) residual -> ReLU;
- noise-sensitive branch: ``constrain_conv`` (BayarConv2d, 1 -> 3 channels, 5x5, parameter ``kernel`` [1, 3, 24]; the
  centre tap is fixed to -1 and the others are normalised to sum 1) on the grey image, then ``noise_extractor`` (a
  second dilated ResNet-50, under ``noise_extractor.model``);
- ``head``: DANet's dual attention head on the concatenated last features (2048 + 2048): conv_p1/conv_c1 (3x3, /4
  channels, BN, ReLU), position attention ``pam`` (conv_b, conv_c at C/8, conv_d, scalar alpha), channel attention
  ``cam`` (scalar beta), conv_p2/conv_c2, ``out`` (Dropout, 1x1 conv to nclass).
The pixel map is sigmoid(head output), upsampled to the input; the image score is its global max (MVSS-Net's GMP).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

SOBEL_X = ((1.0, 0.0, -1.0), (2.0, 0.0, -2.0), (1.0, 0.0, -1.0))
SOBEL_Y = ((1.0, 2.0, 1.0), (0.0, 0.0, 0.0), (-1.0, -2.0, -1.0))


class Bottleneck(nn.Module):
    expansion = 4

    def __init__(self, inplanes: int, planes: int, stride: int = 1, downsample: nn.Module | None = None, rate: int = 1):
        super().__init__()
        self.conv1 = nn.Conv2d(inplanes, planes, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride, padding=rate, dilation=rate, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv3 = nn.Conv2d(planes, planes * 4, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(planes * 4)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return self.relu(out + (x if self.downsample is None else self.downsample(x)))


class DilatedResNet(nn.Module):
    """ResNet with a stride-1, dilated (1, 2, 4) layer4. ``width`` 64 and layers (3, 4, 6, 3) is ResNet-50."""

    def __init__(self, layers=(3, 4, 6, 3), width: int = 64, n_input: int = 3, num_classes: int = 1000,
                 stem_stride: int = 4):
        super().__init__()
        if stem_stride not in (1, 2, 4):
            raise ValueError(f"stem_stride must be 1, 2 or 4 (official), got {stem_stride}")
        self.inplanes = width
        # stem_stride 4 is the official stem (stride-2 conv, stride-2 max-pool); 2 drops the pool's stride and 1 the
        # conv's too. No parameter changes (the state-dict layout is the same); a smoke knob, see MVSSNet.
        self.conv1 = nn.Conv2d(n_input, width, 7, 1 if stem_stride == 1 else 2, 3, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(3, 2, 1) if stem_stride == 4 else nn.Identity()
        self.layer1 = self._layer(width, layers[0])
        self.layer2 = self._layer(width * 2, layers[1], stride=2)
        self.layer3 = self._layer(width * 4, layers[2], stride=2)
        self.layer4 = self._layer(width * 8, layers[3], stride=1, rates=(1, 2, 4))
        self.fc = nn.Linear(width * 8 * 4, num_classes)  # unused, kept for the checkpoint layout

    def _layer(self, planes: int, blocks: int, stride: int = 1, rates: tuple[int, ...] | None = None) -> nn.Sequential:
        downsample = None
        if stride != 1 or self.inplanes != planes * 4:
            downsample = nn.Sequential(nn.Conv2d(self.inplanes, planes * 4, 1, stride, bias=False),
                                       nn.BatchNorm2d(planes * 4))
        layers = [Bottleneck(self.inplanes, planes, stride, downsample)]
        self.inplanes = planes * 4
        for i in range(1, blocks):
            layers.append(Bottleneck(self.inplanes, planes, rate=rates[i % len(rates)] if rates else 1))
        return nn.Sequential(*layers)

    def features(self, x: torch.Tensor) -> list[torch.Tensor]:
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        feats = []
        for layer in (self.layer1, self.layer2, self.layer3, self.layer4):
            x = layer(x)
            feats.append(x)
        return feats


class _Backbone(nn.Module):
    """The official wrapper: the ResNet sits under ``.model``."""

    def __init__(self, **kw):
        super().__init__()
        self.model = DilatedResNet(**kw)


class ERB(nn.Module):
    def __init__(self, cin: int, cout: int):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 1)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1)
        self.bn = nn.BatchNorm2d(cout)
        self.conv3 = nn.Conv2d(cout, cout, 3, 1, 1)

    def forward(self, x: torch.Tensor, relu: bool = True) -> torch.Tensor:
        x = self.conv1(x)
        out = x + self.conv3(F.relu(self.bn(self.conv2(x))))
        return F.relu(out) if relu else out


def sobel_pair(cin: int) -> tuple[nn.Sequential, nn.Sequential]:
    pair = []
    for taps in (SOBEL_X, SOBEL_Y):
        conv = nn.Conv2d(cin, 1, 3, 1, 1, bias=False)
        conv.weight = nn.Parameter(torch.tensor(taps).expand(1, cin, 3, 3).clone(), requires_grad=False)
        pair.append(nn.Sequential(conv, nn.BatchNorm2d(1)))
    return pair[0], pair[1]


class BayarConv2d(nn.Module):
    """Constrained conv: per filter the 24 free taps are normalised to sum 1, the centre tap is -1."""

    def __init__(self, in_channels: int = 1, out_channels: int = 3, kernel_size: int = 5, padding: int = 2):
        super().__init__()
        self.in_channels, self.out_channels, self.k, self.padding = in_channels, out_channels, kernel_size, padding
        self.kernel = nn.Parameter(torch.rand(in_channels, out_channels, kernel_size ** 2 - 1))

    def constrained_kernel(self) -> torch.Tensor:
        free = self.kernel / self.kernel.sum(dim=2, keepdim=True)
        centre = self.k ** 2 // 2
        minus1 = -torch.ones(self.in_channels, self.out_channels, 1, dtype=free.dtype, device=free.device)
        full = torch.cat((free[:, :, :centre], minus1, free[:, :, centre:]), dim=2)
        return full.reshape(self.out_channels, self.in_channels, self.k, self.k)  # the official memory order

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.conv2d(x, self.constrained_kernel(), padding=self.padding)


class PositionAttention(nn.Module):
    def __init__(self, c: int):
        super().__init__()
        self.conv_b = nn.Conv2d(c, c // 8, 1)
        self.conv_c = nn.Conv2d(c, c // 8, 1)
        self.conv_d = nn.Conv2d(c, c, 1)
        self.alpha = nn.Parameter(torch.zeros(1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, h, w = x.shape
        att = torch.bmm(self.conv_b(x).flatten(2).transpose(1, 2), self.conv_c(x).flatten(2)).softmax(dim=-1)
        e = torch.bmm(self.conv_d(x).flatten(2), att.transpose(1, 2)).reshape(b, c, h, w)
        return self.alpha * e + x


class ChannelAttention(nn.Module):
    def __init__(self):
        super().__init__()
        self.beta = nn.Parameter(torch.zeros(1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, h, w = x.shape
        a = x.flatten(2)
        energy = torch.bmm(a, a.transpose(1, 2))
        att = (energy.amax(dim=-1, keepdim=True) - energy).softmax(dim=-1)
        return self.beta * torch.bmm(att, a).reshape(b, c, h, w) + x


def _conv_bn_relu(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(True))


class DAHead(nn.Module):
    def __init__(self, cin: int, nclass: int):
        super().__init__()
        inter = cin // 4
        self.conv_p1, self.conv_c1 = _conv_bn_relu(cin, inter), _conv_bn_relu(cin, inter)
        self.pam, self.cam = PositionAttention(inter), ChannelAttention()
        self.conv_p2, self.conv_c2 = _conv_bn_relu(inter, inter), _conv_bn_relu(inter, inter)
        self.out = nn.Sequential(nn.Dropout(0.1), nn.Conv2d(inter, nclass, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.out(self.conv_p2(self.pam(self.conv_p1(x))) + self.conv_c2(self.cam(self.conv_c1(x))))


def rgb2gray(x: torch.Tensor) -> torch.Tensor:
    # the official weights: channel 0 is treated as blue and channel 2 as red (an RGB input gets 0.114 R + 0.587 G
    # + 0.2989 B); kept, since the checkpoint was trained with it
    return (0.2989 * x[:, 2] + 0.5870 * x[:, 1] + 0.1140 * x[:, 0])[:, None]


class MVSSNet(nn.Module):
    """forward(x [B, 3, H, W]) -> dict(mask_logits [B, 1, H, W], edge_logits [B, 1, H, W])."""

    def __init__(self, layers=(3, 4, 6, 3), width: int = 64, nclass: int = 1, stem_stride: int = 4):
        super().__init__()
        self.model = DilatedResNet(layers, width, stem_stride=stem_stride)
        c = [width * 4 * m for m in (1, 2, 4, 8)]
        for k in range(4):
            setattr(self, f"erb_db_{k + 1}", ERB(c[k], nclass))
        for k in range(3):
            setattr(self, f"erb_trans_{k + 1}", ERB(nclass, nclass))
        for k in range(4):
            sx, sy = sobel_pair(c[k])
            setattr(self, f"sobel_x{k + 1}", sx)
            setattr(self, f"sobel_y{k + 1}", sy)
        self.noise_extractor = _Backbone(layers=layers, width=width, stem_stride=stem_stride)
        self.constrain_conv = BayarConv2d(1, 3, 5, padding=2)
        self.head = DAHead(c[3] * 2, nclass)

    def _sobel(self, k: int, x: torch.Tensor) -> torch.Tensor:
        gx, gy = getattr(self, f"sobel_x{k}")(x), getattr(self, f"sobel_y{k}")(x)
        return torch.sigmoid(torch.sqrt(gx ** 2 + gy ** 2)) * x

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        size = x.shape[2:]
        c1, c2, c3, c4 = self.model.features(x)

        def up(t: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
            return F.interpolate(t, size=like.shape[2:], mode="bilinear", align_corners=True)

        res = self.erb_db_1(self._sobel(1, c1))
        res = self.erb_trans_1(res + up(self.erb_db_2(self._sobel(2, c2)), res))
        res = self.erb_trans_2(res + up(self.erb_db_3(self._sobel(3, c3)), res))
        res = self.erb_trans_3(res + up(self.erb_db_4(self._sobel(4, c4)), res), relu=False)
        noise = self.noise_extractor.model.features(self.constrain_conv(rgb2gray(x)))[-1]
        mask = self.head(torch.cat((c4, noise), dim=1))
        return {"mask_logits": F.interpolate(mask, size, mode="bilinear", align_corners=True),
                "edge_logits": F.interpolate(res, size, mode="bilinear", align_corners=True)}

    def predict(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        prob = torch.sigmoid(self.forward(x)["mask_logits"])[:, 0]
        return prob, prob.flatten(1).amax(dim=1)

    def loss(self, x: torch.Tensor, mask: torch.Tensor, label: torch.Tensor, edge: torch.Tensor,
             seg_loss: str = "dice", pos_weight: float = 1.0) -> torch.Tensor:
        """MVSS-Net's loss with image labels (if_label): 0.16 seg(mask) + 0.04 BCE(GMP score, label) + 0.8 dice(edge).

        ``seg_loss`` "dice" is the official mask term; "bce" replaces it by the BCE of the mask logits with
        manipulated pixels weighted ``pos_weight`` (the segmentation loss the other entries use; a smoke knob)."""
        out = self.forward(x)
        pm, pe = torch.sigmoid(out["mask_logits"]), torch.sigmoid(out["edge_logits"])
        score = pm.flatten(1).amax(dim=1)
        clf = F.binary_cross_entropy(score.clamp(1e-6, 1 - 1e-6), label.float())
        if seg_loss == "dice":
            seg = dice_loss(pm, mask)
        elif seg_loss == "bce":
            seg = F.binary_cross_entropy_with_logits(out["mask_logits"][:, 0], mask.float(),
                                                     pos_weight=torch.tensor(float(pos_weight), device=x.device))
        else:
            raise ValueError(f"seg_loss must be 'dice' or 'bce', got {seg_loss!r}")
        return 0.16 * seg + 0.04 * clf + 0.8 * dice_loss(pe, edge)


def dice_loss(out: torch.Tensor, gt: torch.Tensor, smooth: float = 1.0) -> torch.Tensor:
    out, gt = out.reshape(-1), gt.reshape(-1).float()
    return 1.0 - (2.0 * (gt * out).sum() + smooth) / ((gt ** 2).sum() + (out ** 2).sum() + smooth)


def build_mvss(**kwargs) -> MVSSNet:
    return MVSSNet(**kwargs)
