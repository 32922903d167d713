//! The complexity-corrected ADGAN score (`adgan-ic`; beyond the paper, issue 11 §4).
//!
//! Reconstruction scores grow with how complex an image is, whatever it shows (Serra et al.,
//! "Input complexity and out-of-distribution detection with likelihood-based generative
//! models", ICLR 2020, who measure complexity as a compressed length). On CIFAR-10 that, more
//! than the image's class, decides ADGAN's ranking (RESULTS.md, "What the scores follow"). The
//! correction takes it out: with L(x) the length of the image's PNG encoding, the corrected
//! score is
//!
//!   log s(x) - (a + b log L(x)),
//!
//! the line (a, b) fitted by least squares on normal images only (a run's held-out normal
//! validation images), so that a normal image of any complexity scores about zero and an image
//! scores high only when it reconstructs worse than normal images as complex as it.
//!
//! PNG, not the images' own files: a tool can compute it from any decoded image, and on
//! CIFAR-10's validation it did as well as the JPEG files' sizes (RESULTS.md).

use super::Detector;
use crate::eval::roc_auc;
use crate::visual::pixels_u8;
use anyhow::{ensure, Context, Result};
use image::codecs::png::{CompressionType, FilterType, PngEncoder};
use image::{ExtendedColorType, ImageEncoder};
use serde::{Deserialize, Serialize};
use tch::Tensor;

/// Smallest score taken to the log (scores are mean squared errors, so never negative).
const MIN_SCORE: f64 = 1e-12;

/// log of a score floored at [`MIN_SCORE`]; a NaN score stays NaN (`f64::max` would turn it
/// into the floor, a silently wrong number).
fn log_score(score: f64) -> f64 {
    match score.is_nan() {
        true => f64::NAN,
        false => score.max(MIN_SCORE).ln(),
    }
}

/// The complexity L(x) of each image of N x C x H x W images in [-1, 1] (C 1 or 3): the bytes
/// of its 8-bit pixels' PNG encoding at the best compression.
pub fn png_lengths(images: &Tensor) -> Result<Vec<f64>> {
    let size = images.size();
    ensure!(
        size.len() == 4 && (size[1] == 1 || size[1] == 3),
        "complexity needs N x C x H x W images with 1 or 3 channels, got {size:?}"
    );
    let (c, h, w) = (size[1] as usize, size[2] as u32, size[3] as u32);
    let colour = match c {
        1 => ExtendedColorType::L8,
        _ => ExtendedColorType::Rgb8,
    };
    let pixels = pixels_u8(images);
    let per_image = c * h as usize * w as usize;
    pixels
        .chunks(per_image.max(1))
        .map(|image| {
            let mut png = Vec::new();
            PngEncoder::new_with_quality(&mut png, CompressionType::Best, FilterType::Adaptive)
                .write_image(image, w, h, colour)
                .context("encoding an image as PNG to measure its complexity")?;
            Ok(png.len() as f64)
        })
        .collect()
}

/// The line a + b log L fitted to log s on normal images (see the module doc).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct ComplexityLine {
    /// Intercept a.
    pub intercept: f64,
    /// Slope b.
    pub slope: f64,
}

impl ComplexityLine {
    /// Least squares of log score on log length over `scores` and `lengths` of normal images.
    pub fn fit(scores: &[f64], lengths: &[f64]) -> Result<Self> {
        ensure!(
            scores.len() == lengths.len() && scores.len() >= 2,
            "a complexity line needs at least two normal images with a score and a length each \
             (got {} scores, {} lengths)",
            scores.len(),
            lengths.len()
        );
        let xs: Vec<f64> = lengths.iter().map(|l| l.ln()).collect();
        let ys: Vec<f64> = scores.iter().map(|&s| log_score(s)).collect();
        let n = xs.len() as f64;
        let (mx, my) = (xs.iter().sum::<f64>() / n, ys.iter().sum::<f64>() / n);
        let sxx: f64 = xs.iter().map(|x| (x - mx).powi(2)).sum();
        let sxy: f64 = xs.iter().zip(&ys).map(|(x, y)| (x - mx) * (y - my)).sum();
        // Images of one length: no slope can be fitted, and the correction is a shift.
        let slope = if sxx > 0.0 { sxy / sxx } else { 0.0 };
        Ok(Self {
            intercept: my - slope * mx,
            slope,
        })
    }

