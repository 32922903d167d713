//! The training iteration on buffers that outlive it, so that a CUDA graph can record it once
//! and replay it for every later iteration.
//!
//! A graph replays the same kernels on the same memory. So each iteration's draws (batch
//! indices, latents, penalty mixing weights, all drawn on the CPU from the iteration's own seed
//! as before) are copied into buffers the graph was recorded with, and so are the optimisers'
//! step factors, which change with the step count ([`Optimizer::factors`]). The networks, their
//! gradients and the optimisers' running averages are updated in place, where the graph
//! finds them. The losses are read from the tensors the recorded work produced.
//!
//! [`Optimizer::factors`]: crate::optim::Optimizer::factors

use super::{Draws, LossTensors, Losses, StepFactors, Trainer};
use crate::cuda_graph::CudaGraph;
use crate::optim::Optimizer;
use anyhow::Result;
use tch::{Kind, Tensor};

/// Buffers for the iteration's inputs, and the graph recorded on them.
pub(super) struct Replay {
    draws: Draws,
    factors: StepFactors,
    outcome: Option<LossTensors>,
    graph: Option<CudaGraph>,
}

/// The factors of the optimiser's next `steps` steps, [steps, 2] f64 on the CPU.
fn next_factors(optimizer: &Optimizer, steps: usize) -> Tensor {
    let values: Vec<f64> = (1..=steps as i64)
        .flat_map(|ahead| optimizer.factors(optimizer.steps() + ahead))
        .collect();
    Tensor::from_slice(&values).view([steps as i64, 2])
}

/// `to` overwritten with `from`, in place.
fn refill(to: &Tensor, from: &Tensor) {
    let mut to = to.shallow_clone();
    tch::no_grad(|| to.copy_(from));
}

impl Replay {
    /// Buffers shaped like `draws` on their device.
    pub(super) fn new(draws: &Draws) -> Self {
        let device = draws.generator_latents.device();
        let n_critic = draws.critic.len() as i64;
        let copy = |t: &Tensor| t.copy();
        Self {
            draws: Draws {
                critic: draws
                    .critic
                    .iter()
                    .map(|step| super::CriticDraws {
                        indices: copy(&step.indices),
                        latents: copy(&step.latents),
                        mix: step.mix.as_ref().map(copy),
                    })
                    .collect(),
                generator_latents: copy(&draws.generator_latents),
            },
            factors: StepFactors {
                critic: Tensor::zeros([n_critic, 2], (Kind::Double, device)),
                generator: Tensor::zeros([2], (Kind::Double, device)),
            },
            outcome: None,
            graph: None,
        }
    }

    /// Copies `draws` and the optimisers' next step factors into the buffers.
    fn fill(&self, trainer: &Trainer, draws: &Draws) {
        for (buffer, step) in self.draws.critic.iter().zip(&draws.critic) {
            refill(&buffer.indices, &step.indices);
            refill(&buffer.latents, &step.latents);
            if let (Some(to), Some(from)) = (&buffer.mix, &step.mix) {
                refill(to, from);
            }
        }
        refill(&self.draws.generator_latents, &draws.generator_latents);
        let n_critic = draws.critic.len();
        refill(
            &self.factors.critic,
            &next_factors(&trainer.opt_critic, n_critic),
        );
        refill(
            &self.factors.generator,
            &next_factors(&trainer.opt_generator, 1).view([2]),
        );
    }

    /// One iteration of `trainer` on `draws`: the recorded graph replayed; or, the first time,
    /// run on the buffers and, when `record`, recorded there. The optimisers' step counts are
    /// left to the caller.
    pub(super) fn iterate(
        &mut self,
        trainer: &mut Trainer,
        draws: &Draws,
        record: bool,
    ) -> Result<Losses> {
        self.fill(trainer, draws);
        if let Some(graph) = &self.graph {
            graph.replay()?;
            return Ok(self.outcome.as_ref().expect("recorded").values());
        }
        let (buffers, factors) = (&self.draws, &self.factors);
        if !record {
            return Ok(trainer
                .iterate(buffers, Some(factors), &mut |_| {})
                .values());
        }
        // The warm-up run is this iteration; the capture records the next ones.
        let mut runs = Vec::with_capacity(2);
        let device = buffers.generator_latents.device();
        let graph = CudaGraph::record(device, &mut || {
            runs.push(trainer.iterate(buffers, Some(factors), &mut |_| {}));
            Ok(())
        })?;
        let mut runs = runs.into_iter();
        let warm_up = runs.next().expect("the warm-up ran");
        self.outcome = runs.next();
        self.graph = Some(graph);
        Ok(warm_up.values())
    }
}

