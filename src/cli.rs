//! Command-line interface: parses arguments, calls the library, prints. No logic of its own.

use adgan::alexnet::AlexNetLayer;
use adgan::autoencoder::{Autoencoder, AutoencoderConfig};
use adgan::checkpoint::{self, CHECKPOINT_FILE, CONFIG_FILE};
use adgan::data::{
    demo, DataSource, Dataset, Fit, FolderStream, ImageSpec, OnBadFile, SkippedImage, Split,
};
use adgan::device::{self, DeviceChoice};
use adgan::experiment::{self, Event, ExperimentConfig, Method};
use adgan::model::{Init, ModelConfig};
use adgan::optim::OptimizerConfig;
use adgan::output::{Destination, ScoreJournal};
use adgan::score::adgan::{
    Adgan, AdganConfig, Aggregate, Precision, ReconstructionLoss, ThetaMode,
};
use adgan::score::anogan::{Anogan, AnoganConfig};
use adgan::score::classic::Classic;
use adgan::score::critic::CriticScore;
use adgan::score::features::{FeatureExtractor, PcaConfig};
use adgan::score::prior::PriorScore;
use adgan::score::ImageSource;
use adgan::selection::SelectionConfig;
use adgan::train::{self, Objective, Progress, RunConfig, TrainConfig, FORMAT_VERSION};
use anyhow::{bail, Context, Result};
use clap::{Args, Parser, Subcommand, ValueEnum};
use indicatif::{ProgressBar, ProgressStyle};
use std::ops::ControlFlow;
use std::path::{Path, PathBuf};

/// Image anomaly detection with generative adversarial networks (ADGAN, Deecke et al. 2018).
#[derive(Parser, Debug)]
#[command(name = "adgan", version, about, long_about = None)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Train a Wasserstein GAN on normal images into a run folder.
    Train(TrainArgs),
    /// Train a small GAN on embedded shapes (no download), score held-out shapes, print ROC-AUC.
    Demo(DemoArgs),
    /// Score images with a trained run (ADGAN latent search); writes one row per image.
    Score(ScoreArgs),
    /// Rank a folder of images from most to least anomalous, with galleries of both ends.
    Rank(RankArgs),
    /// Run the paper's experiments (one-vs-all ROC-AUC tables).
    #[command(subcommand)]
    Experiment(ExperimentCommand),
    /// Time the work of training or scoring (figures for BENCHMARKS.md).
    #[command(subcommand)]
    Bench(BenchCommand),
    /// Show the configuration and state of a run folder or checkpoint.
    Info {
        /// A run folder (made by `adgan train`) or its checkpoint.safetensors.
        path: PathBuf,
    },
}

#[derive(Args, Debug)]
struct RankArgs {
    /// Run folder of a trained GAN (made by `adgan train`).
    #[arg(long)]
    model: PathBuf,
    /// The folder of images to rank (flat or with subfolders; no labels needed).
    #[arg(long)]
    images: PathBuf,
    /// Images in each gallery.
    #[arg(long, default_value_t = 24)]
    top: usize,
    /// Output folder (scores.csv, most_anomalous.png, least_anomalous.png); files of an
    /// earlier ranking there are replaced only with --force.
    #[arg(long, short)]
    out: PathBuf,
    /// Replace the files of an earlier ranking in --out.
    #[arg(long)]
    force: bool,
    /// Stop at the first image file that cannot be read (default: skip it, warn, and list it
    /// in OUT/skipped.txt).
    #[arg(long)]
    strict: bool,
    #[command(flatten)]
    search: SearchArgs,
    /// Device.
    #[arg(long, value_enum, default_value_t = DeviceChoice::Auto)]
    device: DeviceChoice,
}

#[derive(Subcommand, Debug)]
enum ExperimentCommand {
    /// Train on each normal class, score a seeded test draw with every method, tabulate
    /// ROC-AUC. Finished cells are kept: re-run the same command to continue after a stop.
    OneVsAll(Box<OneVsAllArgs>),
}

#[derive(Args, Debug)]
struct OneVsAllArgs {
    /// Kind of data set.
    #[arg(long, value_enum)]
    dataset: DatasetKind,
    /// Path of the data (folder, archive or IDX file); not needed for --dataset demo.
    #[arg(long)]
    data: Option<PathBuf>,
    /// IDX label file, with --dataset idx.
    #[arg(long)]
    labels: Option<PathBuf>,
    /// How images of another size are fitted to --image-size.
    #[arg(long, value_enum, default_value_t = Fit::Pad)]
    fit: Fit,
    /// Normal classes: a list and ranges, e.g. 0-9, 0,5 or cat,dog.
    #[arg(long, default_value = "0-9")]
    classes: String,
    /// Methods, comma-separated.
    #[arg(
        long,
        value_enum,
        value_delimiter = ',',
        default_value = "adgan,critic,prior"
    )]
    methods: Vec<Method>,
    /// Test images drawn per class.
    #[arg(long, default_value_t = 5000)]
    n_test: usize,
    /// Seed of the test draws.
    #[arg(long, default_value_t = 0)]
    draw_seed: u64,
    /// PCA dimensions the classic baselines (kde, ocsvm, iforest, gmm) choose from, on a
    /// validation set drawn from the train split.
    #[arg(long, value_delimiter = ',', default_value = "20,40,60,80,100")]
    pca_dims: Vec<usize>,
    /// AlexNet weights for kde-alexnet and ocsvm-alexnet: torchvision's state dict saved as
    /// safetensors (not shipped; see the README).
    #[arg(long)]
    alexnet: Option<PathBuf>,
    /// AlexNet layer of the features: conv5 (the final convolutional layer, the paper's) or fc7.
    #[arg(long, default_value = "conv5")]
    alexnet_layer: AlexNetLayer,
    /// Results folder.
    #[arg(long, short)]
    out: PathBuf,
    #[command(flatten)]
    gan: GanArgs,
    #[command(flatten)]
    search: SearchArgs,
    #[command(flatten)]
    selection: SelectionArgs,
    /// Device.
    #[arg(long, value_enum, default_value_t = DeviceChoice::Auto)]
    device: DeviceChoice,
}

/// Choice of the training length and the search's learning rates on validation data.
#[derive(Args, Debug)]
struct SelectionArgs {
    /// Score a validation split (held-out normal training images and training images of other
    /// classes) with ADGAN every this many generator iterations, and use the best snapshot and
    /// learning rates for the test images; 0: train for --iterations and use the search as given.
    #[arg(long, default_value_t = 0)]
    select_every: usize,
    /// Candidate lr_z values for the selection [default: --lr-z].
    #[arg(long, value_delimiter = ',')]
    select_lr_z: Vec<f64>,
    /// Candidate lr_theta values for the selection [default: --lr-theta].
    #[arg(long, value_delimiter = ',')]
    select_lr_theta: Vec<f64>,
    /// Candidate reconstruction losses for the selection [default: --loss].
    #[arg(long, value_enum, value_delimiter = ',')]
    select_loss: Vec<ReconstructionLoss>,
    /// Candidate aggregations over seeds for the selection [default: --aggregate].
    #[arg(long, value_enum, value_delimiter = ',')]
    select_aggregate: Vec<Aggregate>,
    /// Fraction of the normal training images held out for validation (never trained on).
    #[arg(long, default_value_t = SelectionConfig::default().holdout_fraction)]
    validation_fraction: f64,
    /// At most this many held-out normal images, and as many anomalous ones, are scored.
    #[arg(long, default_value_t = SelectionConfig::default().max_per_side)]
    validation_max: usize,
    /// Only draw the validation learning curves (no test image is read) and tabulate them.
    #[arg(long)]
    validation_only: bool,
}

impl SelectionArgs {
    fn config(&self, search: &AdganConfig) -> SelectionConfig {
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
            holdout_fraction: self.validation_fraction,
            max_per_side: self.validation_max,
            ..SelectionConfig::default()
        }
    }
}