    /// The corrected score of an image with ADGAN score `score` and complexity `length`.
    pub fn correct(&self, score: f64, length: f64) -> f64 {
        log_score(score) - (self.intercept + self.slope * length.ln())
    }

    /// The corrected scores of `images` (N x C x H x W in [-1, 1]) whose ADGAN scores are
    /// `scores`, in order.
    pub fn correct_images(&self, scores: &[f64], images: &Tensor) -> Result<Vec<f64>> {
        let lengths = png_lengths(images)?;
        ensure!(
            scores.len() == lengths.len(),
            "{} scores for {} images",
            scores.len(),
            lengths.len()
        );
        Ok(scores
            .iter()
            .zip(&lengths)
            .map(|(&s, &l)| self.correct(s, l))
            .collect())
    }
}

/// A detector's scores (ADGAN's) corrected by a complexity line: `adgan-ic`.
pub struct ComplexityCorrected<'g> {
    inner: Box<dyn Detector + 'g>,
    line: ComplexityLine,
}

impl<'g> ComplexityCorrected<'g> {
    /// `inner`'s scores, corrected by `line`.
    pub fn new(inner: Box<dyn Detector + 'g>, line: ComplexityLine) -> Self {
        Self { inner, line }
    }
}

impl Detector for ComplexityCorrected<'_> {
    fn name(&self) -> &str {
        "adgan-ic"
    }

    fn score_batch(&mut self, images: &Tensor) -> Result<Vec<f64>> {
        let scores = self.inner.score_batch(images)?;
        self.line.correct_images(&scores, images)
    }

    fn reconstructions(&mut self) -> Option<Tensor> {
        self.inner.reconstructions()
    }
}

/// Normal images split in two by position (even, odd): each half is corrected by the line
/// fitted on the other, so that no image is scored by a line fitted on it.
fn halves(n: usize) -> [Vec<usize>; 2] {
    let even = (0..n).filter(|i| i % 2 == 0).collect();
    let odd = (0..n).filter(|i| i % 2 == 1).collect();
    [even, odd]
}

fn pick(values: &[f64], rows: &[usize]) -> Vec<f64> {
    rows.iter().map(|&i| values[i]).collect()
}

/// Corrected scores of normal images, each by the line fitted on the other half of them: the
/// calibration scores of `adgan-ic`, which must be as a new normal image's would be.
pub fn cross_fitted(scores: &[f64], lengths: &[f64]) -> Result<Vec<f64>> {
    ensure!(
        scores.len() == lengths.len(),
        "{} scores but {} lengths",
        scores.len(),
        lengths.len()
    );
    let mut corrected = vec![0.0; scores.len()];
    let [a, b] = halves(scores.len());
    for (held, fit) in [(&a, &b), (&b, &a)] {
        let line = ComplexityLine::fit(&pick(scores, fit), &pick(lengths, fit))?;
        for &i in held {
            corrected[i] = line.correct(scores[i], lengths[i]);
        }
    }
    Ok(corrected)
}

