"""Which image network, training objective and augmentation could reach 94.5% on Fashion-MNIST?

A side study for the Fashion-MNIST row of `docs/benchmarks.md`, written in PyTorch so that it ran
in four minutes on a lent GPU (an NVIDIA H100) instead of hours on our 2-core CPUs. It is not an
mmkeras benchmark: it trains plain PyTorch networks, and the mmkeras figures are measured by
`benchmarks/accuracy.py`. What it measures is the 10-way test accuracy (10,000 official test
photos) after each epoch of a warm-up + cosine schedule, for:

- CNNs given as a list of conv widths and `"P"` (2x2 max pooling), each conv 3x3 + batch norm +
  ReLU, then global average pooling;
- three objectives:
  - `fixed`: what `fashion_mnist_captions` trains on: one caption per photo, drawn once (its own
    class for half the photos, another class for the rest), a sigmoid on the product of the image
    features and a class embedding (mmkeras' product fusion), ranked over the 10 captions;
  - `redraw`: the same with the captions drawn again every epoch;
  - `softmax`: a plain 10-class classifier (an upper bound for the caption models);
- augmentation: `none`, `flip` (horizontal, half the photos), `flipcrop` (flip, then one random
  2-pixel shift per batch of the zero-padded photos).

Usage (torch needed; a GPU if you want it fast), one JSON config per argument:

    python benchmarks/fashion_protocols.py '{"name": "B", "spec": [32, 32, "P", 64, 64, "P", 128],
        "protocol": "fixed", "aug": "none", "epochs": 20, "lr": 0.003, "seed": 0}'

Each config prints one JSON line: the config, the accuracy after every epoch, the parameters and
the seconds taken. The 24 configs run on 2026-11-27 and what they gave are in
`benchmarks/results/fashion_protocols.txt`.
"""

import gzip
import json
import math
import os
import sys
import time

import numpy as np

FOLDER = os.environ.get("MMKERAS_FASHION_MNIST_DIR", "/usr/share/datasets/fashion-mnist")
TRAIN_EXAMPLES = 54000  # mmkeras holds 10% of the 60,000 training photos out for validation


def read_idx(path):
    # mmkeras.data.fashion_mnist.read_idx without its checks: this script runs where only PyTorch is
    # installed (the lent GPU machine had no TensorFlow), so it imports nothing from mmkeras.
    data = gzip.open(path).read()
    ndim = data[3]
    dims = np.frombuffer(data, ">u4", ndim, 4).astype(int)
    return np.frombuffer(data, np.uint8, offset=4 + 4 * ndim).reshape(dims)


def load(torch, device):
    def split(images, labels):
        x = torch.tensor(read_idx(os.path.join(FOLDER, images)), device=device).float().div(255).unsqueeze(1)
        return x, torch.tensor(read_idx(os.path.join(FOLDER, labels)).astype(np.int64), device=device)

    x_train, y_train = split("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz")
    keep = torch.tensor(np.random.default_rng(0).permutation(60000)[:TRAIN_EXAMPLES], device=device)
    x_test, y_test = split("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz")
    return x_train[keep], y_train[keep], x_test, y_test


def build(torch, spec, protocol, dropout):
    nn = torch.nn
    layers, channels = [], 1
    for item in spec:
        if item == "P":
            layers.append(nn.MaxPool2d(2))
        else:
            layers += [nn.Conv2d(channels, item, 3, padding=1, bias=False), nn.BatchNorm2d(item), nn.ReLU()]
            channels = item
    features = nn.Sequential(*layers, nn.AdaptiveAvgPool2d(1), nn.Flatten())

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.features = features
            if protocol == "softmax":
                self.out = nn.Sequential(nn.Linear(channels, 128), nn.ReLU(), nn.Dropout(dropout), nn.Linear(128, 10))
            else:
                self.caption = nn.Embedding(10, 64)
                self.image_proj, self.text_proj = nn.Linear(channels, 64), nn.Linear(64, 64)
                self.out = nn.Sequential(nn.Linear(64, 64), nn.ReLU(), nn.Dropout(dropout), nn.Linear(64, 1))

        def forward(self, x, caption=None):
            h = self.features(x)
            if protocol == "softmax":
                return self.out(h)
            image = torch.relu(self.image_proj(h))
            if caption is None:  # scores against all 10 captions: (batch, 10)
                text = torch.tanh(self.text_proj(self.caption.weight))
                return self.out(image[:, None, :] * text[None]).squeeze(-1)
            return self.out(image * torch.tanh(self.text_proj(self.caption(caption)))).squeeze(-1)

    return Net()


