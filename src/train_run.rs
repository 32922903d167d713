//! Training a run as `adgan train` does it, as one library call that the command line and the
//! Python API share: the normal images read and a calibration hold-out split off, every
//! setting checked before any work, the run folder locked, the WGAN trained (or resumed), and
//! the hold-out scored with ADGAN (and the ensemble, whose classic members are fitted and kept
//! now) into the run's calibration.

use crate::calibration::{
    self, Calibration, MIN_CALIBRATION_IMAGES, MIN_ENSEMBLE_CALIBRATION_IMAGES,
};
use crate::data::{CalibrationSplit, DataSource, Dataset, Fit, SkippedImage};
use crate::model::ModelConfig;
use crate::score::adgan::AdganConfig;
use crate::score::ensemble::EnsembleConfig;
use crate::score::method::{Inputs, Method};
use crate::setting::{check, BadSetting};
use crate::train::{
    self, Progress, RunConfig, TrainConfig, TrainOutcome, CHECKPOINT_FILE, CONFIG_FILE,
    FORMAT_VERSION,
};
use anyhow::{bail, Context, Result};
use std::ops::ControlFlow;
use std::path::Path;
use tch::Device;

/// What to train, where.
#[derive(Debug, Clone)]
pub struct TrainRequest<'a> {
    /// The run folder.
    pub out: &'a Path,
    /// Where the normal images come from.
    pub source: DataSource,
    /// The normal class of a labelled source; `None` takes every image as normal.
    pub normal_class: Option<&'a str>,
    /// How images are fitted to the model's size.
    pub fit: Fit,
    /// The GAN's architecture (DCGAN, d' = `latent_dim`).
    pub model: ModelConfig,
    /// The WGAN's training.
    pub train: TrainConfig,
    /// Fraction of the normal images held out to calibrate on; 0 keeps none.
    pub calibration_fraction: f64,
    /// Continue the run in `out` from its last checkpoint.
    pub resume: bool,
    /// Replay each training iteration from a recorded CUDA graph (CUDA only; the same weights).
    pub cuda_graph: bool,
    /// Refuse the data when any image file cannot be read.
    pub strict: bool,
    /// The search the hold-out is scored with (p-values need the same search when scoring).
    pub calibration_search: AdganConfig,
    /// The ensemble calibrated on the hold-out after ADGAN, its classic members fitted on the
    /// training images at the PCA dimension d' given and kept in the run (`baselines/`), so
    /// that `--method ensemble` scores at once; `None` calibrates ADGAN (and `adgan-ic`) only.
    pub ensemble: Option<(EnsembleConfig, usize)>,
}

