//! The paper's classic baselines (Sect. 4.2) share one pipeline: flatten the image, project it
//! on the top principal components of the normal training images, and score the projection
//! with a density or boundary model ([`FeatureModel`]: KDE, OC-SVM, Isolation Forest, GMM).
//!
//! The PCA dimension comes from a grid ({20, 40, 60, 80, 100} in the paper). The paper picks the
//! best on "a small holdout set"; here the rule is explicit ([`select_dimension`]): a seeded
//! tenth of the normal training images is held out, the same number of training images of the
//! other classes joins it as anomalies, every dimension is fitted on the rest, and the one with
//! the highest validation ROC-AUC wins (the smaller on ties). Only the train split is used, never
//! the test images. Without labelled anomalies (a folder of normal images) a fixed dimension is
//! used instead.

use super::{to_scores, Detector};
use crate::alexnet::{AlexNet, AlexNetLayer};
use crate::data::{Dataset, ValidationSplit};
use crate::eval::roc_auc;
use anyhow::{ensure, Context, Result};
use std::collections::HashMap;
use tch::{Kind, Tensor};

/// Images N x C x H x W flattened to N x (C*H*W) doubles (the precision the linear algebra of
/// PCA, GMM and KDE needs at 1000-3000 dimensions).
pub fn flatten(images: &Tensor) -> Tensor {
    images.flatten(1, -1).to_kind(Kind::Double)
}

/// What the classic baselines see of an image before PCA.
#[derive(Clone)]
pub enum FeatureExtractor {
    /// The pixels, flattened (the paper's main rows).
    Pixels,
    /// Features of a pretrained AlexNet (the paper's "AlexNet" rows; the layer is the
    /// network's).
    AlexNet(std::rc::Rc<AlexNet>),
}

impl FeatureExtractor {
    /// Pixels, or AlexNet features from `weights` when `alexnet`; `method` names the method
    /// in the error when the weights are missing.
    pub fn choose(
        alexnet: bool,
        weights: Option<&std::path::Path>,
        layer: AlexNetLayer,
        method: &str,
        device: tch::Device,
    ) -> Result<Self> {
        if !alexnet {
            return Ok(FeatureExtractor::Pixels);
        }
        let path = weights.with_context(|| {
            format!(
                "{method} needs AlexNet weights (torchvision's AlexNet state dict as safetensors; the README says how to export it)"
            )
        })?;
        Ok(FeatureExtractor::AlexNet(std::rc::Rc::new(AlexNet::load(
            path, layer, device,
        )?)))
    }

    /// What the features are, for records: `pixels`, `alexnet-conv5` or `alexnet-fc7`.
    pub fn name(&self) -> &'static str {
        match self {
            FeatureExtractor::Pixels => "pixels",
            FeatureExtractor::AlexNet(net) => match net.layer() {
                AlexNetLayer::Conv5 => "alexnet-conv5",
                AlexNetLayer::Fc7 => "alexnet-fc7",
            },
        }
    }

    /// Feature vectors (N x D doubles) of images N x C x H x W.
    pub fn extract(&self, images: &Tensor) -> Tensor {
        match self {
            FeatureExtractor::Pixels => flatten(images),
            FeatureExtractor::AlexNet(net) => net.features(images).to_kind(Kind::Double),
        }
    }
}

/// Checks that a feature matrix is usable: finite values and more rows than `min_rows`.
pub fn check_features(x: &Tensor, min_rows: usize, what: &str) -> Result<()> {
    let n = x.size()[0] as usize;
    ensure!(
        n > min_rows,
        "{what}: {n} samples are too few (need more than {min_rows}); use more training images \
         or a smaller PCA dimension"
    );
    let finite = x.isfinite().all().int64_value(&[]) == 1;
    ensure!(
        finite,
        "{what}: the data holds NaN or infinite values; check the images (a corrupt file?)"
    );
    Ok(())
}

/// Principal component analysis: x -> (x - mean) W with W the top-d' eigenvectors of the
/// covariance of the training data.
#[derive(Debug)]
pub struct Pca {
    mean: Tensor,
    /// D x d' projection, columns by decreasing variance.
    components: Tensor,
}

