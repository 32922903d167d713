//! The GAN of each class: trained on the normal images (outside the validation split when
//! the training length and learning rates are chosen on it), and the learning curves.

use super::{Event, ExperimentConfig};
use crate::data::{self, Dataset, Split, ValidationSplit};
use crate::run::{self, TrainedGan};
use crate::score::adgan::AdganConfig;
use crate::score::complexity;
use crate::score::method::Method;
use crate::selection::{self, ComplexityChoice, Curve, CurveEvent, CurveTask};
use crate::train::{self, RunConfig, FORMAT_VERSION};
use anyhow::{ensure, Context, Result};
use std::collections::BTreeMap;
use std::ops::ControlFlow;
use std::path::Path;
use tch::Device;

/// The GAN a class's methods use, with the search configuration and what was chosen on
/// validation data (empty when selection is off).
pub struct ChosenGan {
    /// The trained generator and critic (the chosen snapshot under selection).
    pub gan: TrainedGan,
    /// The ADGAN search to score with.
    pub search: AdganConfig,
    /// The chosen training length and learning rates and their validation ROC-AUC.
    pub chosen: BTreeMap<String, f64>,
    /// ADGAN scores of held-out normal validation images at the chosen point (empty without
    /// selection): the calibration of the class's ADGAN scores.
    pub calibration_scores: Vec<f64>,
    /// What `adgan-ic` scores with, when it is asked for and the curve allows it.
    pub complexity: Option<ComplexityGan>,
}

/// The complexity-corrected score's point and line, and the GAN of its point when that is not
/// ADGAN's own.
pub struct ComplexityGan {
    /// Point, line and calibration.
    pub choice: ComplexityChoice,
    /// The snapshot of the point, when it differs from ADGAN's (`None`: ADGAN's scores are
    /// corrected as they are).
    pub gan: Option<TrainedGan>,
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
            calibration: None,
        },
    }
}

/// The training images of one normal class.
pub(super) struct ClassImages<'a> {
    /// The class as given (name or index).
    pub(super) class: &'a str,
    /// Its index.
    pub(super) normal: i64,
    /// Its training images.
    pub(super) normal_train: &'a Dataset,
    /// The whole train split (other classes are the validation anomalies).
    pub(super) train_all: &'a Dataset,
}

/// Trains (or resumes, or reuses) the GAN of one normal class in `runs/class-CLASS`. With
/// selection on, it trains on the normal images outside the validation split, draws the
/// learning curve, and returns the best snapshot with its search configuration; otherwise it
/// trains on every normal image and returns the final generator with the configured search.
pub(super) fn prepare_gan(
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
            train::TrainOptions {
                resume: true,
                cuda_graph: config.cuda_graph,
            },
            &mut |progress| {
                on_event(Event::Training { class, progress });
                ControlFlow::Continue(())
            },
        )?;
        return Ok(ChosenGan {
            gan: run::load_gan(&run_dir, device)?,
            search: config.search,
            chosen: BTreeMap::new(),
            calibration_scores: Vec::new(),
            complexity: None,
        });
    }
    let (curve, choice, _) =
        class_curve(config, images, &run_dir, Snapshots::Keep, device, on_event)?;
    let best = curve.best().context("the learning curve has no point")?;
    let complexity = match choice {
        Some(choice) => {
            let own =
                choice.point.iteration == best.iteration && choice.point.search == best.search;
            let gan = match own {
                true => None,
                false => {
                    let snapshot = selection::snapshot_path(&run_dir, choice.point.iteration);
                    Some(run::load_gan_from(&run_dir, &snapshot, device)?)
                }
            };
            Some(ComplexityGan { choice, gan })
        }
        None => None,
    };
    let snapshot = selection::snapshot_path(&run_dir, best.iteration);
    let search = best.search;
    Ok(ChosenGan {
        gan: run::load_gan_from(&run_dir, &snapshot, device)?,
        search,
        chosen: best.chosen(best.auc),
        calibration_scores: best.normal_scores.clone(),
        complexity,
    })
}

