//! The four classic baselines of the paper's Sect. 4.2 by name: fit on normal images (PCA
//! dimension chosen on a validation set when one is given), ready to score as a [`Detector`].

use super::features::{
    select_dimension, FeatureExtractor, FeatureModel, Pca, PcaConfig, PcaDetector, Validation,
};
use super::gmm::{Gmm, GmmConfig};
use super::iforest::{IsolationForest, IsolationForestConfig};
use super::kde::{bandwidth_grid, Kde};
use super::ocsvm::{OcSvm, OcSvmConfig};
use super::Detector;
use anyhow::Result;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap};
use tch::Tensor;

/// A classic baseline on PCA features.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "cli", derive(clap::ValueEnum))]
#[serde(rename_all = "lowercase")]
pub enum Classic {
    /// Gaussian KDE, bandwidth by 10-fold cross-validated likelihood.
    Kde,
    /// One-class SVM, Gaussian kernel, nu = 0.1.
    #[cfg_attr(feature = "cli", value(name = "ocsvm"))]
    #[serde(rename = "ocsvm")]
    OcSvm,
    /// Isolation Forest, 100 trees of 256 points.
    #[cfg_attr(feature = "cli", value(name = "iforest"))]
    #[serde(rename = "iforest")]
    IsolationForest,
    /// Full-covariance GMM, 2-20 components by BIC.
    Gmm,
}

impl Classic {
    /// The name used in tables and file names.
    pub fn name(self) -> &'static str {
        match self {
            Classic::Kde => "kde",
            Classic::OcSvm => "ocsvm",
            Classic::IsolationForest => "iforest",
            Classic::Gmm => "gmm",
        }
    }
}

/// A fitted baseline and the hyperparameters it chose (`pca_dim`, `bandwidth`, `components`,
/// `gamma`, and `validation_auc_<d>` for every candidate dimension).
pub struct FittedClassic {
    /// The detector.
    pub detector: Box<dyn Detector>,
    /// Chosen hyperparameters, by name.
    pub chosen: BTreeMap<String, f64>,
    /// The fitted projection and model as named tensors (`pca.*`, `model.*`): what
    /// [`super::kept`] saves and rebuilds the detector from.
    pub parameters: Vec<(String, Tensor)>,
}

/// A fitted model of one kind, with what it chose.
struct Chosen {
    model: Box<dyn FeatureModel>,
    chosen: Vec<(&'static str, f64)>,
}

fn fit_model(kind: Classic, x: &Tensor, seed: u64) -> Result<Chosen> {
    Ok(match kind {
        Classic::Kde => {
            let kde = Kde::fit_cross_validated(x, &bandwidth_grid(), 10)?;
            let chosen = vec![("bandwidth", kde.bandwidth)];
            Chosen {
                model: Box::new(kde),
                chosen,
            }
        }
        Classic::OcSvm => {
            let svm = OcSvm::fit(x, &OcSvmConfig::default())?;
            let chosen = vec![
                ("gamma", svm.gamma),
                ("support_vectors", svm.support_vectors() as f64),
            ];
            Chosen {
                model: Box::new(svm),
                chosen,
            }
        }
        Classic::IsolationForest => {
            let config = IsolationForestConfig {
                seed,
                ..Default::default()
            };
            Chosen {
                model: Box::new(IsolationForest::fit(x, &config)?),
                chosen: Vec::new(),
            }
        }
        Classic::Gmm => {
            let config = GmmConfig {
                seed,
                ..Default::default()
            };
            let gmm = Gmm::fit_by_bic(x, &config)?;
            let chosen = vec![("components", gmm.components() as f64)];
            Chosen {
                model: Box::new(gmm),
                chosen,
            }
        }
    })
}

/// The model of `kind` rebuilt from its [`FeatureModel::parameters`].
pub(crate) fn model_from_parameters(
    kind: Classic,
    parameters: &HashMap<String, Tensor>,
) -> Result<Box<dyn FeatureModel>> {
    Ok(match kind {
        Classic::Kde => Box::new(Kde::from_parameters(parameters)?),
        Classic::OcSvm => Box::new(OcSvm::from_parameters(parameters)?),
        Classic::IsolationForest => Box::new(IsolationForest::from_parameters(parameters)?),
        Classic::Gmm => Box::new(Gmm::from_parameters(parameters)?),
    })
}

impl FeatureModel for Box<dyn FeatureModel> {
    fn score(&self, features: &Tensor) -> Result<Tensor> {
        self.as_ref().score(features)
    }

    fn parameters(&self) -> Vec<(String, Tensor)> {
        self.as_ref().parameters()
    }
}

/// The named tensors of a fitted projection and model, under `pca.` and `model.`.
pub(crate) fn detector_parameters(pca: &Pca, model: &dyn FeatureModel) -> Vec<(String, Tensor)> {
    let pca = pca
        .parameters()
        .into_iter()
        .map(|(k, t)| (format!("pca.{k}"), t));
    let model = model
        .parameters()
        .into_iter()
        .map(|(k, t)| (format!("model.{k}"), t));
    pca.chain(model).collect()
}

/// Fits `kind` on the features of the normal images `train`: the PCA dimension is the best of
/// `config.dims` on `validation` when given, else `config.fallback_dim`.
pub fn fit_classic(
    kind: Classic,
    extractor: &FeatureExtractor,
    train: &Tensor,
    validation: Option<&Validation>,
    config: &PcaConfig,
) -> Result<FittedClassic> {
    config.validate()?;
    let mut chosen = BTreeMap::new();
    let dim = match validation {
        Some(validation) => {
            let (dim, aucs) = select_dimension(validation, extractor, &config.dims, &mut |x| {
                fit_model(kind, x, config.seed).map(|fitted| fitted.model)
            })?;
            for (d, auc) in aucs {
                chosen.insert(format!("validation_auc_{d}"), auc);
            }
            dim
        }
        None => config.fallback_dim,
    };
    let mut model_chose = Vec::new();
    let detector = PcaDetector::fit(kind.name(), extractor.clone(), train, dim, &mut |x| {
        let fitted = fit_model(kind, x, config.seed)?;
        model_chose = fitted.chosen;
        Ok(fitted.model)
    })?;
    chosen.insert("pca_dim".to_string(), dim as f64);
    for (name, value) in model_chose {
        chosen.insert(name.to_string(), value);
    }
    Ok(FittedClassic {
        parameters: detector_parameters(detector.pca(), detector.model()),
        detector: Box::new(detector),
        chosen,
    })
}
