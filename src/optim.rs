//! RMSprop and Adam with the update rules of PyTorch's `torch.optim`.
//!
//! Written here rather than taken from `tch::nn::Optimizer` because that one keeps its state
//! (running averages, step count) out of reach: a checkpoint could not hold it, and a resumed run
//! would not equal an uninterrupted one.

use crate::setting::check;
use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use tch::{nn::VarStore, Kind, Tensor};

/// An update rule and its hyperparameters.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum OptimizerConfig {
    /// RMSprop (Tieleman and Hinton 2012) without momentum, as in the WGAN paper.
    Rmsprop {
        /// Learning rate.
        lr: f64,
        /// Decay of the squared-gradient average.
        alpha: f64,
        /// Added to the denominator.
        eps: f64,
    },
    /// Adam (Kingma and Ba 2015).
    Adam {
        /// Learning rate.
        lr: f64,
        /// Decay of the gradient average.
        beta1: f64,
        /// Decay of the squared-gradient average.
        beta2: f64,
        /// Added to the denominator.
        eps: f64,
    },
}

impl OptimizerConfig {
    /// RMSprop with PyTorch's defaults for alpha and eps.
    pub fn rmsprop(lr: f64) -> Self {
        Self::Rmsprop {
            lr,
            alpha: 0.99,
            eps: 1e-8,
        }
    }

    /// Adam with the given betas and eps 1e-8.
    pub fn adam(lr: f64, beta1: f64, beta2: f64) -> Self {
        Self::Adam {
            lr,
            beta1,
            beta2,
            eps: 1e-8,
        }
    }

    /// Checks the hyperparameters: a positive finite learning rate, decays in [0, 1), a
    /// positive eps.
    pub fn validate(&self) -> Result<()> {
        let (lr, decays, eps) = match *self {
            Self::Rmsprop { lr, alpha, eps } => (lr, vec![("alpha", alpha)], eps),
            Self::Adam {
                lr,
                beta1,
                beta2,
                eps,
            } => (lr, vec![("beta1", beta1), ("beta2", beta2)], eps),
        };
        check(lr > 0.0 && lr.is_finite(), "lr", || {
            format!("the learning rate must be positive and finite, not {lr}")
        })?;
        for (name, value) in decays {
            check((0.0..1.0).contains(&value), name, || {
                format!("{name} must lie in [0, 1), not {value}")
            })?;
        }
        check(eps > 0.0 && eps.is_finite(), "eps", || {
            format!("eps must be positive, not {eps}")
        })
    }

    fn slots(&self) -> &'static [&'static str] {
        match self {
            Self::Rmsprop { .. } => &["square_avg"],
            Self::Adam { .. } => &["exp_avg", "exp_avg_sq"],
        }
    }
}

/// [`Optimizer::factors`] as numbers, or as tensors a recorded CUDA graph reads.
enum Factors<'a> {
    Values { scale: f64, eps: f64 },
    Tensors { scale: &'a Tensor, eps: &'a Tensor },
}

/// An optimiser over named parameters, with state that can be saved and restored exactly.
#[derive(Debug)]
pub struct Optimizer {
    config: OptimizerConfig,
    params: Vec<(String, Tensor)>,
    slots: Vec<Vec<Tensor>>,
    step: i64,
}

impl Optimizer {
    /// An optimiser over the trainable variables of `vs` (sorted by name), with fresh state.
    pub fn new(config: OptimizerConfig, vs: &VarStore) -> Self {
        let mut params: Vec<(String, Tensor)> = vs
            .variables()
            .into_iter()
            .filter(|(_, t)| t.requires_grad())
            .collect();
        params.sort_by(|a, b| a.0.cmp(&b.0));
        Self::over(config, params)
    }

    /// An optimiser over the given named parameters, with fresh state.
    pub fn over(config: OptimizerConfig, params: Vec<(String, Tensor)>) -> Self {
        let slots = params
            .iter()
            .map(|(_, p)| config.slots().iter().map(|_| p.zeros_like()).collect())
            .collect();
        Self {
            config,
            params,
            slots,
            step: 0,
        }
    }

    /// Number of steps taken.
    pub fn steps(&self) -> i64 {
        self.step
    }

    /// Back to a fresh optimiser over the same parameters: step 0 and zero slots, in place, so
    /// that work recorded on these tensors (a CUDA graph) sees the reset.
    pub fn reset(&mut self) {
        self.step = 0;
        tch::no_grad(|| {
            for slot in self.slots.iter_mut().flatten() {
                let _ = slot.zero_();
            }
        });
    }

    /// Clears the gradients of all parameters.
    pub fn zero_grad(&mut self) {
        for (_, p) in &mut self.params {
            p.zero_grad();
        }
    }

    /// One update of every parameter that has a gradient.
    pub fn step(&mut self) {
        let grads: Vec<Tensor> = self.params.iter().map(|(_, p)| p.grad()).collect();
        self.step_with(&grads);
    }

