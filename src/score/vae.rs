//! The VAE baseline of the paper: the anomaly score is the negative evidence lower bound,
//! estimated with `elbo_samples` draws of z per image (16 by default) and the analytic KL term.

use super::{to_scores, Detector};
use crate::autoencoder::{Autoencoder, AutoencoderKind};
use crate::rng;
use anyhow::{ensure, Result};

/// Negative-ELBO score of a trained VAE.
pub struct VaeScore {
    autoencoder: Autoencoder,
    seed: u64,
}

impl VaeScore {
    /// A detector over a trained VAE; `seed` fixes the noise of the z draws, shared by every
    /// image, so a score depends on its image alone (not on batching).
    pub fn new(autoencoder: Autoencoder, seed: u64) -> Result<Self> {
        ensure!(
            autoencoder.kind == AutoencoderKind::Vae,
            "the VAE score needs a VAE, not a {:?}",
            autoencoder.kind
        );
        Ok(Self { autoencoder, seed })
    }
}

impl Detector for VaeScore {
    fn name(&self) -> &str {
        "vae"
    }

    fn score_batch(&mut self, images: &tch::Tensor) -> Result<Vec<f64>> {
        let config = self.autoencoder.config;
        let eps = rng::normal(
            &mut rng::seeded(self.seed),
            &[config.elbo_samples, 1, config.code_dim],
            0.0,
            1.0,
            images.device(),
        );
        to_scores(&tch::no_grad(|| {
            self.autoencoder.negative_elbo(images, &eps, false)
        }))
    }
}
