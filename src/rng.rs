//! Seeded random tensors drawn from a generator the caller owns.
//!
//! libtorch's own generator is one per process: two runs in one process (parallel tests, a
//! library user training two models) would share and perturb it. Drawing from a ChaCha
//! generator owned by the run keeps every run reproducible on its own, whatever else runs.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::StandardNormal;
use tch::{Device, Tensor};

/// A seeded generator: the same seed gives the same stream on every machine.
pub fn seeded(seed: u64) -> ChaCha8Rng {
    ChaCha8Rng::seed_from_u64(seed)
}

/// Mixes a seed and a counter into an independent seed (the SplitMix64 finaliser).
pub fn mix(seed: u64, counter: u64) -> u64 {
    let mut z = seed ^ counter.wrapping_mul(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// A float tensor of the given shape with entries from N(mean, std^2).
pub fn normal(rng: &mut ChaCha8Rng, shape: &[i64], mean: f64, std: f64, device: Device) -> Tensor {
    let n: i64 = shape.iter().product();
    let values: Vec<f32> = (0..n)
        .map(|_| (mean + std * rng.sample::<f64, _>(StandardNormal)) as f32)
        .collect();
    Tensor::from_slice(&values).view(shape).to_device(device)
}

/// A float tensor of the given shape with entries from U[0, 1).
pub fn uniform(rng: &mut ChaCha8Rng, shape: &[i64], device: Device) -> Tensor {
    let n: i64 = shape.iter().product();
    let values: Vec<f32> = (0..n).map(|_| rng.gen::<f32>()).collect();
    Tensor::from_slice(&values).view(shape).to_device(device)
}

/// `count` indices drawn uniformly, with replacement, from 0..n.
pub fn indices(rng: &mut ChaCha8Rng, n: i64, count: i64, device: Device) -> Tensor {
    let values: Vec<i64> = (0..count).map(|_| rng.gen_range(0..n)).collect();
    Tensor::from_slice(&values).to_device(device)
}