#[derive(Subcommand, Debug)]
enum BenchCommand {
    /// Milliseconds per WGAN generator iteration (n_critic critic steps + 1 generator step).
    Train(BenchTrainArgs),
    /// Images per second of ADGAN scoring: the per-image loop and the batched search.
    Score(BenchScoreArgs),
    /// The classic baselines at a fixed PCA dimension on a one-vs-all task: ROC-AUC, chosen
    /// hyperparameters and time; --dump writes the data for bench/baselines.py (scikit-learn).
    Baselines(BenchBaselinesArgs),
    /// Peak memory and time of scoring a generated folder of --images PNGs streamed in
    /// batches (memory should follow the batch, not the folder).
    Stream(BenchStreamArgs),
    /// Where the time of one latent-search step goes: each forward op by layer, the backward
    /// pass, and the Adam updates (ms per step).
    Profile(BenchProfileArgs),
}

#[derive(Args, Debug)]
struct BenchProfileArgs {
    /// Images per search.
    #[arg(long, default_value_t = 1)]
    images: usize,
    /// Timed steps.
    #[arg(long, default_value_t = 10)]
    steps: usize,
    #[command(flatten)]
    shape: BenchModelArgs,
    #[command(flatten)]
    search: BenchSearchArgs,
    /// Device.
    #[arg(long, value_enum, default_value_t = DeviceChoice::Auto)]
    device: DeviceChoice,
}

#[derive(Args, Debug)]
struct BenchStreamArgs {
    /// Images in the generated folder.
    #[arg(long, default_value_t = 100_000)]
    images: usize,
    /// Images per batch.
    #[arg(long, default_value_t = 256)]
    batch: usize,
    /// Where the PNGs are written (kept for later runs).
    #[arg(long, default_value = "bench/out/stream")]
    dir: PathBuf,
    /// Device.
    #[arg(long, value_enum, default_value_t = DeviceChoice::Auto)]
    device: DeviceChoice,
}

#[derive(Args, Debug)]
struct BenchBaselinesArgs {
    #[command(flatten)]
    data: DataArgs,
    /// Test images drawn.
    #[arg(long, default_value_t = 1000)]
    n_test: usize,
    /// Seed of the test draw.
    #[arg(long, default_value_t = 0)]
    draw_seed: u64,
    /// PCA dimension d'.
    #[arg(long, default_value_t = 40)]
    pca_dim: usize,
    /// Baselines, comma-separated.
    #[arg(
        long,
        value_enum,
        value_delimiter = ',',
        default_value = "kde,ocsvm,iforest,gmm"
    )]
    methods: Vec<Classic>,
    /// Seed of the randomised baselines (Isolation Forest, GMM initialisation).
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Write the training images, test images and labels to this safetensors file.
    #[arg(long)]
    dump: Option<PathBuf>,
    /// Device.
    #[arg(long, value_enum, default_value_t = DeviceChoice::Auto)]
    device: DeviceChoice,
}

#[derive(Args, Debug)]
struct BenchScoreArgs {
    /// Images scored per measurement.
    #[arg(long, default_value_t = 16)]
    images: usize,
    /// Images per batched search (default: chosen from memory, at most --images).
    #[arg(long)]
    batch_images: Option<usize>,
    #[command(flatten)]
    shape: BenchModelArgs,
    #[command(flatten)]
    search: BenchSearchArgs,
    /// The device's peak arithmetic rate in TFLOP/s for the format in use (e.g. an H200: 989
    /// dense bf16, 494 dense tf32), to print the fraction of it the search reaches.
    #[arg(long)]
    peak_tflops: Option<f64>,
    /// Device.
    #[arg(long, value_enum, default_value_t = DeviceChoice::Auto)]
    device: DeviceChoice,
}

/// The latent search a benchmark times (the paper's by default).
#[derive(Args, Debug)]
struct BenchSearchArgs {
    /// Latent seeds per image (n_seed).
    #[arg(long, default_value_t = AdganConfig::default().n_seed)]
    n_seed: i64,
    /// Adam steps (k).
    #[arg(long, default_value_t = AdganConfig::default().k)]
    k: usize,
    /// Number format of the transposed convolutions.
    #[arg(long, value_enum, default_value_t = Precision::F32)]
    precision: Precision,
    /// Time the trained generator of this run folder instead of a freshly initialised one of
    /// --image-size, --channels and --width.
    #[arg(long)]
    model: Option<PathBuf>,
}

impl BenchSearchArgs {
    /// The generator to time, and a description of it.
    fn generator(
        &self,
        shape: &BenchModelArgs,
        device: tch::Device,
    ) -> Result<(adgan::bench::BenchGenerator, String)> {
        let bench =
            adgan::bench::BenchGenerator::new(self.model.as_deref(), shape.model()?, device)?;
        let m = bench.generator().config();
        let origin = match &self.model {
            Some(run) => format!("trained {}", run.display()),
            None => "fresh".to_string(),
        };
        let what = format!(
            "{0}x{0}x{1}, width {2}, {origin}",
            m.image_size, m.channels, m.width
        );
        Ok((bench, what))
    }

    fn config(&self) -> AdganConfig {
        AdganConfig {
            n_seed: self.n_seed,
            k: self.k,
            precision: self.precision,
            ..AdganConfig::default()
        }
    }

    fn describe(&self) -> String {
        let precision = value_name(&self.precision);
        format!("n_seed {}, k {}, {precision}", self.n_seed, self.k)
    }
}

/// The command-line spelling of an option value (`per-seed`, `bf16`).
fn value_name(value: &impl clap::ValueEnum) -> String {
    value
        .to_possible_value()
        .map_or_else(String::new, |v| v.get_name().to_string())
}

/// The model a benchmark times (the paper's size by default).
#[derive(Args, Debug)]
struct BenchModelArgs {
    /// Image side.
    #[arg(long, default_value_t = 32)]
    image_size: i64,
    /// Image channels.
    #[arg(long, default_value_t = 3)]
    channels: i64,
    /// Base width of the networks.
    #[arg(long, default_value_t = 64)]
    width: i64,
}

impl BenchModelArgs {
    fn model(&self) -> Result<ModelConfig> {
        let model = ModelConfig {
            image_size: self.image_size,
            channels: self.channels,
            latent_dim: 256,
            width: self.width,
        };
        model.validate()?;
        Ok(model)
    }

    fn describe(&self) -> String {
        format!(
            "{0}x{0}x{1}, width {2}",
            self.image_size, self.channels, self.width
        )
    }
}

#[derive(Args, Debug)]
struct BenchTrainArgs {
    /// Timed iterations.
    #[arg(long, default_value_t = 10)]
    steps: usize,
    /// Untimed warm-up iterations.
    #[arg(long, default_value_t = 2)]
    warmup: usize,
    /// Images per batch.
    #[arg(long, default_value_t = 64)]
    batch_size: i64,
    /// Critic steps per generator step.
    #[arg(long, default_value_t = 5)]
    n_critic: usize,
    #[command(flatten)]
    shape: BenchModelArgs,
    /// Use WGAN-GP instead of weight clipping.
    #[arg(long)]
    gp: bool,
    /// Print where an iteration spends its time, phase by phase, instead of the total.
    #[arg(long)]
    profile: bool,
    /// Device.
    #[arg(long, value_enum, default_value_t = DeviceChoice::Auto)]
    device: DeviceChoice,
}

