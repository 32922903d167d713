//! The `ensemble` column of an experiment ([`crate::score::ensemble`]).
//!
//! Every member is scored on a class's validation images (the held-out normal training images
//! and as many of other classes: the capped set the learning curve uses) and on its test
//! images, by one fitted member. The GAN members are the cells' own: their validation scores
//! are the learning curve's at the point their cell chose, their test scores the cell's. The
//! other members are fitted again on the normal images outside the validation split (their own
//! cells fit on every normal image, validation images included, so their validation scores
//! would flatter them). The members' scores are kept in `runs/class-C/ensemble-members.json`,
//! so that a stopped experiment and the choice of ensemble read them back.

use super::gan::{class_curve, ClassImages, Snapshots};
use super::scoring::{progress_event, Scored};
use super::{cell_path, read_cell, Event, ExperimentConfig};
use crate::data::{Dataset, ValidationSplit};
use crate::io::{read_json, write_json};
use crate::score::ensemble::{
    cross_fitted_auc, select_rows, split_halves, Ensemble, MemberValidation, CROSS_FIT_REPEATS,
};
use crate::score::features::{PcaConfig, Validation};
use crate::score::method::{self, Inputs, Method};
use crate::score::score_all;
use crate::selection::{ComplexityChoice, Curve, CurvePoint};
use anyhow::{bail, ensure, Context, Result};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Instant;
use tch::Device;

/// File of a class's member scores, in its run folder.
pub const MEMBERS_FILE: &str = "ensemble-members.json";

/// The member scores of one class.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub(super) struct MemberFile {
    /// Ids of the validation images: normal ones, then anomalous ones.
    validation_ids: Vec<String>,
    /// How many of them are normal.
    n_normal: usize,
    /// Ids of the test images (empty until a member's test scores are in).
    #[serde(default)]
    test_ids: Vec<String>,
    /// Each member's scores, by method name.
    members: BTreeMap<String, MemberScores>,
}

/// One member's scores of a class's images.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct MemberScores {
    /// Scores of the validation images, in `validation_ids` order.
    validation: Vec<f64>,
    /// Scores of the test images, in `test_ids` order (empty: not scored yet).
    #[serde(default)]
    test: Vec<f64>,
    /// What the member chose (PCA dimension, snapshot, ...).
    chosen: BTreeMap<String, f64>,
    /// Seconds spent fitting and scoring.
    seconds: f64,
}

/// What scoring a class's ensemble members needs.
pub(super) struct MemberTask<'a> {
    pub(super) config: &'a ExperimentConfig,
    pub(super) class: &'a str,
    /// The class's run folder (`OUT/runs/class-C`).
    pub(super) run_dir: &'a Path,
    /// Its learning curve.
    pub(super) curve: &'a Curve,
    /// `adgan-ic`'s point and line, when it is among the methods.
    pub(super) complexity: Option<&'a ComplexityChoice>,
    /// The validation split the curve was drawn on.
    pub(super) split: &'a ValidationSplit,
    /// The test images, and the experiment folder whose cells hold the GAN members' test
    /// scores; `None` for validation scores alone.
    pub(super) test: Option<(&'a Dataset, &'a Path)>,
}

