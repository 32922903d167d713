//! ADGAN scoring: the paper's Algorithm 1.
//!
//! For a test image x: theta_0 = the trained generator parameters; z_{j,0} ~ N(0, I) for
//! j = 1..n_seed; for t = 1..k, one Adam step on every z_j (rate lr_z) and on theta (rate
//! lr_theta) against loss_j = ||g_theta(z_j) - x||^2; the score is the mean over j of the final
//! loss. theta and the Adam state start afresh for every image.
//!
//! Choices, each documented where it is made:
//! - BatchNorm uses its running statistics (eval mode), so seeds and images never influence
//!   each other through batch statistics; its scale and shift are part of theta and adapted.
//! - The initial latents are drawn once from the seed and used for every image, so an image's
//!   score does not depend on its position in the data or on the other images scored with it.
//! - Images are scored B at a time: each image gets its own copy of theta, the copies are
//!   stacked along the channel axis, and every transposed convolution runs as one grouped
//!   convolution (groups = copies). Adam is elementwise, so one Adam over the stacked tensors
//!   is exactly one Adam per image. B = 1 is the plain per-image loop.

use super::Detector;
use crate::data::Dataset;
use crate::inverse::{EncoderConfig, LatentEncoder};
use crate::model::{Generator, ModelConfig};
use crate::optim::{Optimizer, OptimizerConfig};
use crate::rng;
use crate::run::TrainedGan;
use crate::setting::check;
use anyhow::{ensure, Context, Result};
use serde::{Deserialize, Serialize};
use tch::{Device, Kind, Tensor};

mod replay;

/// Which parameters the latent search adapts besides the latents.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[cfg_attr(feature = "cli", derive(clap::ValueEnum))]
#[serde(rename_all = "kebab-case")]
pub enum ThetaMode {
    /// One copy of theta per image, shared by its n_seed latents (the default).
    #[default]
    Shared,
    /// One copy of theta per latent seed: the literal theta_{j,t} of Algorithm 1.
    PerSeed,
    /// theta stays at the trained values; only the latents move.
    Fixed,
}

/// The reconstruction loss of the search.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[cfg_attr(feature = "cli", derive(clap::ValueEnum))]
#[serde(rename_all = "lowercase")]
pub enum ReconstructionLoss {
    /// Squared L2 distance summed over pixels (the paper's).
    #[default]
    L2,
    /// L1 distance summed over pixels.
    L1,
    /// Laplacian-pyramid L1 distance (Lap1 of Bojanowski et al. 2018, "Optimizing the latent
    /// space of generative networks", the improvement the ADGAN paper names): the sum over
    /// pyramid levels j (0 = finest) of 4^j times the L1 distance of the band-pass images, so
    /// that every level weighs alike although each coarser one has a quarter of the pixels.
    Laplacian,
}

/// How the n_seed final losses of an image become its score.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[cfg_attr(feature = "cli", derive(clap::ValueEnum))]
#[serde(rename_all = "lowercase")]
pub enum Aggregate {
    /// Mean over seeds (the paper's).
    #[default]
    Mean,
    /// Minimum over seeds: the best reconstruction any seed reached.
    Min,
}

/// Where the search's n_seed latents start.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[cfg_attr(feature = "cli", derive(clap::ValueEnum))]
#[serde(rename_all = "lowercase")]
pub enum SearchStart {
    /// Drawn from the prior N(0, I) (the paper's).
    #[default]
    Prior,
    /// Around E(x), the guess of an encoder trained to invert the generator:
    /// z_j = E(x) + spread * epsilon_j with the prior draws epsilon_j.
    Encoder,
}

impl SearchStart {
    /// Whether this is the paper's start (left out of saved settings, which stay as before).
    pub fn is_prior(&self) -> bool {
        *self == SearchStart::Prior
    }
}

fn default_spread() -> f64 {
    0.5
}

/// Settings of the ADGAN latent search.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct AdganConfig {
    /// Latent seeds per image, n_seed (64 in the paper).
    pub n_seed: i64,
    /// Adam steps, k (5 in the paper).
    pub k: usize,
    /// Adam learning rate of the latents.
    pub lr_z: f64,
    /// Adam learning rate of the generator parameters theta.
    pub lr_theta: f64,
    /// How theta is adapted.
    pub theta: ThetaMode,
    /// Reconstruction loss.
    pub loss: ReconstructionLoss,
    /// How the seeds' final losses are combined into the score.
    #[serde(default)]
    pub aggregate: Aggregate,
    /// Seed of the initial latents.
    pub seed: u64,
    /// Number format of the generator's matrix products during the search.
    #[serde(default)]
    pub precision: Precision,
    /// Where the latents start.
    #[serde(default, skip_serializing_if = "SearchStart::is_prior")]
    pub start: SearchStart,
    /// With the encoder start: the scale of the prior draws around E(x).
    #[serde(default = "default_spread", skip_serializing_if = "is_default_spread")]
    pub spread: f64,
}

