"""torchrun worker for the 2-process DDP training test. argv: out_dir
a: trains to step 4 (stop_after), then a fresh model resumes to the end; b: uninterrupted; c: no noise or
dropout (comparable with one process)."""
import sys
from pathlib import Path

import torch
from _fixtures import make_loss, resume_config, tiny_net, toy_data

from bench import distributed as D
from bench.train import train

out = Path(sys.argv[1])
info = D.init_distributed()
x, y = toy_data(96)
cfg = resume_config(steps=8, ckpt_every=2)
train(tiny_net(), make_loss(), (x, y), cfg, out / "a", stop_after=4)
a = tiny_net(seed=5)
ra = train(a, make_loss(), (x, y), cfg, out / "a", resume=True)
b = tiny_net()
rb = train(b, make_loss(), (x, y), cfg, out / "b")
c = tiny_net(dropout=0.0)
train(c, make_loss(noise=0.0), (x, y), resume_config(steps=8, ckpt_every=0), out / "c")

flat = torch.cat([p.detach().flatten() for p in b.parameters()])
copies = [torch.empty_like(flat) for _ in range(info.world_size)]
torch.distributed.all_gather(copies, flat)
if info.is_main:
    torch.save({"world": info.world_size, "a": a.state_dict(), "b": b.state_dict(), "c": c.state_dict(),
                "ema_a": ra.ema_model.state_dict(), "ema_b": rb.ema_model.state_dict(),
                "ranks_agree": all(torch.equal(copies[0], t) for t in copies)}, out / "result.pt")
D.destroy()
