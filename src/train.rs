//! Wasserstein GAN training on normal images (the paper's Sect. 3: a WGAN with the DCGAN
//! architecture).
//!
//! The faithful default is the original WGAN (Arjovsky et al. 2017): weight clipping at 0.01,
//! RMSprop with learning rate 5e-5, n_critic = 5 critic steps per generator step. WGAN-GP
//! (Gulrajani et al. 2017: gradient penalty lambda = 10, Adam 1e-4, betas 0 and 0.9) is an option.
//!
//! Reproducibility: every iteration t draws from its own generator seeded by (seed, t), so a run
//! resumed from the checkpoint of iteration t draws exactly the batches and latents an
//! uninterrupted run would have drawn, and (on the CPU) ends with bit-identical weights.
//! Real batches are drawn with replacement, independently at every critic step.

use crate::data::CalibrationSplit;
use crate::data::{DataSource, Dataset, Fit, Split};
use crate::io;
use crate::model::{initialise, Critic, Generator, Init, ModelConfig};
use crate::optim::{Optimizer, OptimizerConfig};
use crate::rng;
use crate::setting::check;
use crate::visual::save_grid;
use anyhow::{bail, ensure, Context, Result};
use serde::{Deserialize, Serialize};
use std::io::Write;
use std::ops::ControlFlow;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use tch::{nn::VarStore, Device, Kind, Tensor};

/// File name of the run configuration inside a run folder.
pub const CONFIG_FILE: &str = "config.json";
/// File name of the latest checkpoint inside a run folder.
pub const CHECKPOINT_FILE: &str = "checkpoint.safetensors";

/// Version of the run-folder layout; a run folder of another version is refused.
pub const FORMAT_VERSION: u32 = 1;

mod graph;

/// How the critic is kept Lipschitz.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum Objective {
    /// Clip every critic weight to [-clip, clip] after each critic step (original WGAN).
    WeightClipping {
        /// The clipping bound c (0.01 in the WGAN paper).
        clip: f64,
    },
    /// Penalise lambda * (||grad f(x_hat)|| - 1)^2 on random interpolates (WGAN-GP).
    GradientPenalty {
        /// The penalty weight lambda (10 in the WGAN-GP paper).
        lambda: f64,
    },
}

/// Hyperparameters of a training run.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct TrainConfig {
    /// Critic constraint.
    pub objective: Objective,
    /// Update rule of both networks.
    pub optimizer: OptimizerConfig,
    /// Generator iterations to train for.
    pub iterations: usize,
    /// Images per batch.
    pub batch_size: i64,
    /// Critic steps per generator step (n_critic).
    pub n_critic: usize,
    /// Weight initialisation of both networks (runs written before it existed used DCGAN's).
    #[serde(default)]
    pub init: Init,
    /// Seed of initialisation and of every draw.
    pub seed: u64,
    /// Write a checkpoint every this many iterations (and at the end).
    pub checkpoint_every: usize,
    /// Write a sample grid every this many iterations (and at the end).
    pub sample_every: usize,
}

impl Default for TrainConfig {
    /// The paper's WGAN: weight clipping 0.01, RMSprop 5e-5, n_critic 5, batch 64.
    fn default() -> Self {
        Self {
            objective: Objective::WeightClipping { clip: 0.01 },
            optimizer: OptimizerConfig::rmsprop(5e-5),
            iterations: 10_000,
            batch_size: 64,
            n_critic: 5,
            init: Init::Dcgan,
            seed: 0,
            checkpoint_every: 250,
            sample_every: 500,
        }
    }
}

/// A complete way to train the GAN of one normal class: the networks' width and every training
/// hyperparameter.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Recipe {
    /// The recipe chosen on validation data (held-out training images; RESULTS.md says how):
    /// WGAN-GP at width 32 with PyTorch's layer initialisation and Adam betas (0.5, 0.9),
    /// 1500 generator iterations.
    #[default]
    Chosen,
    /// The paper's literal WGAN: weight clipping 0.01, RMSprop 5e-5, n_critic 5, DCGAN
    /// initialisation, DCGAN width 64, 10,000 generator iterations.
    Paper,
}

impl Recipe {
    /// Its training hyperparameters.
    pub fn train(self) -> TrainConfig {
        match self {
            Recipe::Chosen => TrainConfig {
                iterations: 1500,
                init: Init::Uniform,
                optimizer: OptimizerConfig::adam(1e-4, 0.5, 0.9),
                ..TrainConfig::gradient_penalty()
            },
            Recipe::Paper => TrainConfig::default(),
        }
    }