fn is_default_spread(spread: &f64) -> bool {
    *spread == default_spread()
}

/// Number format of the generator's forward pass during the search. theta, the latents, their
/// gradients, the Adam state, the generated image and the loss stay f32 in both.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[cfg_attr(feature = "cli", derive(clap::ValueEnum))]
#[serde(rename_all = "lowercase")]
pub enum Precision {
    /// 32-bit floats throughout (the default).
    #[default]
    F32,
    /// bfloat16 weights and hidden activations in the transposed convolutions, at 8 bits of
    /// mantissa: for hardware with bf16 dot products (GPUs, x86 CPUs with AVX512-BF16 or
    /// AMX). Its speed against f32 is in BENCHMARKS.md.
    Bf16,
}

impl Default for AdganConfig {
    /// The paper's n_seed = 64 and k = 5 with L2 loss. The learning rates (lr_z, lr_theta) were
    /// the best pair of a grid on MNIST; RESULTS.md ("The search's learning rates") has the
    /// measurements.
    fn default() -> Self {
        Self {
            n_seed: 64,
            k: 5,
            lr_z: 0.25,
            lr_theta: 5e-4,
            theta: ThetaMode::Shared,
            loss: ReconstructionLoss::L2,
            aggregate: Aggregate::Mean,
            seed: 0,
            precision: Precision::F32,
            start: SearchStart::Prior,
            spread: default_spread(),
        }
    }
}

impl AdganConfig {
    /// This search with Adam learning rate `lr_theta` for theta; 0 keeps theta fixed (the
    /// limit of ever smaller rates), so that one number can name every choice.
    pub fn with_lr_theta(mut self, lr_theta: f64) -> Self {
        self.lr_theta = lr_theta;
        if lr_theta == 0.0 {
            self.theta = ThetaMode::Fixed;
        }
        self
    }

    /// The rate theta adapts at: lr_theta, or 0 when theta stays fixed (the inverse of
    /// [`Self::with_lr_theta`], so a recorded choice names the search that ran).
    pub fn effective_lr_theta(&self) -> f64 {
        match self.theta {
            ThetaMode::Fixed => 0.0,
            _ => self.lr_theta,
        }
    }

    /// Checks the search before any work: n_seed and k of at least one, positive finite
    /// learning rates, and a memory need per image (see [`search_bytes_per_image`]) that fits
    /// in the memory this machine has free.
    pub fn validate(&self, model: &ModelConfig) -> Result<()> {
        use crate::setting::check;
        check(self.n_seed > 0, "n_seed", || {
            "n_seed must be at least 1 (the paper's is 64)".into()
        })?;
        check(self.k > 0, "k", || {
            "k must be at least 1 (the paper's is 5)".into()
        })?;
        check(self.lr_z > 0.0 && self.lr_z.is_finite(), "lr_z", || {
            format!("lr_z must be positive and finite, not {}", self.lr_z)
        })?;
        let fixed = self.theta == ThetaMode::Fixed;
        check(
            fixed || (self.lr_theta > 0.0 && self.lr_theta.is_finite()),
            "lr_theta",
            || {
                format!(
                    "lr_theta must be positive and finite, not {} (0 keeps theta fixed)",
                    self.lr_theta
                )
            },
        )?;
        check(
            self.spread >= 0.0 && self.spread.is_finite(),
            "spread",
            || {
                format!(
                    "the spread around the encoder's guess must be finite and not negative, not {}",
                    self.spread
                )
            },
        )?;
        let need = search_bytes_per_image(model, self);
        if let Some(free) = crate::device::available_memory() {
            ensure!(
                need < free,
                "the search needs about {:.1} GiB per image (n_seed {}), more than the {:.1} GiB \
                 of memory free here: lower n_seed",
                need as f64 / GIB,
                self.n_seed,
                free as f64 / GIB
            );
        }
        Ok(())
    }
}

const GIB: f64 = (1u64 << 30) as f64;

/// Estimated bytes a search needs per image: six copies of theta per copy of it (values,
/// gradients, two Adam moments, temporaries), and forward plus backward activations of the
/// n_seed latents.
pub fn search_bytes_per_image(model: &ModelConfig, config: &AdganConfig) -> u64 {
    let copies_per_image = match config.theta {
        ThetaMode::Shared => 1,
        ThetaMode::PerSeed => config.n_seed as u64,
        ThetaMode::Fixed => 0,
    };
    let stages = model.stages();
    let top = model.width << (stages - 1);
    let activations: i64 = (0..stages)
        .map(|i| (top >> i) * (4 << i) * (4 << i))
        .sum::<i64>()
        + model.channels * model.image_size * model.image_size;
    let params = model.generator_parameters() as u64;
    4 * (6 * params * copies_per_image + 4 * activations as u64 * config.n_seed as u64)
}

