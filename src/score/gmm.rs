//! Gaussian mixture model with full covariances (the paper's GMM baseline): the anomaly score is
//! the negative log-likelihood, and the number of components is chosen in 2..=20 by BIC.
//!
//! EM follows scikit-learn's `GaussianMixture` defaults (k-means initialisation, covariance
//! regulariser 1e-6, stop when the mean log-likelihood gains less than 1e-3, at most 100
//! iterations). Written on tensors rather than with linfa's GMM: all components are updated
//! with batched Cholesky solves, which libtorch runs on BLAS (or a GPU) and which the ~100 EM
//! fits of a BIC and dimension search need.

use super::features::{check_features, parameter, scalar_parameter, scalar_tensor, FeatureModel};
use super::kde::squared_distances;
use anyhow::{bail, ensure, Result};
use rand::Rng;
use rand_chacha::ChaCha8Rng;
use std::collections::HashMap;
use tch::{Kind, Tensor};

/// EM settings.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct GmmConfig {
    /// Smallest number of components tried.
    pub min_components: usize,
    /// Largest number of components tried.
    pub max_components: usize,
    /// Added to the covariance diagonals, keeps them positive definite.
    pub reg_covar: f64,
    /// EM stops when the mean log-likelihood changes by less than this.
    pub tol: f64,
    /// EM iteration limit.
    pub max_iter: usize,
    /// Seed of the k-means initialisation.
    pub seed: u64,
    /// Stop the sweep over component counts once BIC has risen this many times in a row
    /// (`None` = try every count). In 100 PCA dimensions a component costs ~5000 parameters,
    /// so BIC rises steadily past its minimum, and the large counts it would skip are the
    /// slowest fits.
    pub patience: Option<usize>,
}

impl Default for GmmConfig {
    fn default() -> Self {
        Self {
            min_components: 2,
            max_components: 20,
            reg_covar: 1e-6,
            tol: 1e-3,
            max_iter: 100,
            seed: 0,
            patience: Some(3),
        }
    }
}

/// A fitted mixture of K full-covariance Gaussians in d dimensions.
#[derive(Debug)]
pub struct Gmm {
    log_weights: Tensor,
    means: Tensor,
    /// Lower Cholesky factors of the covariances, K x d x d.
    cholesky: Tensor,
    /// Mean log-likelihood of the training data.
    pub mean_log_likelihood: f64,
    /// Bayesian information criterion on the training data (lower is better).
    pub bic: f64,
}

impl Gmm {
    /// Number of components K.
    pub fn components(&self) -> usize {
        self.means.size()[0] as usize
    }

    /// Log-likelihood of each row of `x` under every component plus its log weight, N x K.
    fn weighted_log_prob(&self, x: &Tensor) -> Tensor {
        let d = x.size()[1] as f64;
        let diff = x.unsqueeze(0) - self.means.unsqueeze(1); // K x N x d
        let solved =
            self.cholesky
                .linalg_solve_triangular(&diff.transpose(1, 2), false, true, false); // K x d x N
        let mahalanobis = solved.square().sum_dim_intlist(1, false, Kind::Double); // K x N
        let log_det = self
            .cholesky
            .diagonal(0, 1, 2)
            .log()
            .sum_dim_intlist(1, false, Kind::Double); // K
        let log_prob = mahalanobis * -0.5
            - (log_det + 0.5 * d * (2.0 * std::f64::consts::PI).ln()).unsqueeze(1);
        log_prob.transpose(0, 1) + self.log_weights.unsqueeze(0)
    }

    /// Log-likelihood of each row of `x`, [N].
    pub fn log_likelihood(&self, x: &Tensor) -> Tensor {
        self.weighted_log_prob(&x.to_kind(Kind::Double))
            .logsumexp([1], false)
    }

    /// Fits `components` Gaussians to `x` (N x d) by EM from a k-means start.
    pub fn fit(x: &Tensor, components: usize, config: &GmmConfig) -> Result<Gmm> {
        check_features(x, components, "GMM")?;
        let x = x.to_kind(Kind::Double);
        let mut rng = crate::rng::seeded(crate::rng::mix(config.seed, components as u64));
        let labels = kmeans(&x, components, &mut rng);
        let mut resp = labels.one_hot(components as i64).to_kind(Kind::Double);
        let mut gmm = m_step(&x, &resp, config.reg_covar)?;
        let mut previous = f64::NEG_INFINITY;
        for _ in 0..config.max_iter {
            let weighted = gmm.weighted_log_prob(&x);
            let norm = weighted.logsumexp([1], true);
            let mean_ll = norm.mean(Kind::Double).double_value(&[]);
            if !mean_ll.is_finite() {
                bail!("GMM: the log-likelihood became {mean_ll} with {components} components");
            }
            resp = (weighted - norm).exp();
            gmm = m_step(&x, &resp, config.reg_covar)?;
            if (mean_ll - previous).abs() < config.tol {
                break;
            }
            previous = mean_ll;
        }
        let n = x.size()[0] as f64;
        let d = x.size()[1] as f64;
        let k = components as f64;
        gmm.mean_log_likelihood = gmm.log_likelihood(&x).mean(Kind::Double).double_value(&[]);
        let n_params = k * d + k * d * (d + 1.0) / 2.0 + k - 1.0;
        gmm.bic = -2.0 * gmm.mean_log_likelihood * n + n_params * n.ln();
        Ok(gmm)
    }