    /// Its base width (channels of the last generator and first critic stage).
    pub fn width(self) -> i64 {
        match self {
            Recipe::Chosen => 32,
            Recipe::Paper => 64,
        }
    }
}

/// The critic's constraint and optimiser family, as a user names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ObjectiveKind {
    /// WGAN with weight clipping and RMSprop (the paper's choice).
    Clip,
    /// WGAN-GP: gradient penalty and Adam.
    Gp,
}

/// Settings put over a [`Recipe`]'s training: each one given replaces its part of the
/// recipe, the others keep the recipe's values. The command line's flags and the Python
/// API's keywords are these.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct TrainSettings {
    /// The objective; another than the recipe's brings its own optimiser.
    pub objective: Option<ObjectiveKind>,
    /// Learning rate.
    pub lr: Option<f64>,
    /// Adam's beta1 (gp only).
    pub beta1: Option<f64>,
    /// Weight clipping bound c (clip only).
    pub clip: Option<f64>,
    /// Gradient penalty weight lambda (gp only).
    pub lambda: Option<f64>,
    /// Generator iterations.
    pub iterations: Option<usize>,
    /// Images per batch.
    pub batch_size: Option<i64>,
    /// Critic steps per generator step.
    pub n_critic: Option<usize>,
    /// Weight initialisation.
    pub init: Option<Init>,
    /// Seed of initialisation and sampling.
    pub seed: Option<u64>,
    /// Checkpoint interval in iterations.
    pub checkpoint_every: Option<usize>,
    /// Sample-grid interval in iterations.
    pub sample_every: Option<usize>,
}

impl Recipe {
    /// The recipe's training with `settings` put over it, checked: a setting the chosen
    /// objective ignores is refused (so that no one believes it was used), as is any value out
    /// of range ([`crate::setting::BadSetting`] names it).
    pub fn train_with(self, settings: &TrainSettings) -> Result<TrainConfig> {
        use crate::setting::check;
        let recipe = self.train();
        let objective = match (settings.objective, recipe.objective) {
            (Some(ObjectiveKind::Clip), _) | (None, Objective::WeightClipping { .. }) => {
                ObjectiveKind::Clip
            }
            _ => ObjectiveKind::Gp,
        };
        let clip = objective == ObjectiveKind::Clip;
        check(!clip || settings.beta1.is_none(), "beta1", || {
            "beta1 is Adam's, which only the gp objective uses (clip uses RMSprop)".into()
        })?;
        check(!clip || settings.lambda.is_none(), "lambda", || {
            "lambda weighs the gradient penalty, which the clip objective does not use: choose \
             the gp objective, or leave lambda out"
                .into()
        })?;
        check(clip || settings.clip.is_none(), "clip", || {
            "clip bounds the critic's weights, which the gp objective does not clip: choose the \
             clip objective, or leave clip out"
                .into()
        })?;
        // Another objective than the recipe's brings its own optimiser.
        let base = match (objective, recipe.objective) {
            (ObjectiveKind::Clip, Objective::WeightClipping { .. })
            | (ObjectiveKind::Gp, Objective::GradientPenalty { .. }) => recipe,
            (ObjectiveKind::Clip, _) => TrainConfig::default(),
            (ObjectiveKind::Gp, _) => TrainConfig::gradient_penalty(),
        };
        let objective = match base.objective {
            Objective::WeightClipping { clip } => Objective::WeightClipping {
                clip: settings.clip.unwrap_or(clip),
            },
            Objective::GradientPenalty { lambda } => Objective::GradientPenalty {
                lambda: settings.lambda.unwrap_or(lambda),
            },
        };
        let optimizer = match base.optimizer {
            OptimizerConfig::Rmsprop { lr, alpha, eps } => OptimizerConfig::Rmsprop {
                lr: settings.lr.unwrap_or(lr),
                alpha,
                eps,
            },
            OptimizerConfig::Adam {
                lr,
                beta1,
                beta2,
                eps,
            } => OptimizerConfig::Adam {
                lr: settings.lr.unwrap_or(lr),
                beta1: settings.beta1.unwrap_or(beta1),
                beta2,
                eps,
            },
        };
        let config = TrainConfig {
            objective,
            optimizer,
            iterations: settings.iterations.unwrap_or(recipe.iterations),
            batch_size: settings.batch_size.unwrap_or(base.batch_size),
            n_critic: settings.n_critic.unwrap_or(base.n_critic),
            init: settings.init.unwrap_or(recipe.init),
            seed: settings.seed.unwrap_or(0),
            checkpoint_every: settings.checkpoint_every.unwrap_or(base.checkpoint_every),
            sample_every: settings.sample_every.unwrap_or(base.sample_every),
        };
        config.validate()?;
        Ok(config)
    }
}

