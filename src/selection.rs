//! Choosing ADGAN's training length and search learning rates on validation data drawn from
//! the training split only (never the test images).
//!
//! A GAN is trained in stages of `every` generator iterations. After each stage the checkpoint
//! is kept as a snapshot and ADGAN scores the validation images (held-out normal training
//! images and as many training images of other classes, [`ValidationSplit`]) once per candidate
//! pair (lr_z, lr_theta). The points form a learning curve; the chosen configuration is its best
//! point. The curve is saved after every point, so a stopped run continues where it was.

use crate::data::Dataset;
use crate::eval::roc_auc;
use crate::io::{self, read_json, write_json};
use crate::run::{self, TrainedGan};
use crate::score::adgan::{AdganConfig, Aggregate, ReconstructionLoss, SearchStart};
use crate::score::complexity::{self, ComplexityLine};
use crate::score::method::{self, Inputs, Method};
use crate::score::score_all;
use crate::train::{self, Progress, RunConfig};
use crate::train::{CHECKPOINT_FILE, CONFIG_FILE};
use anyhow::{ensure, Context, Result};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::ops::ControlFlow;
use std::path::{Path, PathBuf};
use std::time::Instant;
use tch::{Device, Tensor};

/// File of the learning curve inside a run folder.
pub const CURVE_FILE: &str = "validation.json";

/// How the training length and the search's learning rates are chosen.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct SelectionConfig {
    /// Score the validation images every this many generator iterations (and at the end);
    /// 0 turns selection off: the GAN trains on every normal image for the configured length
    /// and the configured search is used.
    pub every: usize,
    /// Candidate Adam learning rates of the latents (lr_z).
    pub lr_z: Vec<f64>,
    /// Candidate Adam learning rates of theta (lr_theta); 0 keeps theta fixed (only the
    /// latents move), the limit of ever smaller rates.
    pub lr_theta: Vec<f64>,
    /// Candidate reconstruction losses.
    pub loss: Vec<ReconstructionLoss>,
    /// Candidate aggregations of the seeds' losses.
    pub aggregate: Vec<Aggregate>,
    /// Candidate numbers of search steps k.
    pub k: Vec<usize>,
    /// Candidate starts of the search.
    pub start: Vec<SearchStart>,
    /// Fraction of the normal training images held out (the GAN never trains on them).
    pub holdout_fraction: f64,
    /// At most this many held-out normal images, and as many anomalous ones, are scored at
    /// every point (the search is the expensive part).
    pub max_per_side: usize,
    /// Seed of the validation draw.
    pub seed: u64,
}

impl Default for SelectionConfig {
    fn default() -> Self {
        Self {
            every: 0,
            lr_z: vec![AdganConfig::default().lr_z],
            lr_theta: vec![AdganConfig::default().lr_theta],
            loss: vec![AdganConfig::default().loss],
            aggregate: vec![AdganConfig::default().aggregate],
            k: vec![AdganConfig::default().k],
            start: vec![AdganConfig::default().start],
            holdout_fraction: 0.1,
            max_per_side: 250,
            seed: 0,
        }
    }
}

impl SelectionConfig {
    /// Whether selection is on.
    pub fn enabled(&self) -> bool {
        self.every > 0
    }

    /// The search configurations tried at every point: `base` with every combination of the
    /// candidate learning rates, losses, aggregations and numbers of steps.
    pub fn candidates(&self, base: &AdganConfig) -> Vec<AdganConfig> {
        let mut all = vec![*base];
        let vary = |all: Vec<AdganConfig>, set: &dyn Fn(&mut AdganConfig, usize), n: usize| {
            all.iter()
                .flat_map(|c| {
                    (0..n).map(move |i| {
                        let mut c = *c;
                        set(&mut c, i);
                        c
                    })
                })
                .collect::<Vec<_>>()
        };
        all = vary(all, &|c, i| c.loss = self.loss[i], self.loss.len());
        all = vary(
            all,
            &|c, i| c.aggregate = self.aggregate[i],
            self.aggregate.len(),
        );
        all = vary(all, &|c, i| c.k = self.k[i], self.k.len());
        all = vary(all, &|c, i| c.start = self.start[i], self.start.len());
        all = vary(all, &|c, i| c.lr_z = self.lr_z[i], self.lr_z.len());
        all = vary(
            all,
            &|c, i| *c = c.with_lr_theta(self.lr_theta[i]),
            self.lr_theta.len(),
        );
        all
    }

