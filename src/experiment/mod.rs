//! The paper's one-vs-all experiment (Sect. 4.1): for each normal class, train a GAN on that
//! class, score a seeded draw of test images with every method, and record ROC-AUC per cell.
//!
//! Every finished (class, method) cell is written atomically to `cells/`, and a re-run skips
//! the cells already there, so a killed experiment loses at most the cell in progress. A class
//! whose GAN is already trained with the same configuration reuses it (a half-trained one
//! resumes).

pub mod curves;
pub mod decisions;
mod ensemble;
mod gan;
pub mod report;
mod scoring;
mod table;

pub use ensemble::{
    member_validation, rank_ensembles, ranking_table, ExperimentValidation, MEMBERS_FILE,
};
pub use gan::{run_validation, ChosenGan, ClassCurve};
pub use table::{auc_table, candidate_label, curve_table, write_summary};

use crate::alexnet::AlexNetLayer;
use crate::autoencoder::AutoencoderConfig;
use crate::data::{self, DataSource, Dataset, Fit, OneVsAll, Split};
use crate::eval::{average_precision, roc_auc};
use crate::io::{self, read_json, write_json};
use crate::model::ModelConfig;
use crate::score::adgan::AdganConfig;
use crate::score::anogan::AnoganConfig;
use crate::score::ensemble::EnsembleConfig;
use crate::score::features::{PcaConfig, Validation};
use crate::score::method::Method;
use crate::selection::{CurvePoint, SelectionConfig};
use crate::train::{Progress, TrainConfig};
use anyhow::{bail, ensure, Context, Result};
use gan::{prepare_gan, ClassImages};
use scoring::{progress_event, score_method, ClassContext, Scored};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use tch::Device;

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
    /// Images per ADGAN search (chosen from memory when absent); it changes no score, so an
    /// experiment may be continued with another.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub batch_images: Option<usize>,
    /// Whether training iterations and the ADGAN search replay recorded CUDA graphs (CUDA
    /// only); like `batch_images`, it changes no weight and no score.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub cuda_graph: bool,
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
    /// The members and rule of the `ensemble` method.
    #[serde(default)]
    pub ensemble: EnsembleConfig,
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
        crate::setting::check(
            self.selection.enabled() || !self.methods.contains(&Method::AdganIc),
            "select_every",
            || {
                "adgan-ic fits its complexity line on held-out validation images: give a \
                 validation interval"
                    .into()
            },
        )?;
        if self.methods.contains(&Method::Ensemble) {
            self.check_ensemble()?;
        }
        Ok(())
    }

    /// The ensemble normalises its members on held-out validation images, and takes the GAN
    /// members' test scores from their own cells.
    fn check_ensemble(&self) -> Result<()> {
        self.ensemble.validate()?;
        ensure!(
            self.selection.enabled(),
            "the ensemble normalises its members on held-out validation images: turn selection \
             on (a validation interval)"
        );
        for m in &self.ensemble.members {
            ensure!(
                !m.needs_gan() || self.methods.contains(m),
                "the ensemble member {} takes its test scores from its own cell: add {} to the \
                 methods",
                m.name(),
                m.name()
            );
            ensure!(
                !m.uses_alexnet() || self.alexnet.is_some(),
                "the ensemble member {} needs AlexNet weights",
                m.name()
            );
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
    /// For ADGAN under selection: the scores of held-out normal validation images at the
    /// chosen point, which calibrate the test scores (conformal p-values, see
    /// [`crate::calibration`]).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub calibration_scores: Vec<f64>,
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

/// Subfolder of an experiment where long cells keep their scores so far.
pub const PARTIAL_DIR: &str = "partial";

pub(crate) fn cell_path(out: &Path, class: &str, method: Method) -> PathBuf {
    out.join("cells")
        .join(format!("{class}-{}.json", method.name()))
}

/// Reads a finished cell, checking that it belongs to this experiment.
pub(crate) fn read_cell(path: &Path, class: &str, method: Method, n_test: usize) -> Result<Cell> {
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

/// ADGAN's test scores of `class`, which `adgan-ic` corrects: from this run's cells, or from
/// the folder's ADGAN cell when `adgan` is not among this run's methods (a method added later
/// must not search again what is on disk).
fn adgan_test_scores(
    out: &Path,
    class: &str,
    n_test: usize,
    cells: &[Cell],
) -> Result<Option<Vec<f64>>> {
    if let Some(cell) = cells
        .iter()
        .find(|c| c.class == class && c.method == Method::Adgan)
    {
        return Ok(Some(cell.scores.clone()));
    }
    let path = cell_path(out, class, Method::Adgan);
    match path.exists() {
        true => Ok(Some(read_cell(&path, class, Method::Adgan, n_test)?.scores)),
        false => Ok(None),
    }
}

/// Checks the settings, and that the folder `out` is new or holds this experiment (methods and
/// classes may be added to it).
fn check_experiment_folder(config: &ExperimentConfig, out: &Path) -> Result<()> {
    config.validate()?;
    crate::output::check_experiment_folder(out)?;
    let config_path = out.join("experiment.json");
    if config_path.exists() {
        let mut saved: ExperimentConfig =
            read_json(&config_path, "adgan experiment configuration")?;
        // One data folder reached from another checkout's path is the same data.
        if saved.source.normalised() == config.source.normalised() {
            saved.source = config.source.clone();
        }
        // Methods are columns and classes rows with cells of their own: adding either to an
        // experiment is fine.
        let same = ExperimentConfig {
            methods: config.methods.clone(),
            classes: config.classes.clone(),
            batch_images: config.batch_images,
            cuda_graph: config.cuda_graph,
            ..saved.clone()
        } == *config;
        if !same {
            let mut ours = config.clone();
            ours.methods.clone_from(&saved.methods);
            ours.classes.clone_from(&saved.classes);
            ours.batch_images = saved.batch_images;
            ours.cuda_graph = saved.cuda_graph;
            bail!(
                "{} holds another experiment ({}): choose another folder, or repeat that \
                 experiment's settings",
                out.display(),
                io::differences(&saved, &ours).join("; ")
            );
        }
    }
    Ok(())
}

/// Creates the experiment's folder and records its settings: only once every class resolved
/// and the data loaded, so that a refused experiment leaves nothing behind.
fn start_experiment_folder(config: &ExperimentConfig, out: &Path) -> Result<()> {
    std::fs::create_dir_all(out.join("cells"))
        .with_context(|| format!("cannot create {}", out.display()))?;
    write_json(&out.join("experiment.json"), config)
}

/// Runs (or continues) the experiment in `out`, rewriting `results.json` and `table.md` after
/// every class it scores; returns every cell, class by class.
pub fn run_one_vs_all(
    config: &ExperimentConfig,
    out: &Path,
    device: Device,
    on_event: &mut dyn FnMut(Event),
) -> Result<Vec<Cell>> {
    check_experiment_folder(config, out)?;
    let splits = Splits::load(config, on_event)?;
    start_experiment_folder(config, out)?;
    let _lock = crate::output::OutputLock::acquire(out, true, "adgan experiment")?;
    let mut cells = Vec::new();
    let position = |cell: &Cell| {
        let class = config.classes.iter().position(|c| c == &cell.class);
        (class, config.methods.iter().position(|&m| m == cell.method))
    };
    for (class, &normal) in config.classes.iter().zip(&splits.normals) {
        let pending = finished_cells(config, out, class, splits.n_test, &mut cells, on_event)?;
        if !pending.is_empty() {
            run_class(
                config,
                out,
                &splits,
                (class, normal),
                &pending,
                device,
                &mut cells,
                on_event,
            )?;
            // The table so far (pending classes as "-", no mean until every class is in), so
            // that a run of hours can be read while it goes on.
            cells.sort_by_key(position);
            write_summary(config, &cells, out)?;
        }
    }
    cells.sort_by_key(position);
    Ok(cells)
}

/// The experiment end to end, as `adgan experiment one-vs-all` runs it: every cell
/// ([`run_one_vs_all`]), then `results.json`, `table.md` and `report.html` in `out`. Returns the
/// cells, class by class.
pub fn run_and_report(
    config: &ExperimentConfig,
    out: &Path,
    device: Device,
    on_event: &mut dyn FnMut(Event),
) -> Result<Vec<Cell>> {
    let cells = run_one_vs_all(config, out, device, on_event)?;
    write_summary(config, &cells, out)?;
    report::write_report(config, &cells, out)?;
    Ok(cells)
}

/// The validation study alone ([`run_validation`]), its table written to `validation.md` in
/// `out`. Returns the table and the path it was written to.
pub fn run_validation_and_report(
    config: &ExperimentConfig,
    out: &Path,
    device: Device,
    on_event: &mut dyn FnMut(Event),
) -> Result<(String, PathBuf)> {
    let curves = run_validation(config, out, device, on_event)?;
    let table = curve_table(&curves);
    let path = out.join("validation.md");
    io::write_atomic(&path, |tmp| Ok(std::fs::write(tmp, &table)?))?;
    Ok((table, path))
}

/// Both splits of the data, every class resolved (before the first one is trained), and the
/// number of test images drawn per class.
struct Splits {
    train: Dataset,
    test: Dataset,
    normals: Vec<i64>,
    n_test: usize,
}

impl Splits {
    fn load(config: &ExperimentConfig, on_event: &mut dyn FnMut(Event)) -> Result<Self> {
        let spec = config.model.image_spec();
        let train = config.source.load(Split::Train, spec, config.fit)?;
        let test = config.source.load(Split::Test, spec, config.fit)?;
        let normals = config
            .classes
            .iter()
            .map(|class| data::normal_class_index(&train, class))
            .collect::<Result<Vec<i64>>>()?;
        let n_test = config.n_test.min(test.len());
        if n_test < config.n_test {
            on_event(Event::Note(format!(
                "the test split has {} images, fewer than the {} asked for: all of them are scored",
                test.len(),
                config.n_test
            )));
        }
        Ok(Self {
            train,
            test,
            normals,
            n_test,
        })
    }
}

/// Reads the finished cells of `class` into `cells`; returns the methods still to score.
fn finished_cells(
    config: &ExperimentConfig,
    out: &Path,
    class: &str,
    n_test: usize,
    cells: &mut Vec<Cell>,
    on_event: &mut dyn FnMut(Event),
) -> Result<Vec<Method>> {
    let mut pending = Vec::new();
    for &method in &config.methods {
        let path = cell_path(out, class, method);
        if path.exists() {
            cells.push(read_cell(&path, class, method, n_test)?);
            on_event(Event::Skipped { class, method });
        } else {
            pending.push(method);
        }
    }
    Ok(pending)
}

/// Scores the `pending` methods of one normal class (training its GAN first if one needs it),
/// writing every cell as soon as its method is scored (`adgan` and `prior` come from one
/// search and are written together).
#[allow(clippy::too_many_arguments)]
fn run_class(
    config: &ExperimentConfig,
    out: &Path,
    splits: &Splits,
    (class, normal): (&String, i64),
    pending: &[Method],
    device: Device,
    cells: &mut Vec<Cell>,
    on_event: &mut dyn FnMut(Event),
) -> Result<()> {
    let task = data::one_vs_all(
        &splits.train,
        &splits.test,
        normal,
        splits.n_test,
        config.seed,
    )?;
    let images = ClassImages {
        class,
        normal,
        normal_train: &task.train,
        train_all: &splits.train,
    };
    let chosen = match pending.iter().any(|m| m.needs_gan()) {
        true => Some(prepare_gan(
            config,
            &images,
            &out.join("runs"),
            device,
            on_event,
        )?),
        false => None,
    };
    // The classic baselines choose their PCA dimension on one validation draw per class.
    let validation = match pending.iter().any(|m| m.classic().is_some()) {
        true => {
            let others = data::other_classes(&splits.train, normal)?;
            let b = &config.baselines;
            Some(Validation::draw(
                &task.train,
                &others,
                b.holdout_fraction,
                b.seed,
            )?)
        }
        false => None,
    };
    let context = ClassContext {
        config,
        class,
        task: &task,
        validation: validation.as_ref(),
        out,
        runs: out.join("runs"),
        gan: chosen.as_ref(),
        device,
    };
    // adgan-ic corrects ADGAN's scores, so it comes after them; the ensemble combines the
    // others' scores, so it comes last.
    let mut order = pending.to_vec();
    order.sort_by_key(|&m| (m == Method::Ensemble, m == Method::AdganIc));
    for method in order {
        if cells
            .iter()
            .any(|c| c.class == *class && c.method == method)
        {
            continue;
        }
        let adgan_scores = match method {
            Method::AdganIc => adgan_test_scores(out, class, splits.n_test, cells)?,
            _ => None,
        };
        let results = match method {
            Method::Ensemble => vec![ensemble::score_cell(
                config, &images, &task.test, out, device, on_event,
            )?],
            _ => {
                let mut report = |m, done, total, fitting| {
                    on_event(progress_event(class, m, done, total, fitting))
                };
                score_method(
                    &context,
                    method,
                    pending,
                    adgan_scores.as_deref(),
                    &mut report,
                )?
            }
        };
        for mut result in results {
            let mut cell_calibration = Vec::new();
            if let (true, Some(gan)) = (result.method.needs_gan(), &chosen) {
                match (result.method, &gan.complexity) {
                    (Method::AdganIc, Some(c)) => {
                        cell_calibration.clone_from(&c.choice.calibration_scores)
                    }
                    (Method::Adgan, _) => {
                        result.chosen.extend(gan.chosen.clone());
                        cell_calibration.clone_from(&gan.calibration_scores);
                    }
                    _ => result.chosen.extend(gan.chosen.clone()),
                }
            }
            if result.method == Method::Ensemble {
                cell_calibration = std::mem::take(&mut result.calibration_scores);
            }
            let partial = result.partial.take();
            let mut cell = Cell::new(class, &task, result)?;
            cell.calibration_scores = cell_calibration;
            write_json(&cell_path(out, class, cell.method), &cell)?;
            // The scores so far are in the cell now (adgan and prior share one file).
            if let Some(path) = partial.filter(|p| p.exists()) {
                std::fs::remove_file(&path)
                    .with_context(|| format!("cannot remove {}", path.display()))?;
            }
            on_event(Event::Finished { cell: &cell });
            cells.push(cell);
        }
    }
    Ok(())
}

impl Cell {
    /// The cell of a method's scores on a class's test images.
    fn new(class: &str, task: &OneVsAll, scored: Scored) -> Result<Self> {
        let labels = task.test.labels.clone().unwrap_or_default();
        Ok(Cell {
            class: class.to_string(),
            method: scored.method,
            auc: roc_auc(&scored.scores, &labels)?,
            average_precision: average_precision(&scored.scores, &labels)?,
            seconds: scored.seconds,
            ids: task.test.ids.clone(),
            test_classes: task.test_classes.clone(),
            labels,
            scores: scored.scores,
            chosen: scored.chosen,
            calibration_scores: Vec::new(),
        })
    }
}

/// The methods of an experiment when none are asked for: ADGAN with the paper's critic and
/// prior scores, and with selection on (`selection`) also `adgan-ic`, the default of `score`
/// and `rank`, whose line is fitted on the validation images, and the ensemble, normalised on
/// them.
pub fn default_methods(selection: bool) -> Vec<Method> {
    let mut methods = vec![Method::Adgan, Method::Critic, Method::Prior];
    if selection {
        methods.extend([Method::AdganIc, Method::Ensemble]);
    }
    methods
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
