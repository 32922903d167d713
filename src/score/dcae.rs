//! The DCAE baseline of the paper: the anomaly score is the squared reconstruction error
//! ||x - dec(enc(x))||^2 of a convolutional autoencoder trained on normal images.

use super::{to_scores, Detector};
use crate::autoencoder::{Autoencoder, AutoencoderKind};
use anyhow::{ensure, Result};

/// Reconstruction-error score of a trained DCAE.
pub struct DcaeScore {
    autoencoder: Autoencoder,
}

impl DcaeScore {
    /// A detector over a trained DCAE.
    pub fn new(autoencoder: Autoencoder) -> Result<Self> {
        ensure!(
            autoencoder.kind == AutoencoderKind::Dcae,
            "the DCAE score needs a DCAE, not a {:?}",
            autoencoder.kind
        );
        Ok(Self { autoencoder })
    }
}

impl Detector for DcaeScore {
    fn name(&self) -> &str {
        "dcae"
    }

    fn score_batch(&mut self, images: &tch::Tensor) -> Result<Vec<f64>> {
        to_scores(&tch::no_grad(|| {
            self.autoencoder.reconstruction_error(images, false)
        }))
    }
}
