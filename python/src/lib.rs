//! Python bindings of adgan (the module `adgan._adgan`; the package `adgan` in `adgan/` wraps
//! it for users). Every call goes to the library: training through
//! [`adgan::train_run::train_run`], scoring through [`adgan::scorer::Scorer`], the same code
//! paths as the command line. Images arrive as 8-bit arrays, N x H x W x C (the package turns
//! what a user has into that), or as file paths.

use adgan::data::{DataSource, Fit, RawImages};
use adgan::run::TrainedGan;
use adgan::score::method::Method;
use adgan::scorer::{NeedsCalibration, Notice, Scorer, ScorerConfig};
use adgan::setting::BadSetting;
use adgan::train::{ObjectiveKind, Recipe, TrainSettings};
use adgan::train_run::{train_run, TrainEvent, TrainRequest};
use numpy::{IntoPyArray, PyArray1, PyReadonlyArray4, PyUntypedArrayMethods};
use pyo3::exceptions::{PyRuntimeError, PyValueError};
use pyo3::prelude::*;
use std::ops::ControlFlow;
use std::path::PathBuf;
use tch::{Device, Tensor};

/// A library error as a Python exception with the library's whole message: a setting or an
/// input refused is a `ValueError`, anything else a `RuntimeError`.
fn to_py(err: anyhow::Error) -> PyErr {
    let text = format!("{err:#}");
    let refused = err.downcast_ref::<BadSetting>().is_some()
        || err.downcast_ref::<NeedsCalibration>().is_some();
    match refused {
        true => PyValueError::new_err(text),
        false => PyRuntimeError::new_err(text),
    }
}

fn value_error(message: impl Into<String>) -> PyErr {
    PyValueError::new_err(message.into())
}

/// The device named `name`: `cpu`, `cuda` or `auto`.
fn device(name: &str) -> PyResult<Device> {
    let choice = match name {
        "cpu" => adgan::device::DeviceChoice::Cpu,
        "cuda" => adgan::device::DeviceChoice::Cuda,
        "auto" => adgan::device::DeviceChoice::Auto,
        other => {
            return Err(value_error(format!(
                "unknown device {other:?}: cpu, cuda or auto"
            )))
        }
    };
    adgan::device::select(choice).map_err(to_py)
}

/// The method named `name`, as the command line names it.
fn method(name: &str) -> PyResult<Method> {
    Method::ALL
        .into_iter()
        .find(|m| m.name() == name)
        .ok_or_else(|| {
            let names: Vec<&str> = Method::ALL.iter().map(|m| m.name()).collect();
            value_error(format!(
                "unknown method {name:?}: one of {}",
                names.join(", ")
            ))
        })
}

/// Writes `line` to Python's standard error (a notebook shows it, unlike the process's own).
fn say(py: Python<'_>, line: &str) {
    let write = py
        .import("sys")
        .and_then(|sys| sys.getattr("stderr"))
        .and_then(|stderr| stderr.call_method1("write", (format!("{line}\n"),)));
    if write.is_err() {
        eprintln!("{line}");
    }
}

/// Whether Ctrl-C was pressed: the pending `KeyboardInterrupt` is kept in `stop` and the
/// caller stops at its next chance.
fn interrupted(py: Python<'_>, stop: &mut Option<PyErr>) -> bool {
    if stop.is_none() {
        if let Err(e) = py.check_signals() {
            *stop = Some(e);
        }
    }
    stop.is_some()
}

/// A trained run (a folder `adgan train` or [`train`] wrote), ready to score images.
#[pyclass(unsendable, module = "adgan._adgan")]
struct Run {
    gan: TrainedGan,
    device: Device,
}

/// The search and scoring settings of one call, with the command line's names and defaults.
struct Scoring<'a> {
    method: Option<&'a str>,
    alpha: f64,
    n_seed: Option<i64>,
    k: Option<i64>,
    lr_z: Option<f64>,
    lr_theta: Option<f64>,
    search_seed: u64,
    batch_images: Option<usize>,
    cuda_graph: bool,
    pca_dim: Option<usize>,
}

