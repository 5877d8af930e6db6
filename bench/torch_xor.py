"""PyTorch reference for examples/xor.nnl: training steps per second.

2-8-1, tanh then sigmoid, BCELoss, Adam(lr=0.05), full batch (the 4 XOR samples), one thread.
Times N training steps (zero_grad, forward, loss, backward, step) after a short warm-up.

usage: /usr/bin/python3 bench/torch_xor.py [--steps N] [--threads N]
prints one line: "steps N seconds T steps_per_s R us_per_step U loss L"
"""
import argparse
import time

import torch


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=5000)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()

    torch.set_num_threads(args.threads)
    torch.manual_seed(1)
    x = torch.tensor([[0., 0.], [0., 1.], [1., 0.], [1., 1.]])
    y = torch.tensor([[0.], [1.], [1.], [0.]])
    model = torch.nn.Sequential(
        torch.nn.Linear(2, 8), torch.nn.Tanh(), torch.nn.Linear(8, 1), torch.nn.Sigmoid())
    loss_fn = torch.nn.BCELoss()
    opt = torch.optim.Adam(model.parameters(), lr=0.05)

    def step():
        opt.zero_grad()
        loss = loss_fn(model(x), y)
        loss.backward()
        opt.step()
        return loss

    for _ in range(50):
        step()
    t0 = time.perf_counter()
    for _ in range(args.steps):
        loss = step()
    seconds = time.perf_counter() - t0
    print("steps %d seconds %.4f steps_per_s %.1f us_per_step %.2f loss %.6f" % (
        args.steps, seconds, args.steps / seconds, 1e6 * seconds / args.steps, loss.item()))


if __name__ == "__main__":
    main()
