#!/usr/bin/python3
"""Reference runs of small convolutional networks, generated with PyTorch.

Each case trains a small CNN on a small random image data set, so that the losses of every
step and the final parameters cover the forward AND backward pass of each convolution
primitive (convolve2d with padding and with stride, max_pool2d and avg_pool2d with
overlapping windows and with sizes that leave rows out, flatten) next to dense, relu and
tanh. The cases, their nnl models and their PyTorch equivalents are the CASES table below:

    maxpool_sgd    x[1, 9, 9], 3 classes: conv 3x3 padding 1 -> relu -> max_pool 2
                   (9 -> 4: the last row and column are left out) -> conv 3x3 stride 2
                   padding 1 -> relu -> flatten -> dense; SGD(lr=0.02, momentum=0.9)
    avgpool_adam   x[2, 7, 7], 4 classes: conv 3x3 stride 2 padding 2 -> tanh -> avg_pool 2
                   stride 1 (overlapping) -> conv 2x2 padding 1 -> relu -> max_pool 3
                   stride 2 (overlapping) + avg_pool 2 (5 -> 2) -> flatten -> dense -> tanh
                   -> dense; Adam(lr=0.005)
    batchnorm_sgd  x[2, 6, 6], 3 classes: conv 3x3 padding 1 -> batch_norm (per channel,
                   BatchNorm2d) -> relu -> max_pool 2 -> flatten -> dense -> batch_norm (per
                   feature, BatchNorm1d) -> relu -> dense; SGD(lr=0.02); the final
                   parameters include the running means and variances

Both: loss = cross_entropy (mean over the batch), 32 samples, batch = 8, no shuffling,
epochs = 6: 4 steps per epoch, 24 steps.

Files written into tests/reference/cnn/<case>/:
    model.nnl    the nnl script of the run (train keys log_every = 1, shuffle = false)
    data.csv     header x0,...,x{n-1},label: each row one image, its elements in row-major
                 (channel, row, column) order as nnlc reads a CSV row into x[C, H, W]
                 (inputs ~ N(0, 1), labels uniform, from torch.manual_seed(DATA_SEED))
    init.csv     the initial parameters (torch.manual_seed(0), PyTorch's default Conv2d and
                 Linear init, float32), no header, one line per tensor: name,v1,v2,...
                 row-major, in nnlc's names and layouts: a conv2d layer's NAME.W is
                 [F, C, K, K] as PyTorch's weight, a dense layer's NAME.W is PyTorch's
                 weight TRANSPOSED ([in, out])
    losses32.csv header step,loss; the loss of each step on its batch, BEFORE the step's
                 update, training in float32
    final32.csv  the parameters after the 24 steps, float32, in the format of init.csv
    losses64.csv, final64.csv   the same run in float64 (the model converted with
                 .double(), so from the same initial values, on the same data)

data.csv and init.csv hold float32 values written as the shortest decimal that reads back
as the same float64 (Python's repr): the float64 run starts from exactly the float32 run's
numbers. Results are printed with '%.9g' (float32) and '%.17g' (float64).

Besides writing the files the script replays each float64 run with the primitives written
out by hand (naive loops over numpy arrays: convolution by its definition, pooling window
by window, and their gradients likewise; see `naive_*` below) and fails if that disagrees
with PyTorch's, so the references also check the definitions the runtime's naive kernels
follow.

Regenerate (needs PyTorch; Debian: apt-get install python3-torch, then /usr/bin/python3):

    /usr/bin/python3 tests/reference/gen_cnn.py

The output is deterministic: a rerun rewrites the same bytes.
"""

import os
import shutil
import sys

import numpy as np
import torch

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "cnn")
INIT_SEED = 0
DATA_SEED = 20240609
N_SAMPLES = 32
BATCH = 8
EPOCHS = 6

nn = torch.nn