impl Scoring<'_> {
    fn config(&self) -> PyResult<ScorerConfig> {
        let default = ScorerConfig::default();
        let mut search = default.search;
        search.n_seed = self.n_seed.unwrap_or(search.n_seed);
        search.k = self.k.map(|k| k as usize).unwrap_or(search.k);
        search.lr_z = self.lr_z.unwrap_or(search.lr_z);
        search.lr_theta = self.lr_theta.unwrap_or(search.lr_theta);
        search.seed = self.search_seed;
        Ok(ScorerConfig {
            method: self.method.map(method).transpose()?,
            search,
            batch_images: self.batch_images,
            cuda_graph: self.cuda_graph,
            alpha: self.alpha,
            pca_dim: self.pca_dim.unwrap_or(default.pca_dim),
            ..default
        })
    }
}

impl Run {
    /// `images` (an 8-bit N x H x W x C array, or a list of file paths) fitted to the model:
    /// N x C x H x W in [-1, 1].
    fn model_input(&self, images: &Bound<'_, PyAny>) -> PyResult<Tensor> {
        let spec = self.gan.config.model.image_spec();
        let fit = self.gan.config.data.fit;
        if let Ok(array) = images.extract::<PyReadonlyArray4<u8>>() {
            let shape = array.shape().to_vec();
            let raw = RawImages {
                count: shape[0],
                height: shape[1],
                width: shape[2],
                channels: shape[3],
                pixels: array.as_slice()?.to_vec(),
            };
            return raw.to_model_input(spec, fit).map_err(to_py);
        }
        let paths: Vec<PathBuf> = images.extract().map_err(|_| {
            value_error("images must be an 8-bit N x H x W x C array or a list of file paths")
        })?;
        if paths.is_empty() {
            return Err(value_error("no image files to score"));
        }
        let tensors = paths
            .iter()
            .map(|p| adgan::data::folder::read_fitted(p, spec, fit))
            .collect::<anyhow::Result<Vec<_>>>()
            .map_err(|e| value_error(format!("{e:#}")))?;
        Ok(Tensor::cat(&tensors, 0))
    }

    /// Scores `images` (N x C x H x W in [-1, 1], the run's size) as `scoring` asks:
    /// (scores, p-values when calibrated, the method's name).
    fn score_tensor(
        &self,
        py: Python<'_>,
        images: &Tensor,
        scoring: &Scoring,
    ) -> PyResult<(Vec<f64>, Option<Vec<f64>>, String)> {
        let scorer = Scorer::new(&self.gan, scoring.config()?).map_err(to_py)?;
        for notice in &scorer.notices {
            say(py, &notice_text(notice));
        }
        let built = scorer
            .build(None, self.device, &mut |_, _| {})
            .map_err(to_py)?;
        let (mut detector, batch) = (built.detector, built.batch.max(1));
        let n = images.size()[0];
        let mut scores = Vec::with_capacity(n as usize);
        let mut stop = None;
        for start in (0..n).step_by(batch) {
            if interrupted(py, &mut stop) {
                break;
            }
            let len = (n - start).min(batch as i64);
            let part = images.narrow(0, start, len).to_device(self.device);
            scores.extend(detector.score_batch(&part).map_err(to_py)?);
        }
        if let Some(e) = stop {
            return Err(e);
        }
        let p_values = scorer.p_values(&scores);
        Ok((scores, p_values, scorer.method.name().to_string()))
    }
}

/// A scorer's notice in the words of a Python user.
fn notice_text(notice: &Notice) -> String {
    match notice {
        Notice::CalibrationOfOtherSearch => "note: the run's calibration was made with other \
             search settings: no p-values (calibrate the run with these settings to add them)"
            .into(),
        Notice::DefaultWithoutCalibration => "note: scoring with adgan as in the paper; the \
             default, adgan-ic, needs the run calibrated with the same search settings (pass \
             method='adgan' to silence this)"
            .into(),
        Notice::CalibrationWarning(w) => format!("warning: {w}"),
        Notice::AlphaTooSmall { smallest, images } => format!(
            "warning: alpha is below 1 / (n_cal + 1) = {smallest:.4} for these {images} \
             calibration images: no image can be flagged"
        ),
    }
}