    /// One update with the given gradients, one per parameter in order (undefined = skip);
    /// for gradients computed with `Tensor::run_backward` rather than stored on the parameters.
    pub fn step_with(&mut self, grads: &[Tensor]) {
        self.step += 1;
        let [scale, eps] = self.factors(self.step);
        self.update(grads, &Factors::Values { scale, eps });
    }

    /// The update's two step-dependent factors at step `t` (counted from 1): the scale of the
    /// step direction and the term added to the denominator. For Adam they fold in the bias
    /// corrections: lr/c1 * m / (sqrt(v)/c2 + eps) = (lr c2/c1) * m / (sqrt(v) + eps c2).
    pub fn factors(&self, t: i64) -> [f64; 2] {
        match self.config {
            OptimizerConfig::Rmsprop { lr, eps, .. } => [-lr, eps],
            OptimizerConfig::Adam {
                lr,
                beta1,
                beta2,
                eps,
            } => {
                let t = t as f64;
                let correction1 = 1.0 - beta1.powf(t);
                let correction2 = (1.0 - beta2.powf(t)).sqrt();
                [-lr * correction2 / correction1, eps * correction2]
            }
        }
    }

    /// One update of every parameter that has a gradient, with [`Optimizer::factors`] read
    /// from tensors (0-dimensional, f64) rather than computed from the step count, which is
    /// left as it is: recorded once in a CUDA graph, the update then serves every step, the
    /// factors copied in before each replay, and [`Optimizer::advance`] counts the steps.
    /// The same values as [`Optimizer::step`] at that step, bit for bit.
    pub fn step_given(&mut self, scale: &Tensor, eps: &Tensor) {
        let grads: Vec<Tensor> = self.params.iter().map(|(_, p)| p.grad()).collect();
        self.update(&grads, &Factors::Tensors { scale, eps });
    }

    /// Counts `steps` steps taken by [`Optimizer::step_given`].
    pub fn advance(&mut self, steps: i64) {
        self.step += steps;
    }

    fn update(&mut self, grads: &[Tensor], factors: &Factors) {
        let (decay, square_decay) = match self.config {
            OptimizerConfig::Rmsprop { alpha, .. } => (None, alpha),
            OptimizerConfig::Adam { beta1, beta2, .. } => (Some(beta1), beta2),
        };
        tch::no_grad(|| {
            for ((p, slots), g) in self.params.iter_mut().zip(self.slots.iter_mut()).zip(grads) {
                if !g.defined() {
                    continue;
                }
                let p = &mut p.1;
                // Running averages as lerps: v <- d v + (1 - d) g^2, and Adam's m likewise.
                // Seven passes over theta for Adam instead of ten (BENCHMARKS.md, "Where a
                // step spends its time").
                let direction = match decay {
                    None => g.shallow_clone(),
                    Some(beta1) => {
                        let _ = slots[0].lerp_(g, 1.0 - beta1);
                        slots[0].shallow_clone()
                    }
                };
                let v = slots.last_mut().expect("a squared-gradient average");
                let _ = v.lerp_(&g.square(), 1.0 - square_decay);
                let mut denom = v.sqrt();
                let step = match factors {
                    Factors::Values { scale, eps } => {
                        let _ = denom.g_add_scalar_(*eps);
                        &direction * *scale
                    }
                    Factors::Tensors { scale, eps } => {
                        let _ = denom.g_add_(eps);
                        &direction * *scale
                    }
                };
                let _ = p.addcdiv_(&step, &denom);
            }
        });
    }

    /// The state as named tensors under `prefix` (slots per parameter, and the step count).
    pub fn state(&self, prefix: &str) -> Vec<(String, Tensor)> {
        let mut out = vec![(format!("{prefix}/step"), Tensor::from(self.step))];
        for ((name, _), slots) in self.params.iter().zip(&self.slots) {
            for (slot, value) in self.config.slots().iter().zip(slots) {
                out.push((format!("{prefix}/{name}/{slot}"), value.shallow_clone()));
            }
        }
        out
    }

    /// Restores the state written by [`Optimizer::state`].
    pub fn load_state(&mut self, tensors: &HashMap<String, Tensor>, prefix: &str) -> Result<()> {
        let get = |key: String| {
            tensors
                .get(&key)
                .with_context(|| format!("the checkpoint lacks {key}"))
        };
        self.step = get(format!("{prefix}/step"))?.int64_value(&[]);
        let names = self.config.slots();
        for ((name, _), slots) in self.params.iter().zip(self.slots.iter_mut()) {
            for (slot, value) in names.iter().zip(slots.iter_mut()) {
                let saved = get(format!("{prefix}/{name}/{slot}"))?;
                tch::no_grad(|| value.f_copy_(&saved.to_kind(Kind::Float)))
                    .with_context(|| format!("{prefix}/{name}/{slot} has the wrong shape"))?;
            }
        }
        Ok(())
    }
}
