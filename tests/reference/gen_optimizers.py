#!/usr/bin/python3
"""Reference runs of every nnl optimizer and schedule, generated with PyTorch.

Every case trains the same small MLP as gen_sgd_mlp.py,

    model net(x[4]) {
        h = tanh(dense(x, 6))
        return dense(h, 3)
    }

with loss = cross_entropy (mean over the batch) on 20 samples, batch = 4, no shuffling,
epochs = 10: 5 steps per epoch, 50 steps. In PyTorch: Linear(4, 6) -> tanh -> Linear(6, 3),
CrossEntropyLoss(), the torch.optim optimizer of the case and, for a schedule, the
torch.optim.lr_scheduler objects that give the same learning rate at every step.

Each optimizer is run in two settings: (a) with weight decay or its special options, (b)
with a schedule on its learning rate (every schedule of stdlib/schedules.nnl, and products
of two). Two more cases clip the gradient (torch.nn.utils.clip_grad_norm_ /
clip_grad_value_ before each step) and one adds l1 and l2 penalties to the objective.
The cases, their nnl optimizer calls and their PyTorch equivalents are the CASES table below.

Files written into tests/reference/optim/<case>/:
    model.nnl    the nnl script of the run (train keys log_every = 1, shuffle = false,
                 batch = 4, epochs = 10)
    data.csv     header x0,x1,x2,x3,label; the 20 samples (inputs ~ N(0, 1) and labels in
                 0..2 from torch.manual_seed(DATA_SEED)); batches are rows 1-4, 5-8, ...
    init.csv     the initial parameters (torch.manual_seed(0), PyTorch's default nn.Linear
                 init, float32), no header, one line per tensor: name,v1,v2,... row-major,
                 in nnlc's names and layouts (the W lines are PyTorch's weights TRANSPOSED)
    losses32.csv header step,loss; the loss of each step on its batch, BEFORE the step's
                 update, training in float32
    final32.csv  the parameters after the 50 steps, float32, in the format of init.csv
    losses64.csv, final64.csv   the same run in float64 (the model converted with
                 .double(), so from the same initial values, on the same data)
data.csv and init.csv are the same in every directory.

data.csv and init.csv hold float32 values written as the shortest decimal that reads back
as the same float64 (Python's repr), so that they read back exactly both as float32 and as
float64: the float64 run starts from exactly the float32 run's numbers. The results are
printed with '%.9g' (round-trips a float32) and '%.17g' (a float64).

Besides writing the files the script checks, in float64, that
  * the learning rate PyTorch's schedulers give at every step equals the base value times
    the nnl schedule (the functions step_decay ... polynomial below, transcribing
    stdlib/schedules.nnl with `epoch` = completed epochs and `step` = updates so far
    including the current one), to 1e-12;
  * the update rule of each stdlib/optimizers.nnl definition, transcribed line by line in
    NNL_RULES, replays the PyTorch run to 1e-10 relative;
and fails if either disagrees: the references also check the nnl definitions.

Note on NAdam: torch 1.13's default (single-tensor, foreach=False) NAdam computes
mu_product_next = mu_product * mu * mu_next with mu_product already including mu; its
foreach=True path, PyTorch >= 2.0 (pytorch/pytorch#92699) and Dozat's paper use
mu_product * mu_next, as stdlib/optimizers.nnl does. The NAdam references therefore use
foreach=True. The script also runs the single-tensor path and prints how far it is off.

Regenerate (needs PyTorch; Debian: apt-get install python3-torch, then /usr/bin/python3):

    /usr/bin/python3 tests/reference/gen_optimizers.py

The output is deterministic: a rerun rewrites the same bytes.
"""

import math
import os
import shutil
import sys

import torch

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "optim")
INIT_SEED = 0
DATA_SEED = 20240601
N_SAMPLES = 20
N_IN, N_HIDDEN, N_OUT = 4, 6, 3
BATCH = 4
EPOCHS = 10
STEPS_PER_EPOCH = N_SAMPLES // BATCH


# ---- schedules: the nnl definitions of stdlib/schedules.nnl, as functions of
# (epoch = completed epochs, step = updates including the current one) ----

