//! Flags shared by several commands, each group turned into its library object in one place.

use adgan::data::{DataSource, Fit};
use adgan::device::{self, DeviceChoice};
use adgan::model::{Init, ModelConfig};
use adgan::score::adgan::{AdganConfig, Aggregate, ReconstructionLoss, SearchStart};
use adgan::selection::SelectionConfig;
use adgan::train::{Recipe, TrainConfig, TrainSettings};
use anyhow::Result;
use clap::{Args, ValueEnum};
use std::path::{Path, PathBuf};

pub(crate) use super::search_args::{EnsembleArgs, SearchArgs, SearchMethod};

/// Where the work runs.
#[derive(Args, Debug)]
pub(crate) struct DeviceArgs {
    /// Device: auto uses CUDA when libtorch_cuda loads and a GPU is visible, else the CPU.
    #[arg(long, value_enum, default_value_t = DeviceChoice::Auto)]
    pub(crate) device: DeviceChoice,
}

impl DeviceArgs {
    /// The device asked for.
    pub(crate) fn select(&self) -> Result<tch::Device> {
        device::select(self.device)
    }
}

/// The command-line spelling of an option value (`per-seed`, `bf16`).
pub(crate) fn value_name(value: &impl clap::ValueEnum) -> String {
    value
        .to_possible_value()
        .map_or_else(String::new, |v| v.get_name().to_string())
}

/// Kinds of data set `--dataset` accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum DatasetKind {
    /// Folder with MNIST-layout IDX files (also Fashion-MNIST), raw or .gz.
    Mnist,
    /// CIFAR-10 binary version: folder of .bin batches or cifar-10-binary.tar.gz.
    Cifar10,
    /// One IDX image file (--data) with an optional IDX label file (--labels).
    Idx,
    /// PNG/JPEG folder: root/<class>/* or flat; root/train and root/test pick splits.
    Folder,
    /// The embedded demo shapes.
    Demo,
}

/// Which data set, where, and how its images are fitted to the model.
#[derive(Args, Debug)]
pub(crate) struct SourceArgs {
    /// Kind of data set.
    #[arg(long, value_enum)]
    pub(crate) dataset: DatasetKind,
    /// Path of the data (folder, archive or IDX file); not needed for --dataset demo.
    #[arg(long)]
    pub(crate) data: Option<PathBuf>,
    /// IDX label file, with --dataset idx.
    #[arg(long)]
    pub(crate) labels: Option<PathBuf>,
    /// How images of another size are fitted to --image-size.
    #[arg(long, value_enum, default_value_t = Fit::Pad)]
    pub(crate) fit: Fit,
}

impl SourceArgs {
    /// The data source (the demo's shapes drawn with `seed`).
    pub(crate) fn source(&self, seed: u64) -> Result<DataSource> {
        data_source(
            self.dataset,
            self.data.as_deref(),
            self.labels.as_deref(),
            seed,
        )
    }

    /// Channels of the model by default: grey for MNIST-like data, RGB otherwise.
    pub(crate) fn default_channels(&self) -> i64 {
        match self.dataset {
            DatasetKind::Mnist | DatasetKind::Idx => 1,
            _ => 3,
        }
    }
}

/// Training data: a data source and, optionally, its normal class.
#[derive(Args, Debug)]
pub(crate) struct DataArgs {
    #[command(flatten)]
    pub(crate) source: SourceArgs,
    /// The normal class to train on (index, or class folder name); all images when omitted.
    #[arg(long)]
    pub(crate) normal_class: Option<String>,
    /// Stop at the first image file that cannot be read (default: skip it and warn).
    #[arg(long)]
    pub(crate) strict: bool,
}

