//! The paper's deep baselines that are not GANs: a deep convolutional autoencoder (DCAE) and a
//! variational autoencoder (VAE), both DCGAN-like. The encoder mirrors the critic (strided 4x4
//! convolutions, here with BatchNorm and ReLU) and the decoder is the DCGAN generator with the
//! code as its latent. Their scores are `score::dcae` and `score::vae`, built by
//! `score::method`.

use crate::data::Dataset;
use crate::io::{fill_variables, load_tensors, read_json, save_tensors, write_json};
use crate::model::{dcgan_init, Generator, ModelConfig};
use crate::optim::{Optimizer, OptimizerConfig};
use crate::rng;
use anyhow::{bail, ensure, Context, Result};
use serde::{Deserialize, Serialize};
use std::path::Path;
use tch::{nn, Device, Kind, Tensor};

/// Which autoencoder.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AutoencoderKind {
    /// Deterministic code, squared reconstruction loss.
    Dcae,
    /// Gaussian code with a N(0, I) prior, trained on the ELBO.
    Vae,
}

/// Architecture and training of an autoencoder baseline.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct AutoencoderConfig {
    /// Code dimension.
    pub code_dim: i64,
    /// Training iterations (mini-batches).
    pub iterations: usize,
    /// Images per mini-batch.
    pub batch_size: i64,
    /// Adam learning rate.
    pub lr: f64,
    /// Seed of initialisation, batches and VAE noise.
    pub seed: u64,
    /// Samples of z per image when the VAE scores (the negative ELBO is their mean).
    pub elbo_samples: i64,
}

impl Default for AutoencoderConfig {
    fn default() -> Self {
        Self {
            code_dim: 32,
            iterations: 2000,
            batch_size: 64,
            lr: 1e-3,
            seed: 0,
            elbo_samples: 16,
        }
    }
}

/// Encoder: strided convolutions with BatchNorm and ReLU down to 4 x 4, then a 4 x 4
/// convolution to `outputs` numbers per image.
#[derive(Debug)]
pub(crate) struct Encoder {
    convs: Vec<nn::Conv2D>,
    norms: Vec<nn::BatchNorm>,
    head: nn::Conv2D,
}

impl Encoder {
    pub(crate) fn new(vs: &nn::Path, model: ModelConfig, outputs: i64) -> Self {
        let stages = model.stages();
        let mut widths = vec![model.channels];
        widths.extend((0..stages).map(|i| model.width << i));
        let strided = nn::ConvConfig {
            stride: 2,
            padding: 1,
            bias: false,
            ..Default::default()
        };
        let mut convs = Vec::new();
        let mut norms = Vec::new();
        for (i, pair) in widths.windows(2).enumerate() {
            convs.push(nn::conv2d(
                vs / format!("enc{i}"),
                pair[0],
                pair[1],
                4,
                strided,
            ));
            norms.push(nn::batch_norm2d(
                vs / format!("norm_enc{i}"),
                pair[1],
                Default::default(),
            ));
        }
        let top = *widths.last().expect("widths");
        let head = nn::conv2d(vs / "enc_head", top, outputs, 4, Default::default());
        Self { convs, norms, head }
    }

    pub(crate) fn forward(&self, x: &Tensor, train: bool) -> Tensor {
        let mut h = x.shallow_clone();
        for (conv, norm) in self.convs.iter().zip(&self.norms) {
            h = h.apply(conv).apply_t(norm, train).relu();
        }
        h.apply(&self.head).flatten(1, -1)
    }
}

/// A DCAE or VAE with its weights.
pub struct Autoencoder {
    vs: nn::VarStore,
    encoder: Encoder,
    decoder: Generator,
    /// log sigma^2 of the VAE's Gaussian pixel likelihood (learned, one for all pixels).
    log_noise: Tensor,
    /// Which autoencoder.
    pub kind: AutoencoderKind,
    /// Settings it was built with.
    pub config: AutoencoderConfig,
    /// Image geometry and width.
    pub model: ModelConfig,
}

/// File names inside an autoencoder folder.
const WEIGHTS_FILE: &str = "autoencoder.safetensors";
const CONFIG_FILE: &str = "autoencoder.json";

/// What `autoencoder.json` records: enough to rebuild the network and to refuse another one.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Saved {
    kind: AutoencoderKind,
    config: AutoencoderConfig,
    model: ModelConfig,
    fingerprint: String,
}

impl Autoencoder {
    /// A freshly initialised autoencoder (DCGAN initialisation from `config.seed`).
    pub fn new(
        kind: AutoencoderKind,
        model: ModelConfig,
        config: AutoencoderConfig,
        device: Device,
    ) -> Result<Self> {
        model.validate()?;
        ensure!(config.code_dim > 0, "the code dimension must be positive");
        let vs = nn::VarStore::new(device);
        let outputs = match kind {
            AutoencoderKind::Dcae => config.code_dim,
            AutoencoderKind::Vae => 2 * config.code_dim,
        };
        let encoder = Encoder::new(&vs.root(), model, outputs);
        let decoder_config = ModelConfig {
            latent_dim: config.code_dim,
            ..model
        };
        let decoder = Generator::new(&vs.root(), decoder_config)?;
        let log_noise = vs.root().zeros("log_noise", &[1]);
        dcgan_init(&vs, &mut rng::seeded(config.seed));
        tch::no_grad(|| {
            let _ = log_noise.shallow_clone().fill_((0.1f64 * 0.1).ln());
        });
        Ok(Self {
            vs,
            encoder,
            decoder,
            log_noise,
            kind,
            config,
            model,
        })
    }