def step_decay(every, gamma=0.1):
    return lambda e, s: gamma ** math.floor(e / every)


def multistep(milestones, gamma=0.1):
    return lambda e, s: gamma ** sum(1 for m in milestones if e >= m)


def exponential(gamma):
    return lambda e, s: gamma ** e


def inverse_time(k):
    return lambda e, s: 1 / (1 + k * e)


def cosine(total, floor=0):
    return lambda e, s: floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * e / total))


def warmup(steps):
    return lambda e, s: min(s / steps, 1)


def polynomial(total, power=1):
    return lambda e, s: (1 - min(e, total) / total) ** power


def product(f, g):
    return lambda e, s: f(e, s) * g(e, s)


def const():
    return lambda e, s: 1.0


# ---- the cases ----
# case(name, nnl optimizer call, nnl rule (NNL_RULES), its hyper-parameters
#      {name: (value, schedule factor)}, torch optimizer constructor,
#      sched(opt) -> ([schedulers stepped after every update], [... after every epoch]),
#      train_extra = extra train-block lines, clip = {norm, value, l1, l2})
O = torch.optim
S = torch.optim.lr_scheduler


def no_sched(opt):
    return [], []


class RpropMaxStep:
    """Rprop's lr only sets the initial step size, so a 'schedule' for it goes on another
    hyper-parameter: step_sizes[1] (nnl max_step) times a factor per epoch."""

    def __init__(self, opt, base, factor):
        self.opt, self.base, self.factor, self.epoch = opt, base, factor, 0
        self._apply()

    def _apply(self):
        for g in self.opt.param_groups:
            g["step_sizes"] = (g["step_sizes"][0], self.base * self.factor(self.epoch, 0))

    def step(self):
        self.epoch += 1
        self._apply()


def case(name, nnl_call, rule, hp, make_opt, sched=no_sched, train_extra=(), clip=None,
         sched_note=""):
    return dict(name=name, nnl_call=nnl_call, rule=rule, hp=hp, make_opt=make_opt,
                sched=sched, train_extra=list(train_extra), clip=clip or {},
                sched_note=sched_note)


def fixed(**kw):
    return {k: (v, const()) for k, v in kw.items()}


