"""LLM knowledge-distillation baselines of MGSR (SFT, KD, SeqKD, ImitKD, GKD, MiniLLM, DistiLLM) on one loop.

divergences  token-level losses (forward/reverse/symmetric KL, generalised JSD, TVD, skew KLs)
objectives   SFT, KD, SeqKD, ImitKD, GKD;  distillm: DistiLLM (+ replay buffer, adaptive schedule);
             minillm: MiniLLM's policy-gradient reverse KL
module       DistillModule: student + objective as one trainable module for bench.train
data         records -> token sequences -> batches (MiniLLM's processing rules)
sampling     batched KV-cache sampling for training-time generation
models       GPT-2 configs, the paper's pairs, local tokenizer training, HF folders
pipeline     training with validation-based checkpoint selection, shared cached artifacts
evaluation   the papers' protocol as an lm-eval generate_until task
"""