impl std::str::FromStr for Recipe {
    type Err = anyhow::Error;

    fn from_str(text: &str) -> Result<Self> {
        match text {
            "chosen" => Ok(Recipe::Chosen),
            "paper" => Ok(Recipe::Paper),
            _ => bail!("unknown recipe {text:?}: use chosen or paper"),
        }
    }
}

impl TrainConfig {
    /// WGAN-GP: gradient penalty 10, Adam 1e-4 with betas (0, 0.9) (Gulrajani et al., Alg. 1).
    pub fn gradient_penalty() -> Self {
        Self {
            objective: Objective::GradientPenalty { lambda: 10.0 },
            optimizer: OptimizerConfig::adam(1e-4, 0.0, 0.9),
            ..Self::default()
        }
    }

    /// Checks the hyperparameters before any work: positive finite learning rates, betas and
    /// decays in [0, 1), a positive clipping bound, a penalty weight not negative, batches and
    /// n_critic of at least one.
    pub fn validate(&self) -> Result<()> {
        self.optimizer.validate()?;
        match self.objective {
            Objective::WeightClipping { clip } => {
                check(clip > 0.0 && clip.is_finite(), "clip", || {
                    format!("the clipping bound must be positive and finite, not {clip}")
                })?
            }
            Objective::GradientPenalty { lambda } => {
                check(lambda >= 0.0 && lambda.is_finite(), "lambda", || {
                    format!(
                        "the gradient penalty weight must be finite and not negative, not {lambda}"
                    )
                })?
            }
        }
        check(self.batch_size > 0, "batch_size", || {
            "the batch size must be at least 1".to_string()
        })?;
        check(self.n_critic > 0, "n_critic", || {
            "n_critic must be at least 1".to_string()
        })
    }

    /// The settings a resumed run must share with the run it continues: all but the length
    /// and the checkpoint and sample intervals.
    fn trajectory(&self) -> Self {
        Self {
            iterations: 0,
            checkpoint_every: 0,
            sample_every: 0,
            ..*self
        }
    }
}

/// Where the training images came from, so a run can be traced and checked on resume.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DataProvenance {
    /// The data set.
    pub source: DataSource,
    /// The split trained on.
    pub split: Split,
    /// The normal class, when one class was selected.
    pub normal_class: Option<String>,
    /// How images were fitted to the model size.
    pub fit: Fit,
    /// Number of training images.
    pub n_images: usize,
    /// SHA-256 of the training tensor (see [`Dataset::fingerprint`]).
    pub fingerprint: String,
    /// The calibration split held out of the normal images before training, if any.
    #[serde(default)]
    pub calibration: Option<CalibrationSplit>,
}

/// Everything that defines a run; saved as `config.json` in the run folder.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunConfig {
    /// Layout version ([`FORMAT_VERSION`]).
    pub format_version: u32,
    /// Architecture.
    pub model: ModelConfig,
    /// Training hyperparameters.
    pub train: TrainConfig,
    /// Training data.
    pub data: DataProvenance,
}

impl RunConfig {
    /// Fails unless a run with configuration `saved` (in `run_dir`) can be continued as `self`.
    pub fn check_resumable(&self, saved: &RunConfig, run_dir: &Path) -> Result<()> {
        let path = run_dir.join(CONFIG_FILE);
        ensure!(
            saved.format_version == FORMAT_VERSION,
            "{} has format version {}, this adgan writes {FORMAT_VERSION}",
            path.display(),
            saved.format_version
        );
        let fix = "train into a new folder, or resume with the settings of that run";
        let mut differ = io::differences(&saved.model, &self.model);
        differ.extend(
            io::differences(&saved.train.trajectory(), &self.train.trajectory())
                .into_iter()
                .map(|d| format!("train.{d}")),
        );
        // One data folder reached by another path is the same data (its fingerprint is
        // compared too).
        let saved_data = DataProvenance {
            source: saved.data.source.normalised(),
            ..saved.data.clone()
        };
        let data = DataProvenance {
            source: self.data.source.normalised(),
            ..self.data.clone()
        };
        differ.extend(
            io::differences(&saved_data, &data)
                .into_iter()
                .map(|d| format!("data.{d}")),
        );
        ensure!(
            differ.is_empty(),
            "{} was trained with other settings ({}): {fix}",
            path.display(),
            differ.join("; ")
        );
        Ok(())
    }
}

