"""A PyTorch CPU training job with 2 DataLoader workers, input-bound or compute-bound on purpose.

    python torch_train.py --mode input|compute [--truth FILE]

train_epoch() runs the loop (next batch, forward, backward, optimizer step,
a log line every few steps), evaluate() runs the model without grad, and
save_checkpoint() writes it with torch.save. In `input` mode each item
costs a worker 10 ms (decoding: a short sleep and a little CPU), so the
main thread waits for batches most of the time; in `compute` mode items are
free and the model is wide, so the loop computes.

With --truth, writes what the workload measured itself as JSON: the wall
seconds of each train_epoch, and within them the seconds spent in
next(iter) (waiting for the workers), forward, backward and the optimizer
step; the times of evaluate and the checkpoint.
"""

import json
import sys
import time

import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset

MODE = sys.argv[sys.argv.index("--mode") + 1] if "--mode" in sys.argv else "input"
INPUT = MODE == "input"
ITEMS = 384 if INPUT else 12288  # compute epochs near 2 s, well past automatic phases' 1 s on any machine
BATCH = 16 if INPUT else 64
FEATURES = 128 if INPUT else 256
HIDDEN = 2048 if INPUT else 768
EPOCHS = 2


class Shards(Dataset):
    """Items that cost what decoding an image costs, or nothing."""

    def __len__(self):
        return ITEMS

    def __getitem__(self, i):
        if INPUT:
            time.sleep(0.009)
            end = time.perf_counter() + 0.001
            while time.perf_counter() < end:
                pass
        g = torch.Generator().manual_seed(i)
        return torch.randn(FEATURES, generator=g), i % 4


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.body = nn.Sequential(nn.Linear(FEATURES, HIDDEN), nn.ReLU(), nn.Linear(HIDDEN, HIDDEN), nn.ReLU(),
                                  nn.Linear(HIDDEN, 4))

    def forward(self, x):
        return self.body(x)


truth = {"train_epoch": [], "next": 0.0, "forward": 0.0, "backward": 0.0, "optimizer": 0.0}


def train_epoch(model, loader, opt, loss_fn, epoch):
    start = time.time()
    it = iter(loader)
    step = 0
    while True:
        t = time.perf_counter()
        try:
            x, y = next(it)
        except StopIteration:
            break
        truth["next"] += time.perf_counter() - t
        t = time.perf_counter()
        loss = loss_fn(model(x), y)
        truth["forward"] += time.perf_counter() - t
        t = time.perf_counter()
        opt.zero_grad()
        loss.backward()
        truth["backward"] += time.perf_counter() - t
        t = time.perf_counter()
        opt.step()
        truth["optimizer"] += time.perf_counter() - t
        step += 1
        if step % 20 == 0:
            print(f"epoch {epoch} step {step} loss {loss.item():.3f}", flush=True)
    truth["train_epoch"].append([start, time.time()])


def evaluate(model, loader):
    start = time.time()
    correct = 0
    with torch.no_grad():
        for _ in range(1 if INPUT else 3):  # long enough to be a phase of its own (automatic phases: >= 1 s)
            for x, y in loader:
                correct += int((model(x).argmax(1) == y).sum())
    truth["evaluate"] = [start, time.time()]
    return correct


def save_checkpoint(model, path):
    start = time.time()
    torch.save(model.state_dict(), path)
    truth["checkpoint"] = [start, time.time()]


def main():
    # The input-bound loop computes little: one intra-op thread keeps its own times clean on a busy
    # machine. The compute-bound one keeps torch's default, so that its intra-op threads work for it.
    if INPUT:
        torch.set_num_threads(1)
    torch.manual_seed(0)
    loader = DataLoader(Shards(), batch_size=BATCH, num_workers=2, persistent_workers=True)
    model = Net()
    opt = torch.optim.SGD(model.parameters(), lr=0.01)
    loss_fn = nn.CrossEntropyLoss()
    for epoch in range(EPOCHS):
        train_epoch(model, loader, opt, loss_fn, epoch)
    evaluate(model, loader)
    save_checkpoint(model, "/dev/null")


if __name__ == "__main__":
    main()
    if "--truth" in sys.argv:
        with open(sys.argv[sys.argv.index("--truth") + 1], "w") as f:
            json.dump(truth, f)