impl Pca {
    /// Fits the top `dim` components of `x` (N x D doubles); needs N > `dim`.
    pub fn fit(x: &Tensor, dim: usize) -> Result<Pca> {
        check_features(x, dim, "PCA")?;
        let d_in = x.size()[1];
        ensure!(
            dim as i64 <= d_in,
            "PCA: dimension {dim} is more than the {d_in} input dimensions"
        );
        let mean = x.mean_dim(0, false, Kind::Double);
        let centred = x - &mean;
        let n = x.size()[0] as f64;
        // Eigenvectors of the D x D covariance: one symmetric eigendecomposition, cheaper than
        // an SVD of the N x D data for the sizes here (N ~ 6000, D = 1024 or 3072).
        let components = if (n as i64) < d_in {
            // Fewer images than pixels: eigenvectors u of the N x N Gram matrix give the
            // components X'u / sqrt((N-1) lambda), at a fraction of the D x D cost.
            let gram = centred.matmul(&centred.transpose(0, 1)) / (n - 1.0);
            let (values, vectors) = gram.linalg_eigh("L");
            let top = vectors
                .narrow(1, x.size()[0] - dim as i64, dim as i64)
                .flip([1]);
            let lambda = values
                .narrow(0, x.size()[0] - dim as i64, dim as i64)
                .flip([0])
                .clamp_min(1e-12);
            centred.transpose(0, 1).matmul(&top) / (lambda * (n - 1.0)).sqrt().unsqueeze(0)
        } else {
            // Eigenvectors of the D x D covariance (eigh sorts ascending: the top components
            // are the last columns).
            let covariance = centred.transpose(0, 1).matmul(&centred) / (n - 1.0);
            let (_, vectors) = covariance.linalg_eigh("L");
            vectors.narrow(1, d_in - dim as i64, dim as i64).flip([1])
        };
        // Contiguous, as a kept projection is when it is loaded: the same layout gives the
        // same rounding, so a loaded baseline scores exactly as the fitted one.
        let components = components.contiguous();
        Ok(Pca { mean, components })
    }

    /// The same projection keeping only the first `dim` components.
    pub fn truncated(&self, dim: usize) -> Pca {
        Pca {
            mean: self.mean.shallow_clone(),
            components: self.components.narrow(1, 0, dim as i64),
        }
    }

    /// Output dimension d'.
    pub fn dim(&self) -> usize {
        self.components.size()[1] as usize
    }

    /// Projects flattened data N x D to N x d'.
    pub fn project(&self, x: &Tensor) -> Tensor {
        (x.to_device(self.mean.device()) - &self.mean).matmul(&self.components)
    }

    /// The mean and the components, by name, for keeping the projection.
    pub fn parameters(&self) -> Vec<(String, Tensor)> {
        vec![
            ("mean".to_string(), self.mean.shallow_clone()),
            ("components".to_string(), self.components.shallow_clone()),
        ]
    }

    /// The projection of [`Pca::parameters`], checked for matching shapes.
    pub fn from_parameters(parameters: &HashMap<String, Tensor>) -> Result<Pca> {
        let mean = parameter(parameters, "mean")?.to_kind(Kind::Double);
        let components = parameter(parameters, "components")?.to_kind(Kind::Double);
        ensure!(
            mean.dim() == 1
                && components.dim() == 2
                && components.size()[0] == mean.size()[0]
                && components.size()[1] > 0,
            "the kept PCA has mean {:?} and components {:?}: they do not fit together",
            mean.size(),
            components.size()
        );
        Ok(Pca { mean, components })
    }
}

/// A model of normal feature vectors that scores new ones (higher = more anomalous).
pub trait FeatureModel {
    /// Anomaly scores of the rows of `features` (N x d' doubles), [N].
    fn score(&self, features: &Tensor) -> Result<Tensor>;

    /// The fitted model as named tensors, from which its kind's `from_parameters` rebuilds
    /// it exactly (how a run keeps a fitted baseline).
    fn parameters(&self) -> Vec<(String, Tensor)>;
}

/// The tensor `name` of a kept model's `parameters`, or an error naming what is missing.
pub(crate) fn parameter(parameters: &HashMap<String, Tensor>, name: &str) -> Result<Tensor> {
    parameters
        .get(name)
        .map(Tensor::shallow_clone)
        .with_context(|| format!("the kept model has no tensor {name}"))
}

/// A scalar kept as a one-element tensor.
pub(crate) fn scalar_parameter(parameters: &HashMap<String, Tensor>, name: &str) -> Result<f64> {
    let t = parameter(parameters, name)?;
    ensure!(t.numel() == 1, "the kept model's {name} is not one number");
    Ok(t.to_kind(Kind::Double).double_value(&[]))
}

/// A number as a one-element tensor of doubles, for [`FeatureModel::parameters`].
pub(crate) fn scalar_tensor(value: f64) -> Tensor {
    Tensor::from_slice(&[value])
}

/// How the classic baselines are set up.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(default)]
pub struct PcaConfig {
    /// Candidate PCA dimensions (the paper's {20, 40, 60, 80, 100}).
    pub dims: Vec<usize>,
    /// Dimension used when there are no labelled anomalies to choose with.
    pub fallback_dim: usize,
    /// Fraction of normal training images held out to choose the dimension.
    pub holdout_fraction: f64,
    /// Seed of the hold-out draw (and of any randomised model).
    pub seed: u64,
}

