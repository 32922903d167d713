"""Loads an `adgan export` file into plain PyTorch DCGAN models and checks it (used by
tests/export.rs): `python bench/load_export.py EXPORT [CHECK]`, where CHECK holds `z` and
`expected` (adgan's generator on z); prints the largest difference.

The models are the nn.Sequential the export's keys name (see src/export.rs)."""
import json
import sys

import torch
from safetensors import safe_open
from safetensors.torch import load_file
from torch import nn


def dcgan(m):
    """The generator and critic of the model configuration `m` (the export's header)."""
    stages = (m["image_size"] // 4).bit_length() - 1
    w, c, d = m["width"], m["channels"], m["latent_dim"]
    g, k = [], d
    for i in range(stages):
        out = w << (stages - 1 - i)
        g += [nn.ConvTranspose2d(k, out, 4, 1 if i == 0 else 2, 0 if i == 0 else 1, bias=False),
              nn.BatchNorm2d(out), nn.ReLU()]
        k = out
    g += [nn.ConvTranspose2d(k, c, 4, 2, 1, bias=False), nn.Tanh()]
    f, k = [], c
    for i in range(stages):
        f += [nn.Conv2d(k, w << i, 4, 2, 1), nn.LeakyReLU(0.2)]
        k = w << i
    f += [nn.Conv2d(k, 1, 4, 1, 0)]
    return nn.Sequential(*g), nn.Sequential(*f)


def load(path):
    """The generator and critic of an export, in eval mode, and the model configuration."""
    m = json.loads(safe_open(path, "pt").metadata()["model"])
    g, f = dcgan(m)
    state = load_file(path)
    for name, net in (("generator", g), ("critic", f)):
        part = {k[len(name) + 1:]: v for k, v in state.items() if k.startswith(name + ".")}
        net.load_state_dict(part, strict=True)
        net.eval()
    return g, f, m


if __name__ == "__main__":
    g, f, m = load(sys.argv[1])
    if len(sys.argv) > 2:
        check = load_file(sys.argv[2])
        with torch.no_grad():
            out = g(check["z"].view(-1, m["latent_dim"], 1, 1))
            critic = f(out).view(-1)
        print(float((out - check["expected"]).abs().max()), float((critic - check["critic"]).abs().max()))