#[pymethods]
impl Run {
    /// Loads the run in the folder `path` onto `device` (cpu, cuda or auto).
    #[staticmethod]
    #[pyo3(signature = (path, device = "cpu"))]
    fn load(path: PathBuf, device: &str) -> PyResult<Self> {
        let device = self::device(device)?;
        let gan = adgan::run::load_gan(&path, device).map_err(to_py)?;
        Ok(Self { gan, device })
    }

    /// The run folder.
    #[getter]
    fn path(&self) -> PathBuf {
        self.gan.run_dir.clone()
    }

    /// Side of the square images the model works at.
    #[getter]
    fn image_size(&self) -> i64 {
        self.gan.config.model.image_size
    }

    /// Channels of the model's images (1 grey, 3 RGB).
    #[getter]
    fn channels(&self) -> i64 {
        self.gan.config.model.channels
    }

    /// Generator iterations the checkpoint was trained for.
    #[getter]
    fn iteration(&self) -> i64 {
        self.gan.iteration
    }

    /// Scores `images`, 8-bit N x H x W x C or a list of image file paths (read and fitted to
    /// the model as `adgan score` reads a folder): returns (scores, p-values or None, method).
    /// `cuda_graph` replays the search from a CUDA graph (a CUDA device only; the same scores).
    #[pyo3(signature = (images, method = None, alpha = 0.05, n_seed = None, k = None,
        lr_z = None, lr_theta = None, search_seed = 0, batch_images = None, pca_dim = None,
        cuda_graph = false))]
    #[allow(clippy::too_many_arguments, clippy::type_complexity)]
    fn score<'py>(
        &self,
        py: Python<'py>,
        images: &Bound<'py, PyAny>,
        method: Option<&str>,
        alpha: f64,
        n_seed: Option<i64>,
        k: Option<i64>,
        lr_z: Option<f64>,
        lr_theta: Option<f64>,
        search_seed: u64,
        batch_images: Option<usize>,
        pca_dim: Option<usize>,
        cuda_graph: bool,
    ) -> PyResult<(
        Bound<'py, PyArray1<f64>>,
        Option<Bound<'py, PyArray1<f64>>>,
        String,
    )> {
        let tensor = self.model_input(images)?;
        let scoring = Scoring {
            method,
            alpha,
            n_seed,
            k,
            lr_z,
            lr_theta,
            search_seed,
            batch_images,
            pca_dim,
            cuda_graph,
        };
        let (scores, p, name) = self.score_tensor(py, &tensor, &scoring)?;
        Ok((scores.into_pyarray(py), p.map(|p| p.into_pyarray(py)), name))
    }

    fn __repr__(&self) -> String {
        format!(
            "Run('{}', iteration {}, {}x{}x{})",
            self.gan.run_dir.display(),
            self.gan.iteration,
            self.gan.config.model.channels,
            self.gan.config.model.image_size,
            self.gan.config.model.image_size
        )
    }
}

/// Trains a run into `out` on the normal images of `data` (a data set of kind `dataset`), as
/// `adgan train` does, with its settings' names and defaults (None: the recipe's); the search
/// settings are those its calibration is scored with. Shows the same progress lines and stops
/// at Ctrl-C (resume with resume=True). Returns the run.
#[pyfunction]
#[pyo3(signature = (out, data = None, dataset = "folder", normal_class = None, recipe = "chosen",
    image_size = 32, channels = None, latent_dim = 256, width = None, iterations = None,
    batch_size = None, objective = None, lr = None, n_critic = None, seed = 0,
    calibration_fraction = 0.1, fit = "pad", resume = false, strict = false, device = "cpu",
    n_seed = None, k = None, lr_z = None, lr_theta = None, search_seed = 0, beta1 = None,
    clip = None, lambda = None, init = None, ensemble = true, cuda_graph = false))]