impl PcaConfig {
    /// Checks the candidate dimensions (at least one, none zero) and the hold-out fraction.
    pub fn validate(&self) -> Result<()> {
        ensure!(
            !self.dims.is_empty() && self.dims.iter().all(|&d| d > 0) && self.fallback_dim > 0,
            "PCA dimensions must be at least 1 (the paper's are 20 to 100)"
        );
        ensure!(
            self.holdout_fraction > 0.0 && self.holdout_fraction < 1.0,
            "the hold-out fraction must lie strictly between 0 and 1"
        );
        Ok(())
    }
}

impl Default for PcaConfig {
    fn default() -> Self {
        Self {
            dims: vec![20, 40, 60, 80, 100],
            fallback_dim: 40,
            holdout_fraction: 0.1,
            seed: 0,
        }
    }
}

/// Labelled images for choosing the PCA dimension: a hold-out of normal training images and
/// training images of other classes.
pub struct Validation {
    /// Normal training images not in the hold-out (what each candidate is fitted on).
    pub fit: Tensor,
    /// Hold-out images: normal ones, then anomalous ones.
    pub images: Tensor,
    /// 0 = normal, 1 = anomalous, aligned with `images`.
    pub labels: Vec<i64>,
}

impl Validation {
    /// Holds out `fraction` of `normal` (seeded) and draws as many images of `others`
    /// ([`ValidationSplit::draw`]).
    pub fn draw(normal: &Dataset, others: &Dataset, fraction: f64, seed: u64) -> Result<Self> {
        Ok(Self::from(ValidationSplit::draw(
            normal, others, fraction, seed,
        )?))
    }
}

impl From<ValidationSplit> for Validation {
    fn from(split: ValidationSplit) -> Self {
        Validation {
            fit: split.fit.images,
            images: split.validation.images,
            labels: split.validation.labels.unwrap_or_default(),
        }
    }
}

/// Picks the dimension of `dims` with the highest validation ROC-AUC of `fit(features, dim)`
/// (the smaller one on ties); returns it with the AUC of every candidate.
pub fn select_dimension<M: FeatureModel>(
    validation: &Validation,
    extractor: &FeatureExtractor,
    dims: &[usize],
    fit: &mut dyn FnMut(&Tensor) -> Result<M>,
) -> Result<(usize, Vec<(usize, f64)>)> {
    ensure!(!dims.is_empty(), "no candidate PCA dimensions given");
    let max_dim = *dims.iter().max().expect("not empty");
    let fit_features = extractor.extract(&validation.fit);
    let pca = Pca::fit(&fit_features, max_dim)?;
    let train = pca.project(&fit_features);
    let held = pca.project(&extractor.extract(&validation.images));
    let mut aucs = Vec::new();
    for &dim in dims {
        let model = fit(&train.narrow(1, 0, dim as i64))?;
        let scores = to_scores(&model.score(&held.narrow(1, 0, dim as i64))?)?;
        aucs.push((dim, roc_auc(&scores, &validation.labels)?));
    }
    let best = aucs
        .iter()
        .fold(None::<(usize, f64)>, |best, &(dim, auc)| match best {
            Some((_, b)) if b >= auc => best,
            _ => Some((dim, auc)),
        })
        .expect("not empty")
        .0;
    Ok((best, aucs))
}

/// A [`FeatureModel`] on PCA features of images: a full classic-baseline [`Detector`].
pub struct PcaDetector<M> {
    name: String,
    extractor: FeatureExtractor,
    pca: Pca,
    model: M,
}

impl<M: FeatureModel> PcaDetector<M> {
    /// Fits PCA with `dim` components on the features of `train` images and `fit` on the
    /// projections.
    pub fn fit(
        name: &str,
        extractor: FeatureExtractor,
        train: &Tensor,
        dim: usize,
        fit: &mut dyn FnMut(&Tensor) -> Result<M>,
    ) -> Result<Self> {
        let x = extractor.extract(train);
        let pca = Pca::fit(&x, dim)?;
        let model = fit(&pca.project(&x))?;
        Ok(Self {
            name: name.to_string(),
            extractor,
            pca,
            model,
        })
    }

    /// The detector of an already fitted `pca` and `model` (a kept baseline, loaded).
    pub fn from_parts(name: &str, extractor: FeatureExtractor, pca: Pca, model: M) -> Self {
        Self {
            name: name.to_string(),
            extractor,
            pca,
            model,
        }
    }

    /// The fitted feature model.
    pub fn model(&self) -> &M {
        &self.model
    }

    /// The fitted projection.
    pub fn pca(&self) -> &Pca {
        &self.pca
    }

    /// The PCA dimension d'.
    pub fn dim(&self) -> usize {
        self.pca.dim()
    }
}

impl<M: FeatureModel> Detector for PcaDetector<M> {
    fn name(&self) -> &str {
        &self.name
    }

    fn score_batch(&mut self, images: &Tensor) -> Result<Vec<f64>> {
        let features = self.pca.project(&self.extractor.extract(images));
        to_scores(&self.model.score(&features)?)
    }
}
