"""PyTorch reference for `adgan bench score`: the ADGAN search (n_seed latents, k Adam steps
on the latents and on a per-image copy of the generator parameters, BatchNorm in eval mode),
as a straightforward loop over images, on random images and a DCGAN generator initialised as
in adgan (the speed does not depend on the weights). `--vmap B` also times the same search
batched over B images with `torch.func.vmap` (per-image parameters stacked, Adam by hand).
`--steps N` first times N single search steps on one image, as `adgan bench profile` does.
`--bf16` runs the generator under bfloat16 autocast (as `--precision bf16` in adgan).
`--checkpoint RUN/checkpoint.safetensors` uses a trained adgan generator (as `--model RUN`).

    .venv/bin/python bench/score_search.py --images 8 --steps 10
    .venv/bin/python bench/score_search.py --images 64 --vmap 16 --device cuda
"""
import argparse
import time

import torch
from torch.func import functional_call

from train_step import generator


BF16 = False


def start_search(params0, z0, lr_z, lr_theta):
    params = {n: p.detach().clone().requires_grad_(True) for n, p in params0.items()}
    z = z0.detach().clone().requires_grad_(True)
    opt_z = torch.optim.Adam([z], lr=lr_z)
    opt_t = torch.optim.Adam(params.values(), lr=lr_theta)
    return params, z, opt_z, opt_t


def step(g, buffers, params, z, opt_z, opt_t, x):
    with torch.autocast(x.device.type, dtype=torch.bfloat16, enabled=BF16):
        out = functional_call(g, {**params, **buffers}, (z.view(z.shape[0], -1, 1, 1),))
    loss = (out.float() - x).square().sum(dim=(1, 2, 3))
    opt_z.zero_grad()
    opt_t.zero_grad()
    loss.sum().backward()
    opt_z.step()
    opt_t.step()


def score_one(g, buffers, params0, z0, x, k, lr_z, lr_theta):
    params, z, opt_z, opt_t = start_search(params0, z0, lr_z, lr_theta)
    for _ in range(k):
        step(g, buffers, params, z, opt_z, opt_t, x)
    with torch.no_grad():
        out = functional_call(g, {**params, **buffers}, (z.view(z.shape[0], -1, 1, 1),))
        return (out - x).square().sum(dim=(1, 2, 3)).mean().item()


def search_vmap(g, buffers, params0, z0, xs, k, lr_z, lr_theta, betas=(0.9, 0.999), eps=1e-8):
    """The search for a batch of images at once: theta and z get a leading image axis."""
    b = xs.shape[0]
    params = {n: p.detach().unsqueeze(0).repeat(b, *([1] * p.dim())) for n, p in params0.items()}
    z = z0.detach().unsqueeze(0).repeat(b, 1, 1)

    def losses(params, z, x):
        with torch.autocast(x.device.type, dtype=torch.bfloat16, enabled=BF16):
            out = functional_call(g, {**params, **buffers}, (z.view(z.shape[0], -1, 1, 1),))
        return (out.float() - x).square().sum(dim=(1, 2, 3))

    grads = torch.func.vmap(torch.func.grad(lambda p, z, x: losses(p, z, x).sum(), argnums=(0, 1)))
    tensors = list(params.values()) + [z]
    lrs = [lr_theta] * len(params) + [lr_z]
    m = [torch.zeros_like(t) for t in tensors]
    v = [torch.zeros_like(t) for t in tensors]
    for t in range(1, k + 1):
        gp, gz = grads(params, z, xs)
        gs = list(gp.values()) + [gz]
        for i, (p, g_) in enumerate(zip(tensors, gs)):
            m[i].lerp_(g_, 1 - betas[0])
            v[i].mul_(betas[1]).addcmul_(g_, g_, value=1 - betas[1])
            denom = (v[i] / (1 - betas[1] ** t)).sqrt_().add_(eps)
            p.addcdiv_(m[i], denom, value=-lrs[i] / (1 - betas[0] ** t))
    with torch.no_grad():
        return torch.func.vmap(losses)(params, z, xs).mean(dim=1)


