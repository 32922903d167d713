//! The paper's one-vs-all experiment (Sect. 4.1): for each normal class, train a GAN on that
//! class, score a seeded draw of test images with every method, and record ROC-AUC per cell.
//!
//! Every finished (class, method) cell is written atomically to `cells/`, and a re-run skips
//! the cells already there, so a killed experiment loses at most the cell in progress. A class
//! whose GAN is already trained with the same configuration reuses it (a half-trained one
//! resumes).

use crate::alexnet::AlexNetLayer;
use crate::autoencoder::{Autoencoder, AutoencoderConfig, AutoencoderKind};
use crate::checkpoint::{self, read_json, write_json, TrainedGan};
use crate::data::{self, DataSource, Dataset, Fit, ImageSpec, OneVsAll, Split, ValidationSplit};
use crate::eval::{average_precision, roc_auc};
use crate::model::ModelConfig;
use crate::score::adgan::{auto_batch, Adgan, AdganConfig};
use crate::score::anogan::{Anogan, AnoganConfig};
use crate::score::classic::{fit_classic, Classic};
use crate::score::critic::CriticScore;
use crate::score::features::{FeatureExtractor, PcaConfig, Validation};
use crate::score::prior::prior_scores;
use crate::score::{score_all, score_columns, to_scores};
use crate::selection::{self, Curve, CurveEvent, CurvePoint, CurveTask, SelectionConfig};
use crate::train::{self, Progress, RunConfig, TrainConfig, FORMAT_VERSION};
use anyhow::{bail, ensure, Context, Result};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::ops::ControlFlow;
use std::path::{Path, PathBuf};
use std::time::Instant;
use tch::Device;

/// A scoring method of the experiment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Method {
    /// ADGAN: mean final reconstruction loss of the latent search.
    Adgan,
    /// Negated critic value.
    Critic,
    /// Negated prior log-likelihood of the latents the search ends at.
    Prior,
    /// AnoGAN: latent-only search with residual and critic-feature loss.
    Anogan,
    /// Convolutional autoencoder, reconstruction error.
    Dcae,
    /// Variational autoencoder, negative ELBO.
    Vae,
    /// Gaussian KDE on PCA features.
    Kde,
    /// One-class SVM on PCA features.
    Ocsvm,
    /// Isolation Forest on PCA features.
    Iforest,
    /// Gaussian mixture on PCA features.
    Gmm,
    /// Gaussian KDE on PCA of AlexNet features (final convolutional layer).
    #[value(name = "kde-alexnet")]
    #[serde(rename = "kde-alexnet")]
    KdeAlexnet,
    /// One-class SVM on PCA of AlexNet features (final convolutional layer).
    #[value(name = "ocsvm-alexnet")]
    #[serde(rename = "ocsvm-alexnet")]
    OcsvmAlexnet,
}

impl Method {
    /// The name used in file names and tables.
    pub fn name(self) -> &'static str {
        match self {
            Method::Adgan => "adgan",
            Method::Critic => "critic",
            Method::Prior => "prior",
            Method::Anogan => "anogan",
            Method::Dcae => "dcae",
            Method::Vae => "vae",
            Method::Kde => "kde",
            Method::Ocsvm => "ocsvm",
            Method::Iforest => "iforest",
            Method::Gmm => "gmm",
            Method::KdeAlexnet => "kde-alexnet",
            Method::OcsvmAlexnet => "ocsvm-alexnet",
        }
    }

    /// Whether the method needs the trained GAN.
    pub fn needs_gan(self) -> bool {
        matches!(
            self,
            Method::Adgan | Method::Critic | Method::Prior | Method::Anogan
        )
    }

    /// The autoencoder behind the method, if it is one.
    pub fn autoencoder(self) -> Option<AutoencoderKind> {
        match self {
            Method::Dcae => Some(AutoencoderKind::Dcae),
            Method::Vae => Some(AutoencoderKind::Vae),
            _ => None,
        }
    }

    /// Whether the method works on AlexNet features instead of pixels.
    pub fn uses_alexnet(self) -> bool {
        matches!(self, Method::KdeAlexnet | Method::OcsvmAlexnet)
    }

    /// The classic baseline behind the method, if it is one.
    pub fn classic(self) -> Option<Classic> {
        match self {
            Method::Kde | Method::KdeAlexnet => Some(Classic::Kde),
            Method::Ocsvm | Method::OcsvmAlexnet => Some(Classic::OcSvm),
            Method::Iforest => Some(Classic::IsolationForest),
            Method::Gmm => Some(Classic::Gmm),
            _ => None,
        }
    }
}

