//! AnoGAN (Schlegl et al., IPMI 2017), the paper's closest GAN baseline: search the latent space
//! of a *fixed* generator for the image, with a loss that mixes the pixel residual and a
//! feature-matching term on an intermediate critic layer:
//!
//!   L(z) = (1 - lambda) * sum |x - g(z)| + lambda * sum |f(x) - f(g(z))|,  lambda = 0.1,
//!
//! minimised by Adam over z alone for 500 steps; the anomaly score is the final loss. Unlike
//! ADGAN there is one latent per image and theta never moves.

use super::{to_scores, Detector};
use crate::model::{Critic, Generator};
use crate::optim::{Optimizer, OptimizerConfig};
use crate::rng;
use anyhow::{ensure, Result};
use tch::{Device, Kind, Tensor};

/// AnoGAN settings.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(default)]
pub struct AnoganConfig {
    /// Adam steps on z (500 in Schlegl et al.).
    pub steps: usize,
    /// Weight lambda of the feature-matching term (0.1 in Schlegl et al.).
    pub lambda: f64,
    /// Adam learning rate on z. Schlegl et al. do not state one; 0.01 keeps 500 steps stable
    /// for latents of unit scale.
    pub lr: f64,
    /// Seed of the initial latent (one, shared by all images, so a score never depends on
    /// which other images share its batch).
    pub seed: u64,
}

impl Default for AnoganConfig {
    fn default() -> Self {
        Self {
            steps: 500,
            lambda: 0.1,
            lr: 0.01,
            seed: 0,
        }
    }
}

/// The AnoGAN detector over a trained generator and critic.
pub struct Anogan<'a> {
    generator: &'a Generator,
    critic: &'a Critic,
    config: AnoganConfig,
    initial_latent: Tensor,
}

impl<'a> Anogan<'a> {
    /// A detector searching the latent space of `generator`, matching features of `critic`.
    pub fn new(
        generator: &'a Generator,
        critic: &'a Critic,
        config: AnoganConfig,
        device: Device,
    ) -> Result<Self> {
        ensure!(config.steps > 0, "AnoGAN needs at least one step");
        ensure!(
            (0.0..=1.0).contains(&config.lambda),
            "AnoGAN lambda must lie in [0, 1], got {}",
            config.lambda
        );
        let d = generator.config().latent_dim;
        let initial_latent = rng::normal(&mut rng::seeded(config.seed), &[1, d], 0.0, 1.0, device);
        Ok(Self {
            generator,
            critic,
            config,
            initial_latent,
        })
    }

    /// The loss of each image for latents `z` ([B, d']): residual and feature terms mixed.
    fn losses(&self, z: &Tensor, images: &Tensor, image_features: &Tensor) -> Tensor {
        let generated = self.generator.forward(z, false);
        let residual = (&generated - images).abs().sum_dim_intlist(
            [1i64, 2, 3].as_slice(),
            false,
            Kind::Float,
        );
        let matching = (self.critic.features(&generated) - image_features)
            .abs()
            .sum_dim_intlist([1i64, 2, 3].as_slice(), false, Kind::Float);
        residual * (1.0 - self.config.lambda) + matching * self.config.lambda
    }
}

impl Detector for Anogan<'_> {
    fn name(&self) -> &str {
        "anogan"
    }

    fn score_batch(&mut self, images: &Tensor) -> Result<Vec<f64>> {
        let b = images.size()[0];
        let image_features = tch::no_grad(|| self.critic.features(images));
        let z = self.initial_latent.repeat([b, 1]).set_requires_grad(true);
        let mut adam = Optimizer::over(
            OptimizerConfig::adam(self.config.lr, 0.9, 0.999),
            vec![("z".into(), z.shallow_clone())],
        );
        for _ in 0..self.config.steps {
            let loss = self.losses(&z, images, &image_features).sum(Kind::Float);
            // Gradients for z only: the generator and critic stay untouched.
            let grads = Tensor::run_backward(&[&loss], &[&z], false, false);
            adam.step_with(&grads);
        }
        let last = tch::no_grad(|| self.losses(&z, images, &image_features));
        ensure!(
            bool::try_from(last.isfinite().all())?,
            "the AnoGAN search produced a non-finite loss: lower its learning rate"
        );
        to_scores(&last)
    }
}