impl MemberTask<'_> {
    /// Every member's scores (test scores too when the task has test images), from the saved
    /// file where it holds them; each member is saved as soon as it is scored.
    pub(super) fn scores(
        &self,
        device: Device,
        on_event: &mut dyn FnMut(Event),
    ) -> Result<MemberFile> {
        let path = self.run_dir.join(MEMBERS_FILE);
        let validation = self.split.capped(self.config.selection.max_per_side);
        let mut file = self.read_file(&path, &validation)?;
        let test_ids = self.test.map(|(test, _)| test.ids.clone());
        for &member in &self.config.ensemble.members {
            let saved = file.members.get(member.name());
            let complete = saved.is_some_and(|s| test_ids.is_none() || !s.test.is_empty());
            if complete {
                continue;
            }
            let start = Instant::now();
            let mut scores = match member.needs_gan() {
                true => self.gan_member(member, &validation)?,
                false => {
                    let dim = saved
                        .and_then(|s| s.chosen.get("pca_dim"))
                        .map(|&d| d as usize);
                    self.fitted_member(member, &validation, dim, device, on_event)?
                }
            };
            scores.seconds = start.elapsed().as_secs_f64();
            if let Some(saved) = saved {
                // A member fitted again must give the validation scores it gave before.
                let same = saved.validation.len() == scores.validation.len()
                    && saved
                        .validation
                        .iter()
                        .zip(&scores.validation)
                        .all(|(a, b)| (a - b).abs() <= 1e-6 * a.abs().max(1.0));
                ensure!(
                    same,
                    "{} holds other validation scores of {} than it gives now: delete the file \
                     to score the members again",
                    path.display(),
                    member.name()
                );
            }
            if let Some(saved) = saved {
                // What the member chose when its validation scores were drawn (every candidate
                // dimension's validation ROC-AUC) stays the record.
                scores.chosen.clone_from(&saved.chosen);
                scores.seconds += saved.seconds;
            }
            if let Some(ids) = &test_ids {
                file.test_ids.clone_from(ids);
            }
            file.members.insert(member.name().to_string(), scores);
            write_json(&path, &file)?;
        }
        Ok(file)
    }

    /// The saved member file, checked against the images it must be about (a new one if
    /// there is none).
    fn read_file(&self, path: &Path, validation: &Dataset) -> Result<MemberFile> {
        let n_normal = validation
            .labels
            .as_ref()
            .map_or(0, |l| l.iter().filter(|&&x| x == 0).count());
        if !path.exists() {
            return Ok(MemberFile {
                validation_ids: validation.ids.clone(),
                n_normal,
                ..MemberFile::default()
            });
        }
        let file: MemberFile = read_json(path, "adgan ensemble member scores")?;
        let test_matches = match self.test {
            Some((test, _)) => file.test_ids.is_empty() || file.test_ids == test.ids,
            None => true,
        };
        ensure!(
            file.validation_ids == validation.ids && file.n_normal == n_normal && test_matches,
            "{} holds the scores of other images: delete it to score the members again",
            path.display()
        );
        Ok(file)
    }

    /// A GAN member: its validation scores from the learning curve at its cell's point, its
    /// test scores from its cell.
    fn gan_member(&self, member: Method, validation: &Dataset) -> Result<MemberScores> {
        let (point, normal, anomalous) = match member {
            Method::Adgan => {
                let point = self
                    .curve
                    .best()
                    .context("the learning curve has no point")?;
                (
                    point,
                    point.normal_scores.clone(),
                    point.anomalous_scores.clone(),
                )
            }
            Method::AdganIc => {
                let choice = self.complexity.context(
                    "the ensemble member adgan-ic needs adgan-ic among the experiment's methods",
                )?;
                let n = choice.point.normal_scores.len();
                let anomalous_images = validation.images.narrow(
                    0,
                    n as i64,
                    choice.point.anomalous_scores.len() as i64,
                );
                let corrected = choice
                    .line
                    .correct_images(&choice.point.anomalous_scores, &anomalous_images)?;
                (&choice.point, choice.calibration_scores.clone(), corrected)
            }
            other => bail!("{} is not a GAN member of the ensemble", other.name()),
        };
        ensure!(
            normal.len() + anomalous.len() == validation.len() && !anomalous.is_empty(),
            "the learning curve's point at iteration {} kept {} validation scores for {} images: \
             draw the curve again",
            point.iteration,
            normal.len() + anomalous.len(),
            validation.len()
        );
        let test = match self.test {
            Some((test, out)) => self.gan_test_scores(member, point, test, out)?,
            None => Vec::new(),
        };
        Ok(MemberScores {
            validation: [normal, anomalous].concat(),
            test,
            chosen: point.chosen(point.auc),
            seconds: 0.0,
        })
    }

    /// The test scores of a GAN member's cell, checked to come from the curve's point.
    fn gan_test_scores(
        &self,
        member: Method,
        point: &CurvePoint,
        test: &Dataset,
        out: &Path,
    ) -> Result<Vec<f64>> {
        let path = cell_path(out, self.class, member);
        ensure!(
            path.exists(),
            "the ensemble member {} has no test cell for class {} yet: score it first",
            member.name(),
            self.class
        );
        let cell = read_cell(&path, self.class, member, test.len())?;
        ensure!(
            cell.ids == test.ids
                && cell.chosen.get("iterations") == Some(&(point.iteration as f64)),
            "{} was scored at another point or on other images than the learning curve now \
             chooses: delete it to score it again",
            path.display()
        );
        Ok(cell.scores)
    }

    /// A member that is fitted on normal images: fitted on those outside the validation split,
    /// then scoring the validation images (and the test images). A classic member's PCA
    /// dimension is chosen on the validation split, unless `dim` gives the one it chose before.
    fn fitted_member(
        &self,
        member: Method,
        validation: &Dataset,
        dim: Option<usize>,
        device: Device,
        on_event: &mut dyn FnMut(Event),
    ) -> Result<MemberScores> {
        let config = self.config;
        let class = self.class;
        let run_dir = self.run_dir;
        let autoencoder_dir = |m: Method| run_dir.join(format!("ensemble-{}", m.name()));
        let choose_on = Validation {
            fit: self.split.fit.images.shallow_clone(),
            images: self.split.validation.images.shallow_clone(),
            labels: self.split.validation.labels.clone().unwrap_or_default(),
        };
        let inputs = Inputs {
            device,
            model: config.model,
            gan: None,
            search: config.search,
            batch_images: config.batch_images,
            cuda_graph: config.cuda_graph,
            anogan: config.anogan,
            autoencoder: config.autoencoder,
            autoencoder_dir: &autoencoder_dir,
            classic_dir: None,
            trained_on: None,
            normal: Some(&self.split.fit),
            validation: Some(&choose_on),
            pca: match dim {
                Some(dim) => PcaConfig {
                    dims: vec![dim],
                    ..config.baselines.clone()
                },
                None => config.baselines.clone(),
            },
            alexnet: config.alexnet.as_deref(),
            alexnet_layer: config.alexnet_layer,
            complexity: None,
            ensemble: None,
        };
        let mut built = method::build(member, &inputs, &mut |done, total| {
            on_event(progress_event(class, member, done, total, true))
        })
        .with_context(|| format!("fitting the ensemble member {}", member.name()))?;
        let mut score = |images: &tch::Tensor| {
            score_all(
                built.detector.as_mut(),
                images,
                built.batch,
                device,
                &mut |done, total| on_event(progress_event(class, member, done, total, false)),
            )
        };
        let validation_scores = score(&validation.images)?;
        let test = match self.test {
            Some((test, _)) => score(&test.images)?,
            None => Vec::new(),
        };
        Ok(MemberScores {
            validation: validation_scores,
            test,
            chosen: built.chosen,
            seconds: 0.0,
        })
    }
}