def load_generator(g, path):
    """Loads adgan's trained generator (generator/convI.weight, generator/normI.*) from a
    checkpoint.safetensors into the nn.Sequential `g`, reading the format by hand (header
    length, JSON header, raw little-endian tensors) so that no safetensors package is needed."""
    import json
    import struct
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        header = json.loads(f.read(n))
        data = f.read()
    state = {}
    for name, meta in header.items():
        if not name.startswith("generator/"):
            continue
        assert meta["dtype"] == "F32", name
        begin, end = meta["data_offsets"]
        t = torch.frombuffer(bytearray(data[begin:end]), dtype=torch.float32).view(meta["shape"])
        layer, field = name[len("generator/"):].split(".")
        index = int(layer[4:]) * 3 + (1 if layer.startswith("norm") else 0)
        state[f"{index}.{field}"] = t
    missing, unexpected = g.load_state_dict(state, strict=False)
    assert not unexpected and all(k.endswith("num_batches_tracked") for k in missing), missing


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--images", type=int, default=16)
    p.add_argument("--n-seed", type=int, default=64)
    p.add_argument("--k", type=int, default=5)
    p.add_argument("--width", type=int, default=64)
    p.add_argument("--channels", type=int, default=3)
    p.add_argument("--device", default="cpu")
    p.add_argument("--vmap", type=int, default=0, help="also time vmap over this many images")
    p.add_argument("--steps", type=int, default=0, help="first time this many single steps")
    p.add_argument("--bf16", action="store_true", help="bfloat16 autocast in the generator")
    p.add_argument("--checkpoint", help="adgan checkpoint.safetensors whose generator to use")
    a = p.parse_args()
    global BF16
    BF16 = a.bf16
    torch.manual_seed(0)
    dev = torch.device(a.device)
    g = generator(256, a.width, a.channels)
    if a.checkpoint:
        load_generator(g, a.checkpoint)
    g = g.to(dev).eval()
    params0 = dict(g.named_parameters())
    buffers = dict(g.named_buffers())
    z0 = torch.randn(a.n_seed, 256, device=dev)
    images = torch.rand(a.images + 1, a.channels, 32, 32, device=dev) * 2 - 1
    origin = f"trained {a.checkpoint}" if a.checkpoint else "fresh"
    shape = (f"32x32x{a.channels}, width {a.width}, {origin}, n_seed {a.n_seed}, k {a.k}, "
             f"{'bf16' if a.bf16 else 'f32'}, {torch.get_num_threads()} threads, {a.device}")
    if a.steps:
        state = start_search(params0, z0, 0.25, 5e-4)
        step(g, buffers, *state, images[:1])  # warm-up
        sync = torch.cuda.synchronize if dev.type == "cuda" else (lambda: None)
        sync()
        begin = time.perf_counter()
        for _ in range(a.steps):
            step(g, buffers, *state, images[:1])
        sync()
        ms = (time.perf_counter() - begin) / a.steps * 1e3
        print(f"pytorch {torch.__version__} one search step ({shape}, 1 image): {ms:.1f} ms")
    score_one(g, buffers, params0, z0, images[:1], a.k, 0.25, 5e-4)  # warm-up
    start = time.perf_counter()
    for i in range(1, a.images + 1):
        score_one(g, buffers, params0, z0, images[i : i + 1], a.k, 0.25, 5e-4)
    if dev.type == "cuda":
        torch.cuda.synchronize()
    rate = a.images / (time.perf_counter() - start)
    print(f"pytorch {torch.__version__} score loop ({shape}): {rate:.2f} images/s")
    if a.vmap:
        search_vmap(g, buffers, params0, z0, images[: a.vmap], a.k, 0.25, 5e-4)  # warm-up
        if dev.type == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        for i in range(0, a.images, a.vmap):
            search_vmap(g, buffers, params0, z0, images[i : i + a.vmap], a.k, 0.25, 5e-4)
        if dev.type == "cuda":
            torch.cuda.synchronize()
        rate = a.images / (time.perf_counter() - start)
        print(f"pytorch {torch.__version__} score vmap ({shape}, {a.vmap} images per search): "
              f"{rate:.2f} images/s")


if __name__ == "__main__":
    main()
