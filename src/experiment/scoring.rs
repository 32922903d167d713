//! Scoring the methods of one class on its test images, through the method registry.

use super::{ChosenGan, Event, ExperimentConfig, PARTIAL_DIR};
use crate::data::{Dataset, OneVsAll};
use crate::io::{read_json, write_json};
use crate::score::features::Validation;
use crate::score::method::{self, Inputs, Method};
use crate::score::score_all;
use anyhow::{ensure, Context, Result};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Instant;
use tch::{Device, Tensor};

/// The scores of one method on a class's test images.
pub(super) struct Scored {
    pub(super) method: Method,
    pub(super) scores: Vec<f64>,
    /// Fitting (for the classic baselines) and scoring time.
    pub(super) seconds: f64,
    pub(super) chosen: BTreeMap<String, f64>,
    /// The file of its scores so far (a long cell's), to delete once the cell is saved.
    pub(super) partial: Option<PathBuf>,
    /// Scores of held-out normal images that calibrate the test scores, where the method has
    /// its own (the ensemble's; the GAN methods' come from the learning curve).
    pub(super) calibration_scores: Vec<f64>,
}

/// About how many test images are scored between two saves of a long cell's scores so far
/// (rounded up to whole batches, so that the batches are an uninterrupted pass's).
const PARTIAL_EVERY: usize = 640;

/// The scores of a long cell so far (ADGAN's search, AnoGAN), saved in `OUT/partial` so that
/// a stopped experiment continues where it was. Each image's score depends on that image
/// alone (the searches start every image from the same latents), so the scores are those
/// of an uninterrupted run.
#[derive(Serialize, Deserialize)]
struct Partial {
    /// Ids of the images scored so far: the first of the class's test draw.
    ids: Vec<String>,
    /// One list of scores per column (ADGAN's search gives `adgan` and `prior`).
    columns: Vec<Vec<f64>>,
    /// Seconds spent so far.
    seconds: f64,
}

/// Scores a run of images (and reports its batches): one list of scores per column.
type ScoreRun<'a> = dyn FnMut(&Tensor, &mut dyn FnMut(usize, usize)) -> Result<Vec<Vec<f64>>> + 'a;

/// Scores the test images in runs of about [`PARTIAL_EVERY`] (whole batches of `batch`),
/// saving the scores so far to `path` after each and starting after the images it already
/// holds. `score(images, report)` gives `n_columns` columns of scores for a run of images.
/// Returns the columns and the seconds spent in all.
fn score_resumably(
    path: &Path,
    test: &Dataset,
    (n_columns, batch): (usize, usize),
    report: &mut dyn FnMut(usize, usize),
    score: &mut ScoreRun,
) -> Result<(Vec<Vec<f64>>, f64)> {
    let mut partial = match path.exists() {
        true => read_json::<Partial>(path, "adgan partial cell")?,
        false => Partial {
            ids: Vec::new(),
            columns: vec![Vec::new(); n_columns],
            seconds: 0.0,
        },
    };
    let done = partial.ids.len();
    ensure!(
        done <= test.len()
            && partial.ids[..] == test.ids[..done]
            && partial.columns.len() == n_columns
            && partial.columns.iter().all(|c| c.len() == done),
        "{} holds the scores of other images: delete it and run again",
        path.display()
    );
    let total = test.len();
    let run = PARTIAL_EVERY.div_ceil(batch.max(1)) * batch.max(1);
    let mut start = done;
    while start < total {
        let began = Instant::now();
        let n = run.min(total - start);
        let images = test.images.narrow(0, start as i64, n as i64);
        let columns = score(&images, &mut |d, _| report(start + d, total))?;
        for (all, new) in partial.columns.iter_mut().zip(columns) {
            all.extend(new);
        }
        partial.ids.extend_from_slice(&test.ids[start..start + n]);
        partial.seconds += began.elapsed().as_secs_f64();
        start += n;
        if start < total {
            write_json(path, &partial)?;
        }
    }
    Ok((partial.columns, partial.seconds))
}

/// Where the scores so far of a long cell of `class` are kept (`key`: the method, or the
/// search that gives several).
fn partial_path(context: &ClassContext, key: &str) -> Result<PathBuf> {
    let dir = context.out.join(PARTIAL_DIR);
    std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    Ok(dir.join(format!("{}-{key}.json", context.class)))
}

/// What scoring the methods of one normal class needs.
pub(super) struct ClassContext<'a> {
    pub(super) config: &'a ExperimentConfig,
    pub(super) class: &'a str,
    pub(super) task: &'a OneVsAll,
    /// Validation draw for the classic baselines' PCA dimension, when one is pending.
    pub(super) validation: Option<&'a Validation>,
    /// The experiment's folder (`OUT`).
    pub(super) out: &'a Path,
    /// Where trained networks are kept (`OUT/runs`).
    pub(super) runs: PathBuf,
    /// The class's trained GAN, when a pending method needs it.
    pub(super) gan: Option<&'a ChosenGan>,
    pub(super) device: Device,
}

/// The event for progress of fitting (autoencoder training) or scoring one method.
pub(super) fn progress_event(
    class: &str,
    method: Method,
    done: usize,
    total: usize,
    fitting: bool,
) -> Event<'_> {
    if fitting {
        Event::Fitting {
            class,
            method,
            done,
            total,
        }
    } else {
        Event::Scoring {
            class,
            method,
            done,
            total,
        }
    }
}