/// Everything that defines a one-vs-all experiment; saved as `experiment.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ExperimentConfig {
    /// The data set.
    pub source: DataSource,
    /// Normal classes, one row of the table each (index or class name).
    pub classes: Vec<String>,
    /// Methods, one column each.
    pub methods: Vec<Method>,
    /// Test images drawn per class (5000 in the paper).
    pub n_test: usize,
    /// Seed of the test draws.
    pub seed: u64,
    /// How images are fitted to the model.
    pub fit: Fit,
    /// GAN architecture.
    pub model: ModelConfig,
    /// GAN training.
    pub train: TrainConfig,
    /// ADGAN search (also used by `prior`).
    pub search: AdganConfig,
    /// PCA and dimension choice of the classic baselines.
    #[serde(default)]
    pub baselines: PcaConfig,
    /// AnoGAN search.
    #[serde(default)]
    pub anogan: AnoganConfig,
    /// DCAE and VAE architecture and training.
    #[serde(default)]
    pub autoencoder: AutoencoderConfig,
    /// AlexNet weights (torchvision state dict as safetensors) for the `*-alexnet` methods.
    #[serde(default)]
    pub alexnet: Option<PathBuf>,
    /// The AlexNet layer the `*-alexnet` methods use (the final convolutional layer, as in the
    /// paper, unless fc7 is asked for).
    #[serde(default)]
    pub alexnet_layer: AlexNetLayer,
    /// How the GAN's training length and the search's learning rates are chosen on validation
    /// data (off unless `every` is set: then `train` and `search` are used as they are).
    #[serde(default)]
    pub selection: SelectionConfig,
}

impl ExperimentConfig {
    /// Checks every setting before any data is read or any network trained.
    pub fn validate(&self) -> Result<()> {
        ensure!(!self.classes.is_empty(), "no normal class given");
        ensure!(!self.methods.is_empty(), "no method given");
        ensure!(
            self.n_test > 0,
            "the number of test images must be at least 1"
        );
        self.model.validate()?;
        self.train.validate()?;
        self.search.validate(&self.model)?;
        self.baselines.validate()?;
        if self.selection.enabled() {
            self.selection.validate()?;
        }
        Ok(())
    }
}

/// One finished (class, method) cell: its figures and per-image scores.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Cell {
    /// Normal class.
    pub class: String,
    /// Method.
    pub method: Method,
    /// ROC-AUC (anomalous = positive).
    pub auc: f64,
    /// Average precision.
    pub average_precision: f64,
    /// Seconds spent scoring (`adgan` and `prior` share one search and both report its time).
    pub seconds: f64,
    /// Test image ids.
    pub ids: Vec<String>,
    /// Original class of each test image.
    pub test_classes: Vec<i64>,
    /// 1 = anomalous, 0 = normal.
    pub labels: Vec<i64>,
    /// Anomaly scores.
    pub scores: Vec<f64>,
    /// Hyperparameters the method chose on the training data (PCA dimension, bandwidth, ...).
    #[serde(default)]
    pub chosen: BTreeMap<String, f64>,
}