#[cfg(test)]
mod tests {
    use super::super::{load_training_data, Objective, RunConfig, TrainConfig, FORMAT_VERSION};
    use super::*;
    use crate::data::{DataSource, Fit, ImageSpec};
    use crate::model::ModelConfig;
    use crate::optim::OptimizerConfig;
    use tch::Device;

    fn trainer(train: TrainConfig) -> Trainer {
        let spec = ImageSpec {
            size: 32,
            channels: 1,
        };
        let (data, provenance) =
            load_training_data(&DataSource::Demo { seed: 0 }, Some("disc"), spec, Fit::Pad)
                .unwrap();
        let config = RunConfig {
            format_version: FORMAT_VERSION,
            model: ModelConfig {
                image_size: 32,
                channels: 1,
                latent_dim: 8,
                width: 8,
            },
            train,
            data: provenance,
        };
        Trainer::new(config, &data, Device::Cpu).unwrap()
    }

    fn state(trainer: &Trainer) -> Vec<(String, Vec<f64>)> {
        let mut named = crate::io::named_variables(&trainer.generator_vs, "generator");
        named.extend(crate::io::named_variables(&trainer.critic_vs, "critic"));
        named.extend(trainer.opt_generator.state("opt_generator"));
        named.extend(trainer.opt_critic.state("opt_critic"));
        named
            .into_iter()
            .map(|(name, t)| {
                let values = Vec::try_from(t.flatten(0, -1).to_kind(Kind::Double)).unwrap();
                (name, values)
            })
            .collect()
    }

    /// The buffer path a CUDA graph records (draws and step factors copied into buffers, the
    /// optimisers' counts advanced outside) trains exactly as the eager steps do: the same
    /// losses and the same weights and optimiser states, bit for bit on the CPU, with both
    /// objectives and both optimisers.
    #[test]
    fn iterations_on_buffers_equal_the_eager_ones_bit_for_bit() {
        let clip = TrainConfig {
            batch_size: 8,
            n_critic: 3,
            seed: 4,
            ..TrainConfig::default()
        };
        let penalty = TrainConfig {
            batch_size: 8,
            n_critic: 2,
            seed: 5,
            optimizer: OptimizerConfig::adam(1e-3, 0.5, 0.9),
            ..TrainConfig::gradient_penalty()
        };
        for train in [clip, penalty] {
            assert!(matches!(
                (train.objective, train.optimizer),
                (
                    Objective::WeightClipping { .. },
                    OptimizerConfig::Rmsprop { .. }
                ) | (
                    Objective::GradientPenalty { .. },
                    OptimizerConfig::Adam { .. }
                )
            ));
            let (mut eager, mut buffered) = (trainer(train), trainer(train));
            for t in 1..=4 {
                let expected = eager.step().unwrap();
                let draws = buffered.draw(t);
                let losses = buffered.iterate_on_buffers(&draws, false).unwrap();
                buffered.iteration = t;
                assert_eq!(
                    (losses.critic, losses.generator, losses.wasserstein),
                    (expected.critic, expected.generator, expected.wasserstein),
                    "{:?}, iteration {t}",
                    train.objective
                );
            }
            assert_eq!(
                eager.opt_critic.steps(),
                4 * train.n_critic as i64,
                "the critic stepped"
            );
            assert!(state(&eager) == state(&buffered), "{:?}", train.objective);
        }
    }

    #[test]
    fn a_graph_of_training_is_refused_off_a_cuda_device() {
        let err = trainer(TrainConfig::default())
            .with_cuda_graph(true)
            .err()
            .expect("refused on the CPU");
        let bad = err
            .downcast_ref::<crate::setting::BadSetting>()
            .expect("a bad setting");
        assert_eq!(bad.name, "cuda_graph");
    }
}
