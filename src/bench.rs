//! Benchmarks whose figures go into BENCHMARKS.md (timed here, never in tests).

use crate::data::{demo, DataSource, Dataset, Fit, FolderStream, ImageSpec, OnBadFile, Split};
use crate::eval::roc_auc;
use crate::model::{dcgan_init, Critic, Generator, ModelConfig};
use crate::rng;
use crate::run::{load_gan, TrainedGan};
use crate::score::adgan::{Adgan, AdganConfig};
use crate::score::classic::{fit_classic, Classic};
use crate::score::critic::CriticScore;
use crate::score::features::{FeatureExtractor, PcaConfig};
use crate::score::{score_all, score_source};
use crate::train::{DataProvenance, RunConfig, TrainConfig, Trainer, FORMAT_VERSION};
use anyhow::{Context, Result};
use std::time::Instant;
use tch::{Device, Kind, Tensor};

/// Timing of one kind of step.
#[derive(Debug, Clone, Copy)]
pub struct Timing {
    /// Steps timed (after warm-up).
    pub steps: usize,
    /// Mean milliseconds per step.
    pub mean_ms: f64,
    /// Fastest step in milliseconds.
    pub min_ms: f64,
}

/// Times WGAN generator iterations (each with `n_critic` critic steps) on random images in
/// [-1, 1], after `warmup` untimed iterations (the first of which records the CUDA graph that
/// the others replay, when `cuda_graph`).
pub fn training_iteration(
    model: ModelConfig,
    train: TrainConfig,
    warmup: usize,
    steps: usize,
    device: Device,
    cuda_graph: bool,
) -> Result<Timing> {
    let mut trainer = bench_trainer(model, train, device)?.with_cuda_graph(cuda_graph)?;
    for _ in 0..warmup {
        trainer.step()?;
    }
    let mut times = Vec::with_capacity(steps);
    for _ in 0..steps {
        let start = Instant::now();
        trainer.step()?;
        if let Device::Cuda(_) = device {
            tch::Cuda::synchronize(0);
        }
        times.push(start.elapsed().as_secs_f64() * 1e3);
    }
    Ok(Timing {
        steps,
        mean_ms: times.iter().sum::<f64>() / steps.max(1) as f64,
        min_ms: times.iter().copied().fold(f64::INFINITY, f64::min),
    })
}

/// How far training that replays a CUDA graph strays from training op by op: the largest
/// difference of the generator's weights after `steps` iterations from the same start,
/// relative to the largest weight.
pub fn cuda_graph_training_difference(
    model: ModelConfig,
    train: TrainConfig,
    steps: usize,
    device: Device,
) -> Result<f64> {
    let mut weights = Vec::new();
    for graph in [false, true] {
        // The same random training images for both.
        tch::manual_seed(0);
        let mut trainer = bench_trainer(model, train, device)?.with_cuda_graph(graph)?;
        for _ in 0..steps {
            trainer.step()?;
        }
        let flat: Vec<Tensor> = crate::io::named_variables(trainer.generator_vs(), "g")
            .into_iter()
            .map(|(_, t)| {
                t.flatten(0, -1)
                    .to_kind(Kind::Double)
                    .to_device(Device::Cpu)
            })
            .collect();
        weights.push(Vec::<f64>::try_from(Tensor::cat(&flat, 0))?);
    }
    Ok(relative_difference(&weights[1], &weights[0]))
}

