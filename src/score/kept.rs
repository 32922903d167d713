//! A classic baseline fitted on a run's training images and kept in the run folder
//! (`baselines/<method>/`), so that `score`, `rank` and `calibrate` load it instead of
//! fitting it again (GMM's search over 2-20 components takes minutes on a CPU).
//!
//! A kept baseline is used only where a fresh fit would give the same model: the same method,
//! features, PCA dimension and seed, fitted on the same images (by the SHA-256 of their
//! pixels). Otherwise the baseline is fitted anew and the kept one is left as it is. The
//! tensors go in a safetensors file and the record, written last, in JSON: a crash between
//! the two leaves no record, and the next call fits again.

use super::classic::FittedClassic;
use super::classic::{detector_parameters, fit_classic, model_from_parameters, Classic};
use super::features::{FeatureExtractor, Pca, PcaConfig, PcaDetector};
use crate::data::Dataset;
use crate::io;
use anyhow::{ensure, Context, Result};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use tch::{Device, Tensor};

/// The format of a kept baseline; a newer one is refused rather than misread.
pub const KEPT_FORMAT_VERSION: u32 = 1;
/// The fitted projection and model, in the baseline's folder.
pub const KEPT_TENSORS: &str = "fitted.safetensors";
/// What the tensors are and what they were fitted on, in the baseline's folder.
pub const KEPT_RECORD: &str = "fitted.json";

/// What a kept baseline records beside its tensors.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct KeptRecord {
    /// [`KEPT_FORMAT_VERSION`] of the writer.
    pub format_version: u32,
    /// The baseline.
    pub method: Classic,
    /// What the baseline saw of an image ([`FeatureExtractor::name`]).
    pub features: String,
    /// The PCA dimension d'.
    pub pca_dim: usize,
    /// Seed of the randomised models (GMM's k-means start, the forest's draws).
    pub seed: u64,
    /// How many images it was fitted on.
    pub images: usize,
    /// SHA-256 of those images' pixels ([`Dataset::fingerprint`]).
    pub images_sha256: String,
    /// What the fit chose (bandwidth, components, ...).
    pub chosen: BTreeMap<String, f64>,
    /// When it was fitted (UTC).
    pub created: String,
}

impl KeptRecord {
    /// The settings and images that decide the fitted model, one `name value` per item, for
    /// comparing a kept record with a wanted one.
    fn identity(&self) -> Vec<(&'static str, String)> {
        vec![
            ("method", self.method.name().to_string()),
            ("features", self.features.clone()),
            ("PCA dimension", self.pca_dim.to_string()),
            ("seed", self.seed.to_string()),
            ("training images", self.images.to_string()),
            ("their SHA-256", self.images_sha256.clone()),
        ]
    }
}

/// How [`fit_or_load`] came by its baseline.
#[derive(Debug, Clone, PartialEq)]
pub enum Provenance {
    /// Loaded from the folder.
    Loaded,
    /// Fitted now and kept in the folder, where nothing was kept yet.
    Kept,
    /// Fitted now and not kept: the folder keeps one that differs in what is said here.
    NotKept(String),
}