#[derive(Args, Debug)]
struct SearchArgs {
    /// Latent seeds per image (n_seed).
    #[arg(long, default_value_t = AdganConfig::default().n_seed)]
    n_seed: i64,
    /// Adam steps (k).
    #[arg(long, default_value_t = AdganConfig::default().k)]
    k: usize,
    /// Adam learning rate of the latents.
    #[arg(long, default_value_t = AdganConfig::default().lr_z)]
    lr_z: f64,
    /// Adam learning rate of the generator parameters theta [default: 5e-4; demo: 5e-5].
    #[arg(long)]
    lr_theta: Option<f64>,
    /// theta per image shared by its seeds, one theta per seed, or fixed.
    #[arg(long, value_enum, default_value_t = ThetaMode::Shared)]
    theta: ThetaMode,
    /// Adapt only the latents (same as --theta fixed).
    #[arg(long)]
    no_theta: bool,
    /// Reconstruction loss: l2 (the paper's), l1, or laplacian (Lap1: L1 over a Laplacian
    /// pyramid, an improvement the paper names).
    #[arg(long, value_enum, default_value_t = ReconstructionLoss::L2)]
    loss: ReconstructionLoss,
    /// How the seeds' final losses make the score: mean (the paper's) or min.
    #[arg(long, value_enum, default_value_t = Aggregate::Mean)]
    aggregate: Aggregate,
    /// Seed of the initial latents.
    #[arg(long, default_value_t = 0)]
    search_seed: u64,
    /// Number format of the generator's transposed convolutions during the search (bf16: 1.3x
    /// to 1.7x faster on a CPU with AVX512-BF16, ROC-AUC within 0.001 on MNIST; BENCHMARKS.md).
    #[arg(long, value_enum, default_value_t = Precision::F32)]
    precision: Precision,
    /// Images per batched search (default: chosen from memory).
    #[arg(long)]
    batch_images: Option<usize>,
}

impl SearchArgs {
    /// Images per batched search, when given: at least one.
    fn batch_images(&self) -> Result<Option<usize>> {
        if self.batch_images == Some(0) {
            bail!("--batch-images must be at least 1");
        }
        Ok(self.batch_images)
    }

    fn config(&self) -> AdganConfig {
        AdganConfig {
            n_seed: self.n_seed,
            k: self.k,
            lr_z: self.lr_z,
            lr_theta: self.lr_theta.unwrap_or(AdganConfig::default().lr_theta),
            theta: if self.no_theta {
                ThetaMode::Fixed
            } else {
                self.theta
            },
            loss: self.loss,
            aggregate: self.aggregate,
            seed: self.search_seed,
            precision: self.precision,
        }
    }
}

#[derive(Args, Debug)]
struct ScoreArgs {
    /// Run folder of a trained GAN (made by `adgan train`).
    #[arg(long)]
    model: PathBuf,
    /// A folder of images to score (flat or with class subfolders).
    #[arg(long, conflicts_with = "dataset")]
    images: Option<PathBuf>,
    /// Kind of data set to score instead of --images.
    #[arg(long, value_enum)]
    dataset: Option<DatasetKind>,
    /// Path of the data set.
    #[arg(long)]
    data: Option<PathBuf>,
    /// IDX label file, with --dataset idx.
    #[arg(long)]
    labels: Option<PathBuf>,
    /// Split of the data set to score.
    #[arg(long, value_enum, default_value_t = Split::Test)]
    split: Split,
    /// One-vs-all evaluation: the normal class; scores a seeded draw of --n-test images, labels
    /// them 1 (other class) or 0, and prints the ROC-AUC.
    #[arg(long, requires = "dataset")]
    normal_class: Option<String>,
    /// Test images drawn for --normal-class.
    #[arg(long, default_value_t = 5000)]
    n_test: usize,
    /// Seed of the --n-test draw.
    #[arg(long, default_value_t = 0)]
    draw_seed: u64,
    /// Output file: CSV, or JSON when it ends in .json; `-` writes CSV to standard output.
    /// An existing file is replaced only with --force; a run's own files never.
    #[arg(long, short)]
    out: PathBuf,
    /// Replace the output file if it exists.
    #[arg(long)]
    force: bool,
    /// Stop at the first image file that cannot be read (default: skip it, warn, and list it
    /// in OUT.skipped.txt).
    #[arg(long)]
    strict: bool,
    /// Scoring method: ADGAN, the critic or latent prior of the GAN, AnoGAN, or a baseline
    /// fitted on the GAN's training images (or on --train): dcae and vae (trained once into
    /// RUN/baselines/), kde, ocsvm, iforest, gmm.
    #[arg(long, value_enum, default_value_t = Method::Adgan)]
    method: Method,
    /// Normal images to fit a classic baseline on (default: the run's training images).
    #[arg(long)]
    train: Option<PathBuf>,
    /// PCA dimension d' of a classic baseline (no labelled anomalies here to choose it with).
    #[arg(long, default_value_t = PcaConfig::default().fallback_dim)]
    pca_dim: usize,
    /// AlexNet weights for kde-alexnet and ocsvm-alexnet (torchvision state dict, safetensors).
    #[arg(long)]
    alexnet: Option<PathBuf>,
    /// AlexNet layer of the features: conv5 (the final convolutional layer, the paper's) or fc7.
    #[arg(long, default_value = "conv5")]
    alexnet_layer: AlexNetLayer,
    #[command(flatten)]
    search: SearchArgs,
    /// Device.
    #[arg(long, value_enum, default_value_t = DeviceChoice::Auto)]
    device: DeviceChoice,
}

/// Kinds of data set `--dataset` accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum DatasetKind {
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

#[derive(Args, Debug)]
struct DataArgs {
    /// Kind of data set.
    #[arg(long, value_enum)]
    dataset: DatasetKind,
    /// Path of the data (folder, archive or IDX file); not needed for --dataset demo.
    #[arg(long)]
    data: Option<PathBuf>,
    /// IDX label file, with --dataset idx.
    #[arg(long)]
    labels: Option<PathBuf>,
    /// The normal class to train on (index, or class folder name); all images when omitted.
    #[arg(long)]
    normal_class: Option<String>,
    /// How images of another size are fitted to --image-size.
    #[arg(long, value_enum, default_value_t = Fit::Pad)]
    fit: Fit,
    /// Stop at the first image file that cannot be read (default: skip it and warn).
    #[arg(long)]
    strict: bool,
}

impl DataArgs {
    fn source(&self, seed: u64) -> Result<DataSource> {
        data_source(
            self.dataset,
            self.data.as_deref(),
            self.labels.as_deref(),
            seed,
        )
    }