/// The generator's parameters, stacked for `copies` independent copies.
struct StackedGenerator {
    /// Transposed-convolution weights, [copies * C_in, C_out, 4, 4].
    weights: Vec<Tensor>,
    /// BatchNorm scales and shifts, [copies * C].
    scales: Vec<Tensor>,
    shifts: Vec<Tensor>,
    /// Running statistics, repeated per copy (never adapted).
    means: Vec<Tensor>,
    vars: Vec<Tensor>,
    strides: Vec<(i64, i64)>,
    copies: i64,
    precision: Precision,
}

impl StackedGenerator {
    fn new(generator: &Generator, copies: i64, adapt: bool, precision: Precision) -> Self {
        let stack = |t: &Tensor| {
            let mut reps = vec![1i64; t.dim()];
            reps[0] = copies;
            let stacked = t.detach().repeat(reps.as_slice());
            if adapt {
                stacked.set_requires_grad(true)
            } else {
                stacked
            }
        };
        let norms = &generator.norms;
        let fixed = |t: &Tensor| t.detach().repeat([copies]);
        Self {
            weights: generator.convs.iter().map(|c| stack(&c.ws)).collect(),
            scales: norms
                .iter()
                .map(|n| stack(n.ws.as_ref().expect("affine BatchNorm")))
                .collect(),
            shifts: norms
                .iter()
                .map(|n| stack(n.bs.as_ref().expect("affine BatchNorm")))
                .collect(),
            means: norms.iter().map(|n| fixed(&n.running_mean)).collect(),
            vars: norms.iter().map(|n| fixed(&n.running_var)).collect(),
            strides: (0..generator.convs.len())
                .map(Generator::geometry)
                .collect(),
            copies,
            precision,
        }
    }

    /// theta back to the generator's values in every copy, in place (the tensors a recorded
    /// CUDA graph reads stay the same).
    fn reset_from(&mut self, generator: &Generator) {
        let copies = self.copies;
        let refill = |stacked: &mut Tensor, trained: &Tensor| {
            stacked
                .view([copies, -1])
                .copy_(&trained.detach().reshape([1, -1]));
        };
        tch::no_grad(|| {
            for (w, conv) in self.weights.iter_mut().zip(&generator.convs) {
                refill(w, &conv.ws);
            }
            for ((scale, shift), norm) in self
                .scales
                .iter_mut()
                .zip(self.shifts.iter_mut())
                .zip(&generator.norms)
            {
                refill(scale, norm.ws.as_ref().expect("affine BatchNorm"));
                refill(shift, norm.bs.as_ref().expect("affine BatchNorm"));
            }
        });
    }

    /// Parameters to adapt, as named tensors.
    fn parameters(&self) -> Vec<(String, Tensor)> {
        let named = |prefix: &str, ts: &[Tensor]| {
            ts.iter()
                .enumerate()
                .map(|(i, t)| (format!("{prefix}{i}"), t.shallow_clone()))
                .collect::<Vec<_>>()
        };
        let mut all = named("weight", &self.weights);
        all.extend(named("scale", &self.scales));
        all.extend(named("shift", &self.shifts));
        all
    }

    /// Input [n, copies * d'] -> images [n, copies * channels, H, W], calling `after(layer, op)`
    /// after each op (the profiler times the ops this way).
    fn forward_observed(&self, z: &Tensor, after: &mut dyn FnMut(usize, &str)) -> Tensor {
        let mut x = crate::model::channels_last(&self.first_layer(z));
        after(0, "matmul");
        for (i, w) in self.weights.iter().enumerate() {
            if i > 0 {
                let (stride, padding) = self.strides[i];
                x = self.lowered(&x).conv_transpose2d(
                    &self.lowered(w),
                    None::<Tensor>,
                    [stride, stride],
                    [padding, padding],
                    [0, 0],
                    self.copies,
                    [1, 1],
                );
                after(i, "conv_transpose");
            }
            // In bf16 the hidden activations stay bf16 (BatchNorm takes bf16 inputs with f32
            // statistics and parameters), halving their memory traffic; the image is f32.
            x = match self.scales.get(i) {
                Some(scale) => x
                    .batch_norm(
                        Some(scale),
                        Some(&self.shifts[i]),
                        Some(&self.means[i]),
                        Some(&self.vars[i]),
                        false,
                        0.0,
                        1e-5,
                        true,
                    )
                    .relu(),
                None => x.to_kind(Kind::Float).tanh(),
            };
            after(i, "norm+activation");
        }
        x
    }