/// What the runner reports while it works.
#[derive(Debug)]
pub enum Event<'a> {
    /// Training the GAN of a class.
    Training {
        class: &'a str,
        progress: &'a Progress,
    },
    /// Training a baseline's network (an autoencoder): iterations done and total.
    Fitting {
        class: &'a str,
        method: Method,
        done: usize,
        total: usize,
    },
    /// Scoring a cell: images done and total.
    Scoring {
        class: &'a str,
        method: Method,
        done: usize,
        total: usize,
    },
    /// Scoring the validation images of a class at one point of its learning curve.
    Validating {
        class: &'a str,
        iteration: usize,
        done: usize,
        total: usize,
    },
    /// A point of a class's learning curve is finished.
    Validated {
        class: &'a str,
        point: &'a CurvePoint,
    },
    /// Something the user should know about the run (a setting that was adjusted).
    Note(String),
    /// A cell was already finished and is skipped.
    Skipped { class: &'a str, method: Method },
    /// A cell is finished and saved.
    Finished { cell: &'a Cell },
}

fn cell_path(out: &Path, class: &str, method: Method) -> PathBuf {
    out.join("cells")
        .join(format!("{class}-{}.json", method.name()))
}

/// Reads a finished cell, checking that it belongs to this experiment.
fn read_cell(path: &Path, class: &str, method: Method, n_test: usize) -> Result<Cell> {
    let cell: Cell = read_json(path, "adgan result cell")?;
    let consistent = cell.class == class
        && cell.method == method
        && cell.scores.len() == n_test
        && cell.labels.len() == n_test
        && cell.ids.len() == n_test;
    ensure!(
        consistent,
        "{} does not hold the {} cell of class {class} with {n_test} scores: delete it and run again",
        path.display(),
        method.name()
    );
    Ok(cell)
}

/// Creates the experiment folder `out`, or checks that it holds this experiment (methods may be
/// added to it), and saves the configuration.
fn check_experiment_folder(config: &ExperimentConfig, out: &Path) -> Result<()> {
    config.validate()?;
    crate::output::check_experiment_folder(out)?;
    std::fs::create_dir_all(out.join("cells"))
        .with_context(|| format!("cannot create {}", out.display()))?;
    let config_path = out.join("experiment.json");
    if config_path.exists() {
        let saved: ExperimentConfig = read_json(&config_path, "adgan experiment configuration")?;
        // Methods are columns and classes rows with cells of their own: adding either to an
        // experiment is fine.
        let same = ExperimentConfig {
            methods: config.methods.clone(),
            classes: config.classes.clone(),
            ..saved.clone()
        } == *config;
        if !same {
            let mut ours = config.clone();
            ours.methods.clone_from(&saved.methods);
            ours.classes.clone_from(&saved.classes);
            bail!(
                "{} holds another experiment ({}): choose another folder, or repeat that \
                 experiment's settings",
                out.display(),
                checkpoint::differences(&saved, &ours).join("; ")
            );
        }
    }
    write_json(&config_path, config)
}

/// Runs (or continues) the experiment in `out`; returns every cell, class by class.
pub fn run_one_vs_all(
    config: &ExperimentConfig,
    out: &Path,
    device: Device,
    on_event: &mut dyn FnMut(Event),
) -> Result<Vec<Cell>> {
    check_experiment_folder(config, out)?;
    let spec = ImageSpec {
        size: config.model.image_size,
        channels: config.model.channels,
    };
    let train_all = config.source.load(Split::Train, spec, config.fit)?;
    let test_all = config.source.load(Split::Test, spec, config.fit)?;
    // Every class is resolved before the first one is trained.
    let normals = config
        .classes
        .iter()
        .map(|class| data::normal_class_index(&train_all, class))
        .collect::<Result<Vec<i64>>>()?;
    let n_test = config.n_test.min(test_all.len());
    if n_test < config.n_test {
        on_event(Event::Note(format!(
            "the test split has {} images, fewer than the {} asked for: all of them are scored",
            test_all.len(),
            config.n_test
        )));
    }
    let mut cells = Vec::new();
    for (class, &normal) in config.classes.iter().zip(&normals) {
        let pending: Vec<Method> = config
            .methods
            .iter()
            .copied()
            .filter(|&m| !cell_path(out, class, m).exists())
            .collect();
        for &method in config.methods.iter().filter(|m| !pending.contains(m)) {
            cells.push(read_cell(
                &cell_path(out, class, method),
                class,
                method,
                n_test,
            )?);
            on_event(Event::Skipped { class, method });
        }
        if pending.is_empty() {
            continue;
        }
        let task = data::one_vs_all(&train_all, &test_all, normal, n_test, config.seed)?;
        let needs_gan = pending.iter().any(|m| m.needs_gan());
        let chosen = if needs_gan {
            let images = ClassImages {
                class,
                normal,
                normal_train: &task.train,
                train_all: &train_all,
            };
            Some(prepare_gan(
                config,
                &images,
                &out.join("runs"),
                device,
                on_event,
            )?)
        } else {
            None
        };
        // The classic baselines choose their PCA dimension on one validation draw per class.
        let validation = if pending.iter().any(|m| m.classic().is_some()) {
            let others = data::other_classes(&train_all, normal)?;
            let b = &config.baselines;
            Some(Validation::draw(
                &task.train,
                &others,
                b.holdout_fraction,
                b.seed,
            )?)
        } else {
            None
        };
        let context = ClassContext {
            config,
            class,
            task: &task,
            validation: validation.as_ref(),
            runs: out.join("runs"),
            gan: chosen.as_ref(),
            device,
        };
        // Every cell is written as soon as its method is scored (`adgan` and `prior` come
        // from one search and are written together).
        for &method in &pending {
            if cells
                .iter()
                .any(|c: &Cell| c.class == *class && c.method == method)
            {
                continue;
            }
            let scored = score_method(
                &context,
                method,
                &pending,
                &mut |m, done, total, fitting| {
                    on_event(progress_event(class, m, done, total, fitting))
                },
            )?;
            for mut result in scored {
                if let (true, Some(gan)) = (result.method.needs_gan(), &chosen) {
                    result.chosen.extend(gan.chosen.clone());
                }
                let labels = task.test.labels.clone().unwrap_or_default();
                let cell = Cell {
                    class: class.clone(),
                    method: result.method,
                    auc: roc_auc(&result.scores, &labels)?,
                    average_precision: average_precision(&result.scores, &labels)?,
                    seconds: result.seconds,
                    ids: task.test.ids.clone(),
                    test_classes: task.test_classes.clone(),
                    labels,
                    scores: result.scores,
                    chosen: result.chosen,
                };
                write_json(&cell_path(out, class, result.method), &cell)?;
                on_event(Event::Finished { cell: &cell });
                cells.push(cell);
            }
        }
    }
    let position = |cell: &Cell| {
        let class = config.classes.iter().position(|c| c == &cell.class);
        (class, config.methods.iter().position(|&m| m == cell.method))
    };
    cells.sort_by_key(position);
    Ok(cells)
}

/// The scores of one method on a class's test images.
struct Scored {
    method: Method,
    scores: Vec<f64>,
    /// Fitting (for the classic baselines) and scoring time.
    seconds: f64,
    chosen: BTreeMap<String, f64>,
}

impl Scored {
    fn new(method: Method, scores: Vec<f64>, seconds: f64) -> Self {
        Self {
            method,
            scores,
            seconds,
            chosen: BTreeMap::new(),
        }
    }
}

/// The GAN a class's methods use, with the search configuration and what was chosen on
/// validation data (empty when selection is off).
pub struct ChosenGan {
    /// The trained generator and critic (the chosen snapshot under selection).
    pub gan: TrainedGan,
    /// The ADGAN search to score with.
    pub search: AdganConfig,
    /// The chosen training length and learning rates and their validation ROC-AUC.
    pub chosen: BTreeMap<String, f64>,
}

/// The run configuration of the GAN of `class`, trained on `images`.
fn class_run(config: &ExperimentConfig, class: &str, images: &Dataset) -> RunConfig {
    RunConfig {
        format_version: FORMAT_VERSION,
        model: config.model,
        train: config.train,
        data: train::DataProvenance {
            source: config.source.clone(),
            split: Split::Train,
            normal_class: Some(class.to_string()),
            fit: config.fit,
            n_images: images.len(),
            fingerprint: images.fingerprint(),
        },
    }
}

/// The training images of one normal class.
struct ClassImages<'a> {
    /// The class as given (name or index).
    class: &'a str,
    /// Its index.
    normal: i64,
    /// Its training images.
    normal_train: &'a Dataset,
    /// The whole train split (other classes are the validation anomalies).
    train_all: &'a Dataset,
}

