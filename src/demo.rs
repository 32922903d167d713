//! The demo: a small WGAN-GP trained on embedded discs (the normal class, no download), then
//! ADGAN scores held-out discs, squares, crosses and stripes, and the ROC-AUC says how well the
//! shapes that are not discs stand out.

use crate::data::{demo, draw_test, DataSource, Fit, Split};
use crate::eval::roc_auc;
use crate::model::ModelConfig;
use crate::output::Destination;
use crate::score::adgan::AdganConfig;
use crate::score::method::{self, Inputs, Method};
use crate::score::score_all;
use crate::train::{self, Progress, RunConfig, TrainConfig, CHECKPOINT_FILE, FORMAT_VERSION};
use anyhow::Result;
use std::ops::ControlFlow;
use std::path::{Path, PathBuf};
use tch::Device;

/// lr_theta of the demo's search: the small demo generator needs gentler adaptation than the
/// MNIST one (the measurements are in RESULTS.md, "The search's learning rates").
pub const DEMO_LR_THETA: f64 = 5e-5;

/// What the demo does.
#[derive(Debug, Clone)]
pub struct DemoConfig {
    /// Generator iterations.
    pub iterations: usize,
    /// Seed of the data, the training and the test draw.
    pub seed: u64,
    /// Held-out images to score.
    pub n_test: usize,
    /// The search (the paper's, with [`DEMO_LR_THETA`]).
    pub search: AdganConfig,
    /// Images per search; chosen from memory when `None`.
    pub batch_images: Option<usize>,
}

impl Default for DemoConfig {
    fn default() -> Self {
        Self {
            iterations: 400,
            seed: 0,
            n_test: 400,
            search: AdganConfig {
                lr_theta: DEMO_LR_THETA,
                ..AdganConfig::default()
            },
            batch_images: None,
        }
    }
}

/// What the demo found.
#[derive(Debug, Clone)]
pub struct DemoOutcome {
    /// The run folder.
    pub run_dir: PathBuf,
    /// Whether an earlier demo run in it was continued.
    pub continued: bool,
    /// Generator iterations trained.
    pub iterations: usize,
    /// Normal images trained on.
    pub n_train: usize,
    /// Held-out images scored.
    pub n_scored: usize,
    /// ROC-AUC of the ADGAN scores (anomalous = positive).
    pub auc: f64,
    /// Mean score of the normal and of the anomalous held-out images.
    pub mean_normal: f64,
    /// See `mean_normal`.
    pub mean_anomalous: f64,
    /// The score table written.
    pub scores: PathBuf,
}

/// The architecture of the demo's GAN: width 32, the paper's latent dimension.
pub fn demo_model() -> ModelConfig {
    ModelConfig {
        image_size: 32,
        channels: 3,
        latent_dim: 256,
        width: 32,
    }
}

/// Trains (or continues) the demo GAN in `out`, scores the held-out shapes into
/// `out/scores.csv`, and returns the outcome. `on_train` follows the training (and may stop it),
/// `on_score(done, total)` the scoring.
pub fn run(
    out: &Path,
    config: &DemoConfig,
    device: Device,
    on_train: &mut dyn FnMut(&Progress) -> ControlFlow<()>,
    on_score: &mut dyn FnMut(usize, usize),
) -> Result<DemoOutcome> {
    let source = DataSource::Demo { seed: config.seed };
    let model = demo_model();
    let spec = model.image_spec();
    let (data, provenance) =
        train::load_training_data(&source, Some(demo::CLASS_NAMES[0]), spec, Fit::Pad)?;
    let run_config = RunConfig {
        format_version: FORMAT_VERSION,
        model,
        train: TrainConfig {
            iterations: config.iterations,
            seed: config.seed,
            checkpoint_every: 100,
            sample_every: 100,
            ..TrainConfig::gradient_penalty()
        },
        data: provenance,
    };
    let continued = out.join(CHECKPOINT_FILE).exists();
    let trained = train::train(
        out,
        &run_config,
        &data,
        device,
        train::TrainOptions::resume(continued),
        on_train,
    )?;
    let gan = crate::run::load_gan(out, device)?;
    let test = source.load(Split::Test, spec, Fit::Pad)?;
    let (test, _) = draw_test(&test, 0, config.n_test, config.seed)?;
    let inputs = Inputs::for_gan(device, &gan, config.search, config.batch_images);
    let mut built = method::build(Method::Adgan, &inputs, &mut |_, _| {})?;
    let scores = score_all(
        built.detector.as_mut(),
        &test.images,
        built.batch,
        device,
        on_score,
    )?;
    let scores_path = out.join("scores.csv");
    crate::report::write_scores(
        &Destination::File(scores_path.clone()),
        &test,
        &scores,
        None,
    )?;
    let labels = test.labels.as_deref().unwrap_or_default();
    let mean_of = |wanted: i64| {
        let picked: Vec<f64> = scores
            .iter()
            .zip(labels)
            .filter(|(_, &l)| l == wanted)
            .map(|(s, _)| *s)
            .collect();
        picked.iter().sum::<f64>() / picked.len().max(1) as f64
    };
    Ok(DemoOutcome {
        run_dir: out.to_path_buf(),
        continued,
        iterations: trained.iteration,
        n_train: data.len(),
        n_scored: scores.len(),
        auc: roc_auc(&scores, labels)?,
        mean_normal: mean_of(0),
        mean_anomalous: mean_of(1),
        scores: scores_path,
    })
}