/// Losses of one generator iteration.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Losses {
    /// Critic loss of the last critic step: f(fake) - f(real) (+ penalty).
    pub critic: f64,
    /// Generator loss: -f(g(z)).
    pub generator: f64,
    /// Estimate of the Wasserstein distance: f(real) - f(fake), last critic step.
    pub wasserstein: f64,
}

/// A generator and critic being trained, with their optimisers.
pub struct Trainer {
    config: RunConfig,
    device: Device,
    generator_vs: VarStore,
    critic_vs: VarStore,
    generator: Generator,
    critic: Critic,
    opt_generator: Optimizer,
    opt_critic: Optimizer,
    images: Tensor,
    fixed_latents: Tensor,
    iteration: usize,
    /// Whether iterations replay a recorded CUDA graph ([`Trainer::with_cuda_graph`]).
    cuda_graph: bool,
    /// The buffers and graph the iterations replay.
    replay: Option<graph::Replay>,
}

/// The draws of one critic step: real-batch indices [B], latents [B, d'], and with the
/// gradient penalty the mixing weights [B, 1, 1, 1].
struct CriticDraws {
    indices: Tensor,
    latents: Tensor,
    mix: Option<Tensor>,
}

/// The random draws of one generator iteration.
struct Draws {
    critic: Vec<CriticDraws>,
    generator_latents: Tensor,
}

/// The optimisers' step factors ([`Optimizer::factors`]) of one iteration as tensors: [n_critic,
/// 2] for the critic's steps and [2] for the generator's, f64.
struct StepFactors {
    critic: Tensor,
    generator: Tensor,
}

impl StepFactors {
    fn critic(&self, step: usize) -> [Tensor; 2] {
        let row = self.critic.get(step as i64);
        [row.get(0), row.get(1)]
    }

    fn generator(&self) -> [Tensor; 2] {
        [self.generator.get(0), self.generator.get(1)]
    }
}

/// An iteration's losses, still on the device.
struct LossTensors {
    critic: Tensor,
    generator: Tensor,
    wasserstein: Tensor,
}

impl LossTensors {
    fn values(&self) -> Losses {
        Losses {
            critic: self.critic.double_value(&[]),
            generator: self.generator.double_value(&[]),
            wasserstein: self.wasserstein.double_value(&[]),
        }
    }
}

impl Trainer {
    /// A fresh run: networks initialised from the configured seed.
    pub fn new(config: RunConfig, data: &Dataset, device: Device) -> Result<Self> {
        ensure!(!data.is_empty(), "no training images");
        config.train.validate()?;
        let size = data.images.size();
        ensure!(
            size[1] == config.model.channels
                && size[2] == config.model.image_size
                && size[3] == config.model.image_size,
            "training images are {:?}, the model expects {} channels of {}x{}",
            &size[1..],
            config.model.channels,
            config.model.image_size,
            config.model.image_size
        );
        let mut init_rng = rng::seeded(config.train.seed);
        let generator_vs = VarStore::new(device);
        let critic_vs = VarStore::new(device);
        let generator = Generator::new(&generator_vs.root(), config.model)?;
        let critic = Critic::new(&critic_vs.root(), config.model)?;
        initialise(&generator_vs, config.train.init, &mut init_rng);
        initialise(&critic_vs, config.train.init, &mut init_rng);
        let opt_generator = Optimizer::new(config.train.optimizer, &generator_vs);
        let opt_critic = Optimizer::new(config.train.optimizer, &critic_vs);
        let fixed_latents = rng::normal(
            &mut init_rng,
            &[64, config.model.latent_dim],
            0.0,
            1.0,
            device,
        );
        Ok(Self {
            config,
            device,
            generator_vs,
            critic_vs,
            generator,
            critic,
            opt_generator,
            opt_critic,
            images: data.images.to_device(device),
            fixed_latents,
            iteration: 0,
            cuda_graph: false,
            replay: None,
        })
    }