/// Scores one method on the class's test images; `adgan` and `prior` come together (both
/// that are `pending`) from one search; `adgan-ic` corrects `adgan_scores` (the class's ADGAN
/// test scores, when scored) if its point is ADGAN's. `report(method, done, total, fitting)`
/// follows it.
pub(super) fn score_method(
    context: &ClassContext,
    method: Method,
    pending: &[Method],
    adgan_scores: Option<&[f64]>,
    report: &mut dyn FnMut(Method, usize, usize, bool),
) -> Result<Vec<Scored>> {
    let ClassContext {
        config,
        task,
        device,
        ..
    } = *context;
    let autoencoder_dir = |m: Method| {
        context
            .runs
            .join(format!("class-{}-{}", context.class, m.name()))
    };
    let inputs = Inputs {
        device,
        model: config.model,
        gan: context.gan.map(|g| &g.gan),
        search: context.gan.map_or(config.search, |g| g.search),
        batch_images: config.batch_images,
        cuda_graph: config.cuda_graph,
        anogan: config.anogan,
        autoencoder: config.autoencoder,
        autoencoder_dir: &autoencoder_dir,
        classic_dir: None,
        trained_on: None,
        normal: Some(&task.train),
        validation: context.validation,
        pca: config.baselines.clone(),
        alexnet: config.alexnet.as_deref(),
        alexnet_layer: config.alexnet_layer,
        complexity: None,
        ensemble: None,
    };
    if method == Method::AdganIc {
        return Ok(vec![score_corrected(
            context,
            &inputs,
            adgan_scores,
            report,
        )?]);
    }
    let start = Instant::now();
    if matches!(method, Method::Adgan | Method::Prior) {
        let path = partial_path(context, "search")?;
        let batch = inputs.gan.map_or(1, |gan| inputs.search_batch(gan));
        let (columns, seconds) = score_resumably(
            &path,
            &task.test,
            (2, batch),
            &mut |done, total| report(method, done, total, false),
            &mut |images, on_batch| Ok(method::search_columns(&inputs, images, on_batch)?.to_vec()),
        )?;
        return Ok([Method::Adgan, Method::Prior]
            .into_iter()
            .zip(columns)
            .filter(|(m, _)| pending.contains(m))
            .map(|(method, scores)| Scored {
                method,
                scores,
                seconds,
                chosen: BTreeMap::new(),
                partial: Some(path.clone()),
                calibration_scores: Vec::new(),
            })
            .collect());
    }
    let mut built = method::build(method, &inputs, &mut |done, total| {
        report(method, done, total, true)
    })?;
    let mut score = |images: &Tensor, on_batch: &mut dyn FnMut(usize, usize)| {
        let scores = score_all(
            built.detector.as_mut(),
            images,
            built.batch,
            device,
            on_batch,
        )?;
        Ok(vec![scores])
    };
    let mut report_scoring = |done, total| report(method, done, total, false);
    // AnoGAN is the long one of the rest: it keeps its scores so far.
    let (mut columns, seconds, partial) = match method {
        Method::Anogan => {
            let path = partial_path(context, method.name())?;
            let columns = (1, built.batch);
            let (columns, seconds) =
                score_resumably(&path, &task.test, columns, &mut report_scoring, &mut score)?;
            (columns, seconds, Some(path))
        }
        _ => {
            let columns = score(&task.test.images, &mut report_scoring)?;
            (columns, start.elapsed().as_secs_f64(), None)
        }
    };
    Ok(vec![Scored {
        method,
        scores: columns.remove(0),
        seconds,
        chosen: built.chosen,
        partial,
        calibration_scores: Vec::new(),
    }])
}

/// `adgan-ic`: ADGAN's test scores at the point its corrected validation ROC-AUC chose, corrected
/// by the line of that point's normal validation images. ADGAN's own scores are reused when the
/// point is ADGAN's; otherwise the search runs again with that point's snapshot and search.
fn score_corrected(
    context: &ClassContext,
    inputs: &Inputs,
    adgan_scores: Option<&[f64]>,
    report: &mut dyn FnMut(Method, usize, usize, bool),
) -> Result<Scored> {
    let gan = context.gan.context("adgan-ic needs the class's GAN")?;
    let corrected = gan
        .complexity
        .as_ref()
        .ok_or_else(|| crate::setting::BadSetting {
            name: "select_every",
            message: "adgan-ic needs a learning curve that kept its anomalous validation scores: \
                  give a validation interval"
                .into(),
        })?;
    let choice = &corrected.choice;
    let images = &context.task.test.images;
    // The search's seconds count those of a stopped run too; reused scores cost none.
    let (scores, searched, partial) = match (&corrected.gan, adgan_scores) {
        (None, Some(scores)) => (scores.to_vec(), 0.0, None),
        (own, _) => {
            let inputs = Inputs {
                gan: Some(own.as_ref().unwrap_or(&gan.gan)),
                search: choice.point.search,
                pca: inputs.pca.clone(),
                ..*inputs
            };
            let path = partial_path(context, Method::AdganIc.name())?;
            let batch = inputs.gan.map_or(1, |gan| inputs.search_batch(gan));
            let (mut columns, seconds) = score_resumably(
                &path,
                &context.task.test,
                (1, batch),
                &mut |done, total| report(Method::AdganIc, done, total, false),
                &mut |images, on_batch| {
                    let [adgan, _] = method::search_columns(&inputs, images, on_batch)?;
                    Ok(vec![adgan])
                },
            )?;
            (columns.remove(0), seconds, Some(path))
        }
    };
    let start = Instant::now();
    let scores = choice.line.correct_images(&scores, images)?;
    let mut chosen = choice.point.chosen(choice.auc);
    chosen.insert("complexity_intercept".to_string(), choice.line.intercept);
    chosen.insert("complexity_slope".to_string(), choice.line.slope);
    Ok(Scored {
        method: Method::AdganIc,
        scores,
        seconds: searched + start.elapsed().as_secs_f64(),
        chosen,
        partial,
        calibration_scores: Vec::new(),
    })
}
