//! The one place where a scoring method becomes a detector: `score`, `rank`, the demo and the
//! experiment all build theirs with [`build`], which also owns each method's batch size and
//! the search shared by `adgan` and `prior` ([`search_columns`]).

use super::adgan::{auto_batch, Adgan, AdganConfig, SearchStart};
use super::anogan::{Anogan, AnoganConfig};
use super::classic::{fit_classic, Classic};
use super::complexity::{ComplexityCorrected, ComplexityLine};
use super::critic::CriticScore;
use super::dcae::DcaeScore;
use super::ensemble::{Ensemble, EnsembleDetector, Member};
use super::features::{FeatureExtractor, PcaConfig, Validation};
use super::kept::{fit_or_load, Provenance};
use super::prior::{prior_scores, PriorScore};
use super::vae::VaeScore;
use super::{score_columns, to_scores, Detector};
use crate::alexnet::AlexNetLayer;
use crate::autoencoder::{Autoencoder, AutoencoderConfig, AutoencoderKind};
use crate::data::Dataset;
use crate::inverse::encoder_dir;
use crate::model::ModelConfig;
use crate::run::TrainedGan;
use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use tch::{Device, Tensor};

/// Images per batch of the critic, the autoencoders and the classic baselines: memory-bound
/// forward passes that gain from large batches.
const CRITIC_BATCH: usize = 256;
const AUTOENCODER_BATCH: usize = 256;
const CLASSIC_BATCH: usize = 1024;
/// Images per batch of AnoGAN on the CPU: each image has its own latent and 500 steps.
const ANOGAN_BATCH: usize = 64;
/// The same on a GPU, where a batch of 64 leaves most of it idle through the 500 small steps.
/// An image's score does not depend on its batch (each starts from the same latent).
const ANOGAN_BATCH_GPU: usize = 1024;

/// A scoring method: ADGAN, the other scores of the GAN, and every baseline of the paper.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "cli", derive(clap::ValueEnum))]
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
    #[cfg_attr(feature = "cli", value(name = "kde-alexnet"))]
    #[serde(rename = "kde-alexnet")]
    KdeAlexnet,
    /// One-class SVM on PCA of AlexNet features (final convolutional layer).
    #[cfg_attr(feature = "cli", value(name = "ocsvm-alexnet"))]
    #[serde(rename = "ocsvm-alexnet")]
    OcsvmAlexnet,
    /// ADGAN corrected for image complexity (beyond the paper).
    #[cfg_attr(feature = "cli", value(name = "adgan-ic"))]
    #[serde(rename = "adgan-ic")]
    AdganIc,
    /// Several methods' scores, each normalised on held-out normal images, combined by one
    /// rule (beyond the paper).
    Ensemble,
}

