//! One-class SVM (Schölkopf et al. 2001), the paper's OC-SVM baseline: Gaussian kernel,
//! nu = 0.1. The anomaly score is minus the decision value sum_i alpha_i K(x_i, x) - rho.
//!
//! The inverse length scale gamma is set automatically by scikit-learn's `gamma="scale"` rule,
//! gamma = 1 / (d * Var(X)) with Var over all entries of the training features (scikit-learn
//! `OneClassSVM` documentation): deterministic, and comparable one to one with scikit-learn.
//!
//! The dual is solved by SMO with libsvm's second-order working-set selection (Fan, Chen and
//! Lin, JMLR 2005) on a kernel matrix computed by libtorch. Written here rather than with
//! linfa-svm because the kernel matrix of ~6000 points is one matrix product on tensors (and a
//! GPU), and the solver itself is a short loop; libsvm's shrinking heuristic is left out.

use super::features::{check_features, parameter, scalar_parameter, scalar_tensor, FeatureModel};
use super::kde::squared_distances;
use anyhow::{bail, ensure, Result};
use std::collections::HashMap;
use tch::{Kind, Tensor};

/// OC-SVM settings.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct OcSvmConfig {
    /// nu: upper bound on the fraction of training outliers (0.1 in the paper).
    pub nu: f64,
    /// Stopping tolerance on the KKT violation (libsvm's eps).
    pub tol: f64,
    /// Inverse length scale; `None` = 1 / (d * Var(X)).
    pub gamma: Option<f64>,
}

impl Default for OcSvmConfig {
    fn default() -> Self {
        Self {
            nu: 0.1,
            tol: 1e-3,
            gamma: None,
        }
    }
}

/// A fitted one-class SVM: support vectors, their weights alpha_i and the offset rho.
#[derive(Debug)]
pub struct OcSvm {
    support: Tensor,
    alpha: Tensor,
    rho: f64,
    /// The inverse length scale used.
    pub gamma: f64,
}

/// Working-set tolerance for a non-positive curvature (libsvm's TAU).
const TAU: f64 = 1e-12;

/// The SMO state for min 1/2 a'Qa subject to 0 <= a_i <= 1 and sum a = nu * l.
struct Smo<'a> {
    q: &'a [f32],
    l: usize,
    alpha: Vec<f64>,
    grad: Vec<f64>,
}

impl<'a> Smo<'a> {
    /// Row i of Q; borrows the kernel matrix, not the solver, so the state can change meanwhile.
    fn row(&self, i: usize) -> &'a [f32] {
        &self.q[i * self.l..(i + 1) * self.l]
    }

    /// The maximal violating pair by second-order selection, or `None` when optimal within tol.
    fn select(&self, tol: f64) -> Option<(usize, usize)> {
        let (mut g_max, mut i) = (f64::NEG_INFINITY, usize::MAX);
        for t in 0..self.l {
            if self.alpha[t] < 1.0 && -self.grad[t] >= g_max {
                g_max = -self.grad[t];
                i = t;
            }
        }
        if i == usize::MAX {
            return None;
        }
        let q_i = self.row(i);
        let (mut g_max2, mut j, mut best) = (f64::NEG_INFINITY, usize::MAX, f64::INFINITY);
        for t in 0..self.l {
            if self.alpha[t] <= 0.0 {
                continue;
            }
            g_max2 = g_max2.max(self.grad[t]);
            let grad_diff = g_max + self.grad[t];
            if grad_diff > 0.0 {
                let quad = f64::from(q_i[i]) + f64::from(self.row(t)[t]) - 2.0 * f64::from(q_i[t]);
                let objective = -(grad_diff * grad_diff) / if quad > 0.0 { quad } else { TAU };
                if objective <= best {
                    best = objective;
                    j = t;
                }
            }
        }
        (g_max + g_max2 >= tol && j != usize::MAX).then_some((i, j))
    }

    /// Optimises the pair (i, j) analytically and updates the gradient.
    fn step(&mut self, i: usize, j: usize) {
        let (q_i, q_j) = (self.row(i), self.row(j));
        let quad = f64::from(q_i[i]) + f64::from(q_j[j]) - 2.0 * f64::from(q_i[j]);
        let delta = (self.grad[i] - self.grad[j]) / if quad > 0.0 { quad } else { TAU };
        let (old_i, old_j) = (self.alpha[i], self.alpha[j]);
        let sum = old_i + old_j;
        let (mut a_i, mut a_j) = (old_i - delta, old_j + delta);
        // Clip to the box [0, 1]^2 along the line a_i + a_j = sum.
        if sum > 1.0 {
            if a_i > 1.0 {
                (a_i, a_j) = (1.0, sum - 1.0);
            }
            if a_j > 1.0 {
                (a_i, a_j) = (sum - 1.0, 1.0);
            }
        } else {
            if a_j < 0.0 {
                (a_i, a_j) = (sum, 0.0);
            }
            if a_i < 0.0 {
                (a_i, a_j) = (0.0, sum);
            }
        }
        let (d_i, d_j) = (a_i - old_i, a_j - old_j);
        for (t, g) in self.grad.iter_mut().enumerate() {
            *g += f64::from(q_i[t]) * d_i + f64::from(q_j[t]) * d_j;
        }
        self.alpha[i] = a_i;
        self.alpha[j] = a_j;
    }

    /// rho: the mean gradient over free variables, else the middle of the feasible interval.
    fn rho(&self) -> f64 {
        let (mut upper, mut lower) = (f64::INFINITY, f64::NEG_INFINITY);
        let (mut free, mut sum_free) = (0usize, 0.0);
        for (&a, &g) in self.alpha.iter().zip(&self.grad) {
            if a >= 1.0 {
                lower = lower.max(g);
            } else if a <= 0.0 {
                upper = upper.min(g);
            } else {
                free += 1;
                sum_free += g;
            }
        }
        if free > 0 {
            sum_free / free as f64
        } else {
            (upper + lower) / 2.0
        }
    }
}