/// Whether the snapshots of the chosen points must exist afterwards.
#[derive(Clone, Copy, PartialEq)]
pub(super) enum Snapshots {
    /// The test images will be scored with them: train again up to a chosen point whose
    /// snapshot is gone (a new machine keeps only the committed curves).
    Keep,
    /// Only the validation figures are wanted: a saved curve answers without training.
    NotNeeded,
}

/// Draws (or continues) the validation learning curve of the GAN of one class in `run_dir`;
/// with `adgan-ic` among the methods, also its choice of point. Returns them with the
/// validation split the curve was drawn on.
pub(super) fn class_curve(
    config: &ExperimentConfig,
    images: &ClassImages,
    run_dir: &Path,
    snapshots: Snapshots,
    device: Device,
    on_event: &mut dyn FnMut(Event),
) -> Result<(Curve, Option<ComplexityChoice>, ValidationSplit)> {
    let class = images.class;
    let others = data::other_classes(images.train_all, images.normal)?;
    let s = &config.selection;
    let split = ValidationSplit::draw(images.normal_train, &others, s.holdout_fraction, s.seed)?;
    let run = class_run(config, class, &split.fit);
    let validation = split.capped(s.max_per_side);
    let task = CurveTask {
        run_dir,
        run: &run,
        fit: &split.fit,
        validation: &validation,
        search: &config.search,
        selection: s,
        batch_images: config.batch_images,
        cuda_graph: config.cuda_graph,
    };
    let mut report = |event: CurveEvent| match event {
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
    };
    let curve = selection::learning_curve(&task, device, &mut report)?;
    let choice = match config.methods.contains(&Method::AdganIc) {
        true => curve.complexity_choice(&complexity::png_lengths(&validation.images)?)?,
        false => None,
    };
    if snapshots == Snapshots::Keep {
        let best = curve.best().map(|p| p.iteration);
        let chosen = choice.as_ref().map(|c| c.point.iteration);
        let iterations: Vec<usize> = best.into_iter().chain(chosen).collect();
        selection::ensure_snapshots(&task, &iterations, device, &mut report)?;
    }
    Ok((curve, choice, split))
}

/// One class's validation learning curve.
pub struct ClassCurve {
    /// The normal class.
    pub class: String,
    /// Its curve: the points of this configuration's selection (the saved curve keeps every
    /// point drawn before).
    pub curve: Curve,
    /// The complexity-corrected figures of its points and `adgan-ic`'s choice, when `adgan-ic`
    /// is among the methods.
    pub complexity: Option<ComplexityChoice>,
}

/// Draws the validation learning curve of every class of the experiment and nothing else: no
/// test image is read.
pub fn run_validation(
    config: &ExperimentConfig,
    out: &Path,
    device: Device,
    on_event: &mut dyn FnMut(Event),
) -> Result<Vec<ClassCurve>> {
    ensure!(
        config.selection.enabled(),
        "a validation run needs a validation interval (selection.every > 0)"
    );
    // No experiment.json is checked or written: a validation run may try other searches and
    // points on the same trained GANs, whose own configurations and curves guard them.
    config.validate()?;
    crate::output::check_experiment_folder(out)?;
    std::fs::create_dir_all(out).with_context(|| format!("cannot create {}", out.display()))?;
    let _lock = crate::output::OutputLock::acquire(out, true, "adgan experiment (validation)")?;
    let spec = config.model.image_spec();
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
        let (curve, complexity, split) = class_curve(
            config,
            &images,
            &run_dir,
            Snapshots::NotNeeded,
            device,
            on_event,
        )?;
        if config.methods.contains(&Method::Ensemble) {
            let members = super::ensemble::MemberTask {
                config,
                class,
                run_dir: &run_dir,
                curve: &curve,
                complexity: complexity.as_ref(),
                split: &split,
                test: None,
            };
            members.scores(device, on_event)?;
        }
        curves.push(ClassCurve {
            class: class.clone(),
            curve,
            complexity,
        });
    }
    Ok(curves)
}
