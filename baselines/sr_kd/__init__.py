"""Knowledge distillation for super-resolution: staged teacher/student forwards, the generic SR-KD losses
(Logits-KD, FitNet, AT, FAKD) and one distillation wrapper that trains through the shared loop bench.train."""