impl Method {
    /// Every method, in the order of the paper's tables; then those beyond the paper.
    pub const ALL: [Method; 14] = [
        Method::Adgan,
        Method::Critic,
        Method::Prior,
        Method::Anogan,
        Method::Dcae,
        Method::Vae,
        Method::Kde,
        Method::Ocsvm,
        Method::Iforest,
        Method::Gmm,
        Method::KdeAlexnet,
        Method::OcsvmAlexnet,
        Method::AdganIc,
        Method::Ensemble,
    ];

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
            Method::AdganIc => "adgan-ic",
            Method::Ensemble => "ensemble",
        }
    }

    /// Whether the method needs the trained GAN.
    pub fn needs_gan(self) -> bool {
        matches!(
            self,
            Method::Adgan | Method::Critic | Method::Prior | Method::Anogan | Method::AdganIc
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

/// What building a detector may need; each method takes what it uses and says what is missing.
/// The detectors built borrow the GAN (`'g`) and nothing else.
pub struct Inputs<'a, 'g> {
    /// Where the detector runs.
    pub device: Device,
    /// Architecture of the models (the autoencoders copy the GAN's).
    pub model: ModelConfig,
    /// The trained GAN (`adgan`, `prior`, `critic`, `anogan`).
    pub gan: Option<&'g TrainedGan>,
    /// The ADGAN search (`adgan`, `prior`).
    pub search: AdganConfig,
    /// Images per search; chosen from memory when `None`.
    pub batch_images: Option<usize>,
    /// Whether the ADGAN search replays a recorded CUDA graph ([`Adgan::with_cuda_graph`]).
    pub cuda_graph: bool,
    /// AnoGAN's search.
    pub anogan: AnoganConfig,
    /// The autoencoders' architecture and training.
    pub autoencoder: AutoencoderConfig,
    /// Where the autoencoder of a method is trained once and kept.
    pub autoencoder_dir: &'a dyn Fn(Method) -> PathBuf,
    /// Where a classic baseline fitted without validation is kept and loaded from (a run's
    /// `baselines/<method>`); `None` fits it anew each time (an experiment keeps its scores
    /// instead).
    pub classic_dir: Option<&'a dyn Fn(Method) -> PathBuf>,
    /// The images the GAN trained on, when at hand: an encoder start trains its encoder on
    /// them instead of reading the run's data again (a run trained on a split of its data,
    /// such as an experiment's, cannot be read again).
    pub trained_on: Option<&'a Dataset>,
    /// Normal images the baselines are fitted on.
    pub normal: Option<&'a Dataset>,
    /// Labelled validation images from the train split, to choose the PCA dimension with;
    /// without them the fallback dimension of `pca` is used.
    pub validation: Option<&'a Validation>,
    /// PCA and dimension choice of the classic baselines.
    pub pca: PcaConfig,
    /// AlexNet weights for the `*-alexnet` methods.
    pub alexnet: Option<&'a Path>,
    /// Their feature layer.
    pub alexnet_layer: AlexNetLayer,
    /// The complexity line of `adgan-ic`, fitted on normal images the GAN never trained on.
    pub complexity: Option<ComplexityLine>,
    /// The fitted ensemble (its members' normalisers fitted on held-out normal images).
    pub ensemble: Option<&'a Ensemble>,
}

/// A detector ready to score, with how many images to give it at once and what it chose.
pub struct Built<'a> {
    /// The detector.
    pub detector: Box<dyn Detector + 'a>,
    /// Images per call of [`Detector::score_batch`].
    pub batch: usize,
    /// Hyperparameters the method chose on the training data (PCA dimension, bandwidth, ...).
    pub chosen: BTreeMap<String, f64>,
    /// One line on what was built, for the user.
    pub summary: String,
}

/// Where autoencoders would go when none is to be built.
fn no_autoencoder(method: Method) -> PathBuf {
    PathBuf::from(method.name())
}

impl<'g> Inputs<'static, 'g> {
    /// Inputs for the methods that search the latent space of `gan` (`adgan`, `prior`) and
    /// the other GAN methods, with the other settings at their defaults.
    pub fn for_gan(
        device: Device,
        gan: &'g TrainedGan,
        search: AdganConfig,
        batch_images: Option<usize>,
    ) -> Self {
        Self {
            device,
            model: gan.config.model,
            gan: Some(gan),
            search,
            batch_images,
            cuda_graph: false,
            anogan: AnoganConfig::default(),
            autoencoder: AutoencoderConfig::default(),
            autoencoder_dir: &no_autoencoder,
            classic_dir: None,
            trained_on: None,
            normal: None,
            validation: None,
            pca: PcaConfig::default(),
            alexnet: None,
            alexnet_layer: AlexNetLayer::default(),
            complexity: None,
            ensemble: None,
        }
    }
}

impl<'a, 'g> Inputs<'a, 'g> {
    fn gan(&self, method: Method) -> Result<&'g TrainedGan> {
        self.gan
            .with_context(|| format!("{} needs a trained GAN", method.name()))
    }

    fn normal(&self, method: Method) -> Result<&'a Dataset> {
        self.normal
            .with_context(|| format!("{} needs normal images to fit on", method.name()))
    }

    /// Images per ADGAN search: as asked, or chosen from memory.
    pub fn search_batch(&self, gan: &TrainedGan) -> usize {
        self.batch_images
            .unwrap_or_else(|| auto_batch(&gan.generator, &self.search, self.device))
    }
}

/// Builds the detector of `method` from `inputs`: fits a classic baseline, trains (once) or
/// loads an autoencoder, or sets up a search over the GAN. `on_fit(done, total)` follows the
/// training of an autoencoder.
pub fn build<'g>(
    method: Method,
    inputs: &Inputs<'_, 'g>,
    on_fit: &mut dyn FnMut(usize, usize),
) -> Result<Built<'g>> {
    match method {
        Method::Adgan | Method::Prior => build_search(method, inputs, on_fit),
        Method::AdganIc => build_corrected(inputs, on_fit),
        Method::Critic => Ok(Built::plain(
            Box::new(CriticScore::new(&inputs.gan(method)?.critic)),
            CRITIC_BATCH,
            "critic: the negated critic value".to_string(),
        )),
        Method::Anogan => build_anogan(inputs),
        Method::Dcae | Method::Vae => build_autoencoder(method, inputs, on_fit),
        Method::Ensemble => build_ensemble(inputs, on_fit),
        _ => build_classic(method, inputs),
    }
}

