//! A trained run made ready to score new images: the one place where `score`, `rank` and the
//! Python API resolve what they score with. It picks the method (the one asked for, or the
//! run's default), loads the run's calibration when it was made with the same search, takes
//! `adgan-ic`'s complexity line and the ensemble's fitted members from it, checks alpha, and
//! builds the detector, its baselines fitted on the images the GAN trained on (or loaded from
//! the run, where an earlier command kept them).

use crate::alexnet::AlexNetLayer;
use crate::calibration::{self, Calibration, EnsembleCalibration};
use crate::data::Dataset;
use crate::run::{baseline_dir, TrainedGan};
use crate::score::adgan::AdganConfig;
use crate::score::complexity::ComplexityLine;
use crate::score::features::PcaConfig;
use crate::score::method::{self, Built, Inputs, Method};
use crate::setting::check;
use anyhow::{Context, Result};
use std::path::PathBuf;
use tch::Device;

/// What to score with; the paper's defaults otherwise.
#[derive(Debug, Clone)]
pub struct ScorerConfig {
    /// The method; `None` takes the run's default ([`calibration::default_method`]).
    pub method: Option<Method>,
    /// The ADGAN search (n_seed, k, learning rates).
    pub search: AdganConfig,
    /// Images per search; chosen from memory when `None`.
    pub batch_images: Option<usize>,
    /// Whether the ADGAN search replays a recorded CUDA graph (CUDA only).
    pub cuda_graph: bool,
    /// Level of the decisions: an image is flagged when its p-value is at most alpha.
    pub alpha: f64,
    /// PCA dimension d' of the classic baselines (an ensemble's members keep the dimension
    /// they were calibrated with).
    pub pca_dim: usize,
    /// AlexNet weights, for the `*-alexnet` methods.
    pub alexnet: Option<PathBuf>,
    /// Their feature layer.
    pub alexnet_layer: AlexNetLayer,
}

impl Default for ScorerConfig {
    fn default() -> Self {
        Self {
            method: None,
            search: AdganConfig::default(),
            batch_images: None,
            cuda_graph: false,
            alpha: calibration::DEFAULT_ALPHA,
            pca_dim: PcaConfig::default().fallback_dim,
            alexnet: None,
            alexnet_layer: AlexNetLayer::default(),
        }
    }
}

/// Something a user of the scorer should be told, in the library's terms (a front end adds
/// how to act on it in its own).
#[derive(Debug, Clone, PartialEq)]
pub enum Notice {
    /// The run's calibration was made with other search settings: no p-values.
    CalibrationOfOtherSearch,
    /// No method was asked for and the run is not calibrated for this search, so the default
    /// falls back to ADGAN as in the paper.
    DefaultWithoutCalibration,
    /// A warning about the calibration's own scores ([`Calibration::check`]).
    CalibrationWarning(String),
    /// alpha is below the smallest p-value the calibration can give: no image can be flagged.
    AlphaTooSmall {
        /// 1 / (n_cal + 1).
        smallest: f64,
        /// n_cal.
        images: usize,
    },
}

/// A method that needs the run calibrated (with the same search) and a run that is not: the
/// front end says how to calibrate it.
#[derive(Debug)]
pub struct NeedsCalibration {
    /// The method asked for.
    pub method: Method,
    /// What it needs from the calibration.
    pub what: &'static str,
}

impl std::fmt::Display for NeedsCalibration {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} needs {}, and the run has none calibrated with these search settings",
            self.method.name(),
            self.what
        )
    }
}

impl std::error::Error for NeedsCalibration {}

/// A run resolved for scoring: the method, its calibration, and what its detector needs.
pub struct Scorer<'g> {
    gan: &'g TrainedGan,
    config: ScorerConfig,
    /// The method scored with.
    pub method: Method,
    /// The calibration its p-values come from (`adgan-ic`'s corrected, the ensemble's own);
    /// `None` without p-values.
    pub decisions: Option<Calibration>,
    /// What to tell the user, in the order it arose.
    pub notices: Vec<Notice>,
    complexity: Option<ComplexityLine>,
    ensemble: Option<EnsembleCalibration>,
}