    /// The first transposed convolution (1x1 -> 4x4, stride 1, no padding) as the matrix product
    /// it is: [n, copies * d'] -> [n, copies * C, 4, 4], faster than libtorch's transposed
    /// convolution for this layer (BENCHMARKS.md); with copies > 1 it is one batched product,
    /// where a grouped convolution would be one small product per copy.
    fn first_layer(&self, z: &Tensor) -> Tensor {
        let (n, copies) = (z.size()[0], self.copies);
        let w = &self.weights[0];
        let d = w.size()[0] / copies;
        let out_channels = w.size()[1];
        let weights = self.lowered(w).view([copies, d, out_channels * 16]);
        let inputs = self.lowered(z).view([n, copies, d]).transpose(0, 1);
        inputs
            .bmm(&weights)
            .transpose(0, 1)
            .reshape([n, copies * out_channels, 4, 4])
    }

    /// `t` in the number format of the matrix products.
    fn lowered(&self, t: &Tensor) -> Tensor {
        match self.precision {
            Precision::F32 => t.shallow_clone(),
            Precision::Bf16 => t.to_kind(Kind::BFloat16),
        }
    }
}

/// Per-seed reconstruction losses of `diff` = g(z) - x, [B, n_seed, C, H, W] -> [B, n_seed].
fn reconstruction_loss(diff: &Tensor, loss: ReconstructionLoss) -> Tensor {
    let dims = [2i64, 3, 4];
    let sum = |t: Tensor| t.sum_dim_intlist(dims.as_slice(), false, Kind::Float);
    match loss {
        ReconstructionLoss::L2 => sum(diff.square()),
        ReconstructionLoss::L1 => sum(diff.abs()),
        ReconstructionLoss::Laplacian => laplacian_l1(diff),
    }
}

/// Side of the coarsest level of the Laplacian pyramid (the low-pass residual).
const PYRAMID_COARSEST: i64 = 4;

/// Lap1 of `diff` [B, n, C, H, W] -> [B, n]: the pyramid is linear, so the pyramid of the
/// difference is the difference of the pyramids. Level j is G_j - up(G_{j+1}), with G_0 the
/// image, G_{j+1} the 5x5 binomial blur of G_j taken at every other pixel, and up a bilinear
/// upsampling; the last level is the low-pass image itself.
fn laplacian_l1(diff: &Tensor) -> Tensor {
    let s = diff.size();
    let (b, n, c, h, w) = (s[0], s[1], s[2], s[3], s[4]);
    let mut level = diff.reshape([b * n, c, h, w]);
    let taps = Tensor::from_slice(&[1f32, 4., 6., 4., 1.]).to_device(diff.device()) / 16.0;
    let kernel = (taps.view([5, 1]) * taps.view([1, 5]))
        .view([1, 1, 5, 5])
        .repeat([c, 1, 1, 1])
        .to_kind(diff.kind());
    let l1 = |t: &Tensor| {
        t.abs()
            .sum_dim_intlist([1i64, 2, 3].as_slice(), false, Kind::Float)
            .view([b, n])
    };
    let mut total = Tensor::zeros([b, n], (Kind::Float, diff.device()));
    let mut weight = 1.0;
    while level.size()[2] > PYRAMID_COARSEST {
        let side = level.size()[2];
        let blurred = level.pad([2, 2, 2, 2], "reflect", None).conv2d(
            &kernel,
            None::<Tensor>,
            [1, 1],
            [0, 0],
            [1, 1],
            c,
        );
        let coarse = blurred.slice(2, 0, side, 2).slice(3, 0, side, 2);
        let up = coarse.upsample_bilinear2d([side, side], false, None, None);
        total += l1(&(&level - up)) * weight;
        level = coarse;
        weight *= 4.0;
    }
    total + l1(&level) * weight
}

/// The outcome of a latent search over a batch of B images.
#[derive(Debug)]
pub struct Search {
    /// Loss over seeds (their mean, or as [`AdganConfig::aggregate`] says) before each of the
    /// k steps and after the last one, [k + 1, B]: row 0 is before any step, row k is the ADGAN
    /// score.
    pub losses: Tensor,
    /// The final latents z_{j,k}, [B, n_seed, d'].
    pub latents: Tensor,
    /// The best reconstruction g(z*) of each image: the final image of the seed with the
    /// lowest final loss, [B, C, H, W].
    pub best: Tensor,
}

impl Search {
    /// The outcome, refused when a loss is not finite.
    fn checked(losses: Tensor, latents: Tensor, best: Tensor) -> Result<Self> {
        ensure!(
            bool::try_from(losses.isfinite().all())?,
            "the latent search produced a non-finite loss: lower lr_z or lr_theta"
        );
        Ok(Self {
            losses,
            latents,
            best,
        })
    }

    /// The ADGAN score of each image: the final loss over seeds (mean by default), [B].
    pub fn final_losses(&self) -> Tensor {
        self.losses.get(self.losses.size()[0] - 1)
    }
}

/// What a search updates: theta copies, latents [B, n_seed, d'], and their optimisers.
struct SearchState {
    stacked: StackedGenerator,
    latents: Tensor,
    opt_z: Optimizer,
    opt_theta: Optimizer,
}