CASES = [
    # (a) weight decay and special options
    case("adam_amsgrad", "adam(lr = 0.01, weight_decay = 0.01, amsgrad = true)", "adam",
         fixed(lr=0.01, weight_decay=0.01, amsgrad=True),
         lambda p: O.Adam(p, lr=0.01, weight_decay=0.01, amsgrad=True, foreach=False)),
    case("adamw", "adamw(lr = 0.01, beta1 = 0.8, beta2 = 0.99, weight_decay = 0.1)", "adamw",
         fixed(lr=0.01, beta1=0.8, beta2=0.99, weight_decay=0.1),
         lambda p: O.AdamW(p, lr=0.01, betas=(0.8, 0.99), weight_decay=0.1, foreach=False)),
    case("adagrad_decay",
         "adagrad(lr = 0.1, lr_decay = 0.05, initial_accumulator_value = 0.1, "
         "weight_decay = 0.01)", "adagrad",
         fixed(lr=0.1, lr_decay=0.05, initial_accumulator_value=0.1, weight_decay=0.01),
         lambda p: O.Adagrad(p, lr=0.1, lr_decay=0.05, initial_accumulator_value=0.1,
                             weight_decay=0.01, foreach=False)),
    case("rmsprop_centered",
         "rmsprop(lr = 0.005, alpha = 0.9, momentum = 0.5, centered = true, "
         "weight_decay = 0.01)", "rmsprop",
         fixed(lr=0.005, alpha=0.9, momentum=0.5, centered=True, weight_decay=0.01),
         lambda p: O.RMSprop(p, lr=0.005, alpha=0.9, momentum=0.5, centered=True,
                             weight_decay=0.01, foreach=False)),
    case("adadelta_wd", "adadelta(lr = 1.0, rho = 0.8, weight_decay = 0.01)", "adadelta",
         fixed(lr=1.0, rho=0.8, weight_decay=0.01),
         lambda p: O.Adadelta(p, lr=1.0, rho=0.8, weight_decay=0.01, foreach=False)),
    case("adamax_wd", "adamax(lr = 0.02, weight_decay = 0.01)", "adamax",
         fixed(lr=0.02, weight_decay=0.01),
         lambda p: O.Adamax(p, lr=0.02, weight_decay=0.01, foreach=False)),
    case("nadam_wd", "nadam(lr = 0.01, weight_decay = 0.01)", "nadam",
         fixed(lr=0.01, weight_decay=0.01),
         lambda p: O.NAdam(p, lr=0.01, weight_decay=0.01, foreach=True)),
    case("rprop_etas",
         "rprop(lr = 0.01, etaminus = 0.4, etaplus = 1.3, min_step = 1e-4, max_step = 0.05)",
         "rprop", fixed(lr=0.01, etaminus=0.4, etaplus=1.3, min_step=1e-4, max_step=0.05),
         lambda p: O.Rprop(p, lr=0.01, etas=(0.4, 1.3), step_sizes=(1e-4, 0.05),
                           foreach=False)),
    # (b) a schedule on the learning rate
    case("sgd_step_decay", "sgd(lr = 0.1 * step_decay(3, 0.5), momentum = 0.9)", "sgd",
         {"lr": (0.1, step_decay(3, 0.5)), "momentum": (0.9, const())},
         lambda p: O.SGD(p, lr=0.1, momentum=0.9, foreach=False),
         lambda o: ([], [S.StepLR(o, 3, 0.5)]), sched_note="StepLR(step_size=3, gamma=0.5)"),
    case("adam_cosine", "adam(lr = 0.02 * cosine(8, floor = 0.1))", "adam",
         {"lr": (0.02, cosine(8, 0.1))},
         lambda p: O.Adam(p, lr=0.02, foreach=False),
         lambda o: ([], [S.CosineAnnealingLR(o, T_max=8, eta_min=0.1 * 0.02)]),
         sched_note="CosineAnnealingLR(T_max=8, eta_min=0.1 * lr)"),
    case("adamw_warmup", "adamw(lr = 0.02 * warmup(8))", "adamw",
         {"lr": (0.02, warmup(8))},
         lambda p: O.AdamW(p, lr=0.02, foreach=False),
         lambda o: ([S.LinearLR(o, start_factor=1 / 8, total_iters=7)], []),
         sched_note="LinearLR(start_factor=1/8, total_iters=7), stepped after every update"),
    case("adagrad_exponential", "adagrad(lr = 0.1 * exponential(0.8))", "adagrad",
         {"lr": (0.1, exponential(0.8))},
         lambda p: O.Adagrad(p, lr=0.1, foreach=False),
         lambda o: ([], [S.ExponentialLR(o, 0.8)]), sched_note="ExponentialLR(gamma=0.8)"),
    case("rmsprop_multistep", "rmsprop(lr = 0.005 * multistep([2, 5, 7], 0.5))", "rmsprop",
         {"lr": (0.005, multistep([2, 5, 7], 0.5))},
         lambda p: O.RMSprop(p, lr=0.005, foreach=False),
         lambda o: ([], [S.MultiStepLR(o, [2, 5, 7], 0.5)]),
         sched_note="MultiStepLR(milestones=[2, 5, 7], gamma=0.5)"),
    case("adadelta_inverse_time", "adadelta(lr = 2 * inverse_time(0.5))", "adadelta",
         {"lr": (2.0, inverse_time(0.5))},
         lambda p: O.Adadelta(p, lr=2.0, foreach=False),
         lambda o: ([], [S.LambdaLR(o, lambda e: 1 / (1 + 0.5 * e))]),
         sched_note="LambdaLR(lambda e: 1 / (1 + 0.5 * e))"),
    case("adamax_polynomial", "adamax(lr = 0.05 * polynomial(8, 2))", "adamax",
         {"lr": (0.05, polynomial(8, 2))},
         lambda p: O.Adamax(p, lr=0.05, foreach=False),
         lambda o: ([], [S.PolynomialLR(o, total_iters=8, power=2)]),
         sched_note="PolynomialLR(total_iters=8, power=2)"),
    case("nadam_warmup_step_decay", "nadam(lr = 0.02 * warmup(10) * step_decay(4, 0.5))",
         "nadam", {"lr": (0.02, product(warmup(10), step_decay(4, 0.5)))},
         lambda p: O.NAdam(p, lr=0.02, foreach=True),
         lambda o: ([S.LinearLR(o, start_factor=1 / 10, total_iters=9)], [S.StepLR(o, 4, 0.5)]),
         sched_note="LinearLR(start_factor=1/10, total_iters=9) after every update and "
                    "StepLR(4, 0.5) after every epoch, both on the same optimizer"),
    case("sgd_warmup_cosine", "sgd(lr = 0.1 * warmup(12) * cosine(10), momentum = 0.9, "
         "nesterov = true)", "sgd",
         {"lr": (0.1, product(warmup(12), cosine(10))), "momentum": (0.9, const()),
          "nesterov": (True, const())},
         lambda p: O.SGD(p, lr=0.1, momentum=0.9, nesterov=True, foreach=False),
         lambda o: ([S.LambdaLR(o, lambda s: min((s + 1) / 12, 1) *
                                0.5 * (1 + math.cos(math.pi * (s // STEPS_PER_EPOCH) / 10)))],
                    []),
         sched_note="LambdaLR(lambda s: min((s + 1) / 12, 1) * 0.5 * (1 + cos(pi * (s // 5) "
                    "/ 10))), stepped after every update (5 updates per epoch)"),
    case("rprop_max_step", "rprop(lr = 0.01, max_step = 0.05 * exponential(0.7))", "rprop",
         {"lr": (0.01, const()), "max_step": (0.05, exponential(0.7))},
         lambda p: O.Rprop(p, lr=0.01, step_sizes=(1e-6, 0.05), foreach=False),
         lambda o: ([], [RpropMaxStep(o, 0.05, exponential(0.7))]),
         sched_note="step_sizes = (1e-6, 0.05 * 0.7 ** epoch) set on the param group after "
                    "every epoch (Rprop's lr is only its initial step size)"),
    # gradient terms (train keys)
    case("clip_norm", "sgd(lr = 0.05, momentum = 0.9)", "sgd",
         fixed(lr=0.05, momentum=0.9),
         lambda p: O.SGD(p, lr=0.05, momentum=0.9, foreach=False),
         train_extra=["clip_norm = 0.8"], clip={"norm": 0.8}),
    case("clip_value", "sgd(lr = 0.05, momentum = 0.9)", "sgd",
         fixed(lr=0.05, momentum=0.9),
         lambda p: O.SGD(p, lr=0.05, momentum=0.9, foreach=False),
         train_extra=["clip_value = 0.05"], clip={"value": 0.05}),
    case("l1_l2", "sgd(lr = 0.05, momentum = 0.9)", "sgd",
         fixed(lr=0.05, momentum=0.9),
         lambda p: O.SGD(p, lr=0.05, momentum=0.9, foreach=False),
         train_extra=["l1 = 0.001", "l2 = 0.01"], clip={"l1": 0.001, "l2": 0.01}),
]


# ---- the nnl update rules of stdlib/optimizers.nnl, transcribed line by line ----
# Each takes the gradient, the parameter, a dict of state (created from `init` on the first
# step), the step number t and the hyper-parameters at this step; returns the new parameter.

def where(c, a, b):
    return a if c else b


def bias_correction(beta, step):
    """1 - beta ^ step (the stdlib computes it as -expm1(step * log(beta)))."""
    return 1 - beta ** step


DEFAULTS = {
    "sgd": dict(momentum=0, dampening=0, nesterov=False, weight_decay=0),
    "adam": dict(lr=1e-3, beta1=0.9, beta2=0.999, eps=1e-8, weight_decay=0, amsgrad=False),
    "adamw": dict(lr=1e-3, beta1=0.9, beta2=0.999, eps=1e-8, weight_decay=1e-2,
                  amsgrad=False),
    "adagrad": dict(lr=1e-2, lr_decay=0, weight_decay=0, initial_accumulator_value=0,
                    eps=1e-10),
    "rmsprop": dict(lr=1e-2, alpha=0.99, eps=1e-8, weight_decay=0, momentum=0,
                    centered=False),
    "adadelta": dict(lr=1.0, rho=0.9, eps=1e-6, weight_decay=0),
    "adamax": dict(lr=2e-3, beta1=0.9, beta2=0.999, eps=1e-8, weight_decay=0),
    "nadam": dict(lr=2e-3, beta1=0.9, beta2=0.999, eps=1e-8, weight_decay=0,
                  momentum_decay=4e-3),
    "rprop": dict(lr=1e-2, etaminus=0.5, etaplus=1.2, min_step=1e-6, max_step=50),
}


def rule_sgd(grad, param, st, step, h):
    g = grad + h["weight_decay"] * param
    st["buf"] = where(step == 1, g, h["momentum"] * st.get("buf", 0) + (1 - h["dampening"]) * g)
    d = where(h["nesterov"], g + h["momentum"] * st["buf"], st["buf"])
    return param - h["lr"] * where(h["momentum"] == 0, g, d)


def _adam_denom(st, h, step):
    st["vmax"] = torch.maximum(st.get("vmax", torch.zeros_like(st["v"])), st["v"])
    return (torch.sqrt(where(h["amsgrad"], st["vmax"], st["v"])) /
            math.sqrt(bias_correction(h["beta2"], step)) + h["eps"])


def rule_adam(grad, param, st, step, h):
    g = grad + h["weight_decay"] * param
    st["m"] = h["beta1"] * st.get("m", 0) + (1 - h["beta1"]) * g
    st["v"] = h["beta2"] * st.get("v", 0) + (1 - h["beta2"]) * g * g
    denom = _adam_denom(st, h, step)
    return param - h["lr"] / bias_correction(h["beta1"], step) * st["m"] / denom


def rule_adamw(grad, param, st, step, h):
    p = param * (1 - h["lr"] * h["weight_decay"])
    st["m"] = h["beta1"] * st.get("m", 0) + (1 - h["beta1"]) * grad
    st["v"] = h["beta2"] * st.get("v", 0) + (1 - h["beta2"]) * grad * grad
    denom = _adam_denom(st, h, step)
    return p - h["lr"] / bias_correction(h["beta1"], step) * st["m"] / denom


def rule_adagrad(grad, param, st, step, h):
    g = grad + h["weight_decay"] * param
    st["sum"] = st.get("sum", h["initial_accumulator_value"]) + g * g
    return param - h["lr"] / (1 + (step - 1) * h["lr_decay"]) * g / (torch.sqrt(st["sum"]) +
                                                                     h["eps"])


def rule_rmsprop(grad, param, st, step, h):
    a = h["alpha"]
    g = grad + h["weight_decay"] * param
    st["v"] = a * st.get("v", 0) + (1 - a) * g * g
    st["gavg"] = a * st.get("gavg", 0) + (1 - a) * g
    avg = torch.sqrt(where(h["centered"], st["v"] - st["gavg"] * st["gavg"], st["v"])) + h["eps"]
    st["buf"] = h["momentum"] * st.get("buf", 0) + g / avg
    return param - h["lr"] * where(h["momentum"] == 0, g / avg, st["buf"])


def rule_adadelta(grad, param, st, step, h):
    rho, eps = h["rho"], h["eps"]
    g = grad + h["weight_decay"] * param
    st["v"] = rho * st.get("v", 0) + (1 - rho) * g * g
    u = st.get("u", torch.zeros_like(g))
    delta = torch.sqrt(u + eps) / torch.sqrt(st["v"] + eps) * g
    st["u"] = rho * u + (1 - rho) * delta * delta
    return param - h["lr"] * delta


def rule_adamax(grad, param, st, step, h):
    g = grad + h["weight_decay"] * param
    st["m"] = h["beta1"] * st.get("m", 0) + (1 - h["beta1"]) * g
    st["u"] = torch.maximum(h["beta2"] * st.get("u", torch.zeros_like(g)), g.abs() + h["eps"])
    return param - h["lr"] / bias_correction(h["beta1"], step) * st["m"] / st["u"]


def rule_nadam(grad, param, st, step, h):
    b1, b2, md = h["beta1"], h["beta2"], h["momentum_decay"]
    g = grad + h["weight_decay"] * param
    mu = b1 * (1 - 0.5 * 0.96 ** (step * md))
    mu_next = b1 * (1 - 0.5 * 0.96 ** ((step + 1) * md))
    st["mu_product"] = st.get("mu_product", 1) * mu
    st["m"] = b1 * st.get("m", 0) + (1 - b1) * g
    st["v"] = b2 * st.get("v", 0) + (1 - b2) * g * g
    denom = torch.sqrt(st["v"] / bias_correction(b2, step)) + h["eps"]
    mp = st["mu_product"]
    return (param - h["lr"] * (1 - mu) / (1 - mp) * g / denom
            - h["lr"] * mu_next / (1 - mp * mu_next) * st["m"] / denom)


def rule_rprop(grad, param, st, step, h):
    prev = st.get("prev", torch.zeros_like(grad))
    size = st.get("size", torch.full_like(grad, h["lr"]))
    s = torch.sign(grad * prev)
    f = torch.where(s > 0, torch.full_like(s, h["etaplus"]),
                    torch.where(s < 0, torch.full_like(s, h["etaminus"]), torch.ones_like(s)))
    st["size"] = torch.clamp(torch.clamp(size * f, min=h["min_step"]), max=h["max_step"])
    g = torch.where(s < 0, torch.zeros_like(grad), grad)
    st["prev"] = g
    return param - torch.sign(g) * st["size"]


NNL_RULES = {name[5:]: f for name, f in globals().items() if name.startswith("rule_")}


# ---- training ----

def fmt32(v):
    return "%.9g" % float(v)


def exact(v):
    """The shortest decimal that reads back as this float64 (repr): for a float32 value it
    reads back exactly both as a float32 and as a float64."""
    return repr(float(v))


def fmt64(v):
    return "%.17g" % float(v)


def make_model(dtype):
    torch.manual_seed(INIT_SEED)
    torch.set_default_dtype(torch.float32)
    model = torch.nn.Sequential(
        torch.nn.Linear(N_IN, N_HIDDEN),
        torch.nn.Tanh(),
        torch.nn.Linear(N_HIDDEN, N_OUT),
    )
    return model.to(dtype)


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


def flat(model):
    return [v for _, t in nnl_params(model) for v in t.reshape(-1).tolist()]


def param_lines(model, fmt):
    return [",".join([name] + [fmt(v) for v in t.reshape(-1).tolist()])
            for name, t in nnl_params(model)]


def batches(x, y):
    """(epoch, xb, yb) in training order."""
    for epoch in range(EPOCHS):
        for i in range(0, N_SAMPLES, BATCH):
            yield epoch, x[i:i + BATCH], y[i:i + BATCH]


def objective(model, xb, yb, c):
    """The logged loss (the data term) and the objective differentiated."""
    loss = torch.nn.functional.cross_entropy(model(xb), yb)
    obj = loss
    if c.get("l1") or c.get("l2"):
        for p in model.parameters():
            obj = obj + c.get("l1", 0) * p.abs().sum() + c.get("l2", 0) * (p * p).sum()
    return loss, obj


def train_torch(c, x, y, dtype, make_opt=None):
    model = make_model(dtype)
    torch.set_default_dtype(dtype)  # NAdam's mu_product and the step counters
    opt = (make_opt or c["make_opt"])(model.parameters())
    per_step, per_epoch = c["sched"](opt)
    clip = c["clip"]
    losses, lrs = [], []
    last_epoch = 0
    clipped = 0  # steps whose norm was clipped, or gradient elements clipped
    for epoch, xb, yb in batches(x.to(dtype), y):
        if epoch != last_epoch:
            for s in per_epoch:
                s.step()
            last_epoch = epoch
        opt.zero_grad()
        loss, obj = objective(model, xb, yb, clip)
        obj.backward()
        if "value" in clip:
            clipped += sum(int((p.grad.abs() > clip["value"]).sum()) for p in model.parameters())
            torch.nn.utils.clip_grad_value_(model.parameters(), clip["value"])
        if "norm" in clip:
            clipped += float(torch.nn.utils.clip_grad_norm_(model.parameters(),
                                                            clip["norm"])) > clip["norm"]
        g = opt.param_groups[0]
        lrs.append(g["step_sizes"][1] if c["rule"] == "rprop" else g["lr"])
        opt.step()
        for s in per_step:
            s.step()
        losses.append(loss.item())
    torch.set_default_dtype(torch.float32)
    train_torch.clipped = clipped
    return losses, lrs, model


def train_by_hand(c, x, y):
    """The same run in float64 with the nnl rule of the case (NNL_RULES, NNL_SCHEDULES)."""
    model = make_model(torch.float64)
    params = list(model.parameters())
    states = [dict() for _ in params]
    rule = NNL_RULES[c["rule"]]
    clip = c["clip"]
    losses = []
    step = 0
    for epoch, xb, yb in batches(x.double(), y):
        step += 1
        for p in params:
            p.grad = None
        loss, obj = objective(model, xb, yb, {})
        loss.backward()
        h = dict(DEFAULTS[c["rule"]])
        h.update({k: v * f(epoch, step) if not isinstance(v, bool) else v
                  for k, (v, f) in c["hp"].items()})
        with torch.no_grad():
            # lower_grad_terms: l1, l2, clip_value, then clip_norm
            grads = [p.grad + clip.get("l1", 0) * torch.sign(p) + 2 * clip.get("l2", 0) * p
                     for p in params]
            if "value" in clip:
                grads = [g.clamp(-clip["value"], clip["value"]) for g in grads]
            if "norm" in clip:
                norm = math.sqrt(sum(float((g * g).sum()) for g in grads))
                coef = min(clip["norm"] / (norm + 1e-6), 1.0)
                grads = [g * coef for g in grads]
            for p, g, st in zip(params, grads, states):
                p.copy_(rule(g, p, st, step, h))
        losses.append(loss.item())
    return losses, model


def max_rel(a, b, floor):
    return max(abs(u - v) / max(abs(u), abs(v), floor) for u, v in zip(a, b))


def write(path, lines):
    with open(path, "w", newline="\n") as f:
        for line in lines:
            f.write(line + "\n")


def model_nnl(c):
    what = c["nnl_call"]
    lines = [
        "# %s: generated by tests/reference/gen_optimizers.py; PyTorch:" % c["name"],
        "#   %s" % c["torch_desc"],
    ]
    if c["sched_note"]:
        lines.append("#   lr schedule: %s" % c["sched_note"])
    if c["clip"]:
        lines.append("#   before each step: %s" % c["clip_desc"])
    lines += [
        'data d = csv("data.csv", target = "label")',
        "",
        "model net(x[4]) {",
        "    h = tanh(dense(x, 6))",
        "    return dense(h, 3)",
        "}",
        "",
        "train net {",
        "    data      = d",
        "    loss      = cross_entropy",
        "    optimizer = %s" % what,
        "    epochs    = %d" % EPOCHS,
        "    batch     = %d" % BATCH,
        "    shuffle   = false",
        "    log_every = 1",
    ]
    for extra in c["train_extra"]:
        k, v = extra.split(" = ")
        lines.append("    %-9s = %s" % (k, v))
    lines.append("}")
    return lines


def torch_desc(c):
    opt = c["make_opt"]([torch.nn.Parameter(torch.zeros(1))])
    d = dict(opt.defaults)
    for k in ("foreach", "maximize", "capturable", "differentiable", "params"):
        d.pop(k, None)
    args = ", ".join("%s=%r" % (k, v) for k, v in d.items())
    return "%s(%s)%s" % (type(opt).__name__, args,
                         ", foreach=True" if c["rule"] == "nadam" else "")


def clip_desc(c):
    cl = c["clip"]
    if "norm" in cl:
        return "torch.nn.utils.clip_grad_norm_(model.parameters(), %g)" % cl["norm"]
    if "value" in cl:
        return "torch.nn.utils.clip_grad_value_(model.parameters(), %g)" % cl["value"]
    return ("the objective is loss + %g * sum(|w|) + %g * sum(w^2) over every parameter "
            "(the logged loss is the data term)" % (cl["l1"], cl["l2"]))


def main():
    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True)
    x, y = make_data()
    data = ["x0,x1,x2,x3,label"] + [
        ",".join([exact(v) for v in x[i].tolist()] + [str(int(y[i]))])
        for i in range(N_SAMPLES)]
    init = param_lines(make_model(torch.float32), exact)
    ok = True
    if os.path.isdir(OUT):
        shutil.rmtree(OUT)
    for c in CASES:
        c["torch_desc"] = torch_desc(c)
        c["clip_desc"] = clip_desc(c) if c["clip"] else ""
        out = os.path.join(OUT, c["name"])
        os.makedirs(out)
        write(os.path.join(out, "model.nnl"), model_nnl(c))
        write(os.path.join(out, "data.csv"), data)
        write(os.path.join(out, "init.csv"), init)
        for dtype, bits, fmt in ((torch.float32, 32, fmt32), (torch.float64, 64, fmt64)):
            losses, lrs, model = train_torch(c, x, y, dtype)
            write(os.path.join(out, "losses%d.csv" % bits),
                  ["step,loss"] + ["%d,%s" % (i + 1, fmt(v)) for i, v in enumerate(losses)])
            write(os.path.join(out, "final%d.csv" % bits), param_lines(model, fmt))
            if bits == 64:
                clipped = train_torch.clipped
                torch_losses, torch_lrs, torch_model = losses, lrs, model
            else:
                m32 = model

        # the schedule: PyTorch's learning rate at every step vs base * the nnl factor
        key = "max_step" if c["rule"] == "rprop" else "lr"
        base, f = c["hp"][key]
        want = [base * f(i // STEPS_PER_EPOCH, i + 1) for i in range(len(torch_lrs))]
        e_lr = max_rel(torch_lrs, want, 1e-300)
        # the rule: the nnl definition replayed by hand vs PyTorch, float64
        hand_losses, hand_model = train_by_hand(c, x, y)
        e_loss = max_rel(torch_losses, hand_losses, 1e-300)
        e_par = max_rel(flat(torch_model), flat(hand_model), 1e-3)
        good = e_lr < 1e-12 and e_loss < 1e-10 and e_par < 1e-10
        ok = ok and good
        # float32 vs float64 (how far the float32 reference is from the exact run)
        e32 = max_rel(flat(m32), flat(torch_model), 1e-2)
        if "norm" in c["clip"]:
            print("%-24s (the norm was clipped at %d of the %d steps)"
                  % ("", clipped, len(torch_losses)))
        if "value" in c["clip"]:
            print("%-24s (%d of the %d gradient elements clipped)"
                  % ("", clipped, len(torch_losses) * len(flat(torch_model))))
        print("%-24s loss %.4f -> %.4f | nnl rule vs torch (f64): lr %.1e, losses %.1e, "
              "params %.1e | f32 vs f64 params %.1e%s"
              % (c["name"], torch_losses[0], torch_losses[-1], e_lr, e_loss, e_par, e32,
                 "" if good else "  MISMATCH"))
        if c["rule"] == "nadam":
            # what torch 1.13's default single-tensor NAdam would have given
            hp = {k: v for k, v in c["make_opt"]([torch.nn.Parameter(torch.zeros(1))])
                  .defaults.items() if k in ("lr", "betas", "eps", "weight_decay",
                                             "momentum_decay")}
            _, _, st_model = train_torch(c, x, y, torch.float64,
                                         lambda p: O.NAdam(p, foreach=False, **hp))
            print("%-24s (torch 1.13 single-tensor NAdam, foreach=False, differs from the "
                  "reference by %.1e relative)"
                  % ("", max_rel(flat(st_model), flat(torch_model), 1e-3)))
    print("torch %s; wrote %d cases into %s" % (torch.__version__, len(CASES), OUT))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
