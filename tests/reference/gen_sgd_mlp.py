#!/usr/bin/python3
"""Reference runs of SGD with momentum on a small MLP, generated with PyTorch.

The nnl model these runs are equivalent to:

    model net(x[4]) {
        h = tanh(dense(x, 6))
        return dense(h, 3)
    }

trained with loss = cross_entropy (mean over the batch), batch = 4, no shuffling,
epochs = 5 (16 samples, so 20 steps), float32. In PyTorch: Linear(4, 6) -> tanh ->
Linear(6, 3), CrossEntropyLoss(), torch.optim.SGD.

Runs (one directory each):
    sgd_mlp/        SGD(lr=0.1,  momentum=0.9, dampening=0, weight_decay=0.01,  nesterov=False)
    sgd_nesterov/   SGD(lr=0.05, momentum=0.9, dampening=0, weight_decay=0.001, nesterov=True)

Files written into each directory:
    data.csv    header x0,x1,x2,x3,label; the 16 samples (inputs ~ N(0, 1) and labels in
                0..2 from torch.manual_seed(DATA_SEED)), batches are rows 1-4, 5-8, ...
    init.csv    the initial parameters (torch.manual_seed(0), PyTorch's default nn.Linear
                init), no header, one line per tensor: name,v1,v2,... in row-major order,
                named and laid out as nnlc does: h.W [4, 6], h.b [6], output.W [6, 3],
                output.b [3]. nnlc computes x @ W, PyTorch x @ weight.T, so the W lines are
                PyTorch's weights TRANSPOSED.
    losses.csv  header step,loss; the loss of each step on that step's batch, computed
                BEFORE the step's update (steps count from 1).
    final.csv   the parameters after the 20 steps, in the format of init.csv.
data.csv and init.csv are the same in both directories.

Every number is printed with '%.9g', which round-trips a float32 exactly.

Regenerate (needs PyTorch; Debian: apt-get install python3-torch, then the system python,
which is the one that can import Debian's torch):

    /usr/bin/python3 tests/reference/gen_sgd_mlp.py

The output is deterministic: a rerun rewrites the same bytes. The committed files were made
with PyTorch 1.13 (Debian bookworm's python3-torch) on x86-64. Besides writing the files the
script replays each run in float64 with the update rule written out by hand (the PyTorch
rule in docs/optimizers.md, i.e. what an nnl `optimizer` body computes) and fails if
that disagrees with torch.optim.SGD, so the references also check the documented rule.
"""

import os
import sys

import torch

HERE = os.path.dirname(os.path.abspath(__file__))
INIT_SEED = 0
DATA_SEED = 20240601
N_SAMPLES = 16
N_IN, N_HIDDEN, N_OUT = 4, 6, 3
BATCH = 4
EPOCHS = 5

RUNS = [
    ("sgd_mlp", dict(lr=0.1, momentum=0.9, dampening=0.0, weight_decay=0.01, nesterov=False)),
    ("sgd_nesterov", dict(lr=0.05, momentum=0.9, dampening=0.0, weight_decay=0.001, nesterov=True)),
]


def fmt(v):
    return "%.9g" % float(v)


def make_model():
    torch.manual_seed(INIT_SEED)
    return torch.nn.Sequential(
        torch.nn.Linear(N_IN, N_HIDDEN),
        torch.nn.Tanh(),
        torch.nn.Linear(N_HIDDEN, N_OUT),
    )


def make_data():
    g = torch.Generator().manual_seed(DATA_SEED)
    x = torch.randn(N_SAMPLES, N_IN, generator=g, dtype=torch.float32)
    y = torch.randint(0, N_OUT, (N_SAMPLES,), generator=g)
    return x, y


def nnl_params(model):
    """(name, tensor) in nnlc's names and layouts."""
    l1, l2 = model[0], model[2]
    return [
        ("h.W", l1.weight.detach().t().contiguous()),
        ("h.b", l1.bias.detach()),
        ("output.W", l2.weight.detach().t().contiguous()),
        ("output.b", l2.bias.detach()),
    ]


