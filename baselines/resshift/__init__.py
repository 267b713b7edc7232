"""ResShift (Yue et al., NeurIPS 2023): residual-shifting diffusion for SR, the teacher of SinSR and TAD-SR."""