    /// The generator iterations at which the validation images are scored, up to `total`.
    pub fn points(&self, total: usize) -> Vec<usize> {
        if !self.enabled() {
            return vec![total];
        }
        let mut points: Vec<usize> = (self.every..=total).step_by(self.every).collect();
        if points.last() != Some(&total) {
            points.push(total);
        }
        points
    }

    /// Checks the candidates before any work.
    pub fn validate(&self) -> Result<()> {
        ensure!(
            !self.lr_z.is_empty()
                && !self.lr_theta.is_empty()
                && !self.loss.is_empty()
                && !self.aggregate.is_empty()
                && !self.k.is_empty()
                && !self.start.is_empty()
                && self.k.iter().all(|&k| k > 0),
            "selection needs at least one candidate of each kind (lr_z, lr_theta, loss, \
             aggregate, k >= 1, start)"
        );
        ensure!(
            self.lr_z.iter().all(|&l| l > 0.0 && l.is_finite())
                && self.lr_theta.iter().all(|&l| l >= 0.0 && l.is_finite()),
            "candidate learning rates must be finite, lr_z positive and lr_theta not negative"
        );
        ensure!(
            self.holdout_fraction > 0.0 && self.holdout_fraction < 1.0,
            "the held-out fraction must lie strictly between 0 and 1"
        );
        ensure!(self.max_per_side > 0, "the validation set cannot be empty");
        Ok(())
    }
}

/// One point of the learning curve.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CurvePoint {
    /// Generator iterations trained.
    pub iteration: usize,
    /// The search scored with.
    pub search: AdganConfig,
    /// Validation ROC-AUC of ADGAN.
    pub auc: f64,
    /// Seconds spent scoring the validation images.
    pub seconds: f64,
    /// ADGAN scores of the validation's normal images: normal images the GAN never trained
    /// on, so they calibrate this point's scores (absent from curves saved before).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub normal_scores: Vec<f64>,
    /// ADGAN scores of the validation's anomalous images (the ids after the normal ones):
    /// with `normal_scores`, what an analysis of the curve needs beyond its ROC-AUC, such as
    /// another aggregate of the same scores (absent from curves saved before).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub anomalous_scores: Vec<f64>,
}

impl CurvePoint {
    /// What choosing this point chose, as a result records it: training length, the search's
    /// learning rates, and `auc`, the validation ROC-AUC it was chosen by.
    pub fn chosen(&self, auc: f64) -> BTreeMap<String, f64> {
        BTreeMap::from([
            ("iterations".to_string(), self.iteration as f64),
            ("lr_z".to_string(), self.search.lr_z),
            ("lr_theta".to_string(), self.search.effective_lr_theta()),
            ("validation_auc".to_string(), auc),
        ])
    }
}

/// The saved learning curve of one run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Curve {
    /// Ids of the validation images, so that a resumed curve is known to use the same ones.
    pub validation_ids: Vec<String>,
    /// The points so far.
    pub points: Vec<CurvePoint>,
}

impl Curve {
    /// The best point (highest validation ROC-AUC; on ties the earliest, then the first
    /// candidate).
    pub fn best(&self) -> Option<&CurvePoint> {
        self.points.iter().fold(None, |best, p| match best {
            Some(b) if b.auc >= p.auc => Some(b),
            _ => Some(p),
        })
    }

    fn find(&self, iteration: usize, search: &AdganConfig) -> Option<&CurvePoint> {
        self.points
            .iter()
            .find(|p| p.iteration == iteration && p.search == *search)
    }
}

