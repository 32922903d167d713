//! Embedded demo data: 32x32 RGB shapes drawn in code, so the demo and the tests need no
//! download. Class 0 (`disc`) is the normal class; squares, crosses and stripes are anomalies
//! that a person tells apart at a glance. All classes share one colour palette, so only the
//! shape gives an anomaly away.

use super::{RawImages, Split};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, Normal};

/// Class names, in label order; class 0 is the normal one of the demo.
pub const CLASS_NAMES: [&str; 4] = ["disc", "square", "cross", "stripes"];
/// Side of a demo image.
pub const SIDE: usize = 32;
/// Images per class in the train split.
pub const TRAIN_PER_CLASS: usize = 1024;
/// Images per class in the test split.
pub const TEST_PER_CLASS: usize = 256;

/// Signed distance (negative inside) from pixel centre (x, y) to the shape of `class`.
fn distance(class: usize, x: f32, y: f32, p: &[f32; 4]) -> f32 {
    let (dx, dy) = (x - p[0], y - p[1]);
    let size = p[2];
    match class {
        0 => (dx * dx + dy * dy).sqrt() - size,
        1 => {
            let (c, s) = (p[3].cos(), p[3].sin());
            let (u, v) = (c * dx + s * dy, -s * dx + c * dy);
            u.abs().max(v.abs()) - size * 0.85
        }
        2 => {
            let arm = dx.abs().min(dy.abs()) - 1.8;
            arm.max(dx.abs().max(dy.abs()) - size)
        }
        _ => {
            let (c, s) = (p[3].cos(), p[3].sin());
            let period = 6.0;
            let t = (c * x + s * y).rem_euclid(period);
            (t - period / 2.0).abs() - 1.5
        }
    }
}

/// Draws one image of `class` into `out` (HWC, 8 bits).
fn draw(class: usize, rng: &mut ChaCha8Rng, out: &mut Vec<u8>) {
    let params = [
        rng.gen_range(12.0..20.0),
        rng.gen_range(12.0..20.0),
        rng.gen_range(6.0..10.0),
        rng.gen_range(0.0..std::f32::consts::PI),
    ];
    let colour = [
        rng.gen_range(0.75..1.0f32),
        rng.gen_range(0.35..0.65f32),
        rng.gen_range(0.1..0.3f32),
    ];
    let background = [0.1f32, 0.12, 0.2];
    let noise = Normal::new(0.0f32, 0.03).expect("valid normal");
    for y in 0..SIDE {
        for x in 0..SIDE {
            let d = distance(class, x as f32 + 0.5, y as f32 + 0.5, &params);
            let alpha = (0.5 - d).clamp(0.0, 1.0);
            for c in 0..3 {
                let v = background[c] * (1.0 - alpha) + colour[c] * alpha + noise.sample(rng);
                out.push((v.clamp(0.0, 1.0) * 255.0).round() as u8);
            }
        }
    }
}

/// Generates a split: classes interleaved (0, 1, 2, 3, 0, ...), the same for the same seed.
pub fn generate(split: Split, seed: u64) -> (RawImages, Vec<u8>) {
    let (per_class, stream) = match split {
        Split::Train => (TRAIN_PER_CLASS, 0),
        Split::Test => (TEST_PER_CLASS, 1),
    };
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    rng.set_stream(stream);
    let count = per_class * CLASS_NAMES.len();
    let mut pixels = Vec::with_capacity(count * SIDE * SIDE * 3);
    let labels: Vec<u8> = (0..count).map(|i| (i % CLASS_NAMES.len()) as u8).collect();
    for &class in &labels {
        draw(class as usize, &mut rng, &mut pixels);
    }
    (
        RawImages {
            count,
            height: SIDE,
            width: SIDE,
            channels: 3,
            pixels,
        },
        labels,
    )
}