class Net(nn.Module):
    """A Sequential-like module whose forward is the case's `forward(mods, x)`."""

    def __init__(self, layers, forward):
        super().__init__()
        self.names = [name for name, _ in layers]
        for name, mod in layers:
            setattr(self, name.replace(".", "_"), mod)
        self.fwd = forward

    def mod(self, name):
        return getattr(self, name)

    def forward(self, x):
        return self.fwd(self, x, TORCH_OPS)


# The primitives, as the forward functions call them: PyTorch's own, or the naive ones.
class TorchOps:
    conv = staticmethod(lambda x, m, stride, padding:
                        torch.nn.functional.conv2d(x, m.weight, m.bias, stride, padding))
    max_pool = staticmethod(lambda x, size, stride: torch.nn.functional.max_pool2d(x, size,
                                                                                  stride))
    avg_pool = staticmethod(lambda x, size, stride: torch.nn.functional.avg_pool2d(x, size,
                                                                                  stride))


TORCH_OPS = TorchOps()


def fwd_maxpool_sgd(m, x, ops):
    c1 = torch.relu(ops.conv(x, m.c1, 1, 1))
    p1 = ops.max_pool(c1, 2, 2)
    c2 = torch.relu(ops.conv(p1, m.c2, 2, 1))
    return m.output(c2.flatten(1))


def fwd_batchnorm_sgd(m, x, ops):
    a1 = ops.conv(x, m.a1, 1, 1)
    p1 = ops.max_pool(torch.relu(m.n1(a1)), 2, 2)
    h = torch.relu(m.n2(m.h(p1.flatten(1))))
    return m.output(h)


def fwd_avgpool_adam(m, x, ops):
    c1 = torch.tanh(ops.conv(x, m.c1, 2, 2))
    a1 = ops.avg_pool(c1, 2, 1)
    c2 = torch.relu(ops.conv(a1, m.c2, 1, 1))
    p2 = ops.max_pool(c2, 3, 2) + ops.avg_pool(c2, 2, 2)
    h = torch.tanh(m.h(p2.flatten(1)))
    return m.output(h)


CASES = [
    dict(name="maxpool_sgd", shape=(1, 9, 9), classes=3,
         layers=lambda: [("c1", nn.Conv2d(1, 4, 3)), ("c2", nn.Conv2d(4, 6, 3)),
                         ("output", nn.Linear(24, 3))],
         forward=fwd_maxpool_sgd,
         nnl=["    c1 = relu(conv2d(x, 4, 3, padding = 1))                # [4, 9, 9]",
              "    p1 = max_pool(c1)                                      # [4, 4, 4]",
              "    c2 = relu(conv2d(p1, 6, 3, stride = 2, padding = 1))   # [6, 2, 2]",
              "    return dense(flatten(c2), 3)"],
         nnl_opt="sgd(lr = 0.02, momentum = 0.9)",
         make_opt=lambda p: torch.optim.SGD(p, lr=0.02, momentum=0.9, foreach=False)),
    dict(name="avgpool_adam", shape=(2, 7, 7), classes=4,
         layers=lambda: [("c1", nn.Conv2d(2, 5, 3)), ("c2", nn.Conv2d(5, 4, 2)),
                         ("h", nn.Linear(16, 6)), ("output", nn.Linear(6, 4))],
         forward=fwd_avgpool_adam,
         nnl=["    c1 = tanh(conv2d(x, 5, 3, stride = 2, padding = 2))    # [5, 5, 5]",
              "    a1 = avg_pool(c1, size = 2, stride = 1)                # [5, 4, 4]",
              "    c2 = relu(conv2d(a1, 4, 2, padding = 1))               # [4, 5, 5]",
              "    p2 = max_pool(c2, size = 3, stride = 2) + avg_pool(c2) # [4, 2, 2]",
              "    h = tanh(dense(flatten(p2), 6))",
              "    return dense(h, 4)"],
         nnl_opt="adam(lr = 0.005)",
         make_opt=lambda p: torch.optim.Adam(p, lr=0.005, foreach=False)),
    dict(name="batchnorm_sgd", shape=(2, 6, 6), classes=3,
         layers=lambda: [("a1", nn.Conv2d(2, 4, 3)), ("n1", nn.BatchNorm2d(4)),
                         ("h", nn.Linear(36, 8)), ("n2", nn.BatchNorm1d(8)),
                         ("output", nn.Linear(8, 3))],
         forward=fwd_batchnorm_sgd,
         nnl=["    a1 = conv2d(x, 4, 3, padding = 1)                      # [4, 6, 6]",
              "    n1 = batch_norm(a1)                                    # per channel",
              "    p1 = max_pool(relu(n1))                                # [4, 3, 3]",
              "    h = dense(flatten(p1), 8)",
              "    n2 = batch_norm(h)                                     # per feature",
              "    return dense(relu(n2), 3)"],
         nnl_opt="sgd(lr = 0.02)",
         make_opt=lambda p: torch.optim.SGD(p, lr=0.02, foreach=False)),
]


