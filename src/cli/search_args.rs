//! Flags of the ADGAN search (n_seed, k, learning rates, theta, loss) and of the methods built
//! on it, turned into their library objects here.

use adgan::device;
use adgan::score::adgan::{
    AdganConfig, Aggregate, Precision, ReconstructionLoss, SearchStart, ThetaMode,
};
use anyhow::{bail, Result};
use clap::{Args, ValueEnum};

/// The methods built on the ADGAN search, the only ones `rank` ranks by and `calibrate`
/// calibrates.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub(crate) enum SearchMethod {
    /// ADGAN as in the paper.
    Adgan,
    /// ADGAN corrected for image complexity.
    #[value(name = "adgan-ic")]
    AdganIc,
    /// The ensemble of ADGAN and other detectors.
    Ensemble,
}

impl From<SearchMethod> for adgan::score::method::Method {
    fn from(method: SearchMethod) -> Self {
        use adgan::score::method::Method;
        match method {
            SearchMethod::Adgan => Method::Adgan,
            SearchMethod::AdganIc => Method::AdganIc,
            SearchMethod::Ensemble => Method::Ensemble,
        }
    }
}

/// The members and rule of `--method ensemble`, each the one chosen on validation unless given.
#[derive(Args, Debug, Clone)]
pub(crate) struct EnsembleArgs {
    /// Members of the ensemble, comma-separated, from adgan, adgan-ic, kde, gmm, ocsvm,
    /// iforest, dcae, vae [default: the members chosen on validation, RESULTS.md].
    #[arg(long, value_enum, value_delimiter = ',')]
    ensemble_members: Option<Vec<adgan::score::method::Method>>,
    /// How the ensemble makes its members' scores comparable, on held-out normal images
    /// [default: the one chosen on validation].
    #[arg(long, value_enum)]
    ensemble_normalizer: Option<adgan::score::ensemble::Normalizer>,
    /// How the ensemble combines its members' normalised scores [default: the one chosen on
    /// validation].
    #[arg(long, value_enum)]
    ensemble_rule: Option<adgan::score::ensemble::Rule>,
}

impl EnsembleArgs {
    /// The ensemble of the flags.
    pub(crate) fn config(&self) -> adgan::score::ensemble::EnsembleConfig {
        let default = adgan::score::ensemble::EnsembleConfig::default();
        adgan::score::ensemble::EnsembleConfig {
            members: self.ensemble_members.clone().unwrap_or(default.members),
            normalizer: self.ensemble_normalizer.unwrap_or(default.normalizer),
            rule: self.ensemble_rule.unwrap_or(default.rule),
        }
    }
}

#[derive(Args, Debug)]
pub(crate) struct SearchArgs {
    /// Latent seeds per image (n_seed).
    #[arg(long, default_value_t = AdganConfig::default().n_seed)]
    pub(crate) n_seed: i64,
    /// Adam steps (k).
    #[arg(long, default_value_t = AdganConfig::default().k)]
    pub(crate) k: usize,
    /// Adam learning rate of the latents.
    #[arg(long, default_value_t = AdganConfig::default().lr_z)]
    pub(crate) lr_z: f64,
    /// Adam learning rate of the generator parameters theta; 0 keeps theta fixed [default: 5e-4;
    /// demo: 5e-5].
    #[arg(long)]
    pub(crate) lr_theta: Option<f64>,
    /// theta per image shared by its seeds, one theta per seed, or fixed.
    #[arg(long, value_enum, default_value_t = ThetaMode::Shared)]
    pub(crate) theta: ThetaMode,
    /// Reconstruction loss: l2 (the paper's), l1, or laplacian (Lap1: L1 over a Laplacian
    /// pyramid, an improvement the paper names).
    #[arg(long, value_enum, default_value_t = ReconstructionLoss::L2)]
    pub(crate) loss: ReconstructionLoss,
    /// How the seeds' final losses make the score: mean (the paper's) or min.
    #[arg(long, value_enum, default_value_t = Aggregate::Mean)]
    pub(crate) aggregate: Aggregate,
    /// Seed of the initial latents.
    #[arg(long, default_value_t = 0)]
    pub(crate) search_seed: u64,
    /// Number format of the generator's transposed convolutions during the search (bf16 is
    /// faster on GPUs and CPUs with AVX512-BF16 at nearly the same ROC-AUC; BENCHMARKS.md).
    #[arg(long, value_enum, default_value_t = Precision::F32)]
    pub(crate) precision: Precision,
    /// Images per batched search (default: chosen from memory).
    #[arg(long)]
    pub(crate) batch_images: Option<usize>,
    /// On a CUDA GPU: record the search of a full batch once as a CUDA graph and replay it for
    /// every batch, without the launch cost of its many small kernels (same scores; whether it
    /// pays on a given GPU: BENCHMARKS.md, "GPU"). `experiment` replays its training
    /// iterations the same way.
    #[arg(long)]
    pub(crate) cuda_graph: bool,
    /// Where the latents start: prior (the paper's) or encoder (around the guess of an
    /// encoder trained to invert the generator, kept in RUN/encoder/; an option beyond the
    /// paper, measured in RESULTS.md).
    #[arg(long, value_enum, default_value_t = SearchStart::Prior)]
    pub(crate) start: SearchStart,
    /// With --start encoder: the scale of the prior draws around the encoder's guess.
    #[arg(long, default_value_t = AdganConfig::default().spread)]
    pub(crate) spread: f64,
}

impl SearchArgs {
    /// Says so, before any work, when `--precision bf16` would be slow on `device`.
    pub(crate) fn warn_if_bf16_slow(&self, device: tch::Device) {
        if self.precision == Precision::Bf16 && !device::bf16_is_native(device) {
            eprintln!(
                "warning: --precision bf16 on a CPU without bf16 instructions (AVX512-BF16 on \
                 x86): libtorch falls back to kernels many times slower than f32 \
                 (BENCHMARKS.md); use --precision f32"
            );
        }
    }

    /// Images per batched search, when given: at least one.
    pub(crate) fn batch_images(&self) -> Result<Option<usize>> {
        if self.batch_images == Some(0) {
            bail!("--batch-images must be at least 1");
        }
        Ok(self.batch_images)
    }

    pub(crate) fn config(&self) -> AdganConfig {
        let lr_theta = self.lr_theta.unwrap_or(AdganConfig::default().lr_theta);
        AdganConfig {
            n_seed: self.n_seed,
            k: self.k,
            lr_z: self.lr_z,
            lr_theta,
            theta: self.theta,
            loss: self.loss,
            aggregate: self.aggregate,
            seed: self.search_seed,
            precision: self.precision,
            start: self.start,
            spread: self.spread,
        }
        .with_lr_theta(lr_theta)
    }
}