/// Where a WGAN generator iteration spends its time: milliseconds per iteration of each phase
/// (summed over the n_critic critic steps), averaged over `steps` iterations after `warmup`.
pub fn training_profile(
    model: ModelConfig,
    train: TrainConfig,
    warmup: usize,
    steps: usize,
    device: Device,
) -> Result<Vec<(String, f64)>> {
    let mut trainer = bench_trainer(model, train, device)?;
    for _ in 0..warmup {
        trainer.step()?;
    }
    let mut totals: Vec<(String, f64)> = Vec::new();
    for _ in 0..steps {
        let mut clock = Instant::now();
        trainer.step_observed(&mut |phase| {
            if let Device::Cuda(_) = device {
                tch::Cuda::synchronize(0);
            }
            let now = Instant::now();
            let ms = (now - clock).as_secs_f64() * 1e3;
            clock = now;
            match totals.iter_mut().find(|(n, _)| n == phase) {
                Some((_, t)) => *t += ms,
                None => totals.push((phase.to_string(), ms)),
            }
        })?;
    }
    Ok(totals
        .into_iter()
        .map(|(n, t)| (n, t / steps.max(1) as f64))
        .collect())
}

/// A trainer on 1024 random images in [-1, 1] shaped for `model`.
fn bench_trainer(model: ModelConfig, train: TrainConfig, device: Device) -> Result<Trainer> {
    let n = 1024;
    let data = Dataset {
        images: Tensor::rand(
            [n, model.channels, model.image_size, model.image_size],
            (Kind::Float, Device::Cpu),
        ) * 2.0
            - 1.0,
        labels: None,
        ids: (0..n).map(|i| i.to_string()).collect(),
        class_names: Vec::new(),
        skipped: Vec::new(),
    };
    let config = RunConfig {
        format_version: FORMAT_VERSION,
        model,
        train,
        data: DataProvenance {
            source: DataSource::Demo { seed: 0 },
            split: Split::Train,
            normal_class: None,
            fit: Fit::Pad,
            n_images: n as usize,
            fingerprint: String::new(),
            calibration: None,
        },
    };
    Trainer::new(config, &data, device)
}

/// Multiply-adds of one generator forward pass for one latent: each transposed convolution's
/// weights (C_in * C_out * 4 * 4) once per input pixel, the input of layer i being 1x1, then
/// 4x4, 8x8, ...; BatchNorm, activations and the loss are elementwise and left out.
pub fn generator_macs(generator: &Generator) -> f64 {
    generator
        .convs
        .iter()
        .enumerate()
        .map(|(i, conv)| {
            let side = if i == 0 { 1 } else { 4 << (i - 1) };
            (conv.ws.numel() as i64 * side * side) as f64
        })
        .sum()
}

/// Floating-point operations of the ADGAN search for one image: per latent, k steps of forward
/// and backward (the backward pass computes gradients of both the inputs and the weights of
/// every layer: twice the forward's products) and one last forward for the score; two FLOPs per
/// multiply-add.
pub fn search_flops(generator: &Generator, search: &AdganConfig) -> f64 {
    let passes = 3.0 * search.k as f64 + 1.0;
    2.0 * generator_macs(generator) * passes * search.n_seed as f64
}

/// The generator a search benchmark times: the trained one of a run folder, or a freshly
/// DCGAN-initialised one. Trained weights matter: a trained generator searches at another speed
/// than a fresh one of the same architecture (BENCHMARKS.md).
pub enum BenchGenerator {
    /// A run's trained generator.
    Trained(Box<TrainedGan>),
    /// A fresh generator and the variables that hold its weights.
    Fresh(tch::nn::VarStore, Generator),
}

impl BenchGenerator {
    /// Loads the generator of the run folder `run`, or initialises one of architecture `model`.
    pub fn new(run: Option<&std::path::Path>, model: ModelConfig, device: Device) -> Result<Self> {
        if let Some(dir) = run {
            return Ok(Self::Trained(Box::new(load_gan(dir, device)?)));
        }
        let vs = tch::nn::VarStore::new(device);
        let generator = Generator::new(&vs.root(), model)?;
        dcgan_init(&vs, &mut rng::seeded(0));
        Ok(Self::Fresh(vs, generator))
    }

    /// The generator.
    pub fn generator(&self) -> &Generator {
        match self {
            Self::Trained(gan) => &gan.generator,
            Self::Fresh(_, generator) => generator,
        }
    }
}

