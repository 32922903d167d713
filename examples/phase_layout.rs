//! A candidate layout for the per-image-theta search on a GPU (issue 38), timed beside the one
//! adgan uses: a stride-2 transposed convolution (kernel 4, padding 1) over `copies` images,
//! each with its own weights, as
//! - `grouped`: one grouped transposed convolution, channels-last (adgan's search today);
//! - `phase`: four stride-1 2x2 phases, each one batched matrix product per image over the
//!   stacked shifted inputs, interleaved into the output (no col2im). Each weight element lies
//!   in exactly one phase, so Adam on the phase matrices would be Adam on theta.
//!
//! It checks that both give the same output, then prints ms per forward and backward pass.
//! BENCHMARKS.md ("A phase-decomposed layer") has the figures.
//!
//!     cargo run --release --example phase_layout -- cpu 8 64 256 128 8
//!     # DEVICE COPIES N_SEED C_IN C_OUT H (input H x H, output 2H x 2H)

use std::time::Instant;
use tch::{Device, Kind, Tensor};

/// Per output phase (0 or 1 along an axis): the input shift and kernel index of its two taps.
const TAPS: [[(i64, i64); 2]; 2] = [[(0, 1), (-1, 3)], [(0, 2), (1, 0)]];

fn grouped(x: &Tensor, w: &Tensor, copies: i64) -> Tensor {
    x.conv_transpose2d(w, None::<Tensor>, [2, 2], [1, 1], [0, 0], copies, [1, 1])
}

/// `x` [copies, n, H, W, C_in] and the four phase matrices [copies, 4 C_in, C_out] ->
/// [copies, n, 2H, 2W, C_out].
fn phase(x: &Tensor, phases: &[Tensor]) -> Tensor {
    let [c, n, h, w, cin] = x.size()[..] else {
        panic!("x must have five dimensions")
    };
    let padded = x.constant_pad_nd([0, 0, 1, 1, 1, 1]);
    let mut rows = Vec::new();
    for (a, row_taps) in TAPS.iter().enumerate() {
        let mut row = Vec::new();
        for (b, column_taps) in TAPS.iter().enumerate() {
            let mut shifted = Vec::new();
            for (di, _) in row_taps {
                for (dj, _) in column_taps {
                    shifted.push(padded.narrow(2, 1 + di, h).narrow(3, 1 + dj, w));
                }
            }
            let stacked = Tensor::cat(&shifted, 4).view([c, n * h * w, 4 * cin]);
            row.push(stacked.bmm(&phases[2 * a + b]).view([c, n, h, w, -1]));
        }
        rows.push(Tensor::stack(&row, 4));
    }
    let y = Tensor::stack(&rows, 3); // [copies, n, H, 2, W, 2, C_out]
    let cout = y.size()[6];
    y.reshape([c, n, 2 * h, 2 * w, cout])
}

/// The weights [copies * C_in, C_out, 4, 4] as the four phase matrices of [`phase`].
fn phase_weights(w: &Tensor, copies: i64) -> Vec<Tensor> {
    let s = w.size();
    let w = w.view([copies, s[0] / copies, s[1], 4, 4]);
    let mut out = Vec::new();
    for row_taps in &TAPS {
        for column_taps in &TAPS {
            let mut parts = Vec::new();
            for (_, ky) in row_taps {
                for (_, kx) in column_taps {
                    parts.push(w.select(4, *kx).select(3, *ky));
                }
            }
            out.push(Tensor::cat(&parts, 1).contiguous());
        }
    }
    out
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let usage = "usage: phase_layout DEVICE(cpu|cuda) COPIES N_SEED C_IN C_OUT H";
    let device = match args.first().map(String::as_str) {
        Some("cuda") => Device::Cuda(0),
        Some("cpu") => Device::Cpu,
        _ => panic!("{usage}"),
    };
    let sizes: Vec<i64> = args[1..].iter().map(|a| a.parse().expect(usage)).collect();
    let [copies, n, cin, cout, h] = sizes[..] else {
        panic!("{usage}")
    };
    tch::manual_seed(0);
    let x = Tensor::randn([n, copies * cin, h, h], (Kind::Float, device));
    let w = (Tensor::randn([copies * cin, cout, 4, 4], (Kind::Float, device)) * 0.05)
        .set_requires_grad(true);
    let x_grouped = adgan::model::channels_last(&x).set_requires_grad(true);
    let x_phase = x
        .view([n, copies, cin, h, h])
        .permute([1, 0, 3, 4, 2])
        .contiguous()
        .set_requires_grad(true);
    let phases: Vec<Tensor> = phase_weights(&w.detach(), copies)
        .into_iter()
        .map(|p| p.set_requires_grad(true))
        .collect();
    let expected = grouped(&x_grouped, &w, copies);
    let got =
        phase(&x_phase, &phases)
            .permute([1, 0, 4, 2, 3])
            .reshape([n, copies * cout, 2 * h, 2 * h]);
    let diff = (&got - &expected).abs().max().double_value(&[]);
    let scale = expected.abs().max().double_value(&[]);
    println!(
        "{device:?} copies {copies} n_seed {n} C_in {cin} C_out {cout} {h}x{h} -> {}x{}",
        2 * h,
        2 * h
    );
    println!("max |phase - grouped| = {diff:.1e} (largest output {scale:.1})");
    assert!(diff <= 1e-4 * scale.max(1.0), "the layouts disagree");
    let sync = || {
        if let Device::Cuda(i) = device {
            tch::Cuda::synchronize(i as i64);
        }
    };
    let reps = 5;
    for name in ["grouped", "phase", "grouped", "phase"] {
        sync();
        let start = Instant::now();
        for _ in 0..reps {
            let y = match name {
                "grouped" => grouped(&x_grouped, &w, copies),
                _ => phase(&x_phase, &phases),
            };
            y.square().sum(Kind::Float).backward();
        }
        sync();
        let ms = start.elapsed().as_secs_f64() * 1e3 / reps as f64;
        println!("{name:8} {ms:9.2} ms forward and backward");
    }
}