impl SearchState {
    /// Per-image, per-seed losses ||g(z_j) - x||^2 (shape [B, n_seed]).
    fn losses(&self, images: &Tensor, loss: ReconstructionLoss) -> Tensor {
        self.losses_observed(images, loss, &mut |_, _| {})
    }

    /// [`SearchState::losses`], calling `after(layer, op)` after each forward op (see
    /// [`StackedGenerator::forward_observed`]).
    fn losses_observed(
        &self,
        images: &Tensor,
        loss: ReconstructionLoss,
        after: &mut dyn FnMut(usize, &str),
    ) -> Tensor {
        let generated = self.generated(after);
        reconstruction_loss(&(generated - images.unsqueeze(1)), loss)
    }

    /// g_theta(z_j) for every image and seed, [B, n_seed, C, H, W].
    fn generated(&self, after: &mut dyn FnMut(usize, &str)) -> Tensor {
        let size = self.latents.size();
        let (b, n_seed, d) = (size[0], size[1], size[2]);
        let copies = self.stacked.copies;
        let per_copy = b * n_seed / copies;
        let input = self
            .latents
            .reshape([copies, per_copy, d])
            .permute([1, 0, 2])
            .reshape([per_copy, copies * d]);
        let out = self.stacked.forward_observed(&input, after);
        let s = out.size();
        let (c, h, w) = (s[1] / copies, s[2], s[3]);
        out.view([per_copy, copies, c, h, w])
            .permute([1, 0, 2, 3, 4])
            .reshape([b, n_seed, c, h, w])
    }

    /// The k Adam steps on `images`, then the final losses.
    fn run(mut self, images: &Tensor, config: &AdganConfig) -> Result<Search> {
        let (losses, latents, best) = self.steps(images, config);
        Search::checked(losses, latents, best)
    }

    /// Back to the start of a search from `initial` [B, n_seed, d'], in place: the latents,
    /// theta and both Adam states.
    fn reset(&mut self, generator: &Generator, initial: &Tensor) {
        tch::no_grad(|| {
            self.latents.copy_(initial);
        });
        self.stacked.reset_from(generator);
        self.opt_z.reset();
        self.opt_theta.reset();
    }

    /// The k Adam steps on `images` from the current state, then the final forward:
    /// (losses [k + 1, B], final latents, best reconstructions), as [`Search`] has them. Reads
    /// no value back to the CPU, so that a CUDA graph can record it.
    fn steps(&mut self, images: &Tensor, config: &AdganConfig) -> (Tensor, Tensor, Tensor) {
        let mut history = Vec::with_capacity(config.k + 1);
        let aggregate = |losses: &Tensor| match config.aggregate {
            Aggregate::Mean => losses.mean_dim(1, false, Kind::Float),
            Aggregate::Min => losses.amin(1, false),
        };
        for _ in 0..config.k {
            let losses = self.losses(images, config.loss);
            history.push(aggregate(&losses.detach()));
            self.opt_z.zero_grad();
            self.opt_theta.zero_grad();
            losses.sum(Kind::Float).backward();
            self.opt_z.step();
            self.opt_theta.step();
        }
        let (last, best) = tch::no_grad(|| {
            let generated = self.generated(&mut |_, _| {});
            let last = reconstruction_loss(&(&generated - images.unsqueeze(1)), config.loss);
            // The reconstruction of the seed that came closest, [B, C, H, W].
            let s = generated.size();
            let closest = last.argmin(1, false).view([s[0], 1, 1, 1, 1]);
            let best = generated.gather(
                1,
                &closest.expand([s[0], 1, s[2], s[3], s[4]], false),
                false,
            );
            (last, best.squeeze_dim(1))
        });
        history.push(aggregate(&last));
        (Tensor::stack(&history, 0), self.latents.detach(), best)
    }
}

/// The ADGAN detector over a trained generator.
pub struct Adgan<'a> {
    generator: &'a Generator,
    config: AdganConfig,
    initial_latents: Tensor,
    /// The encoder whose guess the latents start around ([`SearchStart::Encoder`]).
    encoder: Option<LatentEncoder>,
    /// The best reconstructions of the last batch scored.
    last_best: Option<Tensor>,
    /// Whether searches run as a recorded CUDA graph ([`Adgan::with_cuda_graph`]).
    cuda_graph: bool,
    /// The buffers and graph of the last batch size searched with a CUDA graph.
    replay: Option<replay::Replay>,
}

impl<'a> Adgan<'a> {
    /// A detector searching the latent space of `generator` with `config`.
    pub fn new(generator: &'a Generator, config: AdganConfig, device: Device) -> Result<Self> {
        config.validate(&generator.config())?;
        let d = generator.config().latent_dim;
        let initial_latents = rng::normal(
            &mut rng::seeded(config.seed),
            &[config.n_seed, d],
            0.0,
            1.0,
            device,
        );
        Ok(Self {
            generator,
            config,
            initial_latents,
            encoder: None,
            last_best: None,
            cuda_graph: false,
            replay: None,
        })
    }