/// The data source named by `--dataset`, `--data` and `--labels`, with absolute paths.
pub(crate) fn data_source(
    kind: DatasetKind,
    data: Option<&Path>,
    labels: Option<&Path>,
    seed: u64,
) -> Result<DataSource> {
    DataSource::named(&value_name(&kind), data, labels, seed)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum ObjectiveKind {
    /// WGAN with weight clipping and RMSprop (the paper's choice).
    Clip,
    /// WGAN-GP: gradient penalty and Adam.
    Gp,
}

/// Architecture and training of the GAN.
#[derive(Args, Debug)]
pub(crate) struct GanArgs {
    /// Training recipe: chosen (on validation data, see RESULTS.md: WGAN-GP, width 32,
    /// PyTorch's initialisation, Adam betas 0.5 and 0.9, 1500 iterations) or paper (the paper's
    /// WGAN: weight clipping, RMSprop, DCGAN initialisation, width 64, 10000 iterations). Each
    /// flag below overrides its part of the recipe.
    #[arg(long, default_value = "chosen")]
    pub(crate) recipe: Recipe,
    /// Image side the model works at (32 or 64).
    #[arg(long, default_value_t = 32)]
    pub(crate) image_size: i64,
    /// Image channels (1 or 3); default 1 for mnist/idx, 3 otherwise.
    #[arg(long)]
    pub(crate) channels: Option<i64>,
    /// Latent dimension d'.
    #[arg(long, default_value_t = 256)]
    pub(crate) latent_dim: i64,
    /// Base width of the DCGAN networks [default: the recipe's].
    #[arg(long)]
    pub(crate) width: Option<i64>,
    /// Generator iterations [default: the recipe's].
    #[arg(long)]
    pub(crate) iterations: Option<usize>,
    /// Images per batch.
    #[arg(long, default_value_t = 64)]
    pub(crate) batch_size: i64,
    /// Critic constraint and optimiser: clip (weight clipping and RMSprop) or gp (gradient
    /// penalty and Adam) [default: the recipe's].
    #[arg(long, value_enum)]
    pub(crate) objective: Option<ObjectiveKind>,
    /// Learning rate [default: 5e-5 for clip, 1e-4 for gp].
    #[arg(long)]
    pub(crate) lr: Option<f64>,
    /// Critic steps per generator step.
    #[arg(long, default_value_t = 5)]
    pub(crate) n_critic: usize,
    /// Weight initialisation: dcgan (N(0, 0.02)) or uniform (PyTorch's layer defaults)
    /// [default: the recipe's].
    #[arg(long)]
    pub(crate) init: Option<Init>,
    /// Adam's beta1 with the gp objective [default: the recipe's, or 0 as in WGAN-GP].
    #[arg(long)]
    pub(crate) beta1: Option<f64>,
    /// Weight clipping bound, clip objective only [default: 0.01].
    #[arg(long)]
    pub(crate) clip: Option<f64>,
    /// Gradient penalty weight, gp objective only [default: 10].
    #[arg(long)]
    pub(crate) lambda: Option<f64>,
    /// Seed of initialisation and sampling.
    #[arg(long, default_value_t = 0)]
    pub(crate) seed: u64,
    /// Checkpoint interval in iterations.
    #[arg(long, default_value_t = TrainConfig::default().checkpoint_every)]
    pub(crate) checkpoint_every: usize,
    /// Sample-grid interval in iterations.
    #[arg(long, default_value_t = TrainConfig::default().sample_every)]
    pub(crate) sample_every: usize,
}

impl GanArgs {
    pub(crate) fn model_config(&self, default_channels: i64) -> Result<ModelConfig> {
        let model = ModelConfig {
            image_size: self.image_size,
            channels: self.channels.unwrap_or(default_channels),
            latent_dim: self.latent_dim,
            width: self.width.unwrap_or(self.recipe.width()),
        };
        model.validate()?;
        Ok(model)
    }

    /// The training configuration: the recipe's, with every flag given put over it; checked
    /// before any data is read.
    pub(crate) fn train_config(&self) -> Result<TrainConfig> {
        let settings = TrainSettings {
            objective: self.objective.map(|o| match o {
                ObjectiveKind::Clip => adgan::train::ObjectiveKind::Clip,
                ObjectiveKind::Gp => adgan::train::ObjectiveKind::Gp,
            }),
            lr: self.lr,
            beta1: self.beta1,
            clip: self.clip,
            lambda: self.lambda,
            iterations: self.iterations,
            batch_size: Some(self.batch_size),
            n_critic: Some(self.n_critic),
            init: self.init,
            seed: Some(self.seed),
            checkpoint_every: Some(self.checkpoint_every),
            sample_every: Some(self.sample_every),
        };
        self.recipe.train_with(&settings).map_err(name_the_flag)
    }
}

/// Choice of the training length and the search's learning rates on validation data.
#[derive(Args, Debug)]
pub(crate) struct SelectionArgs {
    /// Score a validation split (held-out normal training images and training images of other
    /// classes) with ADGAN every this many generator iterations, and use the best snapshot and
    /// learning rates for the test images; 0: train for --iterations and use the search as given.
    #[arg(long, default_value_t = 0)]
    pub(crate) select_every: usize,
    /// Candidate lr_z values for the selection [default: --lr-z].
    #[arg(long, value_delimiter = ',')]
    pub(crate) select_lr_z: Vec<f64>,
    /// Candidate lr_theta values for the selection; 0 keeps theta fixed [default: --lr-theta].
    #[arg(long, value_delimiter = ',')]
    pub(crate) select_lr_theta: Vec<f64>,
    /// Candidate reconstruction losses for the selection [default: --loss].
    #[arg(long, value_enum, value_delimiter = ',')]
    pub(crate) select_loss: Vec<ReconstructionLoss>,
    /// Candidate aggregations over seeds for the selection [default: --aggregate].
    #[arg(long, value_enum, value_delimiter = ',')]
    pub(crate) select_aggregate: Vec<Aggregate>,
    /// Candidate numbers of search steps k for the selection [default: --k].
    #[arg(long, value_delimiter = ',')]
    pub(crate) select_k: Vec<usize>,
    /// Candidate starts of the search for the selection [default: --start].
    #[arg(long, value_enum, value_delimiter = ',')]
    pub(crate) select_start: Vec<SearchStart>,
    /// Fraction of the normal training images held out for validation (never trained on).
    #[arg(long, default_value_t = SelectionConfig::default().holdout_fraction)]
    pub(crate) validation_fraction: f64,
    /// At most this many held-out normal images, and as many anomalous ones, are scored.
    #[arg(long, default_value_t = SelectionConfig::default().max_per_side)]
    pub(crate) validation_max: usize,
    /// Only draw the validation learning curves (no test image is read) and tabulate them.
    #[arg(long)]
    pub(crate) validation_only: bool,
}

impl SelectionArgs {
    pub(crate) fn config(&self, search: &AdganConfig) -> SelectionConfig {
        fn or<T: Clone>(list: &[T], default: T) -> Vec<T> {
            if list.is_empty() {
                vec![default]
            } else {
                list.to_vec()
            }
        }
        SelectionConfig {
            every: self.select_every,
            lr_z: or(&self.select_lr_z, search.lr_z),
            lr_theta: or(&self.select_lr_theta, search.lr_theta),
            loss: or(&self.select_loss, search.loss),
            aggregate: or(&self.select_aggregate, search.aggregate),
            k: or(&self.select_k, search.k),
            start: or(&self.select_start, search.start),
            holdout_fraction: self.validation_fraction,
            max_per_side: self.validation_max,
            ..SelectionConfig::default()
        }
    }
}

/// Adds the flag to an output check's error, and the way out when only permission is missing:
/// `--force` is suggested for an existing result, never for a folder, device or run file.
pub(crate) fn out_error(flag: &str, path: &Path) -> impl FnOnce(anyhow::Error) -> anyhow::Error {
    let flag = format!("{flag} {}", path.display());
    move |e| {
        if e.is::<adgan::output::WouldReplace>() {
            e.context(format!(
                "{flag}: pass --force to replace it, or choose another path"
            ))
        } else {
            e.context(flag)
        }
    }
}

/// Names the flag of a setting the library refused ([`adgan::setting::BadSetting`]): the
/// library names its settings as its configuration types do (`n_critic`), the flags are those
/// names in kebab case (`--n-critic`).
pub(crate) fn name_the_flag(err: anyhow::Error) -> anyhow::Error {
    let Some(bad) = err.downcast_ref::<adgan::setting::BadSetting>() else {
        return err;
    };
    let flag = format!("--{}", bad.name.replace('_', "-"));
    // Named once, however many layers pass the error on.
    match format!("{err:#}").contains(&flag) {
        true => err,
        false => err.context(flag),
    }
}