/// The point and line of the complexity-corrected score (`adgan-ic`, see
/// [`crate::score::complexity`]), chosen on the same curve as ADGAN's point.
#[derive(Debug, Clone, PartialEq)]
pub struct ComplexityChoice {
    /// The point whose corrected validation ROC-AUC is highest (that ROC-AUC in `auc`).
    pub point: CurvePoint,
    /// Corrected validation ROC-AUC of the point (cross-fitted over the normal images).
    pub auc: f64,
    /// The line fitted on all of the point's normal validation images, for test images.
    pub line: ComplexityLine,
    /// The point's normal validation images corrected by cross-fitting: the calibration of the
    /// corrected test scores.
    pub calibration_scores: Vec<f64>,
    /// The corrected validation ROC-AUC of every point of the curve, in its order (`None`
    /// where a point kept no anomalous scores).
    pub point_aucs: Vec<Option<f64>>,
}

impl Curve {
    /// The point with the best complexity-corrected validation ROC-AUC (on ties the earliest),
    /// given the PNG length of every validation image in `validation_ids` order (normal images
    /// first). Points that kept no anomalous scores cannot be corrected and are passed over;
    /// `None` when none can.
    pub fn complexity_choice(&self, lengths: &[f64]) -> Result<Option<ComplexityChoice>> {
        ensure!(
            lengths.len() == self.validation_ids.len(),
            "{} lengths for {} validation images",
            lengths.len(),
            self.validation_ids.len()
        );
        let point_aucs = self
            .points
            .iter()
            .map(|point| {
                let n = point.normal_scores.len();
                if point.anomalous_scores.is_empty()
                    || n + point.anomalous_scores.len() != lengths.len()
                {
                    return Ok(None);
                }
                complexity::validation_auc(
                    (&point.normal_scores, &lengths[..n]),
                    (&point.anomalous_scores, &lengths[n..]),
                )
                .map(Some)
            })
            .collect::<Result<Vec<Option<f64>>>>()?;
        let mut best: Option<(f64, &CurvePoint)> = None;
        for (point, auc) in self.points.iter().zip(&point_aucs) {
            if let Some(auc) = *auc {
                if best.is_none_or(|(b, _)| auc > b) {
                    best = Some((auc, point));
                }
            }
        }
        let Some((auc, point)) = best else {
            return Ok(None);
        };
        let normal_lengths = &lengths[..point.normal_scores.len()];
        Ok(Some(ComplexityChoice {
            point: point.clone(),
            auc,
            line: ComplexityLine::fit(&point.normal_scores, normal_lengths)?,
            calibration_scores: complexity::cross_fitted(&point.normal_scores, normal_lengths)?,
            point_aucs,
        }))
    }
}

/// What the learning curve reports while it works.
#[derive(Debug)]
pub enum CurveEvent<'a> {
    /// Training towards the next point.
    Training(&'a Progress),
    /// Scoring the validation images: images done and total.
    Scoring {
        /// Iteration of the snapshot being scored.
        iteration: usize,
        /// Images done.
        done: usize,
        /// Images in all.
        total: usize,
    },
    /// A point is finished and saved.
    Point(&'a CurvePoint),
}

/// Subfolder of a run where a missing snapshot that the run has gone past is trained again.
pub const REBUILD_DIR: &str = "rebuild";

/// Path of the snapshot of iteration `iteration` in `run_dir`.
pub fn snapshot_path(run_dir: &Path, iteration: usize) -> PathBuf {
    run_dir
        .join("snapshots")
        .join(format!("iter_{iteration:06}.safetensors"))
}

/// What a learning curve is drawn from.
pub struct CurveTask<'a> {
    /// The run folder (trained in, resumed when it holds a run).
    pub run_dir: &'a Path,
    /// The run's configuration; `train.iterations` is the last point.
    pub run: &'a RunConfig,
    /// The normal images trained on.
    pub fit: &'a Dataset,
    /// Labelled validation images (0 normal, 1 anomalous).
    pub validation: &'a Dataset,
    /// The search the candidates vary.
    pub search: &'a AdganConfig,
    /// Points and candidates.
    pub selection: &'a SelectionConfig,
    /// Images per search; chosen from memory when `None`.
    pub batch_images: Option<usize>,
    /// Whether the search replays a recorded CUDA graph (CUDA only).
    pub cuda_graph: bool,
}