    /// The search over a trained run's generator, with its encoder when the search starts from
    /// one: trained once into the run folder on `trained_on` (the GAN's training images; read
    /// again from the run when `None`), or loaded from there. `on_fit(done, total)` follows
    /// the encoder's training.
    pub fn for_run(
        gan: &'a TrainedGan,
        config: AdganConfig,
        trained_on: Option<&Dataset>,
        device: Device,
        on_fit: &mut dyn FnMut(usize, usize),
    ) -> Result<Self> {
        let adgan = Self::new(&gan.generator, config, device)?;
        if config.start == SearchStart::Prior {
            return Ok(adgan);
        }
        let encoder_config = EncoderConfig::default();
        let encoder =
            LatentEncoder::train_or_load(gan, trained_on, encoder_config, device, on_fit)?;
        Ok(adgan.with_encoder(encoder))
    }

    /// The detector with the encoder the latents start around (needed by
    /// [`SearchStart::Encoder`]).
    pub fn with_encoder(mut self, encoder: LatentEncoder) -> Self {
        self.encoder = Some(encoder);
        self
    }

    /// The detector with every search of a full batch recorded once as a CUDA graph and
    /// replayed for each batch of that size (other sizes run as before): the same kernels on
    /// the same values, without the CPU's launch cost per kernel. Refused where it cannot run:
    /// off a CUDA device, in a build without the shim, and with the Laplacian loss (whose
    /// kernel is copied from the CPU in every search, which a graph cannot record).
    pub fn with_cuda_graph(mut self, on: bool) -> Result<Self> {
        if on {
            crate::cuda_graph::check_usable(self.initial_latents.device())?;
            check(
                self.config.loss != ReconstructionLoss::Laplacian,
                "cuda_graph",
                || {
                    "a CUDA graph cannot record the search with the Laplacian loss (its kernel \
                     is copied from the CPU in every search); use the L2 or L1 loss"
                        .into()
                },
            )?;
        }
        self.cuda_graph = on;
        Ok(self)
    }

    /// The initial latents of a batch, [B, n_seed, d']: the prior draws, the same for every
    /// image, or those draws scaled by the spread around each image's encoder guess.
    fn initial_for(&self, images: &Tensor) -> Result<Tensor> {
        let b = images.size()[0];
        let draws = self.initial_latents.unsqueeze(0);
        Ok(match self.config.start {
            SearchStart::Prior => draws.repeat([b, 1, 1]),
            SearchStart::Encoder => {
                let encoder = self.encoder.as_ref().context(
                    "the search starts around an encoder's guess, but no encoder was given",
                )?;
                encoder.encode(images).unsqueeze(1) + draws * self.config.spread
            }
        })
    }

    /// Fresh search state from the initial latents [B, n_seed, d']: theta stacked `copies`
    /// times (adapted or not), and Adam on both.
    fn start(&self, initial: Tensor, copies: i64, adapt: bool) -> SearchState {
        let stacked = StackedGenerator::new(self.generator, copies, adapt, self.config.precision);
        let latents = initial.detach().set_requires_grad(true);
        let adam = |lr| OptimizerConfig::adam(lr, 0.9, 0.999);
        let opt_z = Optimizer::over(
            adam(self.config.lr_z),
            vec![("z".into(), latents.shallow_clone())],
        );
        let theta = if adapt {
            stacked.parameters()
        } else {
            Vec::new()
        };
        let opt_theta = Optimizer::over(adam(self.config.lr_theta), theta);
        SearchState {
            stacked,
            latents,
            opt_z,
            opt_theta,
        }
    }

    /// The search state for `b` images from `initial` under the configured theta mode.
    fn start_batch(&self, initial: Tensor, b: i64) -> SearchState {
        let copies = match self.config.theta {
            ThetaMode::Shared => b,
            ThetaMode::PerSeed => b * self.config.n_seed,
            ThetaMode::Fixed => 1,
        };
        self.start(initial, copies, self.config.theta != ThetaMode::Fixed)
    }

    /// Runs the search on a batch of images.
    pub fn search(&self, images: &Tensor) -> Result<Search> {
        let initial = self.initial_for(images)?;
        self.start_batch(initial, images.size()[0])
            .run(images, &self.config)
    }

    /// [`Adgan::search`], replaying a recorded CUDA graph where [`Adgan::with_cuda_graph`]
    /// asked for one.
    pub fn search_mut(&mut self, images: &Tensor) -> Result<Search> {
        if !self.cuda_graph {
            return self.search(images);
        }
        self.search_on_buffers(images, true)
    }