    fn default_channels(&self) -> i64 {
        match self.dataset {
            DatasetKind::Mnist | DatasetKind::Idx => 1,
            _ => 3,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum ObjectiveKind {
    /// WGAN with weight clipping and RMSprop (the paper's choice).
    Clip,
    /// WGAN-GP: gradient penalty and Adam.
    Gp,
}

#[derive(Args, Debug)]
struct TrainArgs {
    #[command(flatten)]
    data: DataArgs,
    /// Output run folder.
    #[arg(long, short)]
    out: PathBuf,
    /// Continue the run in --out from its last checkpoint.
    #[arg(long)]
    resume: bool,
    #[command(flatten)]
    gan: GanArgs,
    /// Device.
    #[arg(long, value_enum, default_value_t = DeviceChoice::Auto)]
    device: DeviceChoice,
}

/// Architecture and training of the GAN.
#[derive(Args, Debug)]
struct GanArgs {
    /// Image side the model works at (32 or 64).
    #[arg(long, default_value_t = 32)]
    image_size: i64,
    /// Image channels (1 or 3); default 1 for mnist/idx, 3 otherwise.
    #[arg(long)]
    channels: Option<i64>,
    /// Latent dimension d'.
    #[arg(long, default_value_t = 256)]
    latent_dim: i64,
    /// Base width of the DCGAN networks.
    #[arg(long, default_value_t = 64)]
    width: i64,
    /// Generator iterations.
    #[arg(long, default_value_t = TrainConfig::default().iterations)]
    iterations: usize,
    /// Images per batch.
    #[arg(long, default_value_t = 64)]
    batch_size: i64,
    /// Critic constraint and optimiser.
    #[arg(long, value_enum, default_value_t = ObjectiveKind::Clip)]
    objective: ObjectiveKind,
    /// Learning rate (default: 5e-5 for clip, 1e-4 for gp).
    #[arg(long)]
    lr: Option<f64>,
    /// Critic steps per generator step.
    #[arg(long, default_value_t = 5)]
    n_critic: usize,
    /// Weight initialisation: dcgan (N(0, 0.02)) or uniform (PyTorch's layer defaults).
    #[arg(long, default_value = "dcgan")]
    init: Init,
    /// Adam's beta1 with --objective gp [default: 0, as in WGAN-GP].
    #[arg(long)]
    beta1: Option<f64>,
    /// Weight clipping bound (clip).
    #[arg(long, default_value_t = 0.01)]
    clip: f64,
    /// Gradient penalty weight (gp).
    #[arg(long, default_value_t = 10.0)]
    lambda: f64,
    /// Seed of initialisation and sampling.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Checkpoint interval in iterations.
    #[arg(long, default_value_t = TrainConfig::default().checkpoint_every)]
    checkpoint_every: usize,
    /// Sample-grid interval in iterations.
    #[arg(long, default_value_t = TrainConfig::default().sample_every)]
    sample_every: usize,
}

impl GanArgs {
    fn model_config(&self, default_channels: i64) -> Result<ModelConfig> {
        let model = ModelConfig {
            image_size: self.image_size,
            channels: self.channels.unwrap_or(default_channels),
            latent_dim: self.latent_dim,
            width: self.width,
        };
        model.validate()?;
        Ok(model)
    }

    /// The training configuration, checked before any data is read.
    fn train_config(&self) -> Result<TrainConfig> {
        if self.beta1.is_some() && self.objective == ObjectiveKind::Clip {
            bail!("--beta1 sets Adam's beta1, which only --objective gp uses (clip uses RMSprop)");
        }
        let base = match self.objective {
            ObjectiveKind::Clip => TrainConfig {
                objective: Objective::WeightClipping { clip: self.clip },
                ..TrainConfig::default()
            },
            ObjectiveKind::Gp => TrainConfig {
                objective: Objective::GradientPenalty {
                    lambda: self.lambda,
                },
                ..TrainConfig::gradient_penalty()
            },
        };
        let optimizer = match (base.optimizer, self.lr) {
            (OptimizerConfig::Rmsprop { alpha, eps, .. }, Some(lr)) => {
                OptimizerConfig::Rmsprop { lr, alpha, eps }
            }
            (OptimizerConfig::Adam { lr, beta2, eps, .. }, new_lr) => OptimizerConfig::Adam {
                lr: new_lr.unwrap_or(lr),
                beta1: self.beta1.unwrap_or(0.0),
                beta2,
                eps,
            },
            (optimizer, None) => optimizer,
        };
        let config = TrainConfig {
            optimizer,
            iterations: self.iterations,
            batch_size: self.batch_size,
            n_critic: self.n_critic,
            init: self.init,
            seed: self.seed,
            checkpoint_every: self.checkpoint_every,
            sample_every: self.sample_every,
            ..base
        };
        config
            .validate()
            .context("check --lr, --beta1, --clip, --lambda, --batch-size and --n-critic")?;
        Ok(config)
    }
}

#[derive(Args, Debug)]
struct DemoArgs {
    /// Output folder.
    #[arg(long, short, default_value = "runs/demo")]
    out: PathBuf,
    /// Generator iterations of the demo GAN.
    #[arg(long, default_value_t = 400)]
    iterations: usize,
    /// Seed of the data and the training.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Held-out images to score (normal discs and anomalous shapes).
    #[arg(long, default_value_t = 400)]
    n_test: usize,
    #[command(flatten)]
    search: SearchArgs,
    /// Device.
    #[arg(long, value_enum, default_value_t = DeviceChoice::Auto)]
    device: DeviceChoice,
}

/// The data source named by `--dataset`, `--data` and `--labels`, with absolute paths (a run
/// records them, and is used later from other folders).
fn data_source(
    kind: DatasetKind,
    data: Option<&Path>,
    labels: Option<&Path>,
    seed: u64,
) -> Result<DataSource> {
    let absolute = |p: &Path| {
        std::path::absolute(p).with_context(|| format!("cannot resolve the path {}", p.display()))
    };
    let path = || {
        let p = data.with_context(|| format!("--dataset {kind:?} needs --data PATH"))?;
        absolute(p)
    };
    Ok(match kind {
        DatasetKind::Mnist => DataSource::Mnist { dir: path()? },
        DatasetKind::Cifar10 => DataSource::Cifar10 { path: path()? },
        DatasetKind::Idx => DataSource::Idx {
            images: path()?,
            labels: labels.map(absolute).transpose()?,
        },
        DatasetKind::Folder => DataSource::Folder { root: path()? },
        DatasetKind::Demo => DataSource::Demo { seed },
    })
}

/// Runs the parsed command.
pub fn run(cli: Cli) -> Result<()> {
    match cli.command {
        Command::Train(args) => run_train(&args),
        Command::Demo(args) => run_demo(&args),
        Command::Score(args) => run_score(&args),
        Command::Rank(args) => run_rank(&args),
        Command::Experiment(ExperimentCommand::OneVsAll(args)) => run_one_vs_all(&args),
        Command::Bench(BenchCommand::Train(args)) => run_bench_train(&args),
        Command::Bench(BenchCommand::Score(args)) => run_bench_score(&args),
        Command::Bench(BenchCommand::Baselines(args)) => run_bench_baselines(&args),
        Command::Bench(BenchCommand::Profile(args)) => run_bench_profile(&args),
        Command::Bench(BenchCommand::Stream(args)) => run_bench_stream(&args),
        Command::Info { path } => run_info(&path),
    }
}

fn progress_bar(total: usize, done: usize) -> ProgressBar {
    let bar = ProgressBar::new(total as u64);
    bar.set_style(
        ProgressStyle::with_template(
            "{bar:30} {pos}/{len} it  {per_sec}  [{elapsed_precise} < {eta_precise}]  {msg}",
        )
        .expect("valid template"),
    );
    bar.set_position(done as u64);
    bar.reset_eta();
    bar
}

/// Trains with a progress bar; returns the outcome.
fn train_with_progress(
    out: &Path,
    config: &RunConfig,
    data: &adgan::data::Dataset,
    device: tch::Device,
    resume: bool,
) -> Result<train::TrainOutcome> {
    eprintln!(
        "training on {} images from {} on {} -> {}",
        data.len(),
        config.data.source.describe(),
        device::name(device),
        out.display()
    );
    let bar = progress_bar(config.train.iterations, 0);
    let mut first = true;
    let mut on_progress = |p: &Progress| {
        if first {
            bar.set_position(p.iteration as u64);
            bar.reset_eta();
            first = false;
        }
        let message = format!(
            "W~{:.4} critic {:.4} gen {:.4}",
            p.losses.wasserstein, p.losses.critic, p.losses.generator
        );
        // Without a terminal the bar is hidden: log a line every 5% instead.
        if bar.is_hidden() && p.iteration.is_multiple_of((p.total / 20).max(1)) {
            let done = (p.iteration - p.started_at) as f64;
            let left = (p.total - p.iteration) as f64 * p.elapsed.as_secs_f64() / done.max(1.0);
            eprintln!(
                "iteration {}/{}  {message}  ({left:.0} s left)",
                p.iteration, p.total
            );
        }
        bar.set_position(p.iteration as u64);
        bar.set_message(message);
        ControlFlow::Continue(())
    };
    let outcome = train::train(out, config, data, device, resume, &mut on_progress);
    bar.finish();
    outcome
}

fn run_train(args: &TrainArgs) -> Result<()> {
    let source = args.data.source(args.gan.seed)?;
    let model = args.gan.model_config(args.data.default_channels())?;
    let spec = ImageSpec {
        size: model.image_size,
        channels: model.channels,
    };
    let mut train = args.gan.train_config()?;
    let checkpoint_path = args.out.join(CHECKPOINT_FILE);
    if args.resume && !checkpoint_path.exists() {
        if args.out.join(CONFIG_FILE).exists() {
            eprintln!(
                "note: {} holds no checkpoint yet (the run stopped before its first one): \
                 training starts from iteration 0",
                args.out.display()
            );
        } else {
            bail!(
                "--resume: {} holds no training run to continue; leave out --resume to start one",
                args.out.display()
            );
        }
    }
    let (data, provenance) = train::load_training_data(
        &source,
        args.data.normal_class.as_deref(),
        spec,
        args.data.fit,
    )?;
    report_skipped(&data.skipped, None)?;
    if args.data.strict && !data.skipped.is_empty() {
        bail!(
            "--strict: {} image files could not be read (listed above)",
            data.skipped.len()
        );
    }
    if train.batch_size as usize > data.len() {
        eprintln!(
            "note: --batch-size {} is more than the {} training images: batches of {} are used",
            train.batch_size,
            data.len(),
            data.len()
        );
        train.batch_size = data.len() as i64;
    }
    let config = RunConfig {
        format_version: FORMAT_VERSION,
        model,
        train,
        data: provenance,
    };
    let device = device::select(args.device)?;
    let outcome = train_with_progress(&args.out, &config, &data, device, args.resume)?;
    println!(
        "trained {} iterations; run folder: {}",
        outcome.iteration,
        outcome.run_dir.display()
    );
    Ok(())
}

/// lr_theta of the demo's search, measured on the demo GAN (400 held-out images): 5e-5 gave
/// ROC-AUC 0.949, 2e-4 gave 0.923 and the MNIST-chosen default 5e-4 gave 0.861. The small
/// demo generator needs gentler adaptation than the MNIST ones.
const DEMO_LR_THETA: f64 = 5e-5;

fn run_demo(args: &DemoArgs) -> Result<()> {
    let source = DataSource::Demo { seed: args.seed };
    let model = ModelConfig {
        image_size: 32,
        channels: 3,
        latent_dim: 256,
        width: 32,
    };
    let spec = ImageSpec {
        size: 32,
        channels: 3,
    };
    let (data, provenance) =
        train::load_training_data(&source, Some(demo::CLASS_NAMES[0]), spec, Fit::Pad)?;
    let config = RunConfig {
        format_version: FORMAT_VERSION,
        model,
        train: TrainConfig {
            iterations: args.iterations,
            seed: args.seed,
            checkpoint_every: 100,
            sample_every: 100,
            ..TrainConfig::gradient_penalty()
        },
        data: provenance,
    };
    let resume = args.out.join(CHECKPOINT_FILE).exists();
    if resume {
        eprintln!(
            "{} holds an earlier demo run: continuing it",
            args.out.display()
        );
    }
    let device = device::select(args.device)?;
    let outcome = train_with_progress(&args.out, &config, &data, device, resume)?;
    let gan = checkpoint::load_gan(&args.out, device)?;
    let test = source.load(Split::Test, spec, Fit::Pad)?;
    let (test, _) = adgan::data::draw_test(&test, 0, args.n_test, args.seed)?;
    let mut search = args.search.config();
    if args.search.lr_theta.is_none() {
        search.lr_theta = DEMO_LR_THETA;
    }
    let (mut detector, batch) = adgan_detector(&gan, search, args.search.batch_images()?, device)?;
    let scores = score_with_progress(&mut detector, &mut { &test.images }, batch, device, None)?;
    let scores_path = args.out.join("scores.csv");
    adgan::report::write_scores(&Destination::File(scores_path.clone()), &test, &scores)?;
    let labels = test.labels.as_deref().unwrap_or_default();
    let auc = adgan::eval::roc_auc(&scores, labels)?;
    let mean_of = |wanted: i64| {
        let picked: Vec<f64> = scores
            .iter()
            .zip(labels)
            .filter(|(_, &l)| l == wanted)
            .map(|(s, _)| *s)
            .collect();
        picked.iter().sum::<f64>() / picked.len().max(1) as f64
    };
    let run = outcome.run_dir.display();
    println!(
        "demo: GAN trained for {} iterations on {} normal images (discs)",
        outcome.iteration,
        data.len()
    );
    println!(
        "demo: scored {} held-out images: ROC-AUC {auc:.3} (mean score normal {:.1}, anomalous {:.1})",
        scores.len(),
        mean_of(0),
        mean_of(1)
    );
    println!("  run folder:  {run}");
    println!(
        "  samples:     {run}/samples/iter_{:06}.png",
        outcome.iteration
    );
    println!("  scores:      {}", scores_path.display());
    println!("  losses:      {run}/losses.csv");
    println!("  inspect:     adgan info {run}");
    Ok(())
}

fn run_info(path: &Path) -> Result<()> {
    let run_dir = if path.is_file() {
        path.parent().unwrap_or(Path::new("."))
    } else {
        path
    };
    if !run_dir.join(CONFIG_FILE).is_file() {
        bail!(
            "{} is not an adgan run folder: it has no {CONFIG_FILE}",
            run_dir.display()
        );
    }
    let gan = checkpoint::load_gan(run_dir, tch::Device::Cpu)?;
    let count = |vs: &tch::nn::VarStore| {
        vs.trainable_variables()
            .iter()
            .map(|t| t.numel())
            .sum::<usize>()
    };
    println!("run folder:   {}", run_dir.display());
    println!(
        "iterations:   {} of {}",
        gan.iteration, gan.config.train.iterations
    );
    println!("generator:    {} parameters", count(&gan.generator_vs));
    println!("critic:       {} parameters", count(&gan.critic_vs));
    println!(
        "data:         {} images from {}",
        gan.config.data.n_images,
        gan.config.data.source.describe()
    );
    println!(
        "configuration:\n{}",
        serde_json::to_string_pretty(&gan.config)?
    );
    Ok(())
}

fn run_bench_train(args: &BenchTrainArgs) -> Result<()> {
    let device = device::select(args.device)?;
    let model = args.shape.model()?;
    let base = if args.gp {
        TrainConfig::gradient_penalty()
    } else {
        TrainConfig::default()
    };
    let train = TrainConfig {
        batch_size: args.batch_size,
        n_critic: args.n_critic,
        ..base
    };
    if args.profile {
        let phases = adgan::bench::training_profile(model, train, args.warmup, args.steps, device)?;
        println!(
            "train iteration profile ({}, batch {}, {}, n_critic {}, {} threads, {}), ms per iteration over {} iterations:",
            if args.gp { "wgan-gp" } else { "wgan-clip" },
            args.batch_size,
            args.shape.describe(),
            args.n_critic,
            tch::get_num_threads(),
            device::name(device),
            args.steps
        );
        let total: f64 = phases.iter().map(|(_, ms)| ms).sum();
        for (phase, ms) in &phases {
            println!("  {phase:58} {ms:8.1}  {:5.1}%", 100.0 * ms / total);
        }
        println!("  {:58} {total:8.1}", "total");
        return Ok(());
    }
    let timing = adgan::bench::training_iteration(model, train, args.warmup, args.steps, device)?;
    println!(
        "train iteration ({}, batch {}, {}, n_critic {}, {} threads, {}): mean {:.1} ms, min {:.1} ms over {} iterations",
        if args.gp { "wgan-gp" } else { "wgan-clip" },
        args.batch_size,
        args.shape.describe(),
        args.n_critic,
        tch::get_num_threads(),
        device::name(device),
        timing.mean_ms,
        timing.min_ms,
        timing.steps
    );
    Ok(())
}

/// Scores `images`, with a progress bar (a line every 10% without a terminal); with a
/// journal, images it already holds are not scored again and every batch is recorded.
fn score_with_progress(
    detector: &mut dyn adgan::score::Detector,
    images: &mut dyn ImageSource,
    batch: usize,
    device: tch::Device,
    journal: Option<&mut ScoreJournal>,
) -> Result<Vec<f64>> {
    let bar = ProgressBar::new(images.len() as u64);
    bar.set_style(
        ProgressStyle::with_template(
            "{bar:30} {pos}/{len} images  {per_sec}  [{elapsed_precise} < {eta_precise}]",
        )
        .expect("valid template"),
    );
    let start = std::time::Instant::now();
    let mut next_log = 0;
    let mut first = None;
    let mut on_batch = |done: usize, total: usize| {
        let earlier = *first.get_or_insert(done);
        if bar.is_hidden() && done >= next_log {
            let rate = (done - earlier) as f64 / start.elapsed().as_secs_f64().max(1e-9);
            eprintln!("scored {done}/{total} images ({rate:.2} images/s)");
            next_log = done + (total / 10).max(1);
        }
        bar.set_position(done as u64)
    };
    let scores = match journal {
        Some(journal) => {
            adgan::score::score_resumable(detector, images, batch, device, journal, &mut on_batch)
        }
        None => adgan::score::score_source(detector, images, batch, device, &mut on_batch),
    };
    bar.finish();
    scores
}

/// Prints a warning for each file that could not be read, and lists them in `list` (a text
/// file, one `id<TAB>reason` per line) when given and there are any.
fn report_skipped(skipped: &[SkippedImage], list: Option<&Path>) -> Result<()> {
    for s in skipped {
        eprintln!("warning: skipped {}: {}", s.id, s.reason);
    }
    if let (Some(path), false) = (list, skipped.is_empty()) {
        let text: String = skipped
            .iter()
            .map(|s| format!("{}\t{}\n", s.id, s.reason.replace(['\n', '\t'], " ")))
            .collect();
        checkpoint::write_atomic(path, |tmp| Ok(std::fs::write(tmp, text)?))?;
        eprintln!(
            "{} unreadable files are listed in {}",
            skipped.len(),
            path.display()
        );
    }
    Ok(())
}

/// How unreadable image files are handled: skipped, or an error with --strict.
fn on_bad_file(strict: bool) -> OnBadFile {
    if strict {
        OnBadFile::Fail
    } else {
        OnBadFile::Skip
    }
}

/// ADGAN over a trained GAN, announcing its settings.
fn adgan_detector<'a>(
    gan: &'a checkpoint::TrainedGan,
    config: AdganConfig,
    batch_images: Option<usize>,
    device: tch::Device,
) -> Result<(Adgan<'a>, usize)> {
    let batch = batch_images
        .unwrap_or_else(|| adgan::score::adgan::auto_batch(&gan.generator, &config, device));
    eprintln!(
        "ADGAN search on {} (n_seed {}, k {}, theta {}, {}, {batch} image(s) per search)",
        device::name(device),
        config.n_seed,
        config.k,
        value_name(&config.theta),
        value_name(&config.precision),
    );
    Ok((Adgan::new(&gan.generator, config, device)?, batch))
}

/// Normal images a baseline is fitted on: --train, or the run's own training images.
fn baseline_training_images(
    args: &ScoreArgs,
    gan: &checkpoint::TrainedGan,
    spec: ImageSpec,
) -> Result<Dataset> {
    Ok(match &args.train {
        Some(dir) => {
            let data =
                adgan::data::load_folder(dir, spec, gan.config.data.fit, on_bad_file(args.strict))?;
            report_skipped(&data.skipped, None)?;
            data
        }
        None => {
            let data = &gan.config.data;
            train::load_training_data(&data.source, data.normal_class.as_deref(), spec, data.fit)?.0
        }
    })
}

/// The detector of `method` over a trained run; classic baselines are fitted here on `train`
/// (a folder of normal images) or on the run's own training images.
fn detector_for<'a>(
    args: &ScoreArgs,
    gan: &'a checkpoint::TrainedGan,
    spec: ImageSpec,
    device: tch::Device,
) -> Result<(Box<dyn adgan::score::Detector + 'a>, usize)> {
    let search = args.search.config();
    Ok(match args.method {
        Method::Adgan => {
            let (adgan, batch) = adgan_detector(gan, search, args.search.batch_images()?, device)?;
            (Box::new(adgan), batch)
        }
        Method::Prior => {
            let (adgan, batch) = adgan_detector(gan, search, args.search.batch_images()?, device)?;
            (Box::new(PriorScore::new(adgan)), batch)
        }
        Method::Critic => (Box::new(CriticScore::new(&gan.critic)), 256),
        Method::Anogan => {
            let config = AnoganConfig::default();
            eprintln!(
                "AnoGAN search on {} ({} steps, lambda {})",
                device::name(device),
                config.steps,
                config.lambda
            );
            let anogan = Anogan::new(&gan.generator, &gan.critic, config, device)?;
            (Box::new(anogan), 64)
        }
        Method::Dcae | Method::Vae => {
            let kind = args.method.autoencoder().expect("an autoencoder method");
            let train = baseline_training_images(args, gan, spec)?;
            let dir = args.model.join("baselines").join(args.method.name());
            let config = AutoencoderConfig::default();
            eprintln!(
                "{} on {} normal images (trained once into {})",
                args.method.name(),
                train.len(),
                dir.display()
            );
            let bar = ProgressBar::new(config.iterations as u64);
            let ae = Autoencoder::train_or_load(
                kind,
                gan.config.model,
                config,
                &train,
                &dir,
                device,
                &mut |done, _| bar.set_position(done as u64),
            )?;
            bar.finish_and_clear();
            (ae.into_detector()?, 256)
        }
        method => {
            let kind = method
                .classic()
                .expect("the other methods are classic baselines");
            let train = baseline_training_images(args, gan, spec)?;
            eprintln!(
                "fitting {} on {} normal images (PCA d' = {})",
                method.name(),
                train.len(),
                args.pca_dim
            );
            let config = PcaConfig {
                fallback_dim: args.pca_dim,
                ..PcaConfig::default()
            };
            let extractor = FeatureExtractor::choose(
                method.uses_alexnet(),
                args.alexnet.as_deref(),
                args.alexnet_layer,
                method.name(),
                device,
            )?;
            let fitted = adgan::score::classic::fit_classic(
                kind,
                &extractor,
                &train.images.to_device(device),
                None,
                &config,
            )?;
            (fitted.detector, 1024)
        }
    })
}

fn run_score(args: &ScoreArgs) -> Result<()> {
    let dest = Destination::check(&args.out, args.force).map_err(|e| {
        e.context(format!(
            "--out {}: pass --force to replace an existing file, or choose another path",
            args.out.display()
        ))
    })?;
    let device = device::select(args.device)?;
    let gan = checkpoint::load_gan(&args.model, device)?;
    let spec = ImageSpec {
        size: gan.config.model.image_size,
        channels: gan.config.model.channels,
    };
    if let Some(dir) = &args.images {
        // A folder is streamed: only a batch of images is in memory at a time. Its files are
        // listed and their headers read before any work.
        let mut stream =
            FolderStream::open(dir, spec, gan.config.data.fit, on_bad_file(args.strict))?;
        let (mut detector, batch) = detector_for(args, &gan, spec, device)?;
        eprintln!(
            "scoring {} images with {}",
            stream.len(),
            args.method.name()
        );
        let scores = match &dest {
            Destination::File(path) => {
                let method = serde_json::json!({
                    "name": args.method.name(),
                    "search": args.search.config(),
                    "pca_dim": args.pca_dim,
                    "train": args.train.as_deref().map(std::path::absolute).transpose()?,
                    "alexnet_layer": format!("{:?}", args.alexnet_layer),
                });
                let job = score_job(&args.model, &gan, method, &stream.ids())?;
                let mut journal = ScoreJournal::open(path, &job)?;
                if !journal.done().is_empty() {
                    eprintln!(
                        "continuing: {} of {} images were scored by an earlier run of this command",
                        journal.done().len(),
                        stream.len()
                    );
                }
                let scores = score_with_progress(
                    detector.as_mut(),
                    &mut stream,
                    batch,
                    device,
                    Some(&mut journal),
                )?;
                write_stream_scores(&dest, &stream, &scores)?;
                journal.finish()?;
                scores
            }
            Destination::Stdout => {
                let scores =
                    score_with_progress(detector.as_mut(), &mut stream, batch, device, None)?;
                write_stream_scores(&dest, &stream, &scores)?;
                scores
            }
        };
        let skipped = stream.skipped();
        eprintln!(
            "wrote {} scores to {}{}",
            scores.len() - skipped.len(),
            dest.describe(),
            if skipped.is_empty() {
                String::new()
            } else {
                format!("; {} unreadable files skipped", skipped.len())
            }
        );
        return Ok(());
    }
    let (mut detector, batch) = detector_for(args, &gan, spec, device)?;
    let Some(kind) = args.dataset else {
        bail!("give the images to score: --images DIR, or --dataset KIND --data PATH")
    };
    let mut data = data_source(kind, args.data.as_deref(), args.labels.as_deref(), 0)?.load(
        args.split,
        spec,
        gan.config.data.fit,
    )?;
    if let Some(class) = &args.normal_class {
        let normal = adgan::data::normal_class_index(&data, class)?;
        if args.n_test > data.len() {
            eprintln!(
                "note: the {} split has {} images, fewer than --n-test {}: all of them are scored",
                value_name(&args.split),
                data.len(),
                args.n_test
            );
        }
        data = adgan::data::draw_test(&data, normal, args.n_test, args.draw_seed)?.0;
    }
    report_skipped(&data.skipped, None)?;
    eprintln!("scoring {} images with {}", data.len(), args.method.name());
    let scores = score_with_progress(
        detector.as_mut(),
        &mut { &data.images },
        batch,
        device,
        None,
    )?;
    adgan::report::write_scores(&dest, &data, &scores)?;
    eprintln!("wrote {} scores to {}", scores.len(), dest.describe());
    if let (Some(class), Some(labels)) = (&args.normal_class, &data.labels) {
        let auc = adgan::eval::roc_auc(&scores, labels)?;
        println!(
            "one-vs-all, normal class {class}: ROC-AUC {auc:.4} on {} test images",
            scores.len()
        );
    }
    Ok(())
}

/// What identifies a scoring job in its journal: the model and checkpoint, the method and its
/// settings (`method`: any JSON), and the images (a digest of their ids).
fn score_job(
    model: &Path,
    gan: &checkpoint::TrainedGan,
    method: serde_json::Value,
    ids: &[String],
) -> Result<serde_json::Value> {
    use sha2::{Digest, Sha256};
    let digest = Sha256::digest(ids.join("\n").as_bytes());
    Ok(serde_json::json!({
        "model": std::path::absolute(model)?,
        "iteration": gan.iteration,
        "method": method,
        "images": format!("{digest:x}"),
    }))
}

/// Writes the scores of a streamed folder, leaving out (and listing beside a result file) the
/// files that could not be read.
fn write_stream_scores(dest: &Destination, stream: &FolderStream, scores: &[f64]) -> Result<()> {
    let skipped = stream.skipped();
    let left_out: std::collections::BTreeSet<usize> = skipped.iter().map(|(i, _)| *i).collect();
    let order: Vec<usize> = (0..scores.len())
        .filter(|i| !left_out.contains(i))
        .collect();
    let labels = stream.labels();
    adgan::report::write_score_table(dest, &stream.ids(), labels.as_deref(), scores, &order)?;
    let list = match dest {
        Destination::File(path) => Some(path.with_file_name(format!(
            "{}.skipped.txt",
            path.file_name().unwrap_or_default().to_string_lossy()
        ))),
        Destination::Stdout => None,
    };
    let skipped: Vec<SkippedImage> = skipped.into_iter().map(|(_, s)| s).collect();
    report_skipped(&skipped, list.as_deref())
}

fn run_bench_stream(args: &BenchStreamArgs) -> Result<()> {
    let device = device::select(args.device)?;
    let f = adgan::bench::streaming_scoring(&args.dir, args.images, args.batch, device)?;
    let peak = f
        .peak_rss_mib
        .map_or("unknown".to_string(), |m| format!("{m:.0} MiB"));
    println!(
        "streamed {} images from {} in {:.1} s ({:.0} images/s, critic, batch {}); peak \
         memory {peak}; the images as one tensor would take {:.0} MiB",
        f.images,
        args.dir.display(),
        f.seconds,
        f.images as f64 / f.seconds,
        args.batch,
        f.tensor_mib
    );
    Ok(())
}

fn run_bench_profile(args: &BenchProfileArgs) -> Result<()> {
    let device = device::select(args.device)?;
    let search = args.search.config();
    let (bench, what) = args.search.generator(&args.shape, device)?;
    let phases =
        adgan::bench::search_profile(bench.generator(), search, args.images, args.steps, device)?;
    let total: f64 = phases.iter().map(|(_, ms)| ms).sum();
    println!(
        "one search step ({what}, {}, {} image(s), {} threads, {}): {total:.1} ms",
        args.search.describe(),
        args.images,
        tch::get_num_threads(),
        device::name(device)
    );
    for (name, ms) in phases {
        println!("  {name:<34} {ms:>8.2} ms  {:>5.1}%", 100.0 * ms / total);
    }
    Ok(())
}

fn run_bench_score(args: &BenchScoreArgs) -> Result<()> {
    let device = device::select(args.device)?;
    let search = args.search.config();
    let (bench, what) = args.search.generator(&args.shape, device)?;
    let generator = bench.generator();
    // On the CPU the automatic choice is the loop itself; time 8 images per search there.
    let batch = match args.batch_images {
        Some(b) => b,
        None if !device.is_cuda() => 8,
        None => adgan::score::adgan::auto_batch(generator, &search, device),
    }
    .clamp(1, args.images);
    let shape = format!(
        "{what}, {}, {} threads, {}",
        args.search.describe(),
        tch::get_num_threads(),
        device::name(device)
    );
    let flops = adgan::bench::search_flops(generator, &search);
    let tflops = |rate: f64| {
        let achieved = rate * flops / 1e12;
        match args.peak_tflops {
            Some(peak) => format!(
                "{achieved:.3} TFLOP/s = {:.1}% of peak",
                100.0 * achieved / peak
            ),
            None => format!("{achieved:.3} TFLOP/s"),
        }
    };
    let measure =
        |batch| adgan::bench::scoring_throughput(generator, search, batch, args.images, device);
    let looped = measure(1)?;
    println!(
        "score loop    ({shape}, 1 image per search): {looped:.2} images/s, {}",
        tflops(looped)
    );
    let batched = measure(batch)?;
    println!(
        "score batched ({shape}, {batch} images per search): {batched:.2} images/s ({:.2}x the \
         loop), {}",
        batched / looped,
        tflops(batched)
    );
    Ok(())
}

fn run_bench_baselines(args: &BenchBaselinesArgs) -> Result<()> {
    let device = device::select(args.device)?;
    let class = args
        .data
        .normal_class
        .as_deref()
        .context("bench baselines needs --normal-class")?;
    let source = args.data.source(0)?;
    let spec = ImageSpec {
        size: 32,
        channels: args.data.default_channels(),
    };
    let train = source.load(Split::Train, spec, args.data.fit)?;
    let test = source.load(Split::Test, spec, args.data.fit)?;
    let normal = adgan::data::normal_class_index(&train, class)?;
    let task = adgan::data::one_vs_all(&train, &test, normal, args.n_test, args.draw_seed)?;
    let labels = task.test.labels.clone().unwrap_or_default();
    if let Some(path) = &args.dump {
        let labels_tensor = tch::Tensor::from_slice(&labels);
        adgan::checkpoint::save_tensors(
            path,
            &[
                ("train".to_string(), task.train.images.flatten(1, -1)),
                ("test".to_string(), task.test.images.flatten(1, -1)),
                ("labels".to_string(), labels_tensor),
            ],
        )?;
        println!("wrote {}", path.display());
    }
    println!(
        "class {class}: {} normal training images, {} test images, PCA d' = {}, {} threads, {}",
        task.train.len(),
        task.test.len(),
        args.pca_dim,
        tch::get_num_threads(),
        device::name(device)
    );
    let runs = adgan::bench::classic_baselines(
        &task.train.images,
        &task.test.images,
        &labels,
        args.pca_dim,
        args.seed,
        &args.methods,
        device,
    )?;
    for run in runs {
        let chosen: Vec<String> = run
            .chosen
            .iter()
            .map(|(k, v)| format!("{k}={v:.6}"))
            .collect();
        println!(
            "{:<8} AUC {:.4}  fit {:.2} s  score {:.2} s  {}",
            run.kind.name(),
            run.auc,
            run.fit_seconds,
            run.score_seconds,
            chosen.join(" ")
        );
    }
    Ok(())
}

fn run_one_vs_all(args: &OneVsAllArgs) -> Result<()> {
    let source = data_source(
        args.dataset,
        args.data.as_deref(),
        args.labels.as_deref(),
        args.gan.seed,
    )?;
    let default_channels = if matches!(args.dataset, DatasetKind::Mnist | DatasetKind::Idx) {
        1
    } else {
        3
    };
    let config = ExperimentConfig {
        source,
        classes: experiment::parse_classes(&args.classes)?,
        methods: args.methods.clone(),
        n_test: args.n_test,
        seed: args.draw_seed,
        fit: args.fit,
        model: args.gan.model_config(default_channels)?,
        train: args.gan.train_config()?,
        search: args.search.config(),
        selection: args.selection.config(&args.search.config()),
        baselines: PcaConfig {
            dims: args.pca_dims.clone(),
            ..PcaConfig::default()
        },
        anogan: AnoganConfig::default(),
        autoencoder: AutoencoderConfig::default(),
        alexnet: args.alexnet.clone(),
        alexnet_layer: args.alexnet_layer,
    };
    let device = device::select(args.device)?;
    let start = std::time::Instant::now();
    let bar = ProgressBar::new(0);
    bar.set_style(
        ProgressStyle::with_template(
            "{prefix:>22} {bar:30} {pos}/{len}  [{elapsed_precise} < {eta_precise}]  {msg}",
        )
        .expect("valid template"),
    );
    let mut stage = String::new();
    // Without a terminal the bar draws nothing: each stage and each result is printed as a
    // line instead, so a log shows where a long run is.
    let say = |bar: &ProgressBar, line: String| {
        if bar.is_hidden() {
            eprintln!("{line}");
        } else {
            bar.println(line);
        }
    };
    // Points the bar at a stage (resetting length and ETA when the stage changes) and moves it.
    let mut show = |bar: &ProgressBar, name: String, done: usize, total: usize| {
        if stage != name {
            if bar.is_hidden() {
                eprintln!("{name} ({total})");
            }
            bar.set_prefix(name.clone());
            bar.set_length(total as u64);
            bar.set_message("");
            bar.reset_eta();
            stage = name;
        }
        bar.set_position(done as u64);
    };
    let mut on_event = |event: Event| match event {
        Event::Training { class, progress } => {
            let name = format!("class {class}: train");
            show(&bar, name, progress.iteration, progress.total);
            bar.set_message(format!("W~{:.4}", progress.losses.wasserstein));
        }
        Event::Fitting {
            class,
            method,
            done,
            total,
        } => show(
            &bar,
            format!("class {class}: fit {}", method.name()),
            done,
            total,
        ),
        Event::Scoring {
            class,
            method,
            done,
            total,
        } => show(
            &bar,
            format!("class {class}: {}", method.name()),
            done,
            total,
        ),
        Event::Validating {
            class,
            iteration,
            done,
            total,
        } => show(
            &bar,
            format!("class {class}: validate {iteration}"),
            done,
            total,
        ),
        Event::Validated { class, point } => say(
            &bar,
            format!(
                "class {class} iteration {}: validation ROC-AUC {:.4} ({}; {:.0} s)",
                point.iteration,
                point.auc,
                experiment::candidate_label(&point.search),
                point.seconds
            ),
        ),
        Event::Note(note) => say(&bar, format!("note: {note}")),
        Event::Skipped { class, method } => say(
            &bar,
            format!("class {class} {}: finished earlier, kept", method.name()),
        ),
        Event::Finished { cell } => say(
            &bar,
            format!(
                "class {} {}: ROC-AUC {:.4} ({:.0} s)",
                cell.class,
                cell.method.name(),
                cell.auc,
                cell.seconds
            ),
        ),
    };
    if args.selection.validation_only {
        let curves = experiment::run_validation(&config, &args.out, device, &mut on_event)?;
        bar.finish_and_clear();
        let table = experiment::curve_table(&curves);
        let path = args.out.join("validation.md");
        checkpoint::write_atomic(&path, |tmp| Ok(std::fs::write(tmp, &table)?))?;
        println!("{table}");
        println!(
            "validation ROC-AUC of ADGAN in {}; {:.0} s",
            path.display(),
            start.elapsed().as_secs_f64()
        );
        return Ok(());
    }
    let cells = experiment::run_one_vs_all(&config, &args.out, device, &mut on_event)?;
    bar.finish_and_clear();
    experiment::write_summary(&config, &cells, &args.out)?;
    adgan::report_html::write_report(&config, &cells, &args.out)?;
    println!("{}", experiment::auc_table(&config, &cells));
    println!(
        "results in {} (results.json, table.md, roc.svg, galleries/, report.html); {:.0} s",
        args.out.display(),
        start.elapsed().as_secs_f64()
    );
    Ok(())
}

fn run_rank(args: &RankArgs) -> Result<()> {
    adgan::output::check_folder(&args.out, &adgan::report::RANKING_FILES, args.force).map_err(
        |e| {
            e.context(format!(
                "--out {}: pass --force to replace an earlier ranking, or choose another folder",
                args.out.display()
            ))
        },
    )?;
    let device = device::select(args.device)?;
    let gan = checkpoint::load_gan(&args.model, device)?;
    let spec = ImageSpec {
        size: gan.config.model.image_size,
        channels: gan.config.model.channels,
    };
    let mut stream = FolderStream::open(
        &args.images,
        spec,
        gan.config.data.fit,
        on_bad_file(args.strict),
    )?;
    let (mut detector, batch) = adgan_detector(
        &gan,
        args.search.config(),
        args.search.batch_images()?,
        device,
    )?;
    let table = args.out.join(adgan::report::RANKING_FILES[0]);
    let method = serde_json::json!({"name": "adgan", "search": args.search.config()});
    let mut journal = ScoreJournal::open(
        &table,
        &score_job(&args.model, &gan, method, &stream.ids())?,
    )?;
    let all_scores = score_with_progress(
        &mut detector,
        &mut stream,
        batch,
        device,
        Some(&mut journal),
    )?;
    // Unreadable files are left out of the ranking and listed beside it.
    let skipped = stream.skipped();
    let left_out: std::collections::BTreeSet<usize> = skipped.iter().map(|(i, _)| *i).collect();
    let kept: Vec<usize> = (0..all_scores.len())
        .filter(|i| !left_out.contains(i))
        .collect();
    let all_ids = stream.ids();
    let ids: Vec<String> = kept.iter().map(|&i| all_ids[i].clone()).collect();
    let labels: Option<Vec<i64>> = stream
        .labels()
        .map(|l| kept.iter().map(|&i| l[i]).collect());
    let scores: Vec<f64> = kept.iter().map(|&i| all_scores[i]).collect();
    let files = adgan::report::write_ranking(
        &args.out,
        &ids,
        labels.as_deref(),
        &scores,
        args.top,
        &mut |indices| {
            let original: Vec<usize> = indices.iter().map(|&i| kept[i]).collect();
            stream.images(&original)
        },
    )?;
    journal.finish()?;
    let skipped: Vec<SkippedImage> = skipped.into_iter().map(|(_, s)| s).collect();
    report_skipped(&skipped, Some(&args.out.join("skipped.txt")))?;
    let order = adgan::score::ranking(&scores);
    println!("ranked {} images; most anomalous:", ids.len());
    for &i in order.iter().take(5) {
        println!("  {:>10.2}  {}", scores[i], ids[i]);
    }
    println!("  scores:          {}", files.scores.display());
    println!("  most anomalous:  {}", files.most_anomalous.display());
    println!("  least anomalous: {}", files.least_anomalous.display());
    Ok(())
}
