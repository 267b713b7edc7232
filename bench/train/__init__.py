"""The shared training and sampling runtime: one loop for every paper's recipe.

Training
--------
::

    from bench.train import TrainConfig, Hook, train

    cfg = TrainConfig(steps=400_000, batch_size=256, lr=1e-4, optimizer="adamw", ema_decay=0.9999,
                      ckpt_every=10_000)
    def loss_fn(model, batch):                  # batch: already on the device
        x, y = batch
        return diffusion_loss(model, x, y)      # a scalar tensor, or (scalar, {"extra": value, ...})
    def evaluate(state):                        # state.step, state.model, state.ema_model, state.rank ...
        return {"fid_smoke": compute(state.ema_model)}
    result = train(model, loss_fn, (images, labels), cfg, out_dir, resume=True,
                   hooks=[Hook(every=50_000, fn=evaluate)])
    result.model, result.ema_model, result.step, result.last_checkpoint, result.log_path, result.events

* ``loss_fn`` gets the DDP/compile-wrapped model: call it for the forward pass (that is what makes DDP
  average the gradients); reach other methods through ``getattr(model, "module", model)``. It runs under
  autocast; its extras are logged (rank 0's values).

* ``cfg.batch_size`` is the GLOBAL batch per optimizer step; each of the ``world`` ranks runs
  ``grad_accum`` micro-steps of ``batch_size / (world * grad_accum)`` items.
* data: a tensor, a tuple/list/dict of tensors, or a map-style dataset (+ ``collate_fn``). Epoch orders are
  seeded by ``(cfg.seed, epoch)`` and dealt to ranks as torch's DistributedSampler does (`data.BatchStream`).
* Optimisers adamw / adam / sgd; schedules constant, cosine, linear, step, each after an optional linear
  warm-up (`optim.LRSchedule`); gradient clipping by global norm; EMA with plain, "copy for N steps" or
  EDM ramp-up warm-up (`ema.EMA`); ``precision`` auto = bf16 autocast on GPU, fp32 on CPU (fp16 uses a
  GradScaler); TF32 on GPU; ``torch.use_deterministic_algorithms`` on CPU.
* Randomness: each rank seeds python/numpy/torch from ``(cfg.seed, rank)``; loss functions draw from the
  global generators, which checkpoints carry per rank. Hooks run with those generators saved and restored.
* Outputs in ``out_dir``: ``train_config.json``, ``train_log.jsonl`` (one line per ``log_every`` steps:
  step, loss (mean over ranks and micro-steps), lr used by the step, grad_norm (before clipping),
  step_time_s, the loss_fn extras; hook results as ``{"step", "event", ...}``), and
  ``checkpoints/step_XXXXXXXX.pt`` every ``ckpt_every`` steps and at the end (the newest
  ``keep_checkpoints`` kept).
* Progress: a rich bar (loss, steps/s, ETA) on rank 0 when stdout is a terminal; ``cfg.progress`` forces it.

Checkpoints and resume (`checkpoint`)
-------------------------------------
Written atomically (temp file, fsync, ``os.replace``); they hold model, EMA, optimiser, scheduler, grad
scaler, step, data position and every rank's RNG states. ``train(..., resume=True)`` continues from the
newest checkpoint (or ``resume=path``); on CPU a run killed at any moment and resumed ends with the same
weights, bit for bit, as an uninterrupted one. Log lines written after that checkpoint are dropped.
``resume=False`` with checkpoints present is an error rather than a silent overwrite. ``stop_after=N``
checkpoints and leaves at step N (for time-limited jobs). `load_for_eval(model, path)` loads EMA weights for
evaluation. Errors, each a one-line `BenchError`: another architecture (first missing/extra key or the two
shapes), a truncated or corrupt file, a changed config field on resume, a non-finite loss (the step and the
last good checkpoint).

Distributed (`bench.distributed`)
---------------------------------
``train`` joins the torchrun process group by itself and wraps the model in DDP when ``world > 1``.
`bench.distributed.launch(nproc, target, args)` runs torchrun; see that module for sharding by index,
per-sample seeds and gathering to rank 0. Slurm: `slurm.build_slurm_job` / `slurm.submit_slurm`.

Sampling (`sampling`)
---------------------
`NFECounter` (NFE accounting for any denoiser), `ShardStore` + `generate_shards` (batched generation to an
on-disk, atomically written, manifest-described shard store, resumable by missing shards with any number of
processes; samples depend only on ``(base_seed, index)``).
"""
from bench.train.checkpoint import atomic_save, latest_checkpoint, load_file, load_for_eval, load_model_state
from bench.train.config import TrainConfig
from bench.train.ema import EMA
from bench.train.loop import Hook, TrainResult, TrainState, train
from bench.train.optim import LRSchedule, build_optimizer, build_scheduler
from bench.train.progress import read_log
from bench.train.sampling import NFECounter, ShardStore, generate_shards

__all__ = [
    "EMA", "Hook", "LRSchedule", "NFECounter", "ShardStore", "TrainConfig", "TrainResult", "TrainState",
    "atomic_save", "build_optimizer", "build_scheduler", "generate_shards", "latest_checkpoint", "load_file",
    "load_for_eval", "load_model_state", "read_log", "train",
]