/// Trains (or resumes, or reuses) the GAN of one normal class in `runs/class-CLASS`. With
/// selection on, it trains on the normal images outside the validation split, draws the
/// learning curve, and returns the best snapshot with its search configuration; otherwise it
/// trains on every normal image and returns the final generator with the configured search.
fn prepare_gan(
    config: &ExperimentConfig,
    images: &ClassImages,
    runs: &Path,
    device: Device,
    on_event: &mut dyn FnMut(Event),
) -> Result<ChosenGan> {
    let class = images.class;
    let run_dir = runs.join(format!("class-{class}"));
    if !config.selection.enabled() {
        let run = class_run(config, class, images.normal_train);
        train::train(
            &run_dir,
            &run,
            images.normal_train,
            device,
            true,
            &mut |progress| {
                on_event(Event::Training { class, progress });
                ControlFlow::Continue(())
            },
        )?;
        return Ok(ChosenGan {
            gan: checkpoint::load_gan(&run_dir, device)?,
            search: config.search,
            chosen: BTreeMap::new(),
        });
    }
    let curve = class_curve(config, images, &run_dir, device, on_event)?;
    let best = curve.best().context("the learning curve has no point")?;
    let snapshot = selection::snapshot_path(&run_dir, best.iteration);
    let search = best.search;
    let chosen = BTreeMap::from([
        ("iterations".to_string(), best.iteration as f64),
        ("lr_z".to_string(), search.lr_z),
        ("lr_theta".to_string(), search.lr_theta),
        ("validation_auc".to_string(), best.auc),
    ]);
    Ok(ChosenGan {
        gan: checkpoint::load_gan_from(&run_dir, &snapshot, device)?,
        search,
        chosen,
    })
}