    /// Continues the run whose checkpoint is in `run_dir`.
    pub fn resume(
        config: RunConfig,
        data: &Dataset,
        device: Device,
        run_dir: &Path,
    ) -> Result<Self> {
        let mut trainer = Self::new(config, data, device)?;
        let path = run_dir.join(CHECKPOINT_FILE);
        let tensors = io::load_tensors(&path)?;
        io::fill_variables(&trainer.generator_vs, &tensors, "generator", &path)?;
        io::fill_variables(&trainer.critic_vs, &tensors, "critic", &path)?;
        trainer
            .opt_generator
            .load_state(&tensors, "opt_generator")?;
        trainer.opt_critic.load_state(&tensors, "opt_critic")?;
        let iteration = tensors
            .get("meta/iteration")
            .with_context(|| format!("{} lacks meta/iteration", path.display()))?;
        trainer.iteration = iteration.int64_value(&[]) as usize;
        Ok(trainer)
    }

    /// Generator iterations done.
    pub fn iteration(&self) -> usize {
        self.iteration
    }

    /// The generator being trained.
    pub fn generator(&self) -> &Generator {
        &self.generator
    }

    /// The critic being trained.
    pub fn critic(&self) -> &Critic {
        &self.critic
    }

    /// The generator's variables.
    pub fn generator_vs(&self) -> &VarStore {
        &self.generator_vs
    }

    /// The random draws of iteration `t`, in the order the iteration uses them, from its own
    /// generator seeded by (seed, t).
    fn draw(&self, t: usize) -> Draws {
        let mut rng = rng::seeded(rng::mix(self.config.train.seed, t as u64));
        let (b, d) = (self.config.train.batch_size, self.config.model.latent_dim);
        let n = self.images.size()[0];
        let device = self.device;
        let penalised = matches!(
            self.config.train.objective,
            Objective::GradientPenalty { .. }
        );
        let critic = (0..self.config.train.n_critic)
            .map(|_| CriticDraws {
                indices: rng::indices(&mut rng, n, b, device),
                latents: rng::normal(&mut rng, &[b, d], 0.0, 1.0, device),
                mix: penalised.then(|| rng::uniform(&mut rng, &[b, 1, 1, 1], device)),
            })
            .collect();
        let generator_latents = rng::normal(&mut rng, &[b, d], 0.0, 1.0, device);
        Draws {
            critic,
            generator_latents,
        }
    }

    /// The WGAN-GP penalty at points mixed between real and fake by `mix` [B, 1, 1, 1].
    fn gradient_penalty(&self, real: &Tensor, fake: &Tensor, mix: &Tensor, lambda: f64) -> Tensor {
        let b = real.size()[0];
        let one_minus: Tensor = 1.0 - mix;
        let mixed: Tensor = (mix * real + one_minus * fake)
            .detach()
            .set_requires_grad(true);
        let scores = self.critic.forward(&mixed);
        let grads = Tensor::run_backward(&[scores.sum(Kind::Float)], &[&mixed], true, true);
        let norms = grads[0].reshape([b, -1]).norm_scalaropt_dim(2, [1], false);
        (norms - 1.0).square().mean(Kind::Float) * lambda
    }

    /// One critic update; returns the critic loss and the Wasserstein estimate as tensors, so
    /// that on a GPU only the last of the n_critic steps waits for their values. `lap(phase)` is
    /// called after each phase (the profiler times them this way).
    fn critic_step(
        &mut self,
        draws: &CriticDraws,
        factors: Option<&[Tensor; 2]>,
        lap: &mut dyn FnMut(&str),
    ) -> (Tensor, Tensor) {
        let real = self.images.index_select(0, &draws.indices);
        let fake = tch::no_grad(|| self.generator.forward(&draws.latents, true));
        lap("critic step: generator forward (no grad)");
        let wasserstein = self.critic.forward(&real).mean(Kind::Float)
            - self.critic.forward(&fake).mean(Kind::Float);
        let mut loss = -&wasserstein;
        lap("critic step: critic forward, real and fake");
        if let (Objective::GradientPenalty { lambda }, Some(mix)) =
            (self.config.train.objective, &draws.mix)
        {
            loss += self.gradient_penalty(&real, &fake, mix, lambda);
            lap("critic step: gradient penalty (forward, input gradient)");
        }
        self.opt_critic.zero_grad();
        loss.backward();
        lap("critic step: backward");
        match factors {
            None => self.opt_critic.step(),
            Some([scale, eps]) => self.opt_critic.step_given(scale, eps),
        }
        if let Objective::WeightClipping { clip } = self.config.train.objective {
            tch::no_grad(|| {
                for mut w in self.critic_vs.trainable_variables() {
                    let _ = w.clamp_(-clip, clip);
                }
            });
        }
        lap("critic step: optimiser (and clipping)");
        (loss.detach(), wasserstein.detach())
    }