def write(path, lines):
    with open(path, "w", newline="\n") as f:
        for line in lines:
            f.write(line + "\n")


def param_lines(model):
    return [",".join([name] + [fmt(v) for v in t.reshape(-1).tolist()])
            for name, t in nnl_params(model)]


def batches(x, y):
    for _ in range(EPOCHS):
        for i in range(0, N_SAMPLES, BATCH):
            yield x[i:i + BATCH], y[i:i + BATCH]


def train_torch(x, y, hp):
    model = make_model()
    init = param_lines(model)
    opt = torch.optim.SGD(model.parameters(), **hp)
    loss_fn = torch.nn.CrossEntropyLoss()
    losses = []
    for xb, yb in batches(x, y):
        opt.zero_grad()
        loss = loss_fn(model(xb), yb)
        loss.backward()
        opt.step()
        losses.append(loss.item())
    return init, losses, param_lines(model), model


def train_by_hand(x, y, hp):
    """The same run in float64 with the update rule of docs/optimizers.md."""
    model = make_model().double()
    params = list(model.parameters())
    bufs = [None] * len(params)
    lr, mu, tau, wd, nesterov = (hp["lr"], hp["momentum"], hp["dampening"],
                                 hp["weight_decay"], hp["nesterov"])
    losses = []
    for xb, yb in batches(x.double(), y):
        for p in params:
            p.grad = None
        logits = model(xb)
        # cross_entropy(logits, label) = logsumexp(logits) - pick(logits, label), batch mean
        per_sample = torch.logsumexp(logits, dim=1) - logits.gather(1, yb[:, None])[:, 0]
        loss = per_sample.mean()
        loss.backward()
        with torch.no_grad():
            for i, p in enumerate(params):
                g = p.grad + wd * p
                if mu != 0:
                    bufs[i] = g.clone() if bufs[i] is None else mu * bufs[i] + (1 - tau) * g
                    g = g + mu * bufs[i] if nesterov else bufs[i]
                p -= lr * g
        losses.append(loss.item())
    return losses, model


def max_rel(a, b):
    # Relative, but absolute below 0.01: float32 round-off is about 1e-7 absolute, so a
    # parameter that ends near zero differs from float64 by a large relative amount.
    return max(abs(u - v) / max(abs(u), abs(v), 0.01) for u, v in zip(a, b))


def main():
    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True)
    x, y = make_data()
    data = ["x0,x1,x2,x3,label"] + [
        ",".join([fmt(v) for v in x[i].tolist()] + [str(int(y[i]))]) for i in range(N_SAMPLES)]
    ok = True
    for name, hp in RUNS:
        init, losses, final, model = train_torch(x, y, hp)
        out = os.path.join(HERE, name)
        os.makedirs(out, exist_ok=True)
        write(os.path.join(out, "data.csv"), data)
        write(os.path.join(out, "init.csv"), init)
        write(os.path.join(out, "losses.csv"),
              ["step,loss"] + ["%d,%s" % (i + 1, fmt(l)) for i, l in enumerate(losses)])
        write(os.path.join(out, "final.csv"), final)

        ref_losses, ref_model = train_by_hand(x, y, hp)
        got = [v for _, t in nnl_params(model) for v in t.reshape(-1).tolist()]
        ref = [v for _, t in nnl_params(ref_model) for v in t.reshape(-1).tolist()]
        el, ep = max_rel(losses, ref_losses), max_rel(got, ref)
        good = el < 1e-5 and ep < 1e-5
        ok = ok and good
        print("%s: loss %s -> %s; float64 hand-written rule vs torch: max rel diff "
              "losses %.2e, params %.2e%s" % (name, fmt(losses[0]), fmt(losses[-1]), el, ep,
                                               "" if good else "  MISMATCH"))
    print("torch %s; wrote %s" % (torch.__version__, ", ".join(n for n, _ in RUNS)))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