/// Draws (or continues) the validation learning curve of the GAN of one class in `run_dir`.
fn class_curve(
    config: &ExperimentConfig,
    images: &ClassImages,
    run_dir: &Path,
    device: Device,
    on_event: &mut dyn FnMut(Event),
) -> Result<Curve> {
    let class = images.class;
    let others = data::other_classes(images.train_all, images.normal)?;
    let s = &config.selection;
    let split = ValidationSplit::draw(images.normal_train, &others, s.holdout_fraction, s.seed)?;
    let run = class_run(config, class, &split.fit);
    let task = CurveTask {
        run_dir,
        run: &run,
        fit: &split.fit,
        validation: &split.capped(s.max_per_side),
        search: &config.search,
        selection: s,
    };
    selection::learning_curve(&task, device, &mut |event| match event {
        CurveEvent::Training(progress) => on_event(Event::Training { class, progress }),
        CurveEvent::Scoring {
            iteration,
            done,
            total,
        } => on_event(Event::Validating {
            class,
            iteration,
            done,
            total,
        }),
        CurveEvent::Point(point) => on_event(Event::Validated { class, point }),
    })
}

/// Draws the validation learning curve of every class of the experiment and nothing else: no
/// test image is read. Returns each class with its curve (the points of this configuration's
/// selection; the saved curves keep every point drawn before).
pub fn run_validation(
    config: &ExperimentConfig,
    out: &Path,
    device: Device,
    on_event: &mut dyn FnMut(Event),
) -> Result<Vec<(String, Curve)>> {
    ensure!(
        config.selection.enabled(),
        "a validation run needs a validation interval (selection.every > 0)"
    );
    // No experiment.json is checked or written: a validation run may try other searches and
    // points on the same trained GANs, whose own configurations and curves guard them.
    config.validate()?;
    crate::output::check_experiment_folder(out)?;
    std::fs::create_dir_all(out).with_context(|| format!("cannot create {}", out.display()))?;
    let spec = ImageSpec {
        size: config.model.image_size,
        channels: config.model.channels,
    };
    let train_all = config.source.load(Split::Train, spec, config.fit)?;
    let normals = config
        .classes
        .iter()
        .map(|class| data::normal_class_index(&train_all, class))
        .collect::<Result<Vec<i64>>>()?;
    let mut curves = Vec::new();
    for (class, &normal) in config.classes.iter().zip(&normals) {
        let normal_train = data::only_class(&train_all, normal)?;
        let run_dir = out.join("runs").join(format!("class-{class}"));
        let images = ClassImages {
            class,
            normal,
            normal_train: &normal_train,
            train_all: &train_all,
        };
        let curve = class_curve(config, &images, &run_dir, device, on_event)?;
        curves.push((class.clone(), curve));
    }
    Ok(curves)
}