impl<'g> Built<'g> {
    fn plain(detector: Box<dyn Detector + 'g>, batch: usize, summary: String) -> Self {
        Self {
            detector,
            batch,
            chosen: BTreeMap::new(),
            summary,
        }
    }
}

/// ADGAN, or the prior likelihood of the latents it ends at; with the encoder start, the
/// encoder of the GAN is trained once (into the run folder) or loaded.
fn build_search<'g>(
    method: Method,
    inputs: &Inputs<'_, 'g>,
    on_fit: &mut dyn FnMut(usize, usize),
) -> Result<Built<'g>> {
    let gan = inputs.gan(method)?;
    let search = inputs.search;
    let batch = inputs.search_batch(gan);
    let adgan = Adgan::for_run(gan, search, inputs.trained_on, inputs.device, on_fit)?
        .with_cuda_graph(inputs.cuda_graph)?;
    let start = match search.start {
        SearchStart::Prior => String::new(),
        SearchStart::Encoder => format!(
            ", starting around the guess of the encoder in {} (spread {})",
            encoder_dir(gan).display(),
            search.spread
        ),
    };
    let summary = format!(
        "{} by the ADGAN search (n_seed {}, k {}, lr_z {}, lr_theta {}, {batch} image(s) per \
         search{start})",
        method.name(),
        search.n_seed,
        search.k,
        search.lr_z,
        search.lr_theta
    );
    let detector: Box<dyn Detector + 'g> = match method {
        Method::Adgan => Box::new(adgan),
        _ => Box::new(PriorScore::new(adgan)),
    };
    Ok(Built::plain(detector, batch, summary))
}

/// ADGAN's search, its scores corrected for the images' complexity by the inputs' line.
fn build_corrected<'g>(
    inputs: &Inputs<'_, 'g>,
    on_fit: &mut dyn FnMut(usize, usize),
) -> Result<Built<'g>> {
    let line = inputs.complexity.context(
        "adgan-ic needs a complexity line fitted on normal images the GAN never trained on: \
         calibrate the run first (adgan calibrate), or use it in an experiment with a \
         validation interval",
    )?;
    let search = build_search(Method::Adgan, inputs, on_fit)?;
    let summary = format!(
        "adgan-ic: {}; corrected for complexity, log score - ({:.3} + {:.3} log PNG length)",
        search.summary, line.intercept, line.slope
    );
    let detector = Box::new(ComplexityCorrected::new(search.detector, line));
    Ok(Built::plain(detector, search.batch, summary))
}

/// The ensemble: each member built as on its own (`adgan-ic` beside `adgan` corrects that
/// member's scores rather than searching again), combined by the fitted ensemble.
fn build_ensemble<'g>(
    inputs: &Inputs<'_, 'g>,
    on_fit: &mut dyn FnMut(usize, usize),
) -> Result<Built<'g>> {
    let ensemble = inputs.ensemble.context(
        "the ensemble needs its members' scores of held-out normal images: calibrate the run \
         for it first, or use it in an experiment with a validation interval",
    )?;
    let members = &ensemble.config.members;
    let mut detectors = Vec::new();
    let mut batch = usize::MAX;
    let mut chosen = BTreeMap::new();
    let mut summaries = Vec::new();
    for &member in members {
        let search = members.iter().position(|&m| m == Method::Adgan);
        if let (Method::AdganIc, Some(of)) = (member, search) {
            let line = inputs.complexity.context(
                "the ensemble member adgan-ic needs a complexity line fitted on normal images \
                 the GAN never trained on",
            )?;
            detectors.push(Member::Corrected { of, line });
            continue;
        }
        let built = build(member, inputs, on_fit)
            .with_context(|| format!("building the ensemble member {}", member.name()))?;
        batch = batch.min(built.batch);
        summaries.push(format!("\n  member {}", built.summary));
        for (key, value) in built.chosen {
            chosen.insert(format!("{}_{key}", member.name()), value);
        }
        detectors.push(Member::Own(built.detector));
    }
    let summary = format!(
        "ensemble of {}{}",
        ensemble.config.label(),
        summaries.concat()
    );
    Ok(Built {
        detector: Box::new(EnsembleDetector::new(detectors, ensemble.clone())?),
        batch,
        chosen,
        summary,
    })
}