def augment(torch, x, kind):
    if kind == "none":
        return x
    flip = torch.rand(x.shape[0], device=x.device) < 0.5
    x = torch.where(flip[:, None, None, None], x.flip(3), x)
    if kind == "flipcrop":
        i, j = np.random.randint(0, 5, 2)
        x = torch.nn.functional.pad(x, (2, 2, 2, 2))[:, :, i : i + 28, j : j + 28]
    return x


def draw_captions(torch, classes, seed):
    generator = torch.Generator(device=classes.device)
    generator.manual_seed(seed)
    match = torch.rand(classes.shape[0], device=classes.device, generator=generator) < 0.5
    shift = torch.randint(1, 10, classes.shape, device=classes.device, generator=generator)
    return torch.where(match, classes, (classes + shift) % 10), match.float()


def run(torch, data, config):
    functional = torch.nn.functional
    x_train, y_train, x_test, y_test = data
    device = x_train.device
    torch.manual_seed(config["seed"])
    np.random.seed(config["seed"])
    model = build(torch, config["spec"], config["protocol"], config.get("drop", 0.0)).to(device)
    epochs, batch = config["epochs"], config.get("bs", 128)
    steps = epochs * math.ceil(TRAIN_EXAMPLES / batch)
    warmup = int(0.1 * steps)
    optimizer = torch.optim.AdamW(model.parameters(), lr=config["lr"], weight_decay=config.get("wd", 0.0))
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimizer,
        lambda s: (s + 1) / warmup if s < warmup else 0.5 * (1 + math.cos(math.pi * (s - warmup) / (steps - warmup))),
    )
    autocast = torch.autocast(device.type, torch.bfloat16)
    captions, match = draw_captions(torch, y_train, config["seed"])
    accuracies, start = [], time.time()
    for epoch in range(epochs):
        model.train()
        if config["protocol"] == "redraw":
            captions, match = draw_captions(torch, y_train, config["seed"] * 1000 + epoch)
        order = torch.randperm(TRAIN_EXAMPLES, device=device)
        for k in range(0, TRAIN_EXAMPLES, batch):
            rows = order[k : k + batch]
            x = augment(torch, x_train[rows], config["aug"])
            with autocast:
                if config["protocol"] == "softmax":
                    loss = functional.cross_entropy(model(x), y_train[rows])
                else:
                    loss = functional.binary_cross_entropy_with_logits(model(x, captions[rows]).float(), match[rows])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            schedule.step()
        model.eval()
        correct = 0
        with torch.no_grad(), autocast:
            for k in range(0, len(x_test), 1000):
                correct += (model(x_test[k : k + 1000]).argmax(1) == y_test[k : k + 1000]).sum().item()
        accuracies.append(100 * correct / len(x_test))
    parameters = sum(p.numel() for p in model.parameters())
    return {**config, "accs": accuracies, "params": parameters, "s": round(time.time() - start)}


def main(argv):
    if not argv or argv[0] in ("-h", "--help"):
        print(__doc__)
        return 0
    try:
        import torch
    except ImportError:
        print("benchmarks/fashion_protocols.py needs PyTorch (pip install torch); skipped.")
        return 0
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    data = load(torch, device)
    for argument in argv:
        print(json.dumps(run(torch, data, json.loads(argument))), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
