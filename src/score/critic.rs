//! The critic score of the paper's Table 1: the trained WGAN critic f_w rates how much an image
//! looks like the training data, so its negation is an anomaly score.

use super::{to_scores, Detector};
use crate::model::Critic;
use anyhow::Result;
use tch::Tensor;

/// Anomaly score -f_w(x) from a trained critic.
pub struct CriticScore<'a> {
    critic: &'a Critic,
}

impl<'a> CriticScore<'a> {
    /// A detector over a trained critic.
    pub fn new(critic: &'a Critic) -> Self {
        Self { critic }
    }
}

impl Detector for CriticScore<'_> {
    fn name(&self) -> &str {
        "critic"
    }

    fn score_batch(&mut self, images: &Tensor) -> Result<Vec<f64>> {
        let values = tch::no_grad(|| self.critic.forward(images));
        to_scores(&(-values))
    }
}