/// The learning curves as a Markdown table: a row per (class, iteration), a column per
/// candidate search, the best point of each class in bold.
pub fn curve_table(curves: &[(String, Curve)]) -> String {
    let mut candidates: Vec<AdganConfig> = Vec::new();
    for (_, curve) in curves {
        for p in &curve.points {
            if !candidates.contains(&p.search) {
                candidates.push(p.search);
            }
        }
    }
    let mut text = String::from("| class | iterations |");
    for c in &candidates {
        text += &format!(" {} |", candidate_label(c));
    }
    text += "\n| --- | ---: |";
    text += &" ---: |".repeat(candidates.len());
    text.push('\n');
    for (class, curve) in curves {
        let best = curve.best();
        let mut iterations: Vec<usize> = curve.points.iter().map(|p| p.iteration).collect();
        iterations.dedup();
        for iteration in iterations {
            text += &format!("| {class} | {iteration} |");
            for candidate in &candidates {
                let point = curve
                    .points
                    .iter()
                    .find(|p| p.iteration == iteration && p.search == *candidate);
                text += &match point {
                    Some(p) if Some(p) == best => format!(" **{:.4}** |", p.auc),
                    Some(p) => format!(" {:.4} |", p.auc),
                    None => " - |".to_string(),
                };
            }
            text.push('\n');
        }
    }
    text
}

/// A short name of a candidate search: its learning rates, and its loss and aggregation when
/// they are not the paper's.
pub fn candidate_label(search: &AdganConfig) -> String {
    let mut label = format!("lr_z {}, lr_theta {}", search.lr_z, search.lr_theta);
    let default = AdganConfig::default();
    if search.loss != default.loss {
        label += &format!(", {:?}", search.loss).to_lowercase();
    }
    if search.aggregate != default.aggregate {
        label += &format!(", {:?}", search.aggregate).to_lowercase();
    }
    label
}

/// Fits a classic baseline on the normal training images (choosing its PCA dimension on a
/// validation set drawn from the train split) and scores the test images.
fn score_classic(
    config: &ExperimentConfig,
    method: Method,
    task: &OneVsAll,
    validation: &Validation,
    device: Device,
    on_progress: &mut dyn FnMut(Method, usize, usize),
) -> Result<Scored> {
    let kind = method.classic().context("not a classic baseline")?;
    let extractor = FeatureExtractor::choose(
        method.uses_alexnet(),
        config.alexnet.as_deref(),
        config.alexnet_layer,
        method.name(),
        device,
    )?;
    let start = Instant::now();
    let train_images = task.train.images.to_device(device);
    let mut fitted = fit_classic(
        kind,
        &extractor,
        &train_images,
        Some(validation),
        &config.baselines,
    )
    .with_context(|| format!("fitting {}", method.name()))?;
    let scores = score_all(
        fitted.detector.as_mut(),
        &task.test.images,
        1024,
        device,
        &mut |done, total| on_progress(method, done, total),
    )?;
    Ok(Scored {
        chosen: fitted.chosen,
        ..Scored::new(method, scores, start.elapsed().as_secs_f64())
    })
}

/// Trains (or reuses, from `dir`) the DCAE or VAE of a class and scores its test images;
/// `report(method, done, total, fitting)` follows both stages.
fn score_autoencoder(
    config: &ExperimentConfig,
    method: Method,
    task: &OneVsAll,
    dir: &Path,
    device: Device,
    report: &mut dyn FnMut(Method, usize, usize, bool),
) -> Result<Scored> {
    let kind = method
        .autoencoder()
        .with_context(|| format!("{} is not an autoencoder", method.name()))?;
    let start = Instant::now();
    let total = config.autoencoder.iterations;
    let ae = Autoencoder::train_or_load(
        kind,
        config.model,
        config.autoencoder,
        &task.train,
        dir,
        device,
        &mut |done, _| report(method, done, total, true),
    )?;
    let mut detector = ae.into_detector()?;
    let scores = score_all(
        detector.as_mut(),
        &task.test.images,
        256,
        device,
        &mut |done, total| report(method, done, total, false),
    )?;
    Ok(Scored::new(method, scores, start.elapsed().as_secs_f64()))
}