/// Trains the run of `task` (resuming it when it exists), scoring the validation images at
/// every point of the selection, and returns the curve of this selection's points and
/// candidates. Points already in the saved curve are not scored again, and nothing is trained
/// for them: a caller that scores with a point's generator makes sure of its snapshot with
/// [`ensure_snapshots`].
pub fn learning_curve(
    task: &CurveTask,
    device: Device,
    on_event: &mut dyn FnMut(CurveEvent),
) -> Result<Curve> {
    let CurveTask {
        run_dir,
        run,
        validation,
        search,
        selection,
        ..
    } = *task;
    selection.validate()?;
    let labels = validation
        .labels
        .clone()
        .context("validation images need labels")?;
    let curve_path = run_dir.join(CURVE_FILE);
    let mut saved = if curve_path.exists() {
        let saved: Curve = read_json(&curve_path, "adgan learning curve")?;
        ensure!(
            saved.validation_ids == validation.ids,
            "{} was drawn on another validation set: delete it (and the run's snapshots) to draw \
             it again",
            curve_path.display()
        );
        saved
    } else {
        Curve {
            validation_ids: validation.ids.clone(),
            points: Vec::new(),
        }
    };
    // The curve returned holds this selection's points only; the saved one keeps every point
    // ever drawn, so that candidates tried earlier are not scored again.
    let mut curve = Curve {
        validation_ids: saved.validation_ids.clone(),
        points: Vec::new(),
    };
    let candidates = selection.candidates(search);
    for iteration in selection.points(run.train.iterations) {
        let missing: Vec<&AdganConfig> = candidates
            .iter()
            .filter(|c| saved.find(iteration, c).is_none())
            .collect();
        if !missing.is_empty() {
            score_point(
                task, &labels, iteration, &missing, &mut saved, device, on_event,
            )?;
        }
        for candidate in &candidates {
            let point = saved.find(iteration, candidate).expect("just scored");
            curve.points.push(point.clone());
        }
    }
    fill_best_normal_scores(task, &labels, &mut saved, &mut curve, device, on_event)?;
    Ok(curve)
}

/// The best point's normal validation scores calibrate ADGAN's test scores; a point saved
/// before points kept them has none, so its normal images are scored again (once: the curve
/// is saved with them).
fn fill_best_normal_scores(
    task: &CurveTask,
    labels: &[i64],
    saved: &mut Curve,
    curve: &mut Curve,
    device: Device,
    on_event: &mut dyn FnMut(CurveEvent),
) -> Result<()> {
    let Some(best) = curve.best().cloned() else {
        return Ok(());
    };
    if !best.normal_scores.is_empty() {
        return Ok(());
    }
    let rows: Vec<i64> = (0..labels.len() as i64)
        .filter(|&i| labels[i as usize] == 0)
        .collect();
    let normals = task
        .validation
        .images
        .index_select(0, &Tensor::from_slice(&rows));
    let gan = load_snapshot(task, best.iteration, device, on_event)?;
    let scores = validation_scores(task, &gan, &best.search, &normals, device, on_event)?;
    for point in saved.points.iter_mut().chain(curve.points.iter_mut()) {
        if point.iteration == best.iteration && point.search == best.search {
            point.normal_scores.clone_from(&scores);
        }
    }
    write_json(&task.run_dir.join(CURVE_FILE), saved)
}