#[allow(clippy::too_many_arguments)]
fn train(
    py: Python<'_>,
    out: PathBuf,
    data: Option<PathBuf>,
    dataset: &str,
    normal_class: Option<String>,
    recipe: &str,
    image_size: i64,
    channels: Option<i64>,
    latent_dim: i64,
    width: Option<i64>,
    iterations: Option<usize>,
    batch_size: Option<i64>,
    objective: Option<&str>,
    lr: Option<f64>,
    n_critic: Option<usize>,
    seed: u64,
    calibration_fraction: f64,
    fit: &str,
    resume: bool,
    strict: bool,
    device: &str,
    n_seed: Option<i64>,
    k: Option<i64>,
    lr_z: Option<f64>,
    lr_theta: Option<f64>,
    search_seed: u64,
    beta1: Option<f64>,
    clip: Option<f64>,
    lambda: Option<f64>,
    init: Option<&str>,
    ensemble: bool,
    cuda_graph: bool,
) -> PyResult<Run> {
    let init = init
        .map(|name| name.parse::<adgan::model::Init>())
        .transpose()
        .map_err(|e| value_error(format!("{e:#}")))?;
    let calibration_search = Scoring {
        method: None,
        alpha: adgan::calibration::DEFAULT_ALPHA,
        n_seed,
        k,
        lr_z,
        lr_theta,
        search_seed,
        batch_images: None,
        pca_dim: None,
        cuda_graph: false,
    }
    .config()?
    .search;
    let recipe: Recipe = recipe.parse().map_err(|e| value_error(format!("{e:#}")))?;
    let objective = match objective {
        None => None,
        Some("clip") => Some(ObjectiveKind::Clip),
        Some("gp") => Some(ObjectiveKind::Gp),
        Some(other) => {
            return Err(value_error(format!(
                "unknown objective {other:?}: clip or gp"
            )))
        }
    };
    let fit = fit_of(fit)?;
    let source = DataSource::named(dataset, data.as_deref(), None, seed).map_err(to_py)?;
    let model = adgan::model::ModelConfig {
        image_size,
        channels: channels.unwrap_or(source.default_channels()),
        latent_dim,
        width: width.unwrap_or(recipe.width()),
    };
    let settings = TrainSettings {
        objective,
        lr,
        iterations,
        batch_size,
        n_critic,
        seed: Some(seed),
        beta1,
        clip,
        lambda,
        init,
        ..TrainSettings::default()
    };
    let train = recipe.train_with(&settings).map_err(to_py)?;
    let request = TrainRequest {
        out: &out,
        source,
        normal_class: normal_class.as_deref(),
        fit,
        model,
        train,
        calibration_fraction,
        resume,
        cuda_graph,
        strict,
        calibration_search,
        ensemble: ensemble.then(|| {
            (
                adgan::score::ensemble::EnsembleConfig::default(),
                adgan::score::features::PcaConfig::default().fallback_dim,
            )
        }),
    };
    let device = self::device(device)?;
    let mut stop = None;
    let trained = train_run(&request, device, &mut |event| {
        match event {
            TrainEvent::Skipped(skipped) => say(
                py,
                &format!("warning: {} image files were left out", skipped.len()),
            ),
            TrainEvent::BatchSizeReduced { asked, images } => say(
                py,
                &format!(
                    "note: batch_size {asked} is more than the {images} training images: \
                     batches of {images} are used"
                ),
            ),
            TrainEvent::NoCheckpointYet => say(
                py,
                "note: no checkpoint yet: training starts from iteration 0",
            ),
            TrainEvent::Started { images } => say(
                py,
                &format!("training on {images} images -> {}", out.display()),
            ),
            TrainEvent::Progress(p) => {
                // The command line's lines without a terminal: one every 5%.
                if p.iteration.is_multiple_of((p.total / 20).max(1)) || p.iteration == p.total {
                    say(
                        py,
                        &format!(
                            "iteration {}/{}  W~{:.4} critic {:.4} gen {:.4}",
                            p.iteration,
                            p.total,
                            p.losses.wasserstein,
                            p.losses.critic,
                            p.losses.generator
                        ),
                    );
                }
                if interrupted(py, &mut stop) {
                    return ControlFlow::Break(());
                }
            }
            TrainEvent::Calibrating { done, total } => {
                if done == total {
                    say(py, &format!("calibrated on {total} held-out normal images"));
                }
            }
            TrainEvent::EnsembleMember(member) => say(
                py,
                &format!("calibrating the ensemble: member {}", member.name()),
            ),
            TrainEvent::EnsembleSkipped { images, needs } => say(
                py,
                &format!(
                    "note: the ensemble is not calibrated: it needs {needs} held-out images, \
                     and {images} were held out (raise calibration_fraction)"
                ),
            ),
        }
        ControlFlow::Continue(())
    })
    .map_err(to_py)?;
    if let Some(e) = stop {
        say(
            py,
            &format!(
                "stopped at iteration {}: train again with resume=True to continue",
                trained.outcome.iteration
            ),
        );
        return Err(e);
    }
    Run::load(out, device_name(device))
}