    /// The code of each image: the DCAE's code, or the VAE's (mean, log variance).
    fn encode(&self, x: &Tensor, train: bool) -> (Tensor, Option<Tensor>) {
        let out = self.encoder.forward(x, train);
        match self.kind {
            AutoencoderKind::Dcae => (out, None),
            AutoencoderKind::Vae => {
                let parts = out.chunk(2, 1);
                (parts[0].shallow_clone(), Some(parts[1].clamp(-10.0, 10.0)))
            }
        }
    }

    /// The DCAE's reconstruction of each image.
    pub fn reconstruct(&self, x: &Tensor) -> Tensor {
        let (code, _) = self.encode(x, false);
        self.decoder.forward(&code, false)
    }

    /// Squared reconstruction error of each image, [B] (the DCAE's loss and score).
    pub fn reconstruction_error(&self, x: &Tensor, train: bool) -> Tensor {
        let (code, _) = self.encode(x, train);
        (self.decoder.forward(&code, train) - x)
            .square()
            .sum_dim_intlist([1i64, 2, 3].as_slice(), false, Kind::Float)
    }

    /// Negative ELBO of each image, [B], averaged over the S noise draws `eps` ([S, B, d] or
    /// [S, 1, d] shared by all images): -E_q[log p(x|z)] + KL(q(z|x) || N(0, I)), with a
    /// Gaussian pixel likelihood and z = mean + eps * std (reparameterised).
    pub fn negative_elbo(&self, x: &Tensor, eps: &Tensor, train: bool) -> Tensor {
        let (mean, log_var) = self.encode(x, train);
        let log_var = log_var.expect("a VAE");
        let (b, d) = (mean.size()[0], mean.size()[1]);
        let samples = eps.size()[0];
        let kl = ((mean.square() + log_var.exp() - &log_var - 1.0) * 0.5).sum_dim_intlist(
            1,
            false,
            Kind::Float,
        );
        let z = mean.unsqueeze(0) + eps * (&log_var * 0.5).exp().unsqueeze(0);
        let decoded = self.decoder.forward(&z.view([samples * b, d]), train);
        let pixels = (x.numel() as i64 / b) as f64;
        let squared = (decoded.reshape([samples, b, -1]) - x.reshape([1, b, -1]))
            .square()
            .sum_dim_intlist(2, false, Kind::Float)
            .mean_dim(0, false, Kind::Float);
        let nll = (squared * (-&self.log_noise).exp()
            + (&self.log_noise + (2.0 * std::f64::consts::PI).ln()) * pixels)
            * 0.5;
        nll + kl
    }

    /// The per-image training loss on a batch.
    fn loss(&self, x: &Tensor, noise_rng: &mut rand_chacha::ChaCha8Rng) -> Tensor {
        match self.kind {
            AutoencoderKind::Dcae => self.reconstruction_error(x, true),
            AutoencoderKind::Vae => {
                let shape = [1, x.size()[0], self.config.code_dim];
                let eps = rng::normal(noise_rng, &shape, 0.0, 1.0, x.device());
                self.negative_elbo(x, &eps, true)
            }
        }
    }

    /// Trains on `data` and writes the weights to `dir` (atomically), or loads them when `dir`
    /// already holds this autoencoder trained on the same images. `on_progress(iteration,
    /// loss)` is called after each iteration.
    pub fn train_or_load(
        kind: AutoencoderKind,
        model: ModelConfig,
        config: AutoencoderConfig,
        data: &Dataset,
        dir: &Path,
        device: Device,
        on_progress: &mut dyn FnMut(usize, f64),
    ) -> Result<Self> {
        let saved = Saved {
            kind,
            config,
            model,
            fingerprint: data.fingerprint(),
        };
        let mut ae = Autoencoder::new(kind, model, config, device)?;
        let config_path = dir.join(CONFIG_FILE);
        let weights_path = dir.join(WEIGHTS_FILE);
        if config_path.exists() && weights_path.exists() {
            let found: Saved = read_json(&config_path, "adgan autoencoder configuration")?;
            ensure!(
                found == saved,
                "{} holds another autoencoder (other settings or training images): delete the \
                 folder to train again",
                dir.display()
            );
            let tensors = load_tensors(&weights_path)?;
            fill_variables(&ae.vs, &tensors, "ae", &weights_path)?;
            return Ok(ae);
        }
        ae.fit(data, on_progress)?;
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
        let tensors: Vec<(String, Tensor)> = ae
            .vs
            .variables()
            .into_iter()
            .map(|(name, t)| (format!("ae/{name}"), t))
            .collect();
        save_tensors(&weights_path, &tensors)?;
        write_json(&config_path, &saved)?;
        Ok(ae)
    }

    fn fit(&mut self, data: &Dataset, on_progress: &mut dyn FnMut(usize, f64)) -> Result<()> {
        let n = data.len() as i64;
        ensure!(n > 0, "no training images for the autoencoder");
        let mut adam = Optimizer::new(OptimizerConfig::adam(self.config.lr, 0.9, 0.999), &self.vs);
        let device = self.vs.device();
        for iteration in 0..self.config.iterations {
            let mut batch_rng = rng::seeded(rng::mix(self.config.seed, iteration as u64 + 1));
            let index = rng::indices(
                &mut batch_rng,
                n,
                self.config.batch_size.min(n),
                Device::Cpu,
            );
            let x = data.images.index_select(0, &index).to_device(device);
            let loss = self.loss(&x, &mut batch_rng).mean(Kind::Float);
            let value = loss.double_value(&[]);
            if !value.is_finite() {
                bail!(
                    "{:?} training diverged at iteration {iteration} (loss {value}): lower its \
                     learning rate",
                    self.kind
                );
            }
            adam.zero_grad();
            loss.backward();
            adam.step();
            on_progress(iteration + 1, value);
        }
        Ok(())
    }
}
