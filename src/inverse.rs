//! An approximate inverse of the generator, E: x -> z, to start the ADGAN search from: the
//! improvement the paper's conclusion names ("an encoder, as in ALI or BiGAN"). It is trained
//! after the GAN, with the generator fixed, on the normal training images, to make both
//! cycles short: g(E(x)) close to x, and E(g(z)) close to z for z from the prior (so that its
//! guesses stay where the generator was trained). The search then starts its n_seed latents
//! around E(x) instead of around 0 (`SearchStart::Encoder`).

use crate::autoencoder::Encoder;
use crate::data::Dataset;
use crate::io::{fill_variables, load_tensors, read_json, save_tensors, write_json};
use crate::optim::{Optimizer, OptimizerConfig};
use crate::rng;
use crate::run::TrainedGan;
use anyhow::{bail, ensure, Context, Result};
use serde::{Deserialize, Serialize};
use std::path::PathBuf;
use tch::{nn, Device, Kind, Tensor};

/// Training of the latent encoder.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct EncoderConfig {
    /// Adam iterations (mini-batches).
    pub iterations: usize,
    /// Images (and prior samples) per mini-batch.
    pub batch_size: i64,
    /// Adam learning rate.
    pub lr: f64,
    /// Seed of the initialisation, the batches and the prior samples.
    pub seed: u64,
}

impl Default for EncoderConfig {
    fn default() -> Self {
        Self {
            iterations: 1000,
            batch_size: 64,
            lr: 1e-3,
            seed: 0,
        }
    }
}

/// What `encoder.json` records: the encoder belongs to one generator (a run at one iteration)
/// and one set of training images.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Saved {
    config: EncoderConfig,
    generator_iteration: i64,
    fingerprint: String,
}

const WEIGHTS_FILE: &str = "encoder.safetensors";
const CONFIG_FILE: &str = "encoder.json";
/// Prefix of the tensor names in the weights file.
const TENSOR_PREFIX: &str = "latent_encoder";

/// The encoder E: image -> latent of a trained generator.
pub struct LatentEncoder {
    vs: nn::VarStore,
    net: Encoder,
}

/// Where the encoder of `gan` (at its iteration) is kept: `RUN/encoder/iter_N/`.
pub fn encoder_dir(gan: &TrainedGan) -> PathBuf {
    gan.run_dir
        .join("encoder")
        .join(format!("iter_{:06}", gan.iteration))
}

impl LatentEncoder {
    fn new(gan: &TrainedGan, seed: u64, device: Device) -> Self {
        let model = gan.config.model;
        let vs = nn::VarStore::new(device);
        let net = Encoder::new(&(vs.root() / "enc"), model, model.latent_dim);
        crate::model::initialise(&vs, gan.config.train.init, &mut rng::seeded(seed));
        Self { vs, net }
    }

    /// Trains the encoder of `gan` on the images the GAN trained on and keeps it in
    /// [`encoder_dir`], or loads it from there when it was trained for this generator with
    /// `config`. `images` are those training images when the caller has them; otherwise they
    /// are read again from the run's provenance (and checked against its fingerprint).
    /// `on_progress(iteration, total)` follows the training.
    pub fn train_or_load(
        gan: &TrainedGan,
        images: Option<&Dataset>,
        config: EncoderConfig,
        device: Device,
        on_progress: &mut dyn FnMut(usize, usize),
    ) -> Result<Self> {
        let dir = encoder_dir(gan);
        let mut encoder = Self::new(gan, config.seed, device);
        let (config_path, weights_path) = (dir.join(CONFIG_FILE), dir.join(WEIGHTS_FILE));
        if config_path.exists() && weights_path.exists() {
            let found: Saved = read_json(&config_path, "adgan latent encoder")?;
            let same_images = images.is_none_or(|i| i.fingerprint() == found.fingerprint);
            ensure!(
                found.config == config && found.generator_iteration == gan.iteration && same_images,
                "{} holds an encoder trained otherwise (other settings or images): delete the \
                 folder to train it again",
                dir.display()
            );
            let tensors = load_tensors(&weights_path)?;
            fill_variables(&encoder.vs, &tensors, TENSOR_PREFIX, &weights_path)?;
            return Ok(encoder);
        }
        let read_again;
        let images = match images {
            Some(images) => images,
            None => {
                read_again = gan
                    .training_images()
                    .context("the encoder start needs them")?;
                &read_again
            }
        };
        let saved = Saved {
            config,
            generator_iteration: gan.iteration,
            fingerprint: images.fingerprint(),
        };
        encoder.fit(gan, images, config, on_progress)?;
        std::fs::create_dir_all(&dir)
            .with_context(|| format!("cannot create {}", dir.display()))?;
        let tensors: Vec<(String, Tensor)> = (encoder.vs.variables().into_iter())
            .map(|(name, t)| (format!("{TENSOR_PREFIX}/{name}"), t))
            .collect();
        save_tensors(&weights_path, &tensors)?;
        write_json(&config_path, &saved)?;
        Ok(encoder)
    }

    /// Minimises, over E only, mean (g(E(x)) - x)^2 + mean (E(g(z)) - z)^2 per element.
    fn fit(
        &mut self,
        gan: &TrainedGan,
        images: &Dataset,
        config: EncoderConfig,
        on_progress: &mut dyn FnMut(usize, usize),
    ) -> Result<()> {
        let n = images.len() as i64;
        ensure!(n > 0, "no training images for the latent encoder");
        let device = self.vs.device();
        let d = gan.config.model.latent_dim;
        let mut adam = Optimizer::new(OptimizerConfig::adam(config.lr, 0.9, 0.999), &self.vs);
        let batch = config.batch_size.min(n);
        for iteration in 0..config.iterations {
            let mut batch_rng = rng::seeded(rng::mix(config.seed, iteration as u64 + 1));
            let index = rng::indices(&mut batch_rng, n, batch, Device::Cpu);
            let x = images.images.index_select(0, &index).to_device(device);
            let z = rng::normal(&mut batch_rng, &[batch, d], 0.0, 1.0, device);
            let image_cycle = (gan.generator.forward(&self.net.forward(&x, true), false) - &x)
                .square()
                .mean(Kind::Float);
            let generated = tch::no_grad(|| gan.generator.forward(&z, false));
            let latent_cycle = (self.net.forward(&generated, true) - &z)
                .square()
                .mean(Kind::Float);
            let loss = image_cycle + latent_cycle;
            let value = loss.double_value(&[]);
            if !value.is_finite() {
                bail!(
                    "the latent encoder's training diverged at iteration {iteration} (loss \
                     {value}): lower its learning rate"
                );
            }
            adam.zero_grad();
            loss.backward();
            adam.step();
            on_progress(iteration + 1, config.iterations);
        }
        Ok(())
    }

    /// E(x) for a batch of images [B, C, H, W]: latents [B, d'] (no gradient).
    pub fn encode(&self, images: &Tensor) -> Tensor {
        tch::no_grad(|| self.net.forward(images, false))
    }
}
