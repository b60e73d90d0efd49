"""M's training step at doom-quick's sizes (Doom M, 100-frame chunks, bf16 autocast, synthetic data) for several
batch sizes: frames/s (RESULTS.md, session 11).

    python docs/experiments/mdnrnn_batch_throughput.py
"""
import time, torch, numpy as np
from worldmodels.models.mdnrnn import MDNRNN
from worldmodels.data.sequences import Sequences
from worldmodels.stages.train_mdnrnn import train_step
torch.manual_seed(0)
args = dict(latent_dim=64, action_dim=1, hidden_size=512, num_mixtures=5, restart_input=True, done_head=True, reward_head=False)
for batch in (32, 64, 128, 32):
    model = MDNRNN(**args); opt = torch.optim.Adam(model.parameters(), 1e-3)
    T = 100
    rng = np.random.default_rng(0)
    fields = Sequences._fields
    def make():
        d = dict(mu=rng.normal(size=(batch, T, 64)).astype(np.float32), logvar=np.full((batch, T, 64), -2, np.float32),
                 action=rng.uniform(-1, 1, (batch, T, 1)).astype(np.float32), restart=np.zeros((batch, T), np.float32),
                 done_target=np.zeros((batch, T - 1), np.float32), reward=np.zeros((batch, T), np.float32))
        return Sequences(**{k: d.get(k) for k in fields})
    b = make(); state = None; g = torch.Generator().manual_seed(0)
    times = []
    for i in range(8):
        t = time.perf_counter()
        losses, state = train_step(model, b, state, g, "cpu", 10.0, "bfloat16")
        opt.zero_grad(); losses.loss.backward(); torch.nn.utils.clip_grad_value_(model.parameters(), 1.0); opt.step()
        state = tuple(s.detach() for s in state)
        times.append(time.perf_counter() - t)
    best = np.median(times[2:])
    print(batch, f"{batch * (T - 1) / best:,.0f} frames/s", f"{best*1000:.0f} ms/step")
