"""PyTorch reference for `adgan bench train`: one WGAN generator iteration (n_critic critic
steps with weight clipping and RMSprop, or with --gp the gradient penalty and Adam, then one
generator step) with the same DCGAN generator and critic as adgan's model.rs, on random images
in [-1, 1].

Run with the project's environment (scripts/setup.sh --full):
    .venv/bin/python bench/train_step.py --steps 10
"""
import argparse
import time

import torch
from torch import nn


def generator(latent, width, channels, stages=3):
    top = width << (stages - 1)
    layers = [nn.ConvTranspose2d(latent, top, 4, 1, 0, bias=False), nn.BatchNorm2d(top), nn.ReLU()]
    c = top
    for _ in range(stages - 1):
        layers += [nn.ConvTranspose2d(c, c // 2, 4, 2, 1, bias=False), nn.BatchNorm2d(c // 2), nn.ReLU()]
        c //= 2
    layers += [nn.ConvTranspose2d(c, channels, 4, 2, 1, bias=False), nn.Tanh()]
    return nn.Sequential(*layers)


def critic(width, channels, stages=3):
    layers, c = [], channels
    for i in range(stages):
        layers += [nn.Conv2d(c, width << i, 4, 2, 1), nn.LeakyReLU(0.2)]
        c = width << i
    layers += [nn.Conv2d(c, 1, 4, 1, 0)]
    return nn.Sequential(*layers)


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--steps", type=int, default=10)
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--n-critic", type=int, default=5)
    p.add_argument("--width", type=int, default=64)
    p.add_argument("--channels", type=int, default=3)
    p.add_argument("--gp", action="store_true", help="WGAN-GP: penalty 10, Adam 1e-4 (0, 0.9)")
    p.add_argument("--device", default="cpu")
    a = p.parse_args()
    torch.manual_seed(0)
    dev = torch.device(a.device)
    latent, channels = 256, a.channels
    g, d = generator(latent, a.width, channels).to(dev), critic(a.width, channels).to(dev)
    if a.gp:
        opt_g = torch.optim.Adam(g.parameters(), lr=1e-4, betas=(0.0, 0.9))
        opt_d = torch.optim.Adam(d.parameters(), lr=1e-4, betas=(0.0, 0.9))
    else:
        opt_g = torch.optim.RMSprop(g.parameters(), lr=5e-5)
        opt_d = torch.optim.RMSprop(d.parameters(), lr=5e-5)
    data = torch.rand(1024, channels, 32, 32, device=dev) * 2 - 1
    b = a.batch_size

    def iteration():
        for _ in range(a.n_critic):
            real = data[torch.randint(0, data.shape[0], (b,), device=dev)]
            with torch.no_grad():
                fake = g(torch.randn(b, latent, 1, 1, device=dev))
            loss = d(fake).mean() - d(real).mean()
            if a.gp:
                eps = torch.rand(b, 1, 1, 1, device=dev)
                mixed = (eps * real + (1 - eps) * fake).requires_grad_(True)
                (grad,) = torch.autograd.grad(d(mixed).sum(), mixed, create_graph=True)
                loss = loss + 10 * ((grad.reshape(b, -1).norm(dim=1) - 1) ** 2).mean()
            opt_d.zero_grad()
            loss.backward()
            opt_d.step()
            if not a.gp:
                with torch.no_grad():
                    for w in d.parameters():
                        w.clamp_(-0.01, 0.01)
        for w in d.parameters():
            w.requires_grad_(False)
        loss_g = -d(g(torch.randn(b, latent, 1, 1, device=dev))).mean()
        opt_g.zero_grad()
        loss_g.backward()
        opt_g.step()
        for w in d.parameters():
            w.requires_grad_(True)
        return loss.item(), loss_g.item()

    for _ in range(a.warmup):
        iteration()
    times = []
    for _ in range(a.steps):
        start = time.perf_counter()
        iteration()
        if dev.type == "cuda":
            torch.cuda.synchronize()
        times.append((time.perf_counter() - start) * 1e3)
    print(
        f"pytorch {torch.__version__} train iteration ({'wgan-gp' if a.gp else 'wgan-clip'}, batch {b}, 32x32x{channels}, width {a.width}, "
        f"n_critic {a.n_critic}, {torch.get_num_threads()} threads, {a.device}): "
        f"mean {sum(times) / len(times):.1f} ms, min {min(times):.1f} ms over {len(times)} iterations"
    )


if __name__ == "__main__":
    main()