/// Random images in [-1, 1] shaped for `generator`'s output, on the CPU.
fn random_images(generator: &Generator, n: usize) -> Tensor {
    let model = generator.config();
    Tensor::rand(
        [n as i64, model.channels, model.image_size, model.image_size],
        (Kind::Float, Device::Cpu),
    ) * 2.0
        - 1.0
}

/// Images per second of the ADGAN search with `generator` over `n_images` random images,
/// `batch` at a time (the speed does not depend on the images), replaying a CUDA graph when
/// `cuda_graph`. One untimed batch warms up (and records the graph).
pub fn scoring_throughput(
    generator: &Generator,
    search: AdganConfig,
    batch: usize,
    n_images: usize,
    device: Device,
    cuda_graph: bool,
) -> Result<f64> {
    let images = random_images(generator, n_images);
    let mut detector = Adgan::new(generator, search, device)?.with_cuda_graph(cuda_graph)?;
    score_all(
        &mut detector,
        &images.narrow(0, 0, batch.min(n_images) as i64),
        batch,
        device,
        &mut |_, _| {},
    )?;
    let start = Instant::now();
    score_all(&mut detector, &images, batch, device, &mut |_, _| {})?;
    if let Device::Cuda(i) = device {
        tch::Cuda::synchronize(i as i64);
    }
    Ok(n_images as f64 / start.elapsed().as_secs_f64())
}

/// How far the scores of a search replayed from a CUDA graph stray from the same search run
/// op by op: the largest difference over `n_images` random images scored `batch` at a time,
/// relative to the largest score ([`relative_difference`]).
pub fn cuda_graph_difference(
    generator: &Generator,
    search: AdganConfig,
    batch: usize,
    n_images: usize,
    device: Device,
) -> Result<f64> {
    let images = random_images(generator, n_images);
    let mut scores = Vec::new();
    for graph in [false, true] {
        let mut detector = Adgan::new(generator, search, device)?.with_cuda_graph(graph)?;
        scores.push(score_all(
            &mut detector,
            &images,
            batch,
            device,
            &mut |_, _| {},
        )?);
    }
    Ok(relative_difference(&scores[1], &scores[0]))
}

/// One classic baseline fitted at a fixed PCA dimension and scored on a labelled test set.
#[derive(Debug)]
pub struct BaselineRun {
    /// The baseline.
    pub kind: Classic,
    /// ROC-AUC on the test images.
    pub auc: f64,
    /// Hyperparameters it chose.
    pub chosen: std::collections::BTreeMap<String, f64>,
    /// Seconds to fit (PCA included).
    pub fit_seconds: f64,
    /// Seconds to score the test images.
    pub score_seconds: f64,
    /// The test images' scores.
    pub scores: Vec<f64>,
}

/// The largest difference between two runs' scores of the same images, relative to the
/// largest score magnitude of `reference`: how far a baseline fitted on another device strays
/// from the CPU's.
pub fn relative_difference(scores: &[f64], reference: &[f64]) -> f64 {
    assert_eq!(scores.len(), reference.len(), "scores of different images");
    let scale = reference
        .iter()
        .fold(0.0f64, |m, s| m.max(s.abs()))
        .max(1e-300);
    let largest = scores
        .iter()
        .zip(reference)
        .fold(0.0f64, |m, (a, b)| m.max((a - b).abs()));
    largest / scale
}

/// Fits each baseline of `kinds` on `train` images with PCA dimension `dim` and scores `test`
/// (labels 1 = anomalous): the figures `bench/baselines.py` reproduces with scikit-learn.
pub fn classic_baselines(
    train: &Tensor,
    test: &Tensor,
    labels: &[i64],
    dim: usize,
    seed: u64,
    kinds: &[Classic],
    device: Device,
) -> Result<Vec<BaselineRun>> {
    let config = PcaConfig {
        fallback_dim: dim,
        seed,
        ..PcaConfig::default()
    };
    let train = train.to_device(device);
    let mut runs = Vec::new();
    for &kind in kinds {
        let start = Instant::now();
        let pixels = FeatureExtractor::Pixels;
        let mut fitted = fit_classic(kind, &pixels, &train, None, &config)?;
        let fit_seconds = start.elapsed().as_secs_f64();
        let start = Instant::now();
        let scores = score_all(fitted.detector.as_mut(), test, 1024, device, &mut |_, _| {})?;
        runs.push(BaselineRun {
            kind,
            auc: roc_auc(&scores, labels)?,
            chosen: fitted.chosen,
            fit_seconds,
            score_seconds: start.elapsed().as_secs_f64(),
            scores,
        });
    }
    Ok(runs)
}