/// What training reports as it goes.
pub enum TrainEvent<'a> {
    /// Image files that could not be read and were left out.
    Skipped(&'a [SkippedImage]),
    /// The batch size asked for is more than the training images: batches of all of them are
    /// used.
    BatchSizeReduced {
        /// The batch size asked for.
        asked: i64,
        /// Training images, the batch size used.
        images: usize,
    },
    /// A run resumed before its first checkpoint starts from iteration 0.
    NoCheckpointYet,
    /// Training starts on `images` images.
    Started {
        /// Normal images trained on.
        images: usize,
    },
    /// One iteration done.
    Progress(&'a Progress),
    /// Calibration images scored.
    Calibrating {
        /// Images scored so far.
        done: usize,
        /// Images to score.
        total: usize,
    },
    /// The ensemble's member scores the calibration images (fitted first where it is a
    /// classic baseline).
    EnsembleMember(Method),
    /// The ensemble was not calibrated: the hold-out is too small for its two halves.
    EnsembleSkipped {
        /// Calibration images held out.
        images: usize,
        /// Calibration images the ensemble needs.
        needs: usize,
    },
}

/// What a training call did: the training's outcome and the calibration it saved, if any.
pub struct TrainedRun {
    /// Iterations, interruption, last losses.
    pub outcome: TrainOutcome,
    /// The calibration on the hold-out, saved in the run (none when it kept none, or when
    /// the training was interrupted).
    pub calibration: Option<Calibration>,
}

/// Trains the run of `request` on `device`. `on_event` sees the progress, and stops the
/// training by returning `ControlFlow::Break` (the checkpoint is kept: resume later).
pub fn train_run(
    request: &TrainRequest,
    device: Device,
    on_event: &mut dyn FnMut(TrainEvent) -> ControlFlow<()>,
) -> Result<TrainedRun> {
    let out = request.out;
    if request.cuda_graph {
        crate::cuda_graph::check_usable(device)?;
    }
    request.model.validate()?;
    request.train.validate()?;
    request.calibration_search.validate(&request.model)?;
    if let Some((ensemble, _)) = &request.ensemble {
        ensemble.validate()?;
    }
    let checkpoint = out.join(CHECKPOINT_FILE);
    check_resume(out, request.resume, &checkpoint, on_event)?;
    check(
        (0.0..1.0).contains(&request.calibration_fraction),
        "calibration_fraction",
        || {
            format!(
                "the calibration fraction must lie in [0, 1), not {}",
                request.calibration_fraction
            )
        },
    )?;
    let split = (request.calibration_fraction > 0.0).then_some(CalibrationSplit {
        fraction: request.calibration_fraction,
        seed: request.train.seed,
    });
    let spec = request.model.image_spec();
    let (data, held_out, provenance) = train::load_training_split(
        &request.source,
        request.normal_class,
        spec,
        request.fit,
        split,
    )?;
    if !data.skipped.is_empty() {
        let _ = on_event(TrainEvent::Skipped(&data.skipped));
    }
    if let Some(held) = &held_out {
        // Refused before training, not after it: a calibration this small cannot decide.
        check(
            held.len() >= MIN_CALIBRATION_IMAGES,
            "calibration_fraction",
            || {
                format!(
                    "a calibration fraction of {} holds out {} of the {} normal images, fewer \
                     than the {MIN_CALIBRATION_IMAGES} a calibration needs: raise it, or pass 0 \
                     and calibrate on a folder later",
                    request.calibration_fraction,
                    held.len(),
                    held.len() + data.len(),
                )
            },
        )?;
    }
    check(!request.strict || data.skipped.is_empty(), "strict", || {
        format!(
            "{} image files could not be read (listed above), and unreadable files are refused",
            data.skipped.len()
        )
    })?;
    if let Some((ensemble, pca_dim)) = &request.ensemble {
        check_member_pca(ensemble, *pca_dim, data.len(), &request.model)?;
    }
    let mut train = request.train;
    if train.batch_size as usize > data.len() {
        let _ = on_event(TrainEvent::BatchSizeReduced {
            asked: train.batch_size,
            images: data.len(),
        });
        train.batch_size = data.len() as i64;
    }
    let config = RunConfig {
        format_version: FORMAT_VERSION,
        model: request.model,
        train,
        data: provenance,
    };
    // One training at a time per run folder: a second one stops here, before it trains.
    let _lock = crate::output::OutputLock::acquire(out, true, "adgan train")?;
    if !request.resume && checkpoint.exists() {
        bail!(
            "{} already holds a training run (one that started just now?): resume it, or \
             choose another run folder",
            out.display()
        );
    }
    let _ = on_event(TrainEvent::Started { images: data.len() });
    let options = train::TrainOptions {
        resume: request.resume,
        cuda_graph: request.cuda_graph,
    };
    let outcome = train::train(out, &config, &data, device, options, &mut |p| {
        on_event(TrainEvent::Progress(p))
    })?;
    let calibration = match (held_out, outcome.interrupted) {
        (Some(images), false) => Some(calibrate_hold_out(request, &images, device, on_event)?),
        _ => None,
    };
    Ok(TrainedRun {
        outcome,
        calibration,
    })
}

/// The PCA dimension d' of the ensemble's classic members, refused before training when the
/// training images cannot give it (more components than images or pixels).
fn check_member_pca(
    ensemble: &EnsembleConfig,
    pca_dim: usize,
    images: usize,
    model: &ModelConfig,
) -> Result<()> {
    if ensemble.members.iter().all(|m| m.needs_gan()) {
        return Ok(());
    }
    let pixels = (model.channels * model.image_size * model.image_size) as usize;
    check(
        pca_dim >= 1 && pca_dim < images && pca_dim <= pixels,
        "pca_dim",
        || {
            format!(
                "the ensemble's classic members project onto {pca_dim} principal components, \
                 which {images} training images of {pixels} pixels cannot give: choose from 1 \
                 to {}",
                (images.saturating_sub(1)).min(pixels)
            )
        },
    )
}

/// A run folder that holds a run is resumed or refused; resuming one without a checkpoint
/// starts it again, with a note.
fn check_resume(
    out: &Path,
    resume: bool,
    checkpoint: &Path,
    on_event: &mut dyn FnMut(TrainEvent) -> ControlFlow<()>,
) -> Result<()> {
    match (resume, checkpoint.exists()) {
        (false, true) => Err(BadSetting {
            name: "resume",
            message: format!(
                "{} already holds a training run: resume it, or choose another run folder",
                out.display()
            ),
        }
        .into()),
        (true, false) if out.join(CONFIG_FILE).exists() => {
            let _ = on_event(TrainEvent::NoCheckpointYet);
            Ok(())
        }
        (true, false) => Err(BadSetting {
            name: "resume",
            message: format!(
                "{} holds no training run to continue; start one instead",
                out.display()
            ),
        }
        .into()),
        _ => Ok(()),
    }
}

/// Scores the hold-out with the request's search and saves it as the run's calibration
/// (`adgan calibrate` redoes it for other search settings).
fn calibrate_hold_out(
    request: &TrainRequest,
    images: &Dataset,
    device: Device,
    on_event: &mut dyn FnMut(TrainEvent) -> ControlFlow<()>,
) -> Result<Calibration> {
    let out = request.out;
    let gan = crate::run::load_gan(out, device)?;
    let search = request.calibration_search;
    search.validate(&gan.config.model)?;
    let inputs = Inputs::for_gan(device, &gan, search, None);
    let mut calibration = calibration::calibrate(
        &inputs,
        &mut { &images.images },
        images.ids.clone(),
        "split",
        &mut |done, total| {
            let _ = on_event(TrainEvent::Calibrating { done, total });
        },
    )?;
    if let Some((ensemble, pca_dim)) = &request.ensemble {
        if images.len() < MIN_ENSEMBLE_CALIBRATION_IMAGES {
            let _ = on_event(TrainEvent::EnsembleSkipped {
                images: images.len(),
                needs: MIN_ENSEMBLE_CALIBRATION_IMAGES,
            });
        } else {
            // ADGAN's calibration is kept first: a member that fails loses nothing finished.
            calibration.save(out)?;
            let fitted = calibration::calibrate_run_ensemble(
                &gan,
                inputs,
                (ensemble, *pca_dim),
                &calibration,
                &images.images,
                &mut |member| {
                    let _ = on_event(TrainEvent::EnsembleMember(member));
                },
            )
            .context(
                "calibrating the ensemble (the GAN and ADGAN's calibration are saved: \
                 calibrate the ensemble again on its own)",
            )?;
            calibration.ensemble = Some(fitted);
        }
    }
    calibration.save(out)?;
    Ok(calibration)
}
