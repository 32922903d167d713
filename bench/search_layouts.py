"""Which layout should the per-image-theta search use on a GPU (issue 38)? Times one search
step (forward and backward of ||g_theta_b(z) - x_b||^2 over n_seed latents, for B images each
with its own copy of the DCGAN generator's parameters) in several layouts, on the same random
parameters, after checking that all give the same outputs:

- grouped:     adgan's layout today: the B copies as one grouped transposed convolution
               (NCHW, groups = B), BatchNorm (eval) as a per-image affine map.
- grouped-cl:  the same in channels-last memory format.
- bmm:         each transposed convolution as a batched matrix product over images (B x
               [C_out k k, C_in] @ [C_in, n_seed H W]) and col2im (fold); dense GEMMs.
Each layout runs with cuDNN's benchmark mode off and on. Prints one line per layout: ms per
step, and images/s for a whole search (k steps and the final forward pass).

    python3 bench/search_layouts.py --device cuda --images 256
    .venv/bin/python bench/search_layouts.py --images 2 --n-seed 4 --width 8   # a CPU dry run
"""
import argparse
import time

import torch
import torch.nn.functional as F


def shapes(latent, width, channels):
    """(C_in, C_out, stride, padding) of the four transposed convolutions (32x32 output)."""
    return [(latent, 4 * width, 1, 0), (4 * width, 2 * width, 2, 1),
            (2 * width, width, 2, 1), (width, channels, 2, 1)]


def make_params(b, latent, width, channels, device):
    g = torch.Generator().manual_seed(0)
    params = []
    for i, (cin, cout, _, _) in enumerate(shapes(latent, width, channels)):
        w = torch.randn(cin, cout, 4, 4, generator=g) * 0.02
        layer = {"w": w.unsqueeze(0).repeat(b, 1, 1, 1, 1)}
        if i < 3:
            layer["gamma"] = (1 + 0.1 * torch.randn(cout, generator=g)).repeat(b, 1)
            layer["beta"] = (0.1 * torch.randn(cout, generator=g)).repeat(b, 1)
        params.append({k: v.to(device).requires_grad_(True) for k, v in layer.items()})
    return params


def affine(y, layer, b, n):
    """BatchNorm in eval mode (running mean 0, var 1 folded in) with per-image gamma, beta."""
    c, h, w = y.shape[1:]
    y = y.view(b, n, c, h, w) * layer["gamma"].view(b, 1, c, 1, 1) + layer["beta"].view(b, 1, c, 1, 1)
    return torch.relu(y).view(b * n, c, h, w)


def forward_grouped(params, z, specs, channels_last):
    """z: [B, n, latent]. Seeds along the batch axis, images along the channel groups."""
    b, n, latent = z.shape
    x = z.permute(1, 0, 2).reshape(n, b * latent, 1, 1)
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    for i, ((cin, cout, stride, pad), layer) in enumerate(zip(specs, params)):
        w = layer["w"].reshape(b * cin, cout, 4, 4)
        x = F.conv_transpose2d(x, w, stride=stride, padding=pad, groups=b)
        h = x.shape[-1]
        if i < 3:
            y = x.view(n, b, cout, h, h).permute(1, 0, 2, 3, 4).reshape(b * n, cout, h, h)
            y = affine(y, layer, b, n)
            x = y.view(b, n, cout, h, h).permute(1, 0, 2, 3, 4).reshape(n, b * cout, h, h)
            if channels_last:
                x = x.contiguous(memory_format=torch.channels_last)
    out = torch.tanh(x).view(n, b, -1, x.shape[-1], x.shape[-1]).permute(1, 0, 2, 3, 4)
    return out  # [B, n, C, H, W]