/// What scoring the methods of one normal class needs.
struct ClassContext<'a> {
    config: &'a ExperimentConfig,
    class: &'a str,
    task: &'a OneVsAll,
    /// Validation draw for the classic baselines' PCA dimension, when one is pending.
    validation: Option<&'a Validation>,
    /// Where trained networks are kept (`OUT/runs`).
    runs: PathBuf,
    /// The class's trained GAN, when a pending method needs it.
    gan: Option<&'a ChosenGan>,
    device: Device,
}

/// The event for progress of fitting (autoencoder training) or scoring one method.
fn progress_event(
    class: &str,
    method: Method,
    done: usize,
    total: usize,
    fitting: bool,
) -> Event<'_> {
    if fitting {
        Event::Fitting {
            class,
            method,
            done,
            total,
        }
    } else {
        Event::Scoring {
            class,
            method,
            done,
            total,
        }
    }
}

/// Scores one method on the class's test images; `adgan` and `prior` come together (both
/// that are `pending`) from one search. `report(method, done, total, fitting)` follows it.
fn score_method(
    context: &ClassContext,
    method: Method,
    pending: &[Method],
    report: &mut dyn FnMut(Method, usize, usize, bool),
) -> Result<Vec<Scored>> {
    let ClassContext {
        config,
        task,
        device,
        ..
    } = *context;
    let gan = || context.gan.context("the GAN of this class is not loaded");
    let mut on_scoring = |m, done, total| report(m, done, total, false);
    let timed = |method, run: &mut dyn FnMut() -> Result<Vec<f64>>| -> Result<Vec<Scored>> {
        let start = Instant::now();
        let scores = run()?;
        Ok(vec![Scored::new(
            method,
            scores,
            start.elapsed().as_secs_f64(),
        )])
    };
    match method {
        Method::Adgan | Method::Prior => {
            let searched: Vec<Method> = pending
                .iter()
                .copied()
                .filter(|m| matches!(m, Method::Adgan | Method::Prior))
                .collect();
            score_search(gan()?, &task.test, &searched, device, &mut on_scoring)
        }
        Method::Anogan => {
            let gan = &gan()?.gan;
            let mut anogan = Anogan::new(&gan.generator, &gan.critic, config.anogan, device)?;
            timed(method, &mut || {
                score_all(
                    &mut anogan,
                    &task.test.images,
                    64,
                    device,
                    &mut |done, total| on_scoring(method, done, total),
                )
            })
        }
        Method::Critic => {
            let mut critic = CriticScore::new(&gan()?.gan.critic);
            timed(method, &mut || {
                score_all(
                    &mut critic,
                    &task.test.images,
                    256,
                    device,
                    &mut |done, total| on_scoring(method, done, total),
                )
            })
        }
        Method::Dcae | Method::Vae => {
            let dir = context
                .runs
                .join(format!("class-{}-{}", context.class, method.name()));
            Ok(vec![score_autoencoder(
                config, method, task, &dir, device, report,
            )?])
        }
        _ => {
            let validation = context
                .validation
                .context("no validation draw for a classic baseline")?;
            Ok(vec![score_classic(
                config,
                method,
                task,
                validation,
                device,
                &mut on_scoring,
            )?])
        }
    }
}

