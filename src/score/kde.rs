//! Kernel density estimation with a Gaussian kernel (the paper's KDE baseline): the anomaly
//! score is the negative log density, and the bandwidth h is chosen by maximum held-out
//! likelihood under 10-fold cross-validation over h in {2^0, 2^0.5, ..., 2^4}.
//!
//! Written on tensors rather than with a crate: the work is pairwise distances between ~6000
//! points, which libtorch does as one matrix product (and on a GPU when there is one).

use super::features::{check_features, parameter, scalar_parameter, scalar_tensor, FeatureModel};
use anyhow::{ensure, Result};
use std::collections::HashMap;
use tch::{Kind, Tensor};

/// Bandwidth candidates of the paper: 2^0, 2^0.5, ..., 2^4.
pub fn bandwidth_grid() -> Vec<f64> {
    (0..=8).map(|i| 2f64.powf(i as f64 * 0.5)).collect()
}

/// A fitted Gaussian KDE.
#[derive(Debug)]
pub struct Kde {
    train: Tensor,
    /// Bandwidth h (standard deviation of the kernel).
    pub bandwidth: f64,
}

/// Log density of each row of `x` under a Gaussian KDE on `train` with bandwidth h.
fn log_density(train: &Tensor, x: &Tensor, h: f64) -> Tensor {
    let d = train.size()[1] as f64;
    let n = train.size()[0] as f64;
    // Rows of at most 1024 points keep the distance matrix small at any test-set size.
    let chunks: Vec<Tensor> = x
        .split(1024, 0)
        .iter()
        .map(|part| {
            let sq = squared_distances(part, train);
            (sq / (-2.0 * h * h)).logsumexp([1], false)
        })
        .collect();
    Tensor::cat(&chunks, 0) - n.ln() - 0.5 * d * (2.0 * std::f64::consts::PI * h * h).ln()
}

/// Squared Euclidean distances between the rows of `a` and of `b`, clamped at 0 (the expanded
/// form can round below it).
pub(crate) fn squared_distances(a: &Tensor, b: &Tensor) -> Tensor {
    let a2 = a.square().sum_dim_intlist(1, true, Kind::Double);
    let b2 = b.square().sum_dim_intlist(1, false, Kind::Double);
    (a2 + b2.unsqueeze(0) - a.matmul(&b.transpose(0, 1)) * 2.0).clamp_min(0.0)
}

impl Kde {
    /// A KDE on `train` (N x d) with a given bandwidth.
    pub fn new(train: &Tensor, bandwidth: f64) -> Result<Kde> {
        check_features(train, 0, "KDE")?;
        ensure!(
            bandwidth > 0.0,
            "KDE bandwidth must be positive, got {bandwidth}"
        );
        Ok(Kde {
            train: train.to_kind(Kind::Double),
            bandwidth,
        })
    }

    /// Fits the bandwidth of `grid` with the highest held-out log-likelihood (summed over all
    /// rows, scikit-learn's `GridSearchCV` criterion for `KernelDensity`) under
    /// `folds`-fold cross-validation; folds are consecutive blocks of rows (as scikit-learn's
    /// unshuffled `KFold`), so the choice is deterministic.
    pub fn fit_cross_validated(train: &Tensor, grid: &[f64], folds: usize) -> Result<Kde> {
        check_features(train, folds, "KDE")?;
        ensure!(!grid.is_empty(), "KDE: empty bandwidth grid");
        let n = train.size()[0];
        let mut total = vec![0.0; grid.len()];
        let mut start = 0;
        for fold in 0..folds as i64 {
            // The first n % folds folds get one row more, like scikit-learn's KFold.
            let len = n / folds as i64 + i64::from(fold < n % folds as i64);
            let held = train.narrow(0, start, len);
            let rest = Tensor::cat(
                &[
                    train.narrow(0, 0, start),
                    train.narrow(0, start + len, n - start - len),
                ],
                0,
            );
            for (t, &h) in total.iter_mut().zip(grid) {
                *t += log_density(&rest, &held, h)
                    .sum(Kind::Double)
                    .double_value(&[]);
            }
            start += len;
        }
        let best = (0..grid.len()).fold(0, |b, i| if total[i] > total[b] { i } else { b });
        Kde::new(train, grid[best])
    }
}

impl FeatureModel for Kde {
    fn score(&self, features: &Tensor) -> Result<Tensor> {
        Ok(-log_density(
            &self.train,
            &features.to_kind(Kind::Double),
            self.bandwidth,
        ))
    }

    fn parameters(&self) -> Vec<(String, Tensor)> {
        vec![
            ("train".to_string(), self.train.shallow_clone()),
            ("bandwidth".to_string(), scalar_tensor(self.bandwidth)),
        ]
    }
}

impl Kde {
    /// The KDE of [`FeatureModel::parameters`].
    pub fn from_parameters(parameters: &HashMap<String, Tensor>) -> Result<Kde> {
        Kde::new(
            &parameter(parameters, "train")?,
            scalar_parameter(parameters, "bandwidth")?,
        )
    }
}