    /// The search on buffers kept from the first batch of this size, recorded as a CUDA graph
    /// when `record` (otherwise run eagerly on the same buffers, which the tests check on the
    /// CPU); batches of another size run as [`Adgan::search`].
    fn search_on_buffers(&mut self, images: &Tensor, record: bool) -> Result<Search> {
        let initial = self.initial_for(images)?;
        if self.replay.is_none() {
            let replay = replay::Replay::new(self, images, &initial, record)?;
            self.replay = Some(replay);
        }
        let replay = self.replay.as_mut().expect("set above");
        if !replay.fits(images) {
            return self.search(images);
        }
        replay.search(self.generator, &self.config, images, &initial)
    }
}

impl Detector for Adgan<'_> {
    fn name(&self) -> &str {
        "adgan"
    }

    fn score_batch(&mut self, images: &Tensor) -> Result<Vec<f64>> {
        let search = self.search_mut(images)?;
        self.last_best = Some(search.best.shallow_clone());
        super::to_scores(&search.final_losses())
    }

    fn reconstructions(&mut self) -> Option<Tensor> {
        self.last_best.take()
    }
}

impl Adgan<'_> {
    /// Where the time of one search step goes on a batch of `images`: milliseconds per step of
    /// each forward op (by layer), the loss, the backward pass, and the two Adam updates,
    /// averaged over `steps` steps after one untimed step.
    pub fn profile_step(&self, images: &Tensor, steps: usize) -> Result<Vec<(String, f64)>> {
        let b = images.size()[0];
        let mut state = self.start(self.initial_for(images)?, b, true);
        let cuda = images.device().is_cuda();
        let sync = || {
            if cuda {
                tch::Cuda::synchronize(0);
            }
        };
        let mut totals: Vec<(String, f64)> = Vec::new();
        let mut add = |name: String, ms: f64, timed: bool| {
            if !timed {
                return;
            }
            match totals.iter_mut().find(|(n, _)| *n == name) {
                Some((_, t)) => *t += ms,
                None => totals.push((name, ms)),
            }
        };
        for step in 0..=steps {
            let timed = step > 0;
            sync();
            let mut clock = std::time::Instant::now();
            let losses = state.losses_observed(images, self.config.loss, &mut |layer, op| {
                sync();
                let now = std::time::Instant::now();
                add(
                    format!("forward layer {layer} {op}"),
                    (now - clock).as_secs_f64() * 1e3,
                    timed,
                );
                clock = now;
            });
            let loss = losses.sum(Kind::Float);
            let mut lap = |name: &str, start: &mut std::time::Instant| {
                sync();
                let now = std::time::Instant::now();
                add(name.to_string(), (now - *start).as_secs_f64() * 1e3, timed);
                *start = now;
            };
            let mut start = clock;
            lap("loss", &mut start);
            state.opt_z.zero_grad();
            state.opt_theta.zero_grad();
            loss.backward();
            lap("backward (all layers)", &mut start);
            state.opt_z.step();
            lap("adam on z", &mut start);
            state.opt_theta.step();
            lap("adam on theta", &mut start);
        }
        Ok(totals
            .into_iter()
            .map(|(n, t)| (n, t / steps.max(1) as f64))
            .collect())
    }
}

/// How many images to score in one batched search on `device`.
///
/// On the CPU one image at a time: there the n_seed latents of one image already fill the cores,
/// and neither grouping images into grouped convolutions nor two single-threaded searches side
/// by side paid in f32 (`adgan bench score`, BENCHMARKS.md). On a GPU, as many as fit in 16 GiB: per image, six copies of theta (values,
/// gradients, two Adam moments, temporaries) for every copy, and forward plus backward
/// activations for n_seed latents.
pub fn auto_batch(generator: &Generator, config: &AdganConfig, device: Device) -> usize {
    if !device.is_cuda() {
        return 1;
    }
    let budget_bytes: u64 = 16 << 30;
    let per_image = search_bytes_per_image(&generator.config(), config);
    (budget_bytes / per_image.max(1)).clamp(1, 256) as usize
}

#[cfg(test)]
mod tests {
    use super::*;

    fn l1(diff: &Tensor) -> Vec<f64> {
        let loss = reconstruction_loss(diff, ReconstructionLoss::L1);
        Vec::try_from(loss.flatten(0, -1).to_kind(Kind::Double)).unwrap()
    }

    fn lap(diff: &Tensor) -> Vec<f64> {
        let loss = reconstruction_loss(diff, ReconstructionLoss::Laplacian);
        Vec::try_from(loss.flatten(0, -1).to_kind(Kind::Double)).unwrap()
    }