/// Trains up to `iteration` (keeping the snapshot) unless its snapshot exists, and scores the
/// validation images with every search of `missing`, saving the curve after each.
fn score_point(
    task: &CurveTask,
    labels: &[i64],
    iteration: usize,
    missing: &[&AdganConfig],
    curve: &mut Curve,
    device: Device,
    on_event: &mut dyn FnMut(CurveEvent),
) -> Result<()> {
    let run_dir = task.run_dir;
    let gan = load_snapshot(task, iteration, device, on_event)?;
    for &candidate in missing {
        let start = Instant::now();
        let images = &task.validation.images;
        let scores = validation_scores(task, &gan, candidate, images, device, on_event)?;
        let point = CurvePoint {
            iteration,
            search: *candidate,
            auc: roc_auc(&scores, labels)?,
            seconds: start.elapsed().as_secs_f64(),
            normal_scores: scores_labelled(&scores, labels, 0),
            anomalous_scores: scores_labelled(&scores, labels, 1),
        };
        curve.points.push(point.clone());
        write_json(&run_dir.join(CURVE_FILE), curve)?;
        on_event(CurveEvent::Point(&point));
    }
    Ok(())
}

/// The snapshots of `iterations`, each trained up to first when it is missing: at a new point,
/// or when a run folder kept only its curve and losses (git keeps no checkpoints of results/).
/// Training is deterministic on one device, so a snapshot trained again is the one scored. One
/// that the run has gone past, or that its record goes past (its checkpoint gone), is trained
/// again from the start in [`REBUILD_DIR`], so that the run's own checkpoint and losses stay
/// as they were; later iterations continue there, each training iteration done once.
pub fn ensure_snapshots(
    task: &CurveTask,
    iterations: &[usize],
    device: Device,
    on_event: &mut dyn FnMut(CurveEvent),
) -> Result<()> {
    let run_dir = task.run_dir;
    let mut missing: Vec<usize> = iterations
        .iter()
        .copied()
        .filter(|&i| !snapshot_path(run_dir, i).exists())
        .collect();
    missing.sort_unstable();
    missing.dedup();
    let rebuild = run_dir.join(REBUILD_DIR);
    let mut aside = false;
    for iteration in missing {
        let past_record =
            !run_dir.join(CHECKPOINT_FILE).exists() && recorded_iterations(run_dir)? > iteration;
        aside = aside
            || past_record
            || train_to(run_dir, task, iteration, device, on_event)? != iteration;
        let trained_in = match aside {
            true => {
                // A rebuild left by a killed process resumes, unless it went past this point.
                if train_to(&rebuild, task, iteration, device, on_event)? != iteration {
                    std::fs::remove_dir_all(&rebuild)?;
                    train_to(&rebuild, task, iteration, device, on_event)?;
                }
                &rebuild
            }
            false => run_dir,
        };
        let snapshot = snapshot_path(run_dir, iteration);
        std::fs::create_dir_all(snapshot.parent().expect("snapshots folder"))?;
        io::write_atomic(&snapshot, |tmp| {
            std::fs::copy(trained_in.join(CHECKPOINT_FILE), tmp)?;
            Ok(())
        })?;
    }
    if rebuild.exists() {
        std::fs::remove_dir_all(&rebuild)?;
    }
    Ok(())
}

/// The snapshot of `iteration` ([`ensure_snapshots`]), loaded.
fn load_snapshot(
    task: &CurveTask,
    iteration: usize,
    device: Device,
    on_event: &mut dyn FnMut(CurveEvent),
) -> Result<TrainedGan> {
    ensure_snapshots(task, &[iteration], device, on_event)?;
    let snapshot = snapshot_path(task.run_dir, iteration);
    let gan = run::load_gan_from(task.run_dir, &snapshot, device)?;
    ensure!(
        gan.iteration == iteration as i64,
        "{} holds iteration {}, not {iteration}: the run was trained past this point; delete \
         its snapshots and validation.json, or choose another output folder",
        snapshot.display(),
        gan.iteration
    );
    Ok(gan)
}

/// The scores whose label is `label`, in order.
fn scores_labelled(scores: &[f64], labels: &[i64], label: i64) -> Vec<f64> {
    (scores.iter().zip(labels))
        .filter(|(_, &l)| l == label)
        .map(|(&s, _)| s)
        .collect()
}

