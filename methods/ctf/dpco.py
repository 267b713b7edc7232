"""Data Performance Consistency Optimization (DPCO): which teacher guides the students.

What the paper states (abstract and summaries, dossier section 2.2): DPCO "identifies the best teacher based on
accumulative labeled loss" over the past training, and that teacher's pseudo-labels guide the other students.
The exact accumulation is not published; our reading, with its knobs:

    A_k <- decay * A_k + l_k        l_k = supervised detection loss of TEACHER k on the current labelled batch
    best = argmin_k A_k             (ties: the lowest pair index)

decay = 1 is the plain running sum ("accumulative"); decay < 1 an exponential forgetting of early iterations.
"""
from __future__ import annotations

from torch import Tensor


def accumulate(accumulated: Tensor, losses: Tensor, decay: float = 1.0) -> Tensor:
    """Updated accumulated labelled losses [K] (float64, so a long run's sum does not lose the small terms)."""
    if not 0.0 < decay <= 1.0:
        raise ValueError(f"DPCO decay must lie in (0, 1], got {decay}")
    return accumulated.double() * decay + losses.detach().double()


def select_best(accumulated: Tensor) -> int:
    """Index of the teacher with the lowest accumulated labelled loss (the first one on ties)."""
    values = accumulated.detach().cpu().tolist()
    return min(range(len(values)), key=lambda k: (values[k], k))


def guide_of(pair: int, best: int | None, guidance: str) -> int:
    """The teacher whose pseudo-labels student `pair` learns from in its unsupervised loss."""
    if best is None or guidance == "add":
        return pair
    return best
