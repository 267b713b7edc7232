"""All-in-one image restoration baselines at their official shapes: IPT (multi-head, multi-tail ViT),
AirNet (contrastive degradation encoder + DGRN restorer) and PromptIR (Restormer with prompt blocks)."""
