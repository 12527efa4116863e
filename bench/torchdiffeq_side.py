"""Side-by-side torchdiffeq figures for bench/side.mjs: the two training iterations whose
reference times issues 3 and 5 quote (shared/reference/torchdiffeq_peer.json rows b and c),
re-measured on the machine the benchmark runs on, so that neurode's speed-ups are same-machine
ratios. Prints one JSON object. Run by the benchmark in a separate process; never by the tests.

Needs PyTorch and torchdiffeq: `import torchdiffeq` must work, or TORCHDIFFEQ_PATH must name a
directory holding the `torchdiffeq` package (a checkout of its repository). One thread, as the
reference's "1" rows.

  torchdiffeq_side.py ode_demo {f64|f32} {odeint|adjoint} [seed]   examples/ode_demo.py iteration
  torchdiffeq_side.py cnf {f64|f32} [seed]                          the (c) row's CNF iteration

The seed (default 0, the reference's) seeds torch and numpy: the initial weights and the data.
"""
import json, math, os, statistics, sys, time

if os.environ.get('TORCHDIFFEQ_PATH'):
    sys.path.insert(0, os.environ['TORCHDIFFEQ_PATH'])
import numpy as np
import torch
import torch.nn as nn
import torchdiffeq

if sys.argv[1] == '--probe':  # the imports worked
    sys.exit(0)
torch.set_num_threads(1)
task, dtype_name = sys.argv[1], sys.argv[2]
dtype = torch.float64 if dtype_name == 'f64' else torch.float32
torch.set_default_dtype(dtype)
optional = sys.argv[4:] if task == 'ode_demo' else sys.argv[3:]
seed = int(optional[0]) if optional else 0
torch.manual_seed(seed)
np.random.seed(seed)


def timed(f, opt, iterations, warmup, forward):
    """Runs `iterations` training iterations (`forward()` returns the loss), each timed whole;
    medians of time and NFE after the first `warmup`."""
    times, nfe_f, nfe_b = [], [], []
    for _ in range(iterations):
        t0 = time.perf_counter()
        opt.zero_grad()
        f.nfe = 0
        loss = forward()
        forward_nfe = f.nfe
        loss.backward()
        opt.step()
        times.append((time.perf_counter() - t0) * 1000)
        nfe_f.append(forward_nfe)
        nfe_b.append(f.nfe - forward_nfe)
    med = lambda v: statistics.median(v[warmup:])
    return {'msPerIter': med(times), 'nfeForward': med(nfe_f), 'nfeBackward': med(nfe_b)}


class Counted(nn.Module):
    """Counts right-hand-side calls (NFE) around a module."""

    def __init__(self, net):
        super().__init__()
        self.net, self.nfe = net, 0

    def forward(self, t, y):
        self.nfe += 1
        return self.net(t, y)


def ode_demo(grad):
    # examples/ode_demo.py: spiral truth, 20 windows of 10 points, MLP 2-50-2 tanh on y^3 with
    # N(0, 0.1^2) weights and zero biases, L1 loss, RMSprop 1e-3, dopri5 defaults.
    t = torch.linspace(0., 25., 1000)
    a = torch.tensor([[-0.1, 2.0], [-2.0, -0.1]])
    with torch.no_grad():
        truth = torchdiffeq.odeint(lambda _t, y: torch.mm(y ** 3, a), torch.tensor([[2., 0.]]), t, method='dopri5')

    class Field(nn.Module):
        def __init__(self):
            super().__init__()
            self.mlp = nn.Sequential(nn.Linear(2, 50), nn.Tanh(), nn.Linear(50, 2))
            for m in self.mlp.modules():
                if isinstance(m, nn.Linear):
                    nn.init.normal_(m.weight, mean=0, std=0.1)
                    nn.init.constant_(m.bias, val=0)

        def forward(self, _t, y):
            return self.mlp(y ** 3)

    f = Counted(Field())
    opt = torch.optim.RMSprop(f.parameters(), lr=1e-3)
    solve = torchdiffeq.odeint_adjoint if grad == 'adjoint' else torchdiffeq.odeint

    def forward():
        s = torch.from_numpy(np.random.choice(np.arange(1000 - 10, dtype=np.int64), 20, replace=False))
        target = torch.stack([truth[s + i] for i in range(10)], dim=0)
        return torch.mean(torch.abs(solve(f, truth[s], t[:10]) - target))

    return timed(f, opt, 51, 1, forward)  # 1 warm-up + 50 timed, as the reference


def cnf():
    # The reference's (c) row: two circles (radii 1 and 0.5, noise 0.06), batch 512 of fresh
    # samples, [z, delta-logp] from t = 10 to 0, exact trace by one VJP per dimension, dopri5
    # rtol = atol = 1e-5, adjoint, Adam 1e-3, base N(0, 0.1 I); 2 warm-up + 20 timed iterations.
    rng = np.random.default_rng(seed)

    def circles(n):
        angle = rng.uniform(0, 2 * math.pi, n)
        radius = np.where(np.arange(n) < n // 2, 1.0, 0.5)
        x = np.stack([radius * np.cos(angle), radius * np.sin(angle)], 1) + rng.normal(0, 0.06, (n, 2))
        return torch.tensor(x, dtype=dtype)

    class Field(nn.Module):
        def __init__(self):
            super().__init__()
            self.l1, self.l2, self.l3 = nn.Linear(3, 64), nn.Linear(64, 64), nn.Linear(64, 2)

        def forward(self, t, state):
            z, _ = state
            with torch.set_grad_enabled(True):
                z.requires_grad_(True)
                dz = self.l3(torch.tanh(self.l2(torch.tanh(self.l1(torch.cat([t.expand(z.shape[0], 1), z], 1))))))
                trace = sum(torch.autograd.grad(dz[:, i].sum(), z, create_graph=True)[0][:, i] for i in range(2))
            return dz, -trace.view(-1, 1)

    f = Counted(Field())
    opt = torch.optim.Adam(f.parameters(), lr=1e-3)
    base = torch.distributions.MultivariateNormal(torch.zeros(2), 0.1 * torch.eye(2))

    def forward():
        z, dlogp = torchdiffeq.odeint_adjoint(f, (circles(512), torch.zeros(512, 1)), torch.tensor([10., 0.]), rtol=1e-5, atol=1e-5, method='dopri5')
        return -(base.log_prob(z[-1]) - dlogp[-1].view(-1)).mean()

    return timed(f, opt, 22, 2, forward)


out = ode_demo(sys.argv[3]) if task == 'ode_demo' else cnf()
out.update(task=task, dtype=dtype_name, seed=seed, torch=torch.__version__, python=sys.version.split()[0])
print(json.dumps(out))
