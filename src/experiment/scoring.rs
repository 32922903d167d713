//! Scoring the methods of one class on its test images, through the method registry.

use super::{ChosenGan, Event, ExperimentConfig};
use crate::data::OneVsAll;
use crate::score::complexity;
use crate::score::features::Validation;
use crate::score::method::{self, Inputs, Method};
use crate::score::score_all;
use anyhow::{Context, Result};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Instant;
use tch::Device;

/// The scores of one method on a class's test images.
pub(super) struct Scored {
    pub(super) method: Method,
    pub(super) scores: Vec<f64>,
    /// Fitting (for the classic baselines) and scoring time.
    pub(super) seconds: f64,
    pub(super) chosen: BTreeMap<String, f64>,
}

/// What scoring the methods of one normal class needs.
pub(super) struct ClassContext<'a> {
    pub(super) config: &'a ExperimentConfig,
    pub(super) class: &'a str,
    pub(super) task: &'a OneVsAll,
    /// Validation draw for the classic baselines' PCA dimension, when one is pending.
    pub(super) validation: Option<&'a Validation>,
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
        anogan: config.anogan,
        autoencoder: config.autoencoder,
        autoencoder_dir: &autoencoder_dir,
        normal: Some(&task.train),
        validation: context.validation,
        pca: config.baselines.clone(),
        alexnet: config.alexnet.as_deref(),
        alexnet_layer: config.alexnet_layer,
        complexity: None,
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
        let columns = method::search_columns(&inputs, &task.test.images, &mut |done, total| {
            report(method, done, total, false)
        })?;
        let seconds = start.elapsed().as_secs_f64();
        return Ok([Method::Adgan, Method::Prior]
            .into_iter()
            .zip(columns)
            .filter(|(m, _)| pending.contains(m))
            .map(|(method, scores)| Scored {
                method,
                scores,
                seconds,
                chosen: BTreeMap::new(),
            })
            .collect());
    }
    let mut built = method::build(method, &inputs, &mut |done, total| {
        report(method, done, total, true)
    })?;
    let scores = score_all(
        built.detector.as_mut(),
        &task.test.images,
        built.batch,
        device,
        &mut |done, total| report(method, done, total, false),
    )?;
    Ok(vec![Scored {
        method,
        scores,
        seconds: start.elapsed().as_secs_f64(),
        chosen: built.chosen,
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
    let corrected = gan.complexity.as_ref().context(
        "adgan-ic needs a learning curve that kept its anomalous validation scores: turn \
         selection on (--select-every)",
    )?;
    let choice = &corrected.choice;
    let start = Instant::now();
    let images = &context.task.test.images;
    let scores = match (&corrected.gan, adgan_scores) {
        (None, Some(scores)) => scores.to_vec(),
        (own, _) => {
            let inputs = Inputs {
                gan: Some(own.as_ref().unwrap_or(&gan.gan)),
                search: choice.point.search,
                pca: inputs.pca.clone(),
                ..*inputs
            };
            let [adgan, _] = method::search_columns(&inputs, images, &mut |done, total| {
                report(Method::AdganIc, done, total, false)
            })?;
            adgan
        }
    };
    let lengths = complexity::png_lengths(images)?;
    let scores = scores
        .iter()
        .zip(&lengths)
        .map(|(&s, &l)| choice.line.correct(s, l))
        .collect();
    let chosen = BTreeMap::from([
        ("iterations".to_string(), choice.point.iteration as f64),
        ("lr_z".to_string(), choice.point.search.lr_z),
        (
            "lr_theta".to_string(),
            choice.point.search.effective_lr_theta(),
        ),
        ("validation_auc".to_string(), choice.auc),
        ("complexity_intercept".to_string(), choice.line.intercept),
        ("complexity_slope".to_string(), choice.line.slope),
    ]);
    Ok(Scored {
        method: Method::AdganIc,
        scores,
        seconds: start.elapsed().as_secs_f64(),
        chosen,
    })
}