fn device_name(device: Device) -> &'static str {
    match device {
        Device::Cpu => "cpu",
        _ => "cuda",
    }
}

/// Writes 8-bit images (N x H x W x C, C 1 or 3) as PNG files `image-NNNNNN.png` into the
/// folder `dir` (made when missing), so that an array trains as a folder does.
#[pyfunction]
fn write_pngs(images: PyReadonlyArray4<'_, u8>, dir: PathBuf) -> PyResult<usize> {
    let shape = images.shape().to_vec();
    let (n, h, w, c) = (shape[0], shape[1], shape[2], shape[3]);
    if c != 1 && c != 3 {
        return Err(value_error(format!("images need 1 or 3 channels, not {c}")));
    }
    std::fs::create_dir_all(&dir).map_err(|e| PyRuntimeError::new_err(e.to_string()))?;
    let pixels = images.as_slice()?;
    let len = h * w * c;
    for i in 0..n {
        let path = dir.join(format!("image-{i:06}.png"));
        adgan::visual::write_png(
            &path,
            w as u32,
            h as u32,
            c,
            &pixels[i * len..(i + 1) * len],
        )
        .map_err(to_py)?;
    }
    Ok(n)
}

/// Reads the `split` (train or test) of a data set of kind `dataset` at `data`, fitted to
/// `image_size` x `image_size` and `channels` as training reads it: (images N x C x H x W as
/// float32 in [0, 1], labels or None, class names, ids).
#[pyfunction]
#[pyo3(signature = (dataset, data = None, split = "test", image_size = 32, channels = None,
    fit = "pad"))]
#[allow(clippy::type_complexity)]
fn load_images<'py>(
    py: Python<'py>,
    dataset: &str,
    data: Option<PathBuf>,
    split: &str,
    image_size: i64,
    channels: Option<i64>,
    fit: &str,
) -> PyResult<(
    Bound<'py, numpy::PyArray4<f32>>,
    Option<Bound<'py, PyArray1<i64>>>,
    Vec<String>,
    Vec<String>,
)> {
    let source = DataSource::named(dataset, data.as_deref(), None, 0).map_err(to_py)?;
    let split = match split {
        "train" => adgan::data::Split::Train,
        "test" => adgan::data::Split::Test,
        other => {
            return Err(value_error(format!(
                "unknown split {other:?}: train or test"
            )))
        }
    };
    let spec = adgan::data::ImageSpec {
        size: image_size,
        channels: channels.unwrap_or(source.default_channels()),
    };
    let loaded = source.load(split, spec, fit_of(fit)?).map_err(to_py)?;
    let shape: Vec<usize> = loaded.images.size().iter().map(|&d| d as usize).collect();
    let unit = (loaded.images.to_kind(tch::Kind::Float) + 1.0) / 2.0;
    let values: Vec<f32> = Vec::try_from(unit.flatten(0, -1))
        .map_err(|e| PyRuntimeError::new_err(format!("reading the images: {e}")))?;
    let array =
        numpy::ndarray::Array4::from_shape_vec((shape[0], shape[1], shape[2], shape[3]), values)
            .map_err(|e| PyRuntimeError::new_err(e.to_string()))?;
    Ok((
        array.into_pyarray(py),
        loaded.labels.map(|l| l.into_pyarray(py)),
        loaded.class_names,
        loaded.ids,
    ))
}

fn fit_of(name: &str) -> PyResult<Fit> {
    match name {
        "pad" => Ok(Fit::Pad),
        "resize" => Ok(Fit::Resize),
        other => Err(value_error(format!("unknown fit {other:?}: pad or resize"))),
    }
}

/// The Python module `adgan._adgan`.
#[pymodule]
fn _adgan(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<Run>()?;
    m.add_function(wrap_pyfunction!(train, m)?)?;
    m.add_function(wrap_pyfunction!(write_pngs, m)?)?;
    m.add_function(wrap_pyfunction!(load_images, m)?)?;
    Ok(())
}
