//! The prior-likelihood score of the paper's Table 1: after the ADGAN search, how likely the
//! final latents are under the prior N(0, I). Latents pushed far from the origin to explain an
//! image suggest the image is not one the generator makes.

use super::adgan::{Adgan, Search};
use super::{to_scores, Detector};
use anyhow::Result;
use tch::{Kind, Tensor};

/// Anomaly score -(1/n_seed) sum_j log N(z_{j,k}; 0, I) of the latents an ADGAN search ends at.
pub struct PriorScore<'a> {
    search: Adgan<'a>,
}

impl<'a> PriorScore<'a> {
    /// A detector running `search` and scoring its final latents.
    pub fn new(search: Adgan<'a>) -> Self {
        Self { search }
    }
}

/// log N(z; 0, I) of each latent along the last axis.
pub fn log_prior(latents: &Tensor) -> Tensor {
    let d = *latents.size().last().expect("latents have a last axis") as f64;
    latents.square().sum_dim_intlist(-1, false, Kind::Float) * -0.5
        - 0.5 * d * (2.0 * std::f64::consts::PI).ln()
}

/// The prior score of each image of a finished search, [B].
pub fn prior_scores(search: &Search) -> Tensor {
    -log_prior(&search.latents).mean_dim(1, false, Kind::Float)
}

impl Detector for PriorScore<'_> {
    fn name(&self) -> &str {
        "prior"
    }

    fn score_batch(&mut self, images: &Tensor) -> Result<Vec<f64>> {
        to_scores(&prior_scores(&self.search.search_mut(images)?))
    }
}