impl MemberFile {
    /// The members' validation scores, split into normal and anomalous images.
    fn validation(&self, members: &[Method]) -> Result<MemberValidation> {
        let mut normal = Vec::new();
        let mut anomalous = Vec::new();
        for m in members {
            let scores = self
                .members
                .get(m.name())
                .with_context(|| format!("no validation scores of the member {}", m.name()))?;
            normal.push(scores.validation[..self.n_normal].to_vec());
            anomalous.push(scores.validation[self.n_normal..].to_vec());
        }
        Ok(MemberValidation {
            members: members.to_vec(),
            normal,
            anomalous,
        })
    }
}

/// The ensemble cell of one class: its members' scores ([`MemberTask::scores`]), the members'
/// normalisers fitted on one half of the normal validation images, the test images scored,
/// and the other half's combined scores as the cell's calibration.
pub(super) fn score_cell(
    config: &ExperimentConfig,
    images: &ClassImages,
    test: &Dataset,
    out: &Path,
    device: Device,
    on_event: &mut dyn FnMut(Event),
) -> Result<Scored> {
    let start = Instant::now();
    let run_dir = out.join("runs").join(format!("class-{}", images.class));
    let (curve, complexity, split) = class_curve(
        config,
        images,
        &run_dir,
        Snapshots::NotNeeded,
        device,
        on_event,
    )?;
    let task = MemberTask {
        config,
        class: images.class,
        run_dir: &run_dir,
        curve: &curve,
        complexity: complexity.as_ref(),
        split: &split,
        test: Some((test, out)),
    };
    let file = task.scores(device, on_event)?;
    let members = &config.ensemble.members;
    let validation = file.validation(members)?;
    let (fit, calibration) = split_halves(file.n_normal, config.selection.seed);
    let ensemble = Ensemble::fit(&config.ensemble, &select_rows(&validation.normal, &fit))?;
    let test_columns: Vec<Vec<f64>> = members
        .iter()
        .map(|m| file.members[m.name()].test.clone())
        .collect();
    let scores = ensemble.combine(&test_columns)?;
    let calibration_scores = ensemble.combine(&select_rows(&validation.normal, &calibration))?;
    let auc = cross_fitted_auc(
        &config.ensemble,
        &validation,
        CROSS_FIT_REPEATS,
        config.selection.seed,
    )?;
    let mut chosen = BTreeMap::from([
        ("validation_auc".to_string(), auc),
        ("normalizer_fit_images".to_string(), fit.len() as f64),
        ("calibration_images".to_string(), calibration.len() as f64),
    ]);
    for m in members {
        for (key, value) in &file.members[m.name()].chosen {
            chosen.insert(format!("{}_{key}", m.name()), *value);
        }
    }
    let member_seconds: f64 = file.members.values().map(|m| m.seconds).sum();
    Ok(Scored {
        method: Method::Ensemble,
        scores,
        seconds: member_seconds + start.elapsed().as_secs_f64(),
        chosen,
        partial: None,
        calibration_scores,
    })
}