def make_model(c, dtype):
    torch.manual_seed(INIT_SEED)
    return Net(c["layers"](), c["forward"]).to(dtype)


def make_data(c):
    g = torch.Generator().manual_seed(DATA_SEED)
    x = torch.randn((N_SAMPLES,) + c["shape"], generator=g, dtype=torch.float32)
    y = torch.randint(0, c["classes"], (N_SAMPLES,), generator=g)
    return x, y


def nnl_params(model):
    """(name, tensor) in nnlc's names and layouts."""
    out = []
    for name in model.names:
        m = model.mod(name)
        if isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d)):
            # nnl's batch_norm layer: gamma, beta, then the running statistics
            out += [(name + ".gamma", m.weight.detach()), (name + ".beta", m.bias.detach()),
                    (name + ".running_mean", m.running_mean.detach()),
                    (name + ".running_var", m.running_var.detach())]
            continue
        w = m.weight.detach()
        out.append((name + ".W", w if isinstance(m, nn.Conv2d) else w.t().contiguous()))
        out.append((name + ".b", m.bias.detach()))
    return out


def flat(model):
    return [v for _, t in nnl_params(model) for v in t.reshape(-1).tolist()]


def param_lines(model, fmt):
    return [",".join([name] + [fmt(v) for v in t.reshape(-1).tolist()])
            for name, t in nnl_params(model)]


def batches(x, y):
    for _ in range(EPOCHS):
        for i in range(0, N_SAMPLES, BATCH):
            yield x[i:i + BATCH], y[i:i + BATCH]


def train_torch(c, x, y, dtype, ops=None):
    global TORCH_OPS
    saved = TORCH_OPS
    TORCH_OPS = ops or saved
    try:
        model = make_model(c, dtype)
        opt = c["make_opt"](model.parameters())
        losses = []
        for xb, yb in batches(x.to(dtype), y):
            opt.zero_grad()
            loss = torch.nn.functional.cross_entropy(model(xb), yb)
            loss.backward()
            opt.step()
            losses.append(loss.item())
    finally:
        TORCH_OPS = saved
    return losses, model


# ---- the primitives by their definitions (float64 numpy loops) ----
# Shapes per batch: x [B, C, H, W], w [F, C, K, K], out [B, F, OH, OW] with
# OH = (H + 2P - K) // S + 1; pooling windows size x size every stride, no padding.

def naive_conv_fwd(x, w, b, s, p):
    B, C, H, W = x.shape
    F, _, K, _ = w.shape
    xp = np.zeros((B, C, H + 2 * p, W + 2 * p))
    xp[:, :, p:p + H, p:p + W] = x
    OH, OW = (H + 2 * p - K) // s + 1, (W + 2 * p - K) // s + 1
    out = np.zeros((B, F, OH, OW))
    for i in range(OH):
        for j in range(OW):
            patch = xp[:, :, i * s:i * s + K, j * s:j * s + K]      # [B, C, K, K]
            out[:, :, i, j] = np.einsum("bckl,fckl->bf", patch, w) + b
    return out


