"""torch-fidelity's Inception-v3 port (the TF 2015-12-05 graph) as a weights file in its official layout, random.

Layout (https://github.com/toshas/torch-fidelity/releases/download/v0.2.0/weights-inception-2015-12-05-6726825d.pth,
the file pytorch-fid also ships as pt_inception-2015-12-05-6726825d.pth): a torch-saved state dict of
torch_fidelity.feature_extractor_inceptionv3.FeatureExtractorInceptionV3, keys ``Conv2d_1a_3x3.conv.weight``
... ``Mixed_7c.branch_pool.bn.running_var``, ``fc.weight`` (1008 x 2048), ``fc.bias``; full size (about 96 MB).
The weights are random (He-initialised convolutions, so that features of different images differ), so its sha256 is not the published one: bench.assets refuses
it in a real run and accepts it, with a warning, inside a rehearsal only (bench.assets.rehearsal_assets).
"""
from __future__ import annotations

from pathlib import Path

FILENAME = "weights-inception-2015-12-05-6726825d.pth"  # the asset's file name (bench/metrics/assets.yaml)


def write_inception_weights(path: Path, seed: int = 0) -> Path:
    """The state dict of a randomly initialised FeatureExtractorInceptionV3, saved as torch-fidelity loads it."""
    import torch
    from torch_fidelity.feature_extractor_inceptionv3 import FeatureExtractorInceptionV3

    class Unloaded(FeatureExtractorInceptionV3):
        """The official module tree without its weights: the constructor's load becomes a no-op."""

        def load_state_dict(self, state_dict, strict=True, assign=False):
            return None

    path.parent.mkdir(parents=True, exist_ok=True)
    empty = path.with_suffix(".empty.pt")
    torch.save({}, empty)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        net = Unloaded("inception-v3-compat", ["2048"], feature_extractor_weights_path=str(empty))
        for module in net.modules():  # He initialisation: features keep their spread through the 90-odd layers
            if isinstance(module, torch.nn.Conv2d):
                torch.nn.init.kaiming_normal_(module.weight, nonlinearity="relu")
    empty.unlink()
    torch.save(net.state_dict(), path)
    return path
