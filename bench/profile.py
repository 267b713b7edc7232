"""Cost accounting: parameters, MACs, latency.

MACs follow the convention of DiT/U-DiT (torchprofile): multiply-accumulates of linear, conv and matmul
(attention included), nothing for norms, activations or element-wise ops. They are counted with torch's
FlopCounterMode, whose matmul/conv/attention FLOPs are 2 x MACs.
"""
from __future__ import annotations

import statistics
import time
from typing import Any, Callable

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode


def _extra_flop_formulas() -> dict[Any, Any]:
    """On CPU, SDPA dispatches to a flash kernel that FlopCounterMode does not count; count it like SDPA."""
    from torch.utils.flop_counter import sdpa_flop_count

    op = getattr(torch.ops.aten, "_scaled_dot_product_flash_attention_for_cpu", None)
    if op is None:
        return {}

    def flash_cpu_flops(query, key, value, *args, out_shape=None, **kwargs):
        return sdpa_flop_count(query, key, value)  # FlopCounterMode passes shapes here

    return {op: flash_cpu_flops}


def count_params(model: nn.Module, trainable_only: bool = True) -> int:
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)


@torch.no_grad()
def count_macs(model: nn.Module | Callable[..., Any], *inputs: Any, **kwargs: Any) -> int:
    """MACs of one call ``model(*inputs, **kwargs)``."""
    counter = FlopCounterMode(display=False, custom_mapping=_extra_flop_formulas())
    with counter:
        model(*inputs, **kwargs)
    return counter.get_total_flops() // 2


def latency(fn: Callable[[], Any], warmup: int = 3, repeats: int = 20, device: str = "cpu") -> dict[str, float]:
    """Median and inter-quartile range of ``fn()`` wall time in ms (CUDA events on GPU, after warm-up)."""
    for _ in range(warmup):
        fn()
    times: list[float] = []
    if device.startswith("cuda"):
        for _ in range(repeats):
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            fn()
            end.record()
            torch.cuda.synchronize()
            times.append(start.elapsed_time(end))
    else:
        for _ in range(repeats):
            t0 = time.perf_counter()
            fn()
            times.append((time.perf_counter() - t0) * 1e3)
    q = statistics.quantiles(times, n=4) if len(times) >= 2 else [times[0]] * 3
    return {"median_ms": statistics.median(times), "iqr_ms": q[2] - q[0], "repeats": len(times), "device": device}
