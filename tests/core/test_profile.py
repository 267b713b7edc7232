"""Cost accounting conventions: MACs of linear, conv and attention by hand; parameters; latency record."""
from __future__ import annotations

import torch
import torch.nn.functional as F

from bench.profile import count_macs, count_params, latency


def test_attention_macs_on_cpu_match_the_hand_count():
    q = k = v = torch.randn(2, 3, 16, 8)  # batch 2, 3 heads, 16 tokens, 8 dims
    # q k^T and attn v: two matmuls of 16x16x8 multiply-adds per head and batch
    assert count_macs(lambda a, b, c: F.scaled_dot_product_attention(a, b, c), q, k, v) == 2 * 2 * 3 * 16 * 16 * 8


def test_linear_and_conv_macs_and_params():
    lin = torch.nn.Linear(10, 5)
    assert count_macs(lin, torch.randn(4, 10)) == 4 * 10 * 5
    conv = torch.nn.Conv2d(3, 8, 3, padding=1, bias=False)
    assert count_macs(conv, torch.randn(1, 3, 16, 16)) == 16 * 16 * 8 * 3 * 9
    assert count_params(conv) == 8 * 3 * 9
    conv.weight.requires_grad_(False)
    assert count_params(conv) == 0 and count_params(conv, trainable_only=False) == 216


def test_latency_record_shape():
    calls = []
    rec = latency(lambda: calls.append(1), warmup=2, repeats=5)
    assert len(calls) == 7 and rec["repeats"] == 5 and rec["median_ms"] >= 0 and rec["iqr_ms"] >= 0