    /// One generator iteration on `draws`: n_critic critic steps, then one generator step.
    /// The optimisers count their own steps unless `factors` gives theirs ([`StepFactors`]).
    fn iterate(
        &mut self,
        draws: &Draws,
        factors: Option<&StepFactors>,
        lap: &mut dyn FnMut(&str),
    ) -> LossTensors {
        let (mut critic, mut wasserstein) = (Tensor::new(), Tensor::new());
        for (i, step) in draws.critic.iter().enumerate() {
            let given = factors.map(|f| f.critic(i));
            (critic, wasserstein) = self.critic_step(step, given.as_ref(), lap);
        }
        self.critic_vs.freeze();
        let fake = self.generator.forward(&draws.generator_latents, true);
        let generator = -self.critic.forward(&fake).mean(Kind::Float);
        lap("generator step: forward");
        self.opt_generator.zero_grad();
        generator.backward();
        lap("generator step: backward");
        match factors.map(StepFactors::generator) {
            None => self.opt_generator.step(),
            Some([scale, eps]) => self.opt_generator.step_given(&scale, &eps),
        }
        self.critic_vs.unfreeze();
        lap("generator step: optimiser");
        LossTensors {
            critic,
            generator: generator.detach(),
            wasserstein,
        }
    }

    /// One generator iteration: n_critic critic steps, then one generator step.
    /// Fails, changing nothing on disk, when a loss is not finite.
    pub fn step(&mut self) -> Result<Losses> {
        self.step_observed(&mut |_| {})
    }

    /// [`Trainer::step`], calling `lap(phase)` after each phase of it (not when the iteration
    /// replays a CUDA graph: it is one launch then).
    pub fn step_observed(&mut self, lap: &mut dyn FnMut(&str)) -> Result<Losses> {
        let t = self.iteration + 1;
        let draws = self.draw(t);
        let losses = match self.cuda_graph {
            true => self.iterate_on_buffers(&draws, true)?,
            false => self.iterate(&draws, None, lap).values(),
        };
        if ![losses.critic, losses.generator]
            .iter()
            .all(|l| l.is_finite())
        {
            bail!(
                "training diverged at iteration {t}: critic loss {}, generator loss {}",
                losses.critic,
                losses.generator
            );
        }
        self.iteration = t;
        Ok(losses)
    }

    /// Every later iteration replays one recorded CUDA graph of the iteration: the same
    /// kernels on the same values, without the CPU's launch cost per kernel, so the same
    /// losses and weights. Refused off a CUDA device and in a build without the shim.
    pub fn with_cuda_graph(mut self, on: bool) -> Result<Self> {
        if on {
            crate::cuda_graph::check_usable(self.device)?;
        }
        self.cuda_graph = on;
        Ok(self)
    }

    /// The iteration on buffers kept from the first one, recorded as a CUDA graph when
    /// `record` (otherwise run eagerly on the same buffers, which the tests check on the CPU).
    fn iterate_on_buffers(&mut self, draws: &Draws, record: bool) -> Result<Losses> {
        let mut replay = match self.replay.take() {
            Some(replay) => replay,
            None => graph::Replay::new(draws),
        };
        let losses = replay.iterate(self, draws, record);
        self.replay = Some(replay);
        let losses = losses?;
        self.opt_critic.advance(self.config.train.n_critic as i64);
        self.opt_generator.advance(1);
        Ok(losses)
    }

    /// Writes the checkpoint (networks, optimiser state, iteration) into `run_dir`, atomically.
    pub fn save_checkpoint(&self, run_dir: &Path) -> Result<()> {
        let mut tensors = io::named_variables(&self.generator_vs, "generator");
        tensors.extend(io::named_variables(&self.critic_vs, "critic"));
        tensors.extend(self.opt_generator.state("opt_generator"));
        tensors.extend(self.opt_critic.state("opt_critic"));
        tensors.push((
            "meta/iteration".to_string(),
            Tensor::from(self.iteration as i64),
        ));
        let metadata = checkpoint_metadata(&self.config.model, self.iteration)?;
        io::save_tensors_with_metadata(&run_dir.join(CHECKPOINT_FILE), &tensors, &metadata)
    }

    /// Writes g(z) for 64 fixed latents as an 8x8 PNG grid (BatchNorm in eval mode, as in
    /// scoring).
    pub fn save_samples(&self, path: &Path) -> Result<()> {
        let samples = tch::no_grad(|| self.generator.forward(&self.fixed_latents, false));
        save_grid(&samples, 8, path)
    }
}

