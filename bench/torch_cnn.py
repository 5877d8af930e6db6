"""PyTorch reference for bench/fashion_cnn.nnl: one epoch of the Fashion-MNIST LeNet CNN.

The network of examples/fashion_cnn.nnl: conv 6@5x5 padding 2 -> BatchNorm -> ReLU -> max-pool 2 ->
conv 16@5x5 -> BatchNorm -> ReLU -> max-pool 2 -> flatten (400) -> 120 -> ReLU -> 84 -> ReLU -> 10, with
nn.Conv2d's and nn.Linear's default init, CrossEntropyLoss, Adam(lr=1e-3), batch 64, shuffled
each epoch. The IDX .gz files are read with gzip + numpy and kept as uint8 [n, 1, 28, 28];
each batch is converted to float and scaled by 1/255, as nnlc does. Only the training loop is
timed.

usage: OMP_NUM_THREADS=N OPENBLAS_NUM_THREADS=N /usr/bin/python3 bench/torch_cnn.py --threads N
       [--epochs E] [--batch B] [--dir DIR] [--test]
(Debian's torch calls OpenBLAS for its matrix products; without OPENBLAS_NUM_THREADS, OpenBLAS
starts a thread per CPU on top of torch's own threads.)
prints one line: "threads N samples S seconds T samples_per_s R maxrss_kb M loss L", and with
--test a second: "test_accuracy A" (the accuracy on the 10000 test images after training)
"""
import argparse
import gzip
import resource
import time

import numpy as np
import torch

nn = torch.nn


def read_idx(path):
    with gzip.open(path, "rb") as f:
        data = f.read()
    ndim = data[3]
    dims = [int.from_bytes(data[4 + 4 * i:8 + 4 * i], "big") for i in range(ndim)]
    if data[2] != 0x08:
        raise SystemExit("torch_cnn.py: %s: not an unsigned-byte IDX file" % path)
    return np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim).reshape(dims)


def lenet():
    return nn.Sequential(
        nn.Conv2d(1, 6, 5, padding=2), nn.BatchNorm2d(6), nn.ReLU(),
        nn.MaxPool2d(2),                                              # [6, 14, 14]
        nn.Conv2d(6, 16, 5), nn.BatchNorm2d(16), nn.ReLU(),
        nn.MaxPool2d(2),                                              # [16, 5, 5]
        nn.Flatten(),
        nn.Linear(400, 120), nn.ReLU(),
        nn.Linear(120, 84), nn.ReLU(),
        nn.Linear(84, 10))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--epochs", type=int, default=1)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--dir", default="/usr/share/datasets/fashion-mnist")
    ap.add_argument("--test", action="store_true",
                    help="after training, print the accuracy on the 10000 test images")
    args = ap.parse_args()

    torch.set_num_threads(args.threads)
    torch.manual_seed(1)
    images = read_idx(args.dir + "/train-images-idx3-ubyte.gz")
    labels = read_idx(args.dir + "/train-labels-idx1-ubyte.gz")
    n = images.shape[0]
    x_all = torch.from_numpy(images.reshape(n, 1, 28, 28).copy())    # uint8 [n, 1, 28, 28]
    y_all = torch.from_numpy(labels.astype(np.int64))                 # int64 [n]

    model = lenet()
    loss_fn = nn.CrossEntropyLoss()
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)

    steps = 0
    loss = None
    t0 = time.perf_counter()
    for _ in range(args.epochs):
        perm = torch.randperm(n)
        for i in range(0, n, args.batch):
            idx = perm[i:i + args.batch]
            x = x_all[idx].float().mul_(1.0 / 255.0)
            y = y_all[idx]
            opt.zero_grad()
            loss = loss_fn(model(x), y)
            loss.backward()
            opt.step()
            steps += 1
    seconds = time.perf_counter() - t0
    samples = n * args.epochs
    print("threads %d samples %d seconds %.4f samples_per_s %.1f maxrss_kb %d loss %.6f" % (
        args.threads, samples, seconds, samples / seconds,
        resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, loss.item()))
    if args.test:
        timg = read_idx(args.dir + "/t10k-images-idx3-ubyte.gz")
        tlab = read_idx(args.dir + "/t10k-labels-idx1-ubyte.gz")
        with torch.no_grad():
            x = torch.from_numpy(timg.reshape(timg.shape[0], 1, 28, 28).copy()).float() / 255.0
            pred = model(x).argmax(dim=1).numpy()
        print("test_accuracy %.4f" % float((pred == tlab).mean()))


if __name__ == "__main__":
    main()
