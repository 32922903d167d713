//! `adgan score`: one score per image (ADGAN, or any other method), from a folder (streamed
//! and resumable) or a data set.

use super::args::{data_source, out_error, value_name, DatasetKind, DeviceArgs, SearchArgs};
use super::folder::{FolderJob, Scored};
use super::progress::{self, on_bad_file, report_skipped, score_with_progress};
use adgan::alexnet::AlexNetLayer;
use adgan::autoencoder::AutoencoderConfig;
use adgan::data::{Shard, Split};
use adgan::output::{Destination, OutputLock, ShardRecord};
use adgan::run::{self, TrainedGan};
use adgan::score::features::PcaConfig;
use adgan::score::method::{self, Method};
use adgan::score::AfterBatch;
use adgan::scorer::{Scorer, ScorerConfig};
use anyhow::{bail, Context, Result};
use clap::Args;
use std::path::{Path, PathBuf};

/// Test images drawn for --normal-class when --n-test is not given (the paper's 5000).
const DEFAULT_N_TEST: usize = 5000;

#[derive(Args, Debug)]
pub(crate) struct ScoreArgs {
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
    /// Test images drawn for --normal-class [default: 5000].
    #[arg(long, requires = "normal_class")]
    n_test: Option<usize>,
    /// Seed of the --n-test draw.
    #[arg(long, default_value_t = 0)]
    draw_seed: u64,
    /// Output file: CSV, or JSON when it ends in .json; `-` writes CSV to standard output.
    /// An existing file is replaced only with --force; a run's own files never.
    #[arg(long, short)]
    out: PathBuf,
    /// Replace the output file if it exists.
    #[arg(long)]
    pub(crate) force: bool,
    /// Stop at the first image file that cannot be read (default: skip it, warn, and list it
    /// in OUT.skipped.txt).
    #[arg(long)]
    strict: bool,
    /// Score only part I of N of the folder's sorted images (from 0: 0/4, 1/4, 2/4, 3/4), for
    /// one of several machines; `adgan merge` joins the parts' tables into the one table a
    /// single run writes.
    #[arg(long)]
    shard: Option<Shard>,
    /// Write an anomaly map of every image into this folder (adgan only): a PNG strip of the
    /// image, its best reconstruction g(z*) and the residual |x - g(z*)| as a heat map on one
    /// fixed scale (legend.png).
    #[arg(long)]
    pub(crate) maps: Option<PathBuf>,
    /// With a calibrated run (`adgan calibrate`; `train` calibrates itself), flag the images
    /// whose conformal p-value is at most alpha: on normal images at most this fraction are
    /// flagged, in expectation.
    #[arg(long, default_value_t = adgan::calibration::DEFAULT_ALPHA)]
    pub(crate) alpha: f64,
    /// Scoring method: ADGAN (adgan, or adgan-ic corrected for image complexity), the critic or
    /// latent prior of the GAN, AnoGAN, or a baseline fitted on the GAN's training images (or on
    /// --train): dcae and vae (trained once into RUN/baselines/), kde, ocsvm, iforest, gmm
    /// [default: adgan-ic where the run is calibrated with the same search flags, as `adgan
    /// train` leaves it; else adgan].
    #[arg(long, value_enum)]
    method: Option<Method>,
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
    #[command(flatten)]
    device: DeviceArgs,
}

/// The detector of the scorer, its baselines fitted on --train when given, announced on
/// standard error.
fn build_detector<'g>(
    args: &ScoreArgs,
    gan: &TrainedGan,
    scorer: &Scorer<'g>,
) -> Result<method::Built<'g>> {
    let device = args.device.select()?;
    let normal = match (&args.train, scorer.fits_baselines()) {
        (Some(dir), true) => {
            let (spec, fit) = (gan.config.model.image_spec(), gan.config.data.fit);
            let images = adgan::data::load_folder(dir, spec, fit, on_bad_file(args.strict))?;
            report_skipped(&images.skipped, None)?;
            Some(images)
        }
        _ => None,
    };
    let method = scorer.method;
    let mut bar = progress::iteration_count_bar(AutoencoderConfig::default().iterations);
    let built = scorer
        .build(normal.as_ref(), device, &mut |done, _| bar.set(done))
        .with_context(|| match args.train.is_none() && scorer.fits_baselines() {
            true => format!(
                "--method {} (pass --train DIR to fit it on other normal images than the run's)",
                method.name()
            ),
            false => format!("--method {}", method.name()),
        })?;
    bar.finish();
    eprintln!("{} on {}", built.summary, adgan::device::name(device));
    Ok(built)
}