def forward_bmm(params, z, specs):
    """Each layer as B dense GEMMs [C_out k k, C_in] @ [C_in, n H W], then col2im."""
    b, n, latent = z.shape
    x = z.transpose(1, 2)  # [B, C_in, n * 1]
    h = 1
    for i, ((cin, cout, stride, pad), layer) in enumerate(zip(specs, params)):
        wt = layer["w"].reshape(b, cin, cout * 16).transpose(1, 2)  # [B, C_out*16, C_in]
        cols = torch.bmm(wt, x)  # [B, C_out*16, n*h*h]
        out_h = (h - 1) * stride - 2 * pad + 4
        cols = cols.view(b, cout * 16, n, h * h).transpose(1, 2).reshape(b * n, cout * 16, h * h)
        y = F.fold(cols, (out_h, out_h), 4, stride=stride, padding=pad)  # [B*n, C_out, H', W']
        h = out_h
        if i < 3:
            y = affine(y, layer, b, n)
            x = y.view(b, n, cout, h * h).transpose(1, 2).reshape(b, cout, n * h * h)
        else:
            return torch.tanh(y).view(b, n, cout, h, h)


def step(forward, params, z, target):
    out = forward(params, z)
    loss = (out.float() - target.unsqueeze(1)).square().sum()
    tensors = [t for layer in params for t in layer.values()] + [z]
    return torch.autograd.grad(loss, tensors)


def time_layout(name, forward, params, z, target, k, reps, device, bf16):
    try:
        _time_layout(name, forward, params, z, target, k, reps, device, bf16)
    except RuntimeError as e:  # a layout without a kernel for this precision, say
        print(f"{name:28s} failed: {str(e).splitlines()[0]}", flush=True)


def _time_layout(name, forward, params, z, target, k, reps, device, bf16):
    def run():
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
            return step(forward, params, z, target)

    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    for _ in range(3):
        run()
    sync()
    start = time.perf_counter()
    for _ in range(reps):
        run()
    sync()
    ms = (time.perf_counter() - start) / reps * 1e3
    b = z.shape[0]
    # A search is k steps and one forward pass (about a third of a step).
    per_search = ms * (k + 1 / 3)
    print(f"{name:28s} {ms:9.2f} ms/step  {b / per_search * 1e3:9.1f} images/s", flush=True)


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--images", type=int, default=256)
    p.add_argument("--n-seed", type=int, default=64)
    p.add_argument("--k", type=int, default=5)
    p.add_argument("--width", type=int, default=64)
    p.add_argument("--channels", type=int, default=3)
    p.add_argument("--latent", type=int, default=256)
    p.add_argument("--reps", type=int, default=10)
    p.add_argument("--device", default="cpu")
    a = p.parse_args()
    device = torch.device(a.device)
    specs = shapes(a.latent, a.width, a.channels)
    params = make_params(a.images, a.latent, a.width, a.channels, device)
    g = torch.Generator().manual_seed(1)
    z = torch.randn(a.images, a.n_seed, a.latent, generator=g).to(device).requires_grad_(True)
    target = (torch.rand(a.images, a.channels, 32, 32, generator=g) * 2 - 1).to(device)
    layouts = {
        "grouped": lambda p_, z_: forward_grouped(p_, z_, specs, False),
        "grouped-cl": lambda p_, z_: forward_grouped(p_, z_, specs, True),
        "bmm": lambda p_, z_: forward_bmm(p_, z_, specs),
    }
    print(f"torch {torch.__version__}, {device}, B={a.images}, n_seed={a.n_seed}, width={a.width}, "
          f"tf32 conv {torch.backends.cudnn.allow_tf32}, tf32 matmul {torch.backends.cuda.matmul.allow_tf32}")
    with torch.no_grad():
        ref = layouts["grouped"](params, z)
        for name, f in layouts.items():
            diff = (f(params, z) - ref).abs().max().item()
            print(f"{name}: max |out - grouped| = {diff:.2e}")
            assert diff < 1e-2, name
    for tf32 in [False, True]:
        torch.backends.cuda.matmul.allow_tf32 = tf32
        torch.backends.cudnn.allow_tf32 = tf32
        for bench in [False, True]:
            torch.backends.cudnn.benchmark = bench
            for name, f in layouts.items():
                label = f"{name} tf32={int(tf32)} bench={int(bench)}"
                time_layout(label, f, params, z, target, a.k, a.reps, device, False)
    torch.backends.cudnn.benchmark = True
    for name, f in layouts.items():
        time_layout(f"{name} bf16 bench=1", f, params, z, target, a.k, a.reps, device, True)


if __name__ == "__main__":
    main()