/// What a checkpoint says about itself in its header: the layout version, the model
/// configuration (JSON) and the iteration.
pub fn checkpoint_metadata(
    model: &ModelConfig,
    iteration: usize,
) -> Result<std::collections::BTreeMap<String, String>> {
    Ok(std::collections::BTreeMap::from([
        ("format".to_string(), "adgan-checkpoint".to_string()),
        ("format_version".to_string(), FORMAT_VERSION.to_string()),
        ("model".to_string(), serde_json::to_string(model)?),
        ("iteration".to_string(), iteration.to_string()),
    ]))
}

/// Where a training run stands, reported after every iteration.
#[derive(Debug, Clone, Copy)]
pub struct Progress {
    /// Iterations done.
    pub iteration: usize,
    /// Iterations the run is configured for.
    pub total: usize,
    /// Iteration this process started from (non-zero after a resume).
    pub started_at: usize,
    /// Losses of this iteration.
    pub losses: Losses,
    /// Time since this process started training.
    pub elapsed: Duration,
}

/// How a call to [`train`] ended.
#[derive(Debug, Clone)]
pub struct TrainOutcome {
    /// Iterations done (as saved in the checkpoint, unless interrupted).
    pub iteration: usize,
    /// True when the progress callback stopped the run early.
    pub interrupted: bool,
    /// Losses of the last iteration run in this call, if any.
    pub last_losses: Option<Losses>,
    /// The run folder.
    pub run_dir: PathBuf,
}

/// Keeps `losses.csv` in step with the checkpoint: rows past the resumed iteration are dropped.
struct LossLog {
    file: std::io::BufWriter<std::fs::File>,
}

impl LossLog {
    fn open(path: &Path, keep_up_to: usize) -> Result<Self> {
        let header = "iteration,critic_loss,generator_loss,wasserstein_estimate";
        let mut kept = vec![header.to_string()];
        if keep_up_to > 0 {
            if let Ok(text) = std::fs::read_to_string(path) {
                kept.extend(
                    text.lines()
                        .skip(1)
                        .filter(|line| {
                            line.split(',')
                                .next()
                                .and_then(|i| i.parse::<usize>().ok())
                                .is_some_and(|i| i <= keep_up_to)
                        })
                        .map(str::to_string),
                );
            }
        }
        io::write_atomic(path, |tmp| Ok(std::fs::write(tmp, kept.join("\n") + "\n")?))?;
        let file = std::fs::OpenOptions::new().append(true).open(path)?;
        Ok(Self {
            file: std::io::BufWriter::new(file),
        })
    }

    fn push(&mut self, iteration: usize, l: &Losses) -> Result<()> {
        writeln!(
            self.file,
            "{iteration},{},{},{}",
            l.critic, l.generator, l.wasserstein
        )?;
        Ok(())
    }
}

/// How a run is trained, beside what it trains ([`RunConfig`]); neither option changes the
/// weights a run ends with.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TrainOptions {
    /// Continue from the checkpoint in the run folder, when it holds one.
    pub resume: bool,
    /// Replay each iteration from a recorded CUDA graph ([`Trainer::with_cuda_graph`]).
    pub cuda_graph: bool,
}

impl TrainOptions {
    /// Op by op, resuming or not.
    pub fn resume(resume: bool) -> Self {
        Self {
            resume,
            cuda_graph: false,
        }
    }
}