/// AnoGAN on the GAN's generator and critic.
fn build_anogan<'g>(inputs: &Inputs<'_, 'g>) -> Result<Built<'g>> {
    let gan = inputs.gan(Method::Anogan)?;
    let config = inputs.anogan;
    let anogan = Anogan::new(&gan.generator, &gan.critic, config, inputs.device)?;
    let summary = format!(
        "anogan: {} steps on one latent per image, lambda {}",
        config.steps, config.lambda
    );
    let batch = match inputs.device {
        Device::Cpu => ANOGAN_BATCH,
        _ => ANOGAN_BATCH_GPU,
    };
    Ok(Built::plain(Box::new(anogan), batch, summary))
}

/// The DCAE or VAE, trained once on the normal images and kept.
fn build_autoencoder<'g>(
    method: Method,
    inputs: &Inputs<'_, 'g>,
    on_fit: &mut dyn FnMut(usize, usize),
) -> Result<Built<'g>> {
    let kind = method.autoencoder().context("not an autoencoder")?;
    let normal = inputs.normal(method)?;
    let dir = (inputs.autoencoder_dir)(method);
    let total = inputs.autoencoder.iterations;
    let ae = Autoencoder::train_or_load(
        kind,
        inputs.model,
        inputs.autoencoder,
        normal,
        &dir,
        inputs.device,
        &mut |done, _loss| on_fit(done, total),
    )?;
    let detector: Box<dyn Detector + 'g> = match kind {
        AutoencoderKind::Dcae => Box::new(DcaeScore::new(ae)?),
        AutoencoderKind::Vae => Box::new(VaeScore::new(ae, inputs.autoencoder.seed)?),
    };
    let summary = format!(
        "{} trained on {} normal images (kept in {})",
        method.name(),
        normal.len(),
        dir.display()
    );
    Ok(Built::plain(detector, AUTOENCODER_BATCH, summary))
}

/// A classic baseline on PCA features, its dimension chosen on the validation images when
/// there are some.
fn build_classic<'g>(method: Method, inputs: &Inputs<'_, 'g>) -> Result<Built<'g>> {
    let kind = method.classic().context("not a classic baseline")?;
    let normal = inputs.normal(method)?;
    let extractor = FeatureExtractor::choose(
        method.uses_alexnet(),
        inputs.alexnet,
        inputs.alexnet_layer,
        method.name(),
        inputs.device,
    )?;
    let (fitted, kept) = match (inputs.classic_dir, inputs.validation) {
        (Some(dir), None) => {
            let dir = dir(method);
            let (fitted, provenance) =
                fit_or_load(kind, &extractor, normal, &inputs.pca, &dir, inputs.device)
                    .with_context(|| format!("fitting {}", method.name()))?;
            let kept = match provenance {
                Provenance::Loaded => format!("; loaded from {}", dir.display()),
                Provenance::Kept => format!("; kept in {}", dir.display()),
                Provenance::NotKept(why) => format!(
                    "; not kept, since {} keeps another fit ({why}): delete it to keep this one",
                    dir.display()
                ),
            };
            (fitted, kept)
        }
        _ => {
            let images = normal.images.to_device(inputs.device);
            let fitted = fit_classic(kind, &extractor, &images, inputs.validation, &inputs.pca)
                .with_context(|| format!("fitting {}", method.name()))?;
            (fitted, String::new())
        }
    };
    let chosen: Vec<String> = fitted
        .chosen
        .iter()
        .map(|(k, v)| format!("{k} {v}"))
        .collect();
    let summary = format!(
        "{} fitted on {} normal images ({}){kept}",
        method.name(),
        normal.len(),
        chosen.join(", ")
    );
    Ok(Built {
        detector: fitted.detector,
        batch: CLASSIC_BATCH,
        chosen: fitted.chosen,
        summary,
    })
}

/// The `adgan` and `prior` scores of `images` from one search each (they share it), in that
/// order; `on_batch(done, total)` follows it.
pub fn search_columns(
    inputs: &Inputs<'_, '_>,
    images: &Tensor,
    on_batch: &mut dyn FnMut(usize, usize),
) -> Result<[Vec<f64>; 2]> {
    let gan = inputs.gan(Method::Adgan)?;
    let mut adgan = Adgan::for_run(gan, inputs.search, None, inputs.device, &mut |_, _| {})?
        .with_cuda_graph(inputs.cuda_graph)?;
    let batch = inputs.search_batch(gan);
    let mut columns = score_columns(
        &mut { images },
        batch,
        inputs.device,
        2,
        &mut |chunk| {
            let search = adgan.search_mut(chunk)?;
            Ok(vec![
                to_scores(&search.final_losses())?,
                to_scores(&prior_scores(&search))?,
            ])
        },
        on_batch,
    )?;
    let prior = columns.pop().expect("two columns");
    let losses = columns.pop().expect("two columns");
    Ok([losses, prior])
}