/// What [`streaming_scoring`] measured.
#[derive(Debug)]
pub struct StreamingFigures {
    /// Images scored.
    pub images: usize,
    /// Seconds to score them (reading included).
    pub seconds: f64,
    /// Peak resident memory of the process in MiB (Linux `VmHWM`), if known.
    pub peak_rss_mib: Option<f64>,
    /// What the images alone would take as one float tensor, in MiB.
    pub tensor_mib: f64,
}

/// Peak resident set size of this process in MiB, from `/proc/self/status` (Linux).
pub fn peak_rss_mib() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib / 1024.0)
}

/// Writes `n` 32x32 RGB PNGs (the demo's test shapes, cycled) into `dir` unless it already holds
/// them, then scores the folder streamed, `batch` images at a time, with the critic of a
/// randomly initialised width-64 GAN (the cheapest detector, so reading dominates), and reports
/// time and peak memory.
pub fn streaming_scoring(
    dir: &std::path::Path,
    n: usize,
    batch: usize,
    device: Device,
) -> Result<StreamingFigures> {
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let existing = std::fs::read_dir(dir)?.count();
    if existing != n {
        let (raw, _) = demo::generate(Split::Test, 0);
        let len = raw.image_len();
        for i in 0..n {
            let k = i % raw.count;
            image::save_buffer(
                dir.join(format!("{i:06}.png")),
                &raw.pixels[k * len..(k + 1) * len],
                32,
                32,
                image::ExtendedColorType::Rgb8,
            )?;
        }
    }
    let model = ModelConfig::default();
    let vs = tch::nn::VarStore::new(device);
    let critic = Critic::new(&vs.root(), model)?;
    dcgan_init(&vs, &mut rng::seeded(0));
    let mut detector = CriticScore::new(&critic);
    let spec = ImageSpec {
        size: 32,
        channels: 3,
    };
    let mut stream = FolderStream::open(dir, spec, Fit::Pad, OnBadFile::Fail)?;
    let start = Instant::now();
    let scores = score_source(&mut detector, &mut stream, batch, device, &mut |_, _| {})?;
    Ok(StreamingFigures {
        images: scores.len(),
        seconds: start.elapsed().as_secs_f64(),
        peak_rss_mib: peak_rss_mib(),
        tensor_mib: (n * 3 * 32 * 32 * 4) as f64 / (1024.0 * 1024.0),
    })
}

/// [`Adgan::profile_step`] on `batch` random images with `generator`:
/// milliseconds per search step by phase.
pub fn search_profile(
    generator: &Generator,
    search: AdganConfig,
    batch: usize,
    steps: usize,
    device: Device,
) -> Result<Vec<(String, f64)>> {
    let images = random_images(generator, batch).to_device(device);
    let detector = Adgan::new(generator, search, device)?;
    detector.profile_step(&images, steps)
}

#[cfg(test)]
mod tests {
    use super::relative_difference;

    #[test]
    fn relative_difference_is_the_largest_gap_over_the_largest_reference_score() {
        assert_eq!(relative_difference(&[1.0, 2.0], &[1.0, 2.0]), 0.0);
        assert_eq!(relative_difference(&[1.0, 2.0], &[1.0, -4.0]), 1.5);
        assert_eq!(relative_difference(&[0.5, 4.0], &[1.0, 4.0]), 0.125);
    }
}