/// The generator iterations the configuration saved in `run_dir` was trained to (0 without one).
fn recorded_iterations(run_dir: &Path) -> Result<usize> {
    let path = run_dir.join(CONFIG_FILE);
    if !path.exists() {
        return Ok(0);
    }
    let saved: RunConfig = read_json(&path, "adgan run configuration")?;
    Ok(saved.train.iterations)
}

/// Trains the task's run, in `run_dir`, up to `iteration` generator iterations; returns the
/// iteration its checkpoint holds (more when it was trained past `iteration` before).
fn train_to(
    run_dir: &Path,
    task: &CurveTask,
    iteration: usize,
    device: Device,
    on_event: &mut dyn FnMut(CurveEvent),
) -> Result<usize> {
    let mut stage = task.run.clone();
    stage.train.iterations = iteration;
    let options = train::TrainOptions {
        resume: true,
        cuda_graph: task.cuda_graph,
    };
    let outcome = train::train(
        run_dir,
        &stage,
        task.fit,
        device,
        options,
        &mut |progress| {
            on_event(CurveEvent::Training(progress));
            ControlFlow::Continue(())
        },
    )?;
    Ok(outcome.iteration)
}

/// ADGAN scores of validation images with `gan` (a snapshot of the task's run, whose training
/// images an encoder start trains its encoder on), reported as scoring progress.
fn validation_scores(
    task: &CurveTask,
    gan: &TrainedGan,
    search: &AdganConfig,
    images: &Tensor,
    device: Device,
    on_event: &mut dyn FnMut(CurveEvent),
) -> Result<Vec<f64>> {
    let mut inputs = Inputs::for_gan(device, gan, *search, task.batch_images);
    inputs.trained_on = Some(task.fit);
    inputs.cuda_graph = task.cuda_graph;
    let mut built = method::build(Method::Adgan, &inputs, &mut |_, _| {})?;
    let iteration = gan.iteration as usize;
    score_all(
        built.detector.as_mut(),
        images,
        built.batch,
        device,
        &mut |done, total| {
            on_event(CurveEvent::Scoring {
                iteration,
                done,
                total,
            })
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::score::adgan::ThetaMode;

    #[test]
    fn candidates_combine_every_list_and_points_end_at_the_total() {
        let selection = SelectionConfig {
            every: 500,
            lr_theta: vec![5e-5, 5e-4],
            loss: vec![ReconstructionLoss::L2, ReconstructionLoss::Laplacian],
            k: vec![5],
            ..SelectionConfig::default()
        };
        let c = selection.candidates(&AdganConfig::default());
        assert_eq!(c.len(), 4);
        assert_eq!((c[0].loss, c[0].lr_theta), (ReconstructionLoss::L2, 5e-5));
        assert_eq!((c[1].loss, c[1].lr_theta), (ReconstructionLoss::L2, 5e-4));
        assert_eq!(c[2].loss, ReconstructionLoss::Laplacian);
        assert_eq!(selection.points(1200), vec![500, 1000, 1200]);
        assert_eq!(selection.points(1000), vec![500, 1000]);
        let off = SelectionConfig::default();
        assert_eq!(off.points(700), vec![700]);
    }

    #[test]
    fn a_zero_lr_theta_candidate_keeps_theta_fixed() {
        let selection = SelectionConfig {
            lr_theta: vec![0.0, 5e-6],
            ..SelectionConfig::default()
        };
        let c = selection.candidates(&AdganConfig::default());
        assert_eq!(c[0].theta, ThetaMode::Fixed);
        assert_eq!(c[1].theta, ThetaMode::Shared);
        assert_eq!(c[1].lr_theta, 5e-6);
        // The rate a run records names the search that ran, also for --theta fixed with a
        // nonzero --lr-theta left over.
        assert_eq!(c[0].effective_lr_theta(), 0.0);
        assert_eq!(c[1].effective_lr_theta(), 5e-6);
        let fixed = AdganConfig {
            theta: ThetaMode::Fixed,
            ..AdganConfig::default()
        };
        assert_eq!(fixed.effective_lr_theta(), 0.0);
    }
}