    /// A constant difference lives in the coarsest level only, where its weight 4^levels makes
    /// up for the pixels it lost: Lap1 equals L1 there. The pyramid is linear, so Lap1 scales
    /// with the difference, and a pixel-to-pixel checkerboard (no low frequencies) weighs at the
    /// finest level only, where the weight is 1 and blurring leaves little of it.
    #[test]
    fn laplacian_loss_weighs_every_level_alike() {
        let options = (Kind::Float, tch::Device::Cpu);
        for size in [32i64, 64] {
            let constant = Tensor::full([2, 3, 3, size, size], 0.5, options);
            for (a, b) in lap(&constant).iter().zip(l1(&constant)) {
                assert!((a - b).abs() < 1e-3 * b, "{size}: {a} vs {b}");
            }
        }
        let noise = Tensor::randn([1, 2, 1, 32, 32], options);
        let (once, twice) = (lap(&noise), lap(&(&noise * 2.0)));
        for (a, b) in once.iter().zip(&twice) {
            assert!((2.0 * a - b).abs() < 1e-3 * b);
        }
        let ramp = Tensor::arange(32, options);
        let signs = (&ramp.view([32, 1]) + &ramp.view([1, 32])).remainder(2.0) * 2.0 - 1.0;
        let checkerboard = signs.view([1, 1, 1, 32, 32]);
        let (lap, l1) = (lap(&checkerboard)[0], l1(&checkerboard)[0]);
        assert!(lap > 0.8 * l1 && lap < 1.5 * l1, "{lap} vs {l1}");
        assert_eq!(
            reconstruction_loss(&checkerboard.zeros_like(), ReconstructionLoss::Laplacian)
                .double_value(&[0, 0]),
            0.0
        );
    }
}

/// The buffer path a CUDA graph records (in-place resets of latents, theta and both Adam
/// states, fixed buffers) must give what a fresh search gives, batch after batch; on the CPU it
/// runs eagerly, which is the same work the graph replays.
#[cfg(test)]
mod buffer_tests {
    use super::*;
    use tch::nn;

    fn generator(vs: &nn::VarStore) -> Generator {
        let model = ModelConfig {
            image_size: 32,
            channels: 1,
            latent_dim: 16,
            width: 8,
        };
        Generator::new(&vs.root(), model).unwrap()
    }

    fn values(t: &Tensor) -> Vec<f64> {
        Vec::try_from(t.flatten(0, -1).to_kind(Kind::Double)).unwrap()
    }

    fn assert_close(a: &Tensor, b: &Tensor, what: &str) {
        assert_eq!(a.size(), b.size(), "{what}");
        for (x, y) in values(a).iter().zip(values(b)) {
            assert!(
                (x - y).abs() <= 1e-4 * (1.0 + y.abs()),
                "{what}: {x} vs {y}"
            );
        }
    }

    #[test]
    fn the_search_on_buffers_equals_a_fresh_search_batch_after_batch() {
        tch::manual_seed(5);
        let vs = nn::VarStore::new(Device::Cpu);
        let generator = generator(&vs);
        for theta in [ThetaMode::Shared, ThetaMode::PerSeed, ThetaMode::Fixed] {
            let config = AdganConfig {
                n_seed: 4,
                k: 3,
                lr_z: 0.3,
                lr_theta: 1e-3,
                theta,
                seed: 2,
                ..AdganConfig::default()
            };
            let mut on_buffers = Adgan::new(&generator, config, Device::Cpu).unwrap();
            let fresh = Adgan::new(&generator, config, Device::Cpu).unwrap();
            // Full batches of new images, then a smaller last one (which runs as a fresh search).
            for (batch, size) in [(0, 3), (1, 3), (2, 3), (3, 2)] {
                tch::manual_seed(100 + batch);
                let images =
                    Tensor::rand([size, 1, 32, 32], (Kind::Float, Device::Cpu)) * 2.0 - 1.0;
                let replayed = on_buffers.search_on_buffers(&images, false).unwrap();
                let expected = fresh.search(&images).unwrap();
                let what = format!("{theta:?}, batch {batch}");
                assert_close(
                    &replayed.losses,
                    &expected.losses,
                    &format!("{what}: losses"),
                );
                assert_close(
                    &replayed.latents,
                    &expected.latents,
                    &format!("{what}: latents"),
                );
                assert_close(&replayed.best, &expected.best, &format!("{what}: best"));
                // The search moved: equal outcomes are not both the initial state.
                let first = replayed.losses.get(0);
                let last = replayed.final_losses();
                assert!(
                    values(&(first - last)).iter().all(|d| *d > 0.0),
                    "{what}: the search did not lower the loss"
                );
            }
        }
    }

    #[test]
    fn a_cuda_graph_is_refused_off_a_cuda_device() {
        let vs = nn::VarStore::new(Device::Cpu);
        let generator = generator(&vs);
        let adgan = Adgan::new(&generator, AdganConfig::default(), Device::Cpu).unwrap();
        let err = adgan
            .with_cuda_graph(true)
            .err()
            .expect("refused on the CPU");
        let bad = err
            .downcast_ref::<crate::setting::BadSetting>()
            .expect("a bad setting");
        assert_eq!(bad.name, "cuda_graph");
        assert!(bad.message.contains("CUDA device"), "{}", bad.message);
        let adgan = Adgan::new(&generator, AdganConfig::default(), Device::Cpu).unwrap();
        assert!(adgan.with_cuda_graph(false).is_ok());
    }
}