/// Validation ROC-AUC of the corrected score: normal against anomalous validation images, the
/// line fitted on one half of the normal images and the ROC-AUC taken on the other half and
/// the anomalies, averaged over the two halves.
pub fn validation_auc(
    (normal_scores, normal_lengths): (&[f64], &[f64]),
    (anomalous_scores, anomalous_lengths): (&[f64], &[f64]),
) -> Result<f64> {
    ensure!(
        anomalous_scores.len() == anomalous_lengths.len()
            && normal_scores.len() == normal_lengths.len(),
        "{} anomalous scores but {} lengths, or normal ones that do not match",
        anomalous_scores.len(),
        anomalous_lengths.len()
    );
    let mut total = 0.0;
    let [a, b] = halves(normal_scores.len());
    for (held, fit) in [(&a, &b), (&b, &a)] {
        let line = ComplexityLine::fit(&pick(normal_scores, fit), &pick(normal_lengths, fit))?;
        let mut scores: Vec<f64> = held
            .iter()
            .map(|&i| line.correct(normal_scores[i], normal_lengths[i]))
            .collect();
        let mut labels = vec![0; scores.len()];
        scores.extend(
            anomalous_scores
                .iter()
                .zip(anomalous_lengths)
                .map(|(&s, &l)| line.correct(s, l)),
        );
        labels.resize(scores.len(), 1);
        total += roc_auc(&scores, &labels)?;
    }
    Ok(total / 2.0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};
    use rand_chacha::ChaCha8Rng;
    use tch::Kind;

    #[test]
    fn a_flat_image_compresses_better_than_noise() {
        let flat = Tensor::zeros([1, 3, 32, 32], (Kind::Float, tch::Device::Cpu));
        tch::manual_seed(0);
        let noise = Tensor::rand([1, 3, 32, 32], (Kind::Float, tch::Device::Cpu)) * 2.0 - 1.0;
        let both = Tensor::cat(&[flat, noise], 0);
        let lengths = png_lengths(&both).unwrap();
        assert_eq!(lengths.len(), 2);
        assert!(lengths[0] * 5.0 < lengths[1], "{lengths:?}");
        // 3072 random bytes do not compress.
        assert!(lengths[1] > 3072.0, "{lengths:?}");
    }

    #[test]
    fn the_line_recovers_a_power_law_and_the_correction_removes_it() {
        let mut rng = ChaCha8Rng::seed_from_u64(0);
        let lengths: Vec<f64> = (0..200).map(|_| rng.gen_range(200.0..3000.0)).collect();
        // s = 0.01 L^1.5, exactly.
        let scores: Vec<f64> = lengths.iter().map(|l: &f64| 0.01 * l.powf(1.5)).collect();
        let line = ComplexityLine::fit(&scores, &lengths).unwrap();
        assert!((line.slope - 1.5).abs() < 1e-9, "{line:?}");
        assert!((line.intercept - 0.01f64.ln()).abs() < 1e-9, "{line:?}");
        for (&s, &l) in scores.iter().zip(&lengths) {
            assert!(line.correct(s, l).abs() < 1e-9);
        }
        let cross = cross_fitted(&scores, &lengths).unwrap();
        assert!(cross.iter().all(|c| c.abs() < 1e-9));
    }

    /// Anomalies that reconstruct worse than normal images of their complexity, but are
    /// simpler images: the plain score ranks them below the normals, the corrected one above.
    #[test]
    fn the_corrected_score_separates_what_complexity_hides() {
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        let mut draw = |n: usize, range: std::ops::Range<f64>, excess: f64| {
            let lengths: Vec<f64> = (0..n).map(|_| rng.gen_range(range.clone())).collect();
            let scores: Vec<f64> = lengths
                .iter()
                .map(|l| 1e-4 * l * excess * rng.gen_range(0.9..1.1))
                .collect();
            (scores, lengths)
        };
        let (normal_scores, normal_lengths) = draw(100, 1000.0..3000.0, 1.0);
        let (anomalous_scores, anomalous_lengths) = draw(100, 300.0..900.0, 2.0);
        let labels = [vec![0; 100], vec![1; 100]].concat();
        let plain = roc_auc(
            &[normal_scores.clone(), anomalous_scores.clone()].concat(),
            &labels,
        );
        assert!(plain.unwrap() < 0.2);
        let corrected = validation_auc(
            (&normal_scores, &normal_lengths),
            (&anomalous_scores, &anomalous_lengths),
        )
        .unwrap();
        assert!(corrected > 0.99, "{corrected}");
    }

    #[test]
    fn a_nan_score_stays_nan() {
        let line = ComplexityLine::fit(&[1.0, 2.0], &[100.0, 200.0]).unwrap();
        assert!(line.correct(f64::NAN, 150.0).is_nan());
        let fitted = ComplexityLine::fit(&[f64::NAN, 2.0], &[100.0, 200.0]).unwrap();
        assert!(fitted.intercept.is_nan(), "{fitted:?}");
    }

    #[test]
    fn a_line_needs_two_images() {
        let err = ComplexityLine::fit(&[1.0], &[10.0]).unwrap_err();
        assert!(err.to_string().contains("at least two"), "{err}");
    }
}