/// The members' validation scores of the classes of an experiment.
pub struct ExperimentValidation {
    /// Each class that has scores of every member asked for, with them.
    pub found: Vec<(String, MemberValidation)>,
    /// The classes with a member file that lacks one of them.
    pub missing: Vec<String>,
}

/// The members' validation scores of every class of the experiment in `out` that has a member
/// file.
pub fn member_validation(out: &Path, members: &[Method]) -> Result<ExperimentValidation> {
    let runs = out.join("runs");
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(&runs)
        .with_context(|| format!("cannot read {}", runs.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.join(MEMBERS_FILE).exists())
        .collect();
    dirs.sort();
    let mut found = Vec::new();
    let mut missing = Vec::new();
    for dir in dirs {
        let class = dir
            .file_name()
            .and_then(|n| n.to_str())
            .and_then(|n| n.strip_prefix("class-"))
            .unwrap_or_default()
            .to_string();
        let file: MemberFile = read_json(&dir.join(MEMBERS_FILE), "adgan ensemble member scores")?;
        match file.validation(members) {
            Ok(v) => found.push((class, v)),
            Err(_) => missing.push(class),
        }
    }
    Ok(ExperimentValidation { found, missing })
}

/// The candidate ensembles over `pool`, ranked by their mean cross-fitted validation ROC-AUC
/// over every class of every experiment folder in `outs` ([`rank_candidates`]); only the
/// validation scores of the members are read, never a test score. Returns the ranking and the
/// classes it was measured on (`folder:class`).
pub fn rank_ensembles(
    outs: &[PathBuf],
    pool: &[Method],
    seed: u64,
) -> Result<(Vec<crate::score::ensemble::Scored>, Vec<String>)> {
    let mut tasks = Vec::new();
    let mut names = Vec::new();
    for out in outs {
        let ExperimentValidation { found, missing } = member_validation(out, pool)?;
        ensure!(
            missing.is_empty(),
            "{}: classes {} lack validation scores of some of {}: score the members first \
             (a validation run with the ensemble among the methods)",
            out.display(),
            missing.join(", "),
            pool.iter().map(|m| m.name()).collect::<Vec<_>>().join(", ")
        );
        ensure!(
            !found.is_empty(),
            "{} holds no ensemble member scores",
            out.display()
        );
        for (class, validation) in found {
            names.push(format!("{}:{class}", out.display()));
            tasks.push(validation);
        }
    }
    let ranked = crate::score::ensemble::rank_candidates(pool, &tasks, seed)?;
    Ok((ranked, names))
}

/// A Markdown table of the first `top` candidates of a ranking, with the mean over the classes
/// of each folder (`names` as [`rank_ensembles`] gives them) beside the overall mean.
pub fn ranking_table(
    ranked: &[crate::score::ensemble::Scored],
    names: &[String],
    top: usize,
) -> String {
    let folders: Vec<&str> = names
        .iter()
        .map(|n| n.rsplit_once(':').map_or(n.as_str(), |(f, _)| f))
        .fold(Vec::new(), |mut all, f| {
            if !all.contains(&f) {
                all.push(f);
            }
            all
        });
    let mut text = String::from("| rank | members | normaliser | rule | mean |");
    for f in &folders {
        text.push_str(&format!(" {f} |"));
    }
    text.push_str("\n| ---: | --- | --- | --- | ---: |");
    text.push_str(&" ---: |".repeat(folders.len()));
    text.push('\n');
    for (i, s) in ranked.iter().take(top).enumerate() {
        let members: Vec<&str> = s.config.members.iter().map(|m| m.name()).collect();
        text.push_str(&format!(
            "| {} | {} | {} | {} | {:.4} |",
            i + 1,
            members.join("+"),
            s.config.normalizer.name(),
            s.config.rule.name(),
            s.mean
        ));
        for f in &folders {
            let of: Vec<f64> = names
                .iter()
                .zip(&s.aucs)
                .filter(|(n, _)| n.rsplit_once(':').is_some_and(|(g, _)| g == *f))
                .map(|(_, a)| *a)
                .collect();
            text.push_str(&format!(
                " {:.4} |",
                of.iter().sum::<f64>() / of.len() as f64
            ));
        }
        text.push('\n');
    }
    text
}
