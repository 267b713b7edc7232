"""Token-level divergences between a teacher distribution p and a student distribution q over the vocabulary.

Every function takes logits of shape [..., V] (teacher first, student second) and a mask of shape [...]
(1 on the response tokens that are trained, 0 on prompt and padding) and returns the masked mean over
tokens, as MiniLLM/DistiLLM do (sum over tokens / number of tokens; not per sequence).

Conventions, read in DistiLLM's distillm/losses.py (our own code):
* forward KL is used in its cross-entropy form  -sum_v p log q  (the teacher entropy is a constant for the
  student; ``exact=True`` adds it back so the value is the true KL(p || q) >= 0);
* logits are finite (no vocabulary entry is masked to -inf), so p log q needs no 0 * log 0 guard there;
* JSD(lam) mixes m = (1 - lam) p + lam q and returns  lam KL(q || m) + (1 - lam) KL(p || m)
  (GKD's generalised JSD with beta = 1 - lam; the recipes use lam = 0.9);
* skew forward KL (DistiLLM's SFKL) is the cross entropy of p against m = a p + (1 - a) q;
* skew reverse KL (SRKL) is  sum_v q (log q - log m')  with m' = (1 - a) p + a q; a = 0.1.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F


def masked_token_mean(values: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean of per-token values over the positions where mask is 1 (0 when the mask is empty)."""
    mask = mask.to(values.dtype)
    return (values * mask).sum() / mask.sum().clamp_min(1.0)


def _logp(logits: torch.Tensor) -> torch.Tensor:
    return F.log_softmax(logits.float(), dim=-1)


def _xlogy(p: torch.Tensor, logq: torch.Tensor) -> torch.Tensor:
    """p * log q with 0 * (-inf) = 0 (a masked-out vocabulary entry contributes nothing)."""
    return torch.where(p > 0, p * logq, torch.zeros_like(p))


def kl_per_token(logp: torch.Tensor, logq: torch.Tensor) -> torch.Tensor:
    """KL(p || q) per position from log-probabilities, [..., V] -> [...]."""
    p = logp.exp()
    return (_xlogy(p, logp) - _xlogy(p, logq)).sum(-1)


def forward_kl(teacher_logits: torch.Tensor, student_logits: torch.Tensor, mask: torch.Tensor,
               exact: bool = False) -> torch.Tensor:
    """Word-level KD: -sum p log q per token (exact=True: KL(p || q), which adds the teacher entropy)."""
    logp, logq = _logp(teacher_logits), _logp(student_logits)
    p = logp.exp()
    # finite logits give p > 0 and finite log q everywhere, so the plain product needs no 0 * log 0 guard
    per_token = -(p * (logq - logp if exact else logq)).sum(-1)
    return masked_token_mean(per_token, mask)


def reverse_kl(teacher_logits: torch.Tensor, student_logits: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """KL(q || p) = sum q (log q - log p) per token."""
    return masked_token_mean(kl_per_token(_logp(student_logits), _logp(teacher_logits)), mask)


def symmetric_kl(teacher_logits: torch.Tensor, student_logits: torch.Tensor, mask: torch.Tensor,
                 lam: float = 0.9) -> torch.Tensor:
    """(1 - lam) forward KL (cross-entropy form) + lam reverse KL, as DistiLLM's symmetric_kl."""
    return ((1 - lam) * forward_kl(teacher_logits, student_logits, mask)
            + lam * reverse_kl(teacher_logits, student_logits, mask))


def generalized_jsd(teacher_logits: torch.Tensor, student_logits: torch.Tensor, mask: torch.Tensor,
                    lam: float = 0.9) -> torch.Tensor:
    """lam KL(q || m) + (1 - lam) KL(p || m), m = (1 - lam) p + lam q (GKD's JSD(beta = 1 - lam))."""
    if not 0.0 < lam < 1.0:
        raise ValueError(f"generalized_jsd needs 0 < lam < 1 (lam = 0 or 1 makes it identically 0), got {lam}")
    logp, logq = _logp(teacher_logits), _logp(student_logits)
    logm = torch.logaddexp(logp + math.log1p(-lam), logq + math.log(lam))
    per_token = lam * kl_per_token(logq, logm) + (1 - lam) * kl_per_token(logp, logm)
    return masked_token_mean(per_token, mask)


def total_variation(teacher_logits: torch.Tensor, student_logits: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """0.5 sum |p - q| per token."""
    p, q = _logp(teacher_logits).exp(), _logp(student_logits).exp()
    return masked_token_mean(0.5 * (p - q).abs().sum(-1), mask)


def skew_forward_kl(teacher_logits: torch.Tensor, student_logits: torch.Tensor, mask: torch.Tensor,
                    alpha: float = 0.1) -> torch.Tensor:
    """DistiLLM's SFKL: -sum p log(a p + (1 - a) q) per token (cross-entropy form, as its code)."""
    p, q = _logp(teacher_logits).exp(), _logp(student_logits).exp()
    m = alpha * p + (1 - alpha) * q
    return masked_token_mean(-_xlogy(p, torch.log(m)).sum(-1), mask)


def skew_reverse_kl(teacher_logits: torch.Tensor, student_logits: torch.Tensor, mask: torch.Tensor,
                    alpha: float = 0.1) -> torch.Tensor:
    """DistiLLM's SRKL: sum q (log q - log((1 - a) p + a q)) per token."""
    logq = _logp(student_logits)
    p, q = _logp(teacher_logits).exp(), logq.exp()
    m = (1 - alpha) * p + alpha * q
    return masked_token_mean((_xlogy(q, logq) - _xlogy(q, torch.log(m))).sum(-1), mask)


DIVERGENCES = {
    "fkl": forward_kl, "rkl": reverse_kl, "skl": symmetric_kl, "jsd": generalized_jsd, "tvd": total_variation,
    "sfkl": skew_forward_kl, "srkl": skew_reverse_kl,
}