    /// Fits the numbers of components of the configured range in increasing order and keeps
    /// the lowest BIC (stopping early as `config.patience` says).
    pub fn fit_by_bic(x: &Tensor, config: &GmmConfig) -> Result<Gmm> {
        let mut best: Option<Gmm> = None;
        let (mut previous, mut rises) = (f64::INFINITY, 0);
        for k in config.min_components..=config.max_components {
            let gmm = Gmm::fit(x, k, config)?;
            rises = if gmm.bic > previous { rises + 1 } else { 0 };
            previous = gmm.bic;
            if best.as_ref().is_none_or(|b| gmm.bic < b.bic) {
                best = Some(gmm);
            }
            if config.patience.is_some_and(|p| rises >= p) {
                break;
            }
        }
        best.ok_or_else(|| anyhow::anyhow!("GMM: empty component range"))
    }
}

/// Maximisation step: weights, means and regularised covariances from responsibilities N x K.
fn m_step(x: &Tensor, resp: &Tensor, reg_covar: f64) -> Result<Gmm> {
    let d = x.size()[1];
    // The tiny floor keeps an emptied component from dividing by zero (as scikit-learn does).
    let nk = resp.sum_dim_intlist(0, false, Kind::Double) + 10.0 * f64::EPSILON; // K
    let means = resp.transpose(0, 1).matmul(x) / nk.unsqueeze(1); // K x d
    let diff = x.unsqueeze(0) - means.unsqueeze(1); // K x N x d
    let weighted = &diff * resp.transpose(0, 1).unsqueeze(2);
    let eye = Tensor::eye(d, (Kind::Double, x.device()));
    let covariances =
        weighted.transpose(1, 2).matmul(&diff) / nk.view([-1, 1, 1]) + eye * reg_covar;
    let (cholesky, info) = covariances.linalg_cholesky_ex(false, false);
    if info.abs().sum(Kind::Int64).int64_value(&[]) != 0 {
        bail!(
            "GMM: a covariance is not positive definite; use fewer components or a smaller \
             PCA dimension"
        );
    }
    Ok(Gmm {
        log_weights: (&nk / nk.sum(Kind::Double)).log(),
        means,
        cholesky,
        mean_log_likelihood: f64::NAN,
        bic: f64::NAN,
    })
}

/// k-means clustering (k-means++ seeding, then Lloyd iterations); the label of each row.
fn kmeans(x: &Tensor, k: usize, rng: &mut ChaCha8Rng) -> Tensor {
    let n = x.size()[0];
    let mut centres = vec![x.get(rng.gen_range(0..n))];
    while centres.len() < k {
        let c = Tensor::stack(&centres, 0);
        let nearest = squared_distances(x, &c).amin([1], false);
        let weights = Vec::<f64>::try_from(&nearest.to_device(tch::Device::Cpu))
            .expect("distances are doubles");
        let total: f64 = weights.iter().sum();
        let pick = if total > 0.0 {
            let mut target = rng.gen::<f64>() * total;
            weights
                .iter()
                .position(|&w| {
                    target -= w;
                    target <= 0.0
                })
                .unwrap_or(weights.len() - 1)
        } else {
            rng.gen_range(0..n as usize)
        };
        centres.push(x.get(pick as i64));
    }
    let mut centres = Tensor::stack(&centres, 0);
    let mut labels = squared_distances(x, &centres).argmin(1, false);
    for _ in 0..100 {
        let one_hot = labels.one_hot(k as i64).to_kind(Kind::Double);
        let counts = one_hot
            .sum_dim_intlist(0, false, Kind::Double)
            .clamp_min(1.0);
        let sums = one_hot.transpose(0, 1).matmul(x);
        // An emptied cluster keeps its old centre.
        let empty = one_hot
            .sum_dim_intlist(0, false, Kind::Double)
            .eq(0.0)
            .unsqueeze(1);
        centres = (sums / counts.unsqueeze(1)).where_self(&empty.logical_not(), &centres);
        let next = squared_distances(x, &centres).argmin(1, false);
        let changed = next.ne_tensor(&labels).any().int64_value(&[]) == 1;
        labels = next;
        if !changed {
            break;
        }
    }
    labels
}

impl FeatureModel for Gmm {
    fn score(&self, features: &Tensor) -> Result<Tensor> {
        Ok(-self.log_likelihood(features))
    }

    fn parameters(&self) -> Vec<(String, Tensor)> {
        vec![
            ("log_weights".to_string(), self.log_weights.shallow_clone()),
            ("means".to_string(), self.means.shallow_clone()),
            ("cholesky".to_string(), self.cholesky.shallow_clone()),
            (
                "mean_log_likelihood".to_string(),
                scalar_tensor(self.mean_log_likelihood),
            ),
            ("bic".to_string(), scalar_tensor(self.bic)),
        ]
    }
}

impl Gmm {
    /// The mixture of [`FeatureModel::parameters`].
    pub fn from_parameters(parameters: &HashMap<String, Tensor>) -> Result<Gmm> {
        let log_weights = parameter(parameters, "log_weights")?.to_kind(Kind::Double);
        let means = parameter(parameters, "means")?.to_kind(Kind::Double);
        let cholesky = parameter(parameters, "cholesky")?.to_kind(Kind::Double);
        let (k, d) = match means.size()[..] {
            [k, d] => (k, d),
            _ => bail!("the kept GMM's means are not K x d"),
        };
        ensure!(
            log_weights.size() == [k] && cholesky.size() == [k, d, d],
            "the kept GMM has {k} x {d} means but weights {:?} and Cholesky factors {:?}",
            log_weights.size(),
            cholesky.size()
        );
        Ok(Gmm {
            log_weights,
            means,
            cholesky,
            mean_log_likelihood: scalar_parameter(parameters, "mean_log_likelihood")?,
            bic: scalar_parameter(parameters, "bic")?,
        })
    }
}
