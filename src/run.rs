//! A trained run, loaded from its folder (`config.json` and `checkpoint.safetensors`, as
//! [`crate::train`] writes them) for scoring.

use crate::io::{fill_variables, load_tensors, read_json};
use crate::model::{Critic, Generator};
use crate::train::{RunConfig, CHECKPOINT_FILE, CONFIG_FILE};
use anyhow::{bail, ensure, Context, Result};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use tch::{nn::VarStore, Device, Kind, Tensor};

/// Compares the first layers of the checkpoint with the configuration before any network is
/// built, so that a configuration that claims a huge model fails at once instead of allocating
/// it first.
fn check_first_layers(
    tensors: &HashMap<String, Tensor>,
    config: &RunConfig,
    path: &Path,
) -> Result<()> {
    let m = config.model;
    let top = m.width << (m.stages() - 1);
    for (key, want) in [
        ("generator/conv0.weight", vec![m.latent_dim, top, 4, 4]),
        ("critic/conv0.weight", vec![m.width, m.channels, 4, 4]),
    ] {
        let Some(saved) = tensors.get(key) else {
            bail!(
                "{} lacks {key}: it is not an adgan checkpoint",
                path.display()
            );
        };
        ensure!(
            saved.size() == want,
            "{} has {key} of shape {:?} where its config.json (width {}, latent dimension {}, \
             {} channels) needs {want:?}: the checkpoint and its configuration do not belong \
             together",
            path.display(),
            saved.size(),
            m.width,
            m.latent_dim,
            m.channels
        );
    }
    Ok(())
}

/// A trained generator and critic, loaded from a run folder.
pub struct TrainedGan {
    /// The run's configuration.
    pub config: RunConfig,
    /// Generator variables.
    pub generator_vs: VarStore,
    /// Critic variables.
    pub critic_vs: VarStore,
    /// g_theta.
    pub generator: Generator,
    /// The critic.
    pub critic: Critic,
    /// Generator iterations the checkpoint was trained for.
    pub iteration: i64,
    /// The run folder.
    pub run_dir: PathBuf,
}

impl TrainedGan {
    /// The normal images this GAN trained on, read again as `train` read them: the run's data
    /// without its calibration hold-out, checked against the fingerprint the run recorded.
    /// What every model fitted for the run (baselines, ensemble members, the encoder) is
    /// fitted on, so that none has seen a calibration image.
    pub fn training_images(&self) -> Result<crate::data::Dataset> {
        crate::calibration::training_images(&self.config).with_context(|| {
            format!(
                "reading the images the run trained on ({}, recorded in {})",
                self.config.data.source.describe(),
                self.run_dir.join(CONFIG_FILE).display()
            )
        })
    }
}

/// The folder of `run_dir` where the method `name`'s autoencoder or fitted classic baseline
/// is kept (`baselines/<name>`).
pub fn baseline_dir(run_dir: &Path, name: &str) -> PathBuf {
    run_dir.join("baselines").join(name)
}

/// Loads the configuration and latest checkpoint of a run folder onto `device`.
pub fn load_gan(run_dir: &Path, device: Device) -> Result<TrainedGan> {
    load_gan_from(run_dir, &run_dir.join(CHECKPOINT_FILE), device)
}

/// Loads the configuration of a run folder and the checkpoint at `path` (the latest one or
/// a snapshot kept by model selection) onto `device`.
pub fn load_gan_from(run_dir: &Path, path: &Path, device: Device) -> Result<TrainedGan> {
    let config: RunConfig = read_json(&run_dir.join(CONFIG_FILE), "adgan run configuration")
        .with_context(|| {
            format!(
                "{} is not an adgan run folder (made by `adgan train`)",
                run_dir.display()
            )
        })?;
    ensure!(
        config.format_version <= crate::train::FORMAT_VERSION,
        "{} has format version {}, newer than this adgan reads ({}): use the adgan that made it",
        run_dir.join(CONFIG_FILE).display(),
        config.format_version,
        crate::train::FORMAT_VERSION
    );
    config.model.validate().with_context(|| {
        format!(
            "{} describes a model that cannot be built",
            run_dir.join(CONFIG_FILE).display()
        )
    })?;
    let tensors = load_tensors(path)?;
    check_first_layers(&tensors, &config, path)?;
    let generator_vs = VarStore::new(device);
    let critic_vs = VarStore::new(device);
    let generator = Generator::new(&generator_vs.root(), config.model)?;
    let critic = Critic::new(&critic_vs.root(), config.model)?;
    fill_variables(&generator_vs, &tensors, "generator", path)?;
    fill_variables(&critic_vs, &tensors, "critic", path)?;
    let iteration = tensors
        .get("meta/iteration")
        .with_context(|| format!("{} lacks meta/iteration", path.display()))?
        .to_kind(Kind::Int64)
        .int64_value(&[]);
    ensure!(
        iteration >= 0,
        "{} records iteration {iteration}: the checkpoint is corrupt",
        path.display()
    );
    Ok(TrainedGan {
        config,
        generator_vs,
        critic_vs,
        generator,
        critic,
        iteration,
        run_dir: run_dir.to_path_buf(),
    })
}
