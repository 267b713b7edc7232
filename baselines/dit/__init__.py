"""DiT baseline (facebookresearch/DiT): the model at official shapes and its checkpoint loader."""
