"""The instruction path's text side: instruction phrasings per task and a small offline text encoder.

Smoke scale uses a hashed bag of character n-grams (no download, deterministic): each lower-cased, word-padded
n-gram (n = 2..4) is hashed (blake2b, stable across processes, unlike Python's hash) into ``dim`` buckets with a
sign, counts are L2-normalised. Paper scale uses a CLIP text encoder as an asset (:func:`clip_text_encoder`).
Phrasings are split into train (fit the text -> task head) and held-out test phrasings (used at evaluation), so
the text path is exercised on instructions it never saw.
"""
from __future__ import annotations

import hashlib
from functools import lru_cache
from pathlib import Path

import torch

# Instructions are templates filled with a task's keywords. Training phrasings use TRAIN_TEMPLATES, evaluation
# uses HELD_OUT_TEMPLATES (wordings the text head never saw, with the same keywords): the held-out set tests
# generalisation over phrasing, not over synonyms a bag of n-grams cannot know (CLIP at paper scale can).
TASK_KEYWORDS: dict[str, tuple[str, ...]] = {
    "denoise-15": ("light noise", "mild grain"),
    "denoise-25": ("medium noise", "moderate grain"),
    "denoise-50": ("heavy noise", "strong grain"),
    "deblur": ("blur", "blurriness"),
    "derain": ("rain", "rain streaks"),
    "dehaze": ("haze", "fog"),
    "desnow": ("snow", "snowflakes"),
}
TRAIN_TEMPLATES = ("remove the {}", "{} removal please", "get rid of the {} in this picture", "clean up the {}",
                   "please fix the {} in this photo")
HELD_OUT_TEMPLATES = ("erase the {}", "can you take out the {} here")
PHRASINGS: dict[str, tuple[str, ...]] = {
    task: tuple(t.format(k) for t in TRAIN_TEMPLATES + HELD_OUT_TEMPLATES for k in words)
    for task, words in TASK_KEYWORDS.items()}


def phrasings(task: str, split: str) -> tuple[str, ...]:
    if task not in TASK_KEYWORDS:
        raise KeyError(f"no instructions for task {task!r}; known: {', '.join(TASK_KEYWORDS)}")
    templates = TRAIN_TEMPLATES if split == "train" else HELD_OUT_TEMPLATES
    return tuple(t.format(k) for t in templates for k in TASK_KEYWORDS[task])


@lru_cache(maxsize=4096)
def _ngram_bucket(gram: str, dim: int) -> tuple[int, float]:
    digest = hashlib.blake2b(gram.encode(), digest_size=8).digest()
    value = int.from_bytes(digest, "little")
    return value % dim, (1.0 if (value >> 63) & 1 else -1.0)


class HashedNgramEncoder:
    """Text -> [dim] float vector (hashed signed character 2-4-gram counts, L2-normalised). No parameters."""

    def __init__(self, dim: int = 256, n_min: int = 2, n_max: int = 4):
        self.dim, self.n_min, self.n_max = dim, n_min, n_max

    def __call__(self, texts: list[str]) -> torch.Tensor:
        out = torch.zeros(len(texts), self.dim)
        for row, text in enumerate(texts):
            for word in text.lower().split():
                padded = f"<{word}>"
                for n in range(self.n_min, self.n_max + 1):
                    for i in range(len(padded) - n + 1):
                        bucket, sign = _ngram_bucket(padded[i:i + n], self.dim)
                        out[row, bucket] += sign
        return torch.nn.functional.normalize(out, dim=1)


def clip_text_encoder(folder: str | Path):
    """A frozen CLIP text tower (projected, L2-normalised embeddings) from a Hugging Face model folder, read with
    transformers offline (paper scale). The folder is the asset ``clip-vit-b32`` (methods/instruct_ipt/assets.yaml);
    a folder without a CLIP text model is one clear line."""
    from bench.registry import BenchError

    folder = Path(folder)
    if not (folder / "config.json").is_file():
        raise BenchError(f"CLIP text encoder: {folder} holds no config.json (expected a Hugging Face CLIP folder, "
                         f"e.g. openai/clip-vit-base-patch32)")
    from transformers import CLIPTextModelWithProjection, CLIPTokenizer

    tokenizer = CLIPTokenizer.from_pretrained(folder, local_files_only=True)
    model = CLIPTextModelWithProjection.from_pretrained(folder, local_files_only=True).eval()

    @torch.no_grad()
    def encode(texts: list[str]) -> torch.Tensor:
        tokens = tokenizer(list(texts), padding=True, return_tensors="pt")
        return torch.nn.functional.normalize(model(**tokens).text_embeds.float(), dim=1)

    return encode