/// The baseline `kind` on `train` with the fallback dimension and seed of `config` (a run's
/// normal images have no labelled anomalies to choose a dimension with): loaded from `dir`
/// when it keeps the same fit, else fitted, and kept in `dir` when it keeps nothing yet.
pub fn fit_or_load(
    kind: Classic,
    extractor: &FeatureExtractor,
    train: &Dataset,
    config: &PcaConfig,
    dir: &Path,
    device: Device,
) -> Result<(FittedClassic, Provenance)> {
    let wanted = KeptRecord {
        format_version: KEPT_FORMAT_VERSION,
        method: kind,
        features: extractor.name().to_string(),
        pca_dim: config.fallback_dim,
        seed: config.seed,
        images: train.len(),
        images_sha256: train.fingerprint(),
        chosen: BTreeMap::new(),
        created: String::new(),
    };
    let record_path = dir.join(KEPT_RECORD);
    let fit = || {
        fit_classic(
            kind,
            extractor,
            &train.images.to_device(device),
            None,
            config,
        )
    };
    if !record_path.exists() {
        let fitted = fit()?;
        keep(&fitted, wanted, dir)?;
        return Ok((fitted, Provenance::Kept));
    }
    let kept: KeptRecord = io::read_json(&record_path, "record of a kept baseline")
        .with_context(|| format!("delete {} to fit the baseline again", dir.display()))?;
    ensure!(
        kept.format_version <= KEPT_FORMAT_VERSION,
        "{} has format version {}, newer than this adgan's {KEPT_FORMAT_VERSION}: use a newer \
         adgan, or delete {} to fit the baseline again",
        record_path.display(),
        kept.format_version,
        dir.display()
    );
    let differences: Vec<String> = kept
        .identity()
        .into_iter()
        .zip(wanted.identity())
        .filter(|((_, a), (_, b))| a != b)
        .map(|((name, a), (_, b))| format!("{name} {a} kept, {b} here"))
        .collect();
    if !differences.is_empty() {
        return Ok((fit()?, Provenance::NotKept(differences.join("; "))));
    }
    let fitted = load(&kept, extractor, dir, device)
        .with_context(|| format!("delete {} to fit the baseline again", dir.display()))?;
    Ok((fitted, Provenance::Loaded))
}

/// The records of the classic baselines kept in `run_dir` (`baselines/*/fitted.json`), by
/// folder name, each read or the reason it cannot be.
pub fn kept_in(run_dir: &Path) -> Vec<(String, Result<KeptRecord>)> {
    let Ok(entries) = std::fs::read_dir(run_dir.join("baselines")) else {
        return Vec::new();
    };
    let mut records: Vec<(String, Result<KeptRecord>)> = entries
        .flatten()
        .filter(|e| e.path().join(KEPT_RECORD).exists())
        .map(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            (
                name,
                io::read_json(&e.path().join(KEPT_RECORD), "kept baseline"),
            )
        })
        .collect();
    records.sort_by(|a, b| a.0.cmp(&b.0));
    records
}

/// Writes the tensors of `fitted`, then its record.
fn keep(fitted: &FittedClassic, mut record: KeptRecord, dir: &Path) -> Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    io::save_tensors(&dir.join(KEPT_TENSORS), &fitted.parameters)?;
    record.chosen = fitted.chosen.clone();
    record.created = io::now_utc();
    io::write_json(&dir.join(KEPT_RECORD), &record)
}

/// The baseline kept in `dir` under `record`, on `device`.
fn load(
    record: &KeptRecord,
    extractor: &FeatureExtractor,
    dir: &Path,
    device: Device,
) -> Result<FittedClassic> {
    let path = dir.join(KEPT_TENSORS);
    let tensors = io::load_tensors(&path)?;
    let part = |prefix: &str| -> HashMap<String, Tensor> {
        tensors
            .iter()
            .filter_map(|(k, t)| Some((k.strip_prefix(prefix)?.to_string(), t.to_device(device))))
            .collect()
    };
    let pca = Pca::from_parameters(&part("pca."))
        .with_context(|| format!("reading {}", path.display()))?;
    ensure!(
        pca.dim() == record.pca_dim,
        "{} holds a PCA of dimension {} where its record says {}",
        path.display(),
        pca.dim(),
        record.pca_dim
    );
    let model = model_from_parameters(record.method, &part("model."))
        .with_context(|| format!("reading {}", path.display()))?;
    let parameters = detector_parameters(&pca, model.as_ref());
    let detector = PcaDetector::from_parts(record.method.name(), extractor.clone(), pca, model);
    Ok(FittedClassic {
        detector: Box::new(detector),
        chosen: record.chosen.clone(),
        parameters,
    })
}
