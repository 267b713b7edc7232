"""MGSR's span-level loss: inside each span, the correlation between adjacent tokens' probability vectors must
agree between teacher and student.

What the paper fixes (papers-other 3.3 (c) [S]): spans come from an off-the-shelf chunker; the correlation of
adjacent tokens i, i+1 is the Hadamard product p_i * p_{i+1} of their probability vectors; the loss is the L2
distance between the teacher's and the student's correlation vectors. Open, ours [I], configurable:

* the chunker works on tokens. A token is a *boundary* when its text (stripped, lower-cased) is empty
  (whitespace or newline), made only of punctuation, or a stop word; spans are the maximal runs of response
  tokens between boundaries ("phrase", the default, close to the noun/verb-phrase chunks the reviewers
  describe). "sentence" breaks only at sentence-final punctuation and newlines (the Punkt-style sentence
  chunks the ICLR version cites); "window:k" cuts the response into fixed windows of k tokens;
* the distance is the squared L2 norm summed over the vocabulary ("l2sq", default) or its square root
  ("l2"), averaged over all adjacent pairs inside spans in the batch (0 when there is none).
"""
from __future__ import annotations

import re
import string
from typing import Any, Sequence

import torch
import torch.nn.functional as F

from bench.registry import BenchError

# A short English stop-word list (articles, pronouns, auxiliaries, prepositions, conjunctions): our choice.
STOP_WORDS = frozenset("""
a an the and or but nor so yet if then else of to in on at by for with from into onto upon about over under
as than that this these those it its is are was were be been being am do does did has have had not no
i you he she we they me him her us them my your his our their which who whom whose what when where why how
""".split())
SENTENCE_END = frozenset(".!?")
CHUNKERS = ("phrase", "sentence", "window")
DISTANCES = ("l2sq", "l2")


def parse_chunker(spec: str) -> tuple[str, int]:
    name, _, arg = spec.partition(":")
    if name not in CHUNKERS:
        raise BenchError(f"span chunker must be one of phrase, sentence, window:K; got {spec!r}")
    if name == "window":
        if not arg.isdigit() or int(arg) < 2:
            raise BenchError(f"span chunker window:K needs an integer K >= 2, got {spec!r}")
        return name, int(arg)
    return name, 0


def token_is_boundary(text: str, chunker: str = "phrase") -> bool:
    stripped = text.strip()
    if not stripped or "\n" in text:
        return True
    if chunker == "sentence":
        return stripped[-1] in SENTENCE_END
    if all(ch in string.punctuation for ch in stripped):
        return True
    word = re.sub(rf"[{re.escape(string.punctuation)}]", "", stripped.lower())
    return word in STOP_WORDS


def boundary_table(tokenizer: Any, chunker: str = "phrase") -> torch.Tensor:
    """bool [V]: is each vocabulary token a span boundary (computed once per tokenizer)."""
    name, _ = parse_chunker(chunker)
    if name == "window":
        return torch.zeros(len(tokenizer), dtype=torch.bool)
    texts = [tokenizer.decode([i]) for i in range(len(tokenizer))]
    table = torch.tensor([token_is_boundary(t, name) for t in texts], dtype=torch.bool)
    for special in getattr(tokenizer, "all_special_ids", []):
        table[special] = True
    return table


def span_pairs(tokens: torch.Tensor, response: torch.Tensor, boundary: torch.Tensor,
               chunker: str = "phrase") -> torch.Tensor:
    """[B, T-1] mask of adjacent pairs (t, t+1) that lie inside one span.

    tokens: [B, T] the token predicted at each position (labels); response: [B, T] 1 on trained positions;
    boundary: bool [V] from boundary_table.
    """
    name, width = parse_chunker(chunker)
    inside = response.bool() & ~boundary[tokens.clamp_min(0)]
    pairs = inside[:, :-1] & inside[:, 1:]
    if name == "window":   # positions count from each row's first response token
        index = response.long().cumsum(-1) - 1
        same_window = (index[:, :-1] // width) == (index[:, 1:] // width)
        pairs = response.bool()[:, :-1] & response.bool()[:, 1:] & same_window
    return pairs


def span_loss(teacher_logits: torch.Tensor, student_logits: torch.Tensor, pairs: torch.Tensor,
              distance: str = "l2sq") -> torch.Tensor:
    """Mean over in-span adjacent pairs of distance(p_t * p_t+1 [teacher], q_t * q_t+1 [student])."""
    if distance not in DISTANCES:
        raise BenchError(f"span distance must be one of {', '.join(DISTANCES)}, got {distance!r}")
    if not bool(pairs.any()):
        return student_logits.sum() * 0.0   # keeps the graph (and DDP) happy when a batch has no pair
    p = F.softmax(teacher_logits.float(), -1)
    q = F.softmax(student_logits.float(), -1)
    rows, cols = torch.nonzero(pairs, as_tuple=True)
    corr_t = p[rows, cols] * p[rows, cols + 1]
    corr_s = q[rows, cols] * q[rows, cols + 1]
    sq = (corr_t - corr_s).pow(2).sum(-1)
    per_pair = sq if distance == "l2sq" else sq.clamp_min(1e-24).sqrt()
    return per_pair.mean()


def pair_count(texts: Sequence[str], chunker: str = "phrase") -> int:
    """Adjacent in-span pairs of a list of token texts (a readable check of the chunker)."""
    name, width = parse_chunker(chunker)
    if name == "window":
        return sum(1 for i in range(len(texts) - 1) if i // width == (i + 1) // width)
    inside = [not token_is_boundary(t, name) for t in texts]
    return sum(1 for a, b in zip(inside, inside[1:]) if a and b)