def naive_conv_bwd(x, w, s, p, dout):
    B, C, H, W = x.shape
    F, _, K, _ = w.shape
    xp = np.zeros((B, C, H + 2 * p, W + 2 * p))
    xp[:, :, p:p + H, p:p + W] = x
    dxp, dw = np.zeros_like(xp), np.zeros_like(w)
    for i in range(dout.shape[2]):
        for j in range(dout.shape[3]):
            patch = xp[:, :, i * s:i * s + K, j * s:j * s + K]
            g = dout[:, :, i, j]                                       # [B, F]
            dw += np.einsum("bf,bckl->fckl", g, patch)
            dxp[:, :, i * s:i * s + K, j * s:j * s + K] += np.einsum("bf,fckl->bckl", g, w)
    return dxp[:, :, p:p + H, p:p + W], dw, dout.sum(axis=(0, 2, 3))


def naive_pool_fwd(x, size, s, kind):
    B, C, H, W = x.shape
    OH, OW = (H - size) // s + 1, (W - size) // s + 1
    out = np.zeros((B, C, OH, OW))
    for i in range(OH):
        for j in range(OW):
            win = x[:, :, i * s:i * s + size, j * s:j * s + size]
            out[:, :, i, j] = win.max(axis=(2, 3)) if kind == "max" else win.mean(axis=(2, 3))
    return out


def naive_pool_bwd(x, size, s, kind, dout):
    dx = np.zeros_like(x)
    for i in range(dout.shape[2]):
        for j in range(dout.shape[3]):
            win = x[:, :, i * s:i * s + size, j * s:j * s + size]
            g = dout[:, :, i, j][:, :, None, None]
            if kind == "max":
                # the first maximum of the window, in row-major order, takes the gradient
                flat_win = win.reshape(win.shape[0], win.shape[1], -1)
                first = flat_win.argmax(axis=2)
                mask = np.zeros_like(flat_win)
                np.put_along_axis(mask, first[:, :, None], 1.0, axis=2)
                dx[:, :, i * s:i * s + size, j * s:j * s + size] += g * mask.reshape(win.shape)
            else:
                dx[:, :, i * s:i * s + size, j * s:j * s + size] += g / (size * size)
    return dx


class NaiveConv(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, w, b, s, p):
        ctx.save_for_backward(x, w)
        ctx.s, ctx.p = s, p
        return torch.from_numpy(naive_conv_fwd(x.numpy(), w.numpy(), b.numpy(), s, p))

    @staticmethod
    def backward(ctx, dout):
        x, w = ctx.saved_tensors
        dx, dw, db = naive_conv_bwd(x.numpy(), w.numpy(), ctx.s, ctx.p, dout.numpy())
        return torch.from_numpy(dx), torch.from_numpy(dw), torch.from_numpy(db), None, None


class NaivePool(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, size, s, kind):
        ctx.save_for_backward(x)
        ctx.size, ctx.s, ctx.kind = size, s, kind
        return torch.from_numpy(naive_pool_fwd(x.numpy(), size, s, kind))

    @staticmethod
    def backward(ctx, dout):
        (x,) = ctx.saved_tensors
        return (torch.from_numpy(naive_pool_bwd(x.numpy(), ctx.size, ctx.s, ctx.kind,
                                                dout.numpy())), None, None, None)


class NaiveOps:
    conv = staticmethod(lambda x, m, stride, padding:
                        NaiveConv.apply(x, m.weight, m.bias, stride, padding))
    max_pool = staticmethod(lambda x, size, stride: NaivePool.apply(x, size, stride, "max"))
    avg_pool = staticmethod(lambda x, size, stride: NaivePool.apply(x, size, stride, "avg"))