pub(crate) fn run(args: &ScoreArgs) -> Result<()> {
    let dest = Destination::check(&args.out, args.force).map_err(out_error("--out", &args.out))?;
    let device = args.device.select()?;
    args.search.warn_if_bf16_slow(device);
    let gan = run::load_gan(&args.model, device)?;
    let config = ScorerConfig {
        method: args.method,
        search: args.search.config(),
        batch_images: args.search.batch_images()?,
        cuda_graph: args.search.cuda_graph,
        alpha: args.alpha,
        pca_dim: args.pca_dim,
        alexnet: args.alexnet.clone(),
        alexnet_layer: args.alexnet_layer,
    };
    let scorer = super::resolve::scorer(&gan, config)?;
    // Checked before any fitting or scoring.
    if args.maps.is_some() && !matches!(scorer.method, Method::Adgan | Method::AdganIc) {
        bail!(
            "--maps needs --method adgan or adgan-ic (the maps show the search's \
             reconstructions; {} reconstructs nothing)",
            scorer.method.name()
        );
    }
    match &args.images {
        Some(dir) => score_folder(args, &gan, dir, &dest, &scorer),
        None => score_data_set(args, &gan, &dest, &scorer),
    }
}

/// Scores a folder, streamed (a batch of images in memory at a time) and resumable through a
/// journal beside the output. Its files are listed and their headers read before any work.
fn score_folder(
    args: &ScoreArgs,
    gan: &TrainedGan,
    dir: &Path,
    dest: &Destination,
    scorer: &Scorer,
) -> Result<()> {
    let job = FolderJob {
        model: &args.model,
        gan,
        dir,
        shard: args.shard.unwrap_or(Shard::WHOLE),
        strict: args.strict,
    };
    let stream = job.open()?;
    let mut built = build_detector(args, gan, scorer)?;
    let decide = scorer.decisions.as_ref();
    let _lock = lock_output(dest)?;
    let part = match job.shard.count {
        1 => String::new(),
        _ => format!(" (shard {})", job.shard),
    };
    eprintln!(
        "scoring {} images with {}{part}",
        stream.len(),
        scorer.method.name()
    );
    let method = adgan::output::JobMethod {
        name: scorer.method.name().to_string(),
        search: args.search.config(),
        pca_dim: Some(args.pca_dim),
        train: args.train.as_deref().map(std::path::absolute).transpose()?,
        alexnet_layer: Some(format!("{:?}", args.alexnet_layer)),
    };
    let path = match dest {
        Destination::File(path) => Some(path.as_path()),
        Destination::Stdout => None,
    };
    let ids = stream.ids();
    let mut maps = super::score_maps::map_writer(args, scorer.method, gan, &ids, decide)?;
    let alpha = decide.map(|_| args.alpha);
    let after_batch = maps.as_mut().map(|m| m as &mut AfterBatch);
    let done = job.score(stream, &mut built, method, path, alpha, after_batch)?;
    done.scored.write(dest, decide, args.alpha)?;
    let beside = |suffix: &str, p: &Path| {
        let name = p.file_name().unwrap_or_default().to_string_lossy();
        p.with_file_name(format!("{name}{suffix}"))
    };
    match path {
        Some(p) => done.finish(
            ShardRecord::path_for(p, false),
            Some(&beside(".skipped.txt", p)),
        ),
        None => done.finish(PathBuf::new(), None),
    }
}

/// Scores a data set's split, or a seeded one-vs-all draw of it with --normal-class.
fn score_data_set(
    args: &ScoreArgs,
    gan: &TrainedGan,
    dest: &Destination,
    scorer: &Scorer,
) -> Result<()> {
    let device = args.device.select()?;
    let spec = gan.config.model.image_spec();
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
        let n_test = args.n_test.unwrap_or(DEFAULT_N_TEST);
        if n_test > data.len() {
            eprintln!(
                "note: the {} split has {} images, fewer than --n-test {}: all of them are scored",
                value_name(&args.split),
                data.len(),
                n_test
            );
        }
        data = adgan::data::draw_test(&data, normal, n_test, args.draw_seed)?.0;
    }
    report_skipped(&data.skipped, None)?;
    let built = build_detector(args, gan, scorer)?;
    let decide = scorer.decisions.as_ref();
    let _lock = lock_output(dest)?;
    let (mut detector, batch) = (built.detector, built.batch);
    eprintln!(
        "scoring {} images with {}",
        data.len(),
        scorer.method.name()
    );
    let mut images = &data.images;
    let mut maps = super::score_maps::map_writer(args, scorer.method, gan, &data.ids, decide)?;
    let scores = score_with_progress(
        detector.as_mut(),
        &mut images,
        batch,
        device,
        None,
        maps.as_mut().map(|m| m as &mut AfterBatch),
    )?;
    let scored = Scored {
        ids: data.ids.clone(),
        labels: data.labels.clone(),
        kept: (0..scores.len()).collect(),
        scores,
        anomaly_labels: args.normal_class.is_some(),
    };
    scored.write(dest, decide, args.alpha)
}

/// The lock of the output, taken once every setting is checked and the detector built: from
/// here on this command owns it.
fn lock_output(dest: &Destination) -> Result<Option<OutputLock>> {
    match dest {
        Destination::File(path) => Ok(Some(OutputLock::acquire(path, false, "adgan score")?)),
        Destination::Stdout => Ok(None),
    }
}