/// Trains a WGAN on `data` into `run_dir` (config, checkpoints, sample grids, loss log).
///
/// With `options.resume`, continues from the checkpoint in `run_dir` (whose configuration must
/// match, except the number of iterations); without it, `run_dir` must not hold a run yet.
/// `on_progress` is called after every iteration; returning `Break` stops at once, without a
/// checkpoint, like a killed process.
pub fn train(
    run_dir: &Path,
    config: &RunConfig,
    data: &Dataset,
    device: Device,
    options: TrainOptions,
    on_progress: &mut dyn FnMut(&Progress) -> ControlFlow<()>,
) -> Result<TrainOutcome> {
    if options.cuda_graph {
        crate::cuda_graph::check_usable(device)?;
    }
    std::fs::create_dir_all(run_dir.join("samples"))
        .with_context(|| format!("cannot create run folder {}", run_dir.display()))?;
    let checkpoint_path = run_dir.join(CHECKPOINT_FILE);
    let trainer = if options.resume && checkpoint_path.exists() {
        let saved: RunConfig =
            io::read_json(&run_dir.join(CONFIG_FILE), "adgan run configuration")?;
        config.check_resumable(&saved, run_dir)?;
        Trainer::resume(config.clone(), data, device, run_dir)?
    } else {
        if checkpoint_path.exists() {
            bail!(
                "{} already holds a training run: continue it, or train into another folder",
                run_dir.display()
            );
        }
        Trainer::new(config.clone(), data, device)?
    };
    let mut trainer = trainer.with_cuda_graph(options.cuda_graph)?;
    io::write_json(&run_dir.join(CONFIG_FILE), config)?;
    let mut log = LossLog::open(&run_dir.join("losses.csv"), trainer.iteration())?;
    let started_at = trainer.iteration();
    let (total, every) = (
        config.train.iterations,
        config.train.checkpoint_every.max(1),
    );
    let start = Instant::now();
    let mut last_losses = None;
    while trainer.iteration() < total {
        let losses = trainer
            .step()
            .map_err(|e| e.context(divergence_advice(config, &checkpoint_path)))?;
        let t = trainer.iteration();
        log.push(t, &losses)?;
        last_losses = Some(losses);
        if t % every == 0 || t == total {
            log.file.flush()?;
            trainer.save_checkpoint(run_dir)?;
        }
        if t % config.train.sample_every.max(1) == 0 || t == total {
            trainer.save_samples(&run_dir.join("samples").join(format!("iter_{t:06}.png")))?;
        }
        let progress = Progress {
            iteration: t,
            total,
            started_at,
            losses,
            elapsed: start.elapsed(),
        };
        if on_progress(&progress).is_break() {
            return Ok(TrainOutcome {
                iteration: t,
                interrupted: true,
                last_losses,
                run_dir: run_dir.to_path_buf(),
            });
        }
    }
    log.file.flush()?;
    // A run asked for no iterations still leaves a checkpoint; a finished run that was
    // resumed keeps the one it has instead of rewriting it.
    if !checkpoint_path.exists() {
        trainer.save_checkpoint(run_dir)?;
    }
    Ok(TrainOutcome {
        iteration: trainer.iteration(),
        interrupted: false,
        last_losses,
        run_dir: run_dir.to_path_buf(),
    })
}

/// What to tell after training diverged: where the last good checkpoint is (if there is one)
/// and what to change, true for the configuration at hand.
fn divergence_advice(config: &RunConfig, checkpoint_path: &Path) -> String {
    let kept = if checkpoint_path.exists() {
        format!(
            "the last good checkpoint is kept in {}",
            checkpoint_path.display()
        )
    } else {
        "no checkpoint was written yet".to_string()
    };
    let change = match config.train.objective {
        Objective::GradientPenalty { .. } => {
            "lower the learning rate, or use the weight-clipping objective"
        }
        Objective::WeightClipping { .. } => "lower the learning rate or the clipping bound",
    };
    format!("{kept}; {change}, and train again")
}

/// Loads the training images of `source` (one class of it when `normal_class` is given), fitted
/// to `spec`, with the provenance record that goes into the run configuration.
pub fn load_training_data(
    source: &DataSource,
    normal_class: Option<&str>,
    spec: crate::data::ImageSpec,
    fit: Fit,
) -> Result<(Dataset, DataProvenance)> {
    let all = source.load(Split::Train, spec, fit)?;
    let data = match normal_class {
        Some(class) => {
            let index = crate::data::normal_class_index(&all, class)?;
            crate::data::only_class(&all, index)?
        }
        None => all,
    };
    let provenance = DataProvenance {
        source: source.clone(),
        split: Split::Train,
        normal_class: normal_class.map(str::to_string),
        fit,
        n_images: data.len(),
        fingerprint: data.fingerprint(),
        calibration: None,
    };
    Ok((data, provenance))
}

/// [`load_training_data`] with a calibration split held out of the normal images first (when
/// `calibration` is given): returns the images to train on, the calibration images, and the
/// provenance of the images trained on, which records the split.
pub fn load_training_split(
    source: &DataSource,
    normal_class: Option<&str>,
    spec: crate::data::ImageSpec,
    fit: Fit,
    calibration: Option<CalibrationSplit>,
) -> Result<(Dataset, Option<Dataset>, DataProvenance)> {
    let (all, mut provenance) = load_training_data(source, normal_class, spec, fit)?;
    let Some(split) = calibration else {
        return Ok((all, None, provenance));
    };
    let (train, held) = split.split(&all)?;
    provenance.n_images = train.len();
    provenance.fingerprint = train.fingerprint();
    provenance.calibration = Some(split);
    Ok((train, Some(held), provenance))
}