# ---- output ----

def fmt32(v):
    return "%.9g" % float(v)


def fmt64(v):
    return "%.17g" % float(v)


def exact(v):
    """The shortest decimal that reads back as this float64 (repr): for a float32 value it
    reads back exactly both as a float32 and as a float64."""
    return repr(float(v))


def max_rel(a, b, floor):
    return max(abs(u - v) / max(abs(u), abs(v), floor) for u, v in zip(a, b))


def write(path, lines):
    with open(path, "w", newline="\n") as f:
        for line in lines:
            f.write(line + "\n")


def model_nnl(c, torch_desc):
    shape = ", ".join(str(d) for d in c["shape"])
    return [
        "# %s: generated by tests/reference/gen_cnn.py; PyTorch: %s" % (c["name"], torch_desc),
        'data d = csv("data.csv", target = "label")',
        "",
        "model net(x[%s]) {" % shape,
    ] + c["nnl"] + [
        "}",
        "",
        "train net {",
        "    data      = d",
        "    loss      = cross_entropy",
        "    optimizer = %s" % c["nnl_opt"],
        "    epochs    = %d" % EPOCHS,
        "    batch     = %d" % BATCH,
        "    shuffle   = false",
        "    log_every = 1",
        "}",
    ]


def torch_desc(c):
    opt = c["make_opt"]([torch.nn.Parameter(torch.zeros(1))])
    d = {k: v for k, v in opt.defaults.items()
         if k in ("lr", "momentum", "betas", "eps", "weight_decay")}
    return "%s(%s)" % (type(opt).__name__, ", ".join("%s=%r" % kv for kv in d.items()))


def main():
    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True)
    ok = True
    if os.path.isdir(OUT):
        shutil.rmtree(OUT)
    for c in CASES:
        x, y = make_data(c)
        n = int(np.prod(c["shape"]))
        data = [",".join("x%d" % i for i in range(n)) + ",label"] + [
            ",".join([exact(v) for v in x[i].reshape(-1).tolist()] + [str(int(y[i]))])
            for i in range(N_SAMPLES)]
        out = os.path.join(OUT, c["name"])
        os.makedirs(out)
        write(os.path.join(out, "model.nnl"), model_nnl(c, torch_desc(c)))
        write(os.path.join(out, "data.csv"), data)
        write(os.path.join(out, "init.csv"), param_lines(make_model(c, torch.float32), exact))
        runs = {}
        for dtype, bits, fmt in ((torch.float32, 32, fmt32), (torch.float64, 64, fmt64)):
            losses, model = train_torch(c, x, y, dtype)
            runs[bits] = (losses, model)
            write(os.path.join(out, "losses%d.csv" % bits),
                  ["step,loss"] + ["%d,%s" % (i + 1, fmt(v)) for i, v in enumerate(losses)])
            write(os.path.join(out, "final%d.csv" % bits), param_lines(model, fmt))
        # the primitives by their definitions vs PyTorch's, float64
        naive_losses, naive_model = train_torch(c, x, y, torch.float64, NaiveOps())
        losses64, model64 = runs[64]
        e_loss = max_rel(losses64, naive_losses, 1e-300)
        e_par = max_rel(flat(model64), flat(naive_model), 1e-3)
        good = e_loss < 1e-10 and e_par < 1e-10
        ok = ok and good
        e32 = max_rel(flat(runs[32][1]), flat(model64), 1e-2)
        print("%-14s loss %.4f -> %.4f | naive primitives vs torch (f64): losses %.1e, "
              "params %.1e | f32 vs f64 params %.1e%s"
              % (c["name"], losses64[0], losses64[-1], e_loss, e_par, e32,
                 "" if good else "  MISMATCH"))
    print("torch %s; wrote %d cases into %s" % (torch.__version__, len(CASES), OUT))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