/// Scores `test` with `adgan` and/or `prior` (as `methods` lists) from one latent search.
fn score_search(
    chosen: &ChosenGan,
    test: &Dataset,
    methods: &[Method],
    device: Device,
    on_progress: &mut dyn FnMut(Method, usize, usize),
) -> Result<Vec<Scored>> {
    let first = *methods.first().context("no search method asked for")?;
    let generator = &chosen.gan.generator;
    let adgan = Adgan::new(generator, chosen.search, device)?;
    let batch = auto_batch(generator, &chosen.search, device);
    let start = Instant::now();
    let mut columns = score_columns(
        &mut { &test.images },
        batch,
        device,
        2,
        &mut |chunk| {
            let search = adgan.search(chunk)?;
            Ok(vec![
                to_scores(&search.final_losses())?,
                to_scores(&prior_scores(&search))?,
            ])
        },
        &mut |done, total| on_progress(first, done, total),
    )?;
    let seconds = start.elapsed().as_secs_f64();
    let prior = columns.pop().expect("two columns");
    let losses = columns.pop().expect("two columns");
    Ok(methods
        .iter()
        .map(|&method| {
            let scores = if method == Method::Adgan {
                losses.clone()
            } else {
                prior.clone()
            };
            Scored::new(method, scores, seconds)
        })
        .collect())
}

/// Expands a class list such as `0-9`, `0,3,5` or `cat,dog` (ranges only between numbers).
pub fn parse_classes(text: &str) -> Result<Vec<String>> {
    let mut classes = Vec::new();
    for part in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let range = part
            .split_once('-')
            .and_then(|(a, b)| Some((a.parse::<i64>().ok()?, b.parse::<i64>().ok()?)));
        match range {
            Some((a, b)) => {
                ensure!(a <= b, "class range {part} is empty");
                classes.extend((a..=b).map(|c| c.to_string()));
            }
            None => classes.push(part.to_string()),
        }
    }
    ensure!(!classes.is_empty(), "no classes given");
    Ok(classes)
}

/// The paper's Table 1 layout in Markdown: a row per normal class, a column per method, a mean
/// row, the best ROC-AUC of each row in bold.
pub fn auc_table(config: &ExperimentConfig, cells: &[Cell]) -> String {
    let find = |class: &str, method: Method| {
        cells
            .iter()
            .find(|c| c.class == class && c.method == method)
            .map(|c| c.auc)
    };
    let mut text = String::from("| normal class |");
    for m in &config.methods {
        text += &format!(" {} |", m.name());
    }
    text += "\n| --- |";
    text += &" ---: |".repeat(config.methods.len());
    text.push('\n');
    let mut row = |label: &str, values: Vec<Option<f64>>| {
        let best = values
            .iter()
            .flatten()
            .copied()
            .fold(f64::NEG_INFINITY, f64::max);
        text += &format!("| {label} |");
        for v in values {
            text += &match v {
                Some(v) if v == best => format!(" **{v:.3}** |"),
                Some(v) => format!(" {v:.3} |"),
                None => " - |".to_string(),
            };
        }
        text.push('\n');
    };
    for class in &config.classes {
        row(
            class,
            config.methods.iter().map(|&m| find(class, m)).collect(),
        );
    }
    let means = config
        .methods
        .iter()
        .map(|&m| {
            let aucs: Vec<f64> = config.classes.iter().filter_map(|c| find(c, m)).collect();
            (aucs.len() == config.classes.len())
                .then(|| aucs.iter().sum::<f64>() / aucs.len() as f64)
        })
        .collect();
    row("mean", means);
    text
}

/// Writes `results.json` (configuration and every figure) and `table.md` into `out`.
pub fn write_summary(config: &ExperimentConfig, cells: &[Cell], out: &Path) -> Result<()> {
    #[derive(Serialize)]
    struct Figure<'a> {
        class: &'a str,
        method: Method,
        auc: f64,
        average_precision: f64,
        seconds: f64,
        n_test: usize,
    }
    #[derive(Serialize)]
    struct Results<'a> {
        experiment: &'a ExperimentConfig,
        cells: Vec<Figure<'a>>,
    }
    let figures = cells
        .iter()
        .map(|c| Figure {
            class: &c.class,
            method: c.method,
            auc: c.auc,
            average_precision: c.average_precision,
            seconds: c.seconds,
            n_test: c.scores.len(),
        })
        .collect();
    write_json(
        &out.join("results.json"),
        &Results {
            experiment: config,
            cells: figures,
        },
    )?;
    let table = auc_table(config, cells);
    checkpoint::write_atomic(&out.join("table.md"), |tmp| {
        Ok(std::fs::write(tmp, &table)?)
    })
}