impl<'g> Scorer<'g> {
    /// Resolves `config` over the run `gan`, checking every setting before any work.
    pub fn new(gan: &'g TrainedGan, config: ScorerConfig) -> Result<Self> {
        check((0.0..1.0).contains(&config.alpha), "alpha", || {
            format!("alpha must lie in [0, 1), not {}", config.alpha)
        })?;
        check(config.batch_images != Some(0), "batch_images", || {
            "images per search must be at least 1".into()
        })?;
        let mut notices = Vec::new();
        let searches = config.method.is_none_or(is_calibrated_method);
        let calibration = match searches {
            true => {
                config
                    .search
                    .validate(&gan.config.model)
                    .context("the ADGAN search")?;
                matching_calibration(gan, &config.search, &mut notices)?
            }
            false => None,
        };
        let method = config.method.unwrap_or_else(|| {
            let method = calibration::default_method(calibration.as_ref());
            if method != Method::AdganIc {
                notices.push(Notice::DefaultWithoutCalibration);
            }
            method
        });
        let needs = |what| NeedsCalibration { method, what };
        let ensemble = match method {
            Method::Ensemble => {
                let e = calibration
                    .as_ref()
                    .and_then(|c| c.ensemble.clone())
                    .ok_or_else(|| needs("its members fitted and calibrated on the run"))?;
                let default_dim = PcaConfig::default().fallback_dim;
                check(
                    config.pca_dim == e.pca_dim || config.pca_dim == default_dim,
                    "pca_dim",
                    || {
                        format!(
                            "the ensemble's members were calibrated with {} PCA dimensions, \
                             not {}: leave the dimension out, or calibrate again with {}",
                            e.pca_dim, config.pca_dim, config.pca_dim
                        )
                    },
                )?;
                Some(e)
            }
            _ => None,
        };
        let uses_line = match &ensemble {
            Some(e) => e.ensemble.config.members.contains(&Method::AdganIc),
            None => method == Method::AdganIc,
        };
        let complexity = match uses_line {
            true => {
                let c = calibration
                    .as_ref()
                    .ok_or_else(|| needs("a complexity line fitted on the calibration images"))?;
                Some(c.complexity_line().context("the run's calibration")?)
            }
            false => None,
        };
        // The decisions compare like with like: corrected scores with corrected calibration
        // scores, the ensemble's with its own.
        let decisions = calibration.map(|c| c.for_method(method)).transpose()?;
        if let Some(d) = &decisions {
            if config.alpha < d.smallest_alpha() {
                notices.push(Notice::AlphaTooSmall {
                    smallest: d.smallest_alpha(),
                    images: d.scores.len(),
                });
            }
        }
        Ok(Self {
            gan,
            config,
            method,
            decisions,
            notices,
            complexity,
            ensemble,
        })
    }

    /// Whether the detector fits baselines on normal images (a classic method, or an ensemble
    /// with one among its members).
    pub fn fits_baselines(&self) -> bool {
        match &self.ensemble {
            Some(e) => e.ensemble.config.members.iter().any(|m| !m.needs_gan()),
            None => !self.method.needs_gan(),
        }
    }

    /// Builds the detector on `device`. Its baselines are fitted on `normal` when given (other
    /// normal images than the run's; such a fit is not kept), else on the images the GAN
    /// trained on, and kept in the run. `on_fit(done, total)` follows an autoencoder's
    /// training.
    pub fn build(
        &self,
        normal: Option<&Dataset>,
        device: Device,
        on_fit: &mut dyn FnMut(usize, usize),
    ) -> Result<Built<'g>> {
        // Only a fit on the run's own training images is the run's to keep.
        let own_images = normal.is_none();
        let read;
        let normal = match (normal, self.fits_baselines()) {
            (Some(images), _) => Some(images),
            (None, true) => {
                read = self.gan.training_images()?;
                Some(&read)
            }
            (None, false) => None,
        };
        let run_dir = self.gan.run_dir.clone();
        let kept_in_run = move |m: Method| baseline_dir(&run_dir, m.name());
        let mut inputs = Inputs::for_gan(
            device,
            self.gan,
            self.config.search,
            self.config.batch_images,
        );
        inputs.cuda_graph = self.config.cuda_graph;
        inputs.autoencoder_dir = &kept_in_run;
        inputs.classic_dir = own_images.then_some(&kept_in_run as &dyn Fn(Method) -> PathBuf);
        inputs.normal = normal;
        inputs.pca.fallback_dim = self
            .ensemble
            .as_ref()
            .map_or(self.config.pca_dim, |e| e.pca_dim);
        inputs.alexnet = self.config.alexnet.as_deref();
        inputs.alexnet_layer = self.config.alexnet_layer;
        inputs.complexity = self.complexity;
        inputs.ensemble = self.ensemble.as_ref().map(|e| &e.ensemble);
        method::build(self.method, &inputs, on_fit)
            .with_context(|| format!("building {}", self.method.name()))
    }

    /// The p-values of `scores` under the method's calibration, when it has one.
    pub fn p_values(&self, scores: &[f64]) -> Option<Vec<f64>> {
        let calibration = self.decisions.as_ref()?;
        Some(scores.iter().map(|&s| calibration.p_value(s)).collect())
    }

    /// The settings scored with.
    pub fn config(&self) -> &ScorerConfig {
        &self.config
    }
}

/// The methods a run's calibration gives p-values for: those of the ADGAN search.
fn is_calibrated_method(method: Method) -> bool {
    matches!(method, Method::Adgan | Method::AdganIc | Method::Ensemble)
}

/// The run's calibration when it was made with `search` (a notice otherwise), with its
/// warnings noted.
fn matching_calibration(
    gan: &TrainedGan,
    search: &AdganConfig,
    notices: &mut Vec<Notice>,
) -> Result<Option<Calibration>> {
    let Some(calibration) = Calibration::load(&gan.run_dir)? else {
        return Ok(None);
    };
    if calibration.search != *search {
        notices.push(Notice::CalibrationOfOtherSearch);
        return Ok(None);
    }
    notices.extend(
        calibration
            .check()
            .into_iter()
            .map(Notice::CalibrationWarning),
    );
    Ok(Some(calibration))
}