fn rbf(a: &Tensor, b: &Tensor, gamma: f64) -> Tensor {
    (squared_distances(a, b) * -gamma).exp()
}

impl OcSvm {
    /// Fits the one-class SVM on the rows of `train` (N x d).
    pub fn fit(train: &Tensor, config: &OcSvmConfig) -> Result<OcSvm> {
        check_features(train, 1, "OC-SVM")?;
        ensure!(
            config.nu > 0.0 && config.nu <= 1.0,
            "OC-SVM: nu must lie in (0, 1], got {}",
            config.nu
        );
        let x = train.to_kind(Kind::Double);
        let (l, d) = (x.size()[0] as usize, x.size()[1] as f64);
        let gamma = match config.gamma {
            Some(g) => g,
            None => {
                let variance = x.var(false).double_value(&[]);
                ensure!(variance > 0.0, "OC-SVM: all training features are equal");
                1.0 / (d * variance)
            }
        };
        let kernel = rbf(&x, &x, gamma)
            .to_kind(Kind::Float)
            .to_device(tch::Device::Cpu);
        let q = Vec::<f32>::try_from(&kernel.flatten(0, -1))?;
        let mut alpha = vec![0.0; l];
        let total = config.nu * l as f64;
        let whole = total.floor() as usize;
        alpha[..whole.min(l)].iter_mut().for_each(|a| *a = 1.0);
        if whole < l {
            alpha[whole] = total - whole as f64;
        }
        let a = Tensor::from_slice(&alpha).to_kind(Kind::Float);
        let grad = Vec::<f64>::try_from(&kernel.mv(&a).to_kind(Kind::Double))?;
        let mut smo = Smo {
            q: &q,
            l,
            alpha,
            grad,
        };
        let max_iter = (100 * l).max(10_000_000);
        let mut converged = false;
        for _ in 0..max_iter {
            match smo.select(config.tol) {
                Some((i, j)) => smo.step(i, j),
                None => {
                    converged = true;
                    break;
                }
            }
        }
        if !converged {
            bail!("OC-SVM: SMO did not converge in {max_iter} iterations");
        }
        let rho = smo.rho();
        let support: Vec<i64> = (0..l as i64)
            .filter(|&i| smo.alpha[i as usize] > 0.0)
            .collect();
        let index = Tensor::from_slice(&support).to_device(x.device());
        let alpha: Vec<f64> = support.iter().map(|&i| smo.alpha[i as usize]).collect();
        Ok(OcSvm {
            support: x.index_select(0, &index),
            alpha: Tensor::from_slice(&alpha).to_device(x.device()),
            rho,
            gamma,
        })
    }

    /// Number of support vectors.
    pub fn support_vectors(&self) -> usize {
        self.support.size()[0] as usize
    }

    /// Decision values sum_i alpha_i K(x_i, x) - rho (positive = inside the support).
    pub fn decision(&self, features: &Tensor) -> Tensor {
        rbf(&features.to_kind(Kind::Double), &self.support, self.gamma).mv(&self.alpha) - self.rho
    }
}

impl FeatureModel for OcSvm {
    fn score(&self, features: &Tensor) -> Result<Tensor> {
        Ok(-self.decision(features))
    }

    fn parameters(&self) -> Vec<(String, Tensor)> {
        vec![
            ("support".to_string(), self.support.shallow_clone()),
            ("alpha".to_string(), self.alpha.shallow_clone()),
            ("rho".to_string(), scalar_tensor(self.rho)),
            ("gamma".to_string(), scalar_tensor(self.gamma)),
        ]
    }
}

impl OcSvm {
    /// The one-class SVM of [`FeatureModel::parameters`].
    pub fn from_parameters(parameters: &HashMap<String, Tensor>) -> Result<OcSvm> {
        let support = parameter(parameters, "support")?.to_kind(Kind::Double);
        let alpha = parameter(parameters, "alpha")?.to_kind(Kind::Double);
        ensure!(
            support.dim() == 2 && alpha.dim() == 1 && alpha.size()[0] == support.size()[0],
            "the kept OC-SVM has {:?} support vectors for {:?} weights",
            support.size(),
            alpha.size()
        );
        let gamma = scalar_parameter(parameters, "gamma")?;
        ensure!(gamma > 0.0, "the kept OC-SVM has gamma {gamma}");
        Ok(OcSvm {
            support,
            alpha,
            rho: scalar_parameter(parameters, "rho")?,
            gamma,
        })
    }
}
