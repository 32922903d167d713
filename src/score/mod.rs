//! Anomaly scores: one file per detector behind the [`Detector`] trait. Higher = more anomalous.

pub mod adgan;
pub mod anogan;
pub mod classic;
pub mod complexity;
pub mod critic;
pub mod dcae;
pub mod ensemble;
pub mod features;
pub mod gmm;
pub mod iforest;
pub mod kde;
pub mod kept;
pub mod method;
pub mod ocsvm;
pub mod prior;
pub mod vae;

use crate::data::ImageSource;
use anyhow::Result;
use tch::Tensor;

/// A method that gives every image an anomaly score (higher = more anomalous).
pub trait Detector {
    /// Short name used in result tables (`adgan`, `critic`, ...).
    fn name(&self) -> &str;

    /// Scores a batch of images (N x C x H x W in [-1, 1]); one score per image, in order.
    fn score_batch(&mut self, images: &Tensor) -> Result<Vec<f64>>;

    /// The reconstructions of the images of the last batch scored, for a detector that
    /// reconstructs (ADGAN: the best seed's g(z*)); taken, so a second call gives `None`.
    fn reconstructions(&mut self) -> Option<Tensor> {
        None
    }
}

/// Copies a 1-D tensor of scores to the host.
pub fn to_scores(values: &Tensor) -> Result<Vec<f64>> {
    let host = values
        .to_device(tch::Device::Cpu)
        .to_kind(tch::Kind::Double);
    Ok(Vec::<f64>::try_from(&host)?)
}

/// Scores every image of `images` (N x C x H x W, on any device) in batches of `batch`
/// images, moving each batch to `device`; `on_batch(done, total)` is called after each batch.
pub fn score_all(
    detector: &mut dyn Detector,
    images: &Tensor,
    batch: usize,
    device: tch::Device,
    on_batch: &mut dyn FnMut(usize, usize),
) -> Result<Vec<f64>> {
    score_source(detector, &mut { images }, batch, device, on_batch)
}

/// As [`score_all`], for images from any [`ImageSource`].
pub fn score_source(
    detector: &mut dyn Detector,
    source: &mut dyn ImageSource,
    batch: usize,
    device: tch::Device,
    on_batch: &mut dyn FnMut(usize, usize),
) -> Result<Vec<f64>> {
    let name = detector.name().to_string();
    let mut columns = score_columns(
        source,
        batch,
        device,
        1,
        &mut |chunk| Ok(vec![detector.score_batch(chunk)?]),
        on_batch,
    )
    .map_err(|e| e.context(format!("scoring with {name}")))?;
    Ok(columns.remove(0))
}

/// Like [`score_source`], for a computation that yields `n_columns` scores per image at once
/// (one ADGAN search gives both the `adgan` and the `prior` score, so they share it).
pub fn score_columns(
    source: &mut dyn ImageSource,
    batch: usize,
    device: tch::Device,
    n_columns: usize,
    score_batch: &mut dyn FnMut(&Tensor) -> Result<Vec<Vec<f64>>>,
    on_batch: &mut dyn FnMut(usize, usize),
) -> Result<Vec<Vec<f64>>> {
    let n = source.len();
    let batch = batch.max(1);
    let mut columns = vec![Vec::with_capacity(n); n_columns];
    for start in (0..n).step_by(batch) {
        let len = batch.min(n - start);
        let chunk = source.images(start, len)?.to_device(device);
        let batch_columns = score_batch(&chunk)?;
        anyhow::ensure!(
            batch_columns.len() == n_columns && batch_columns.iter().all(|c| c.len() == len),
            "a detector returned the wrong number of scores for {len} images"
        );
        for (column, scores) in columns.iter_mut().zip(batch_columns) {
            column.extend(scores);
        }
        on_batch(start + len, n);
    }
    Ok(columns)
}

/// One batch just scored: which images, the images, their scores, and what the detector
/// reconstructed of them (if it reconstructs).
pub struct ScoredBatch<'a> {
    /// Indices of the images in the source.
    pub indices: &'a [usize],
    /// The images, N x C x H x W.
    pub images: &'a Tensor,
    /// Their scores.
    pub scores: &'a [f64],
    /// [`Detector::reconstructions`] of them.
    pub reconstructions: Option<Tensor>,
}

/// What is called with every batch scored (see [`score_resumable`]).
pub type AfterBatch<'a> = dyn FnMut(ScoredBatch) -> Result<()> + 'a;

/// As [`score_source`], resumable: images whose score `journal` holds (from an earlier,
/// stopped run of the same job) are not scored again, and every batch is recorded in the
/// journal as soon as it is scored; `after_batch` sees every batch scored (to write anomaly
/// maps as the scores come, say).
pub fn score_resumable(
    detector: &mut dyn Detector,
    source: &mut dyn ImageSource,
    batch: usize,
    device: tch::Device,
    journal: &mut crate::output::ScoreJournal,
    on_batch: &mut dyn FnMut(usize, usize),
    after_batch: &mut AfterBatch,
) -> Result<Vec<f64>> {
    let n = source.len();
    let todo: Vec<usize> = (0..n).filter(|i| !journal.done().contains_key(i)).collect();
    let mut finished = n - todo.len();
    on_batch(finished, n);
    for chunk in todo.chunks(batch.max(1)) {
        let images = source.images_at(chunk)?.to_device(device);
        let scores = detector.score_batch(&images)?;
        anyhow::ensure!(
            scores.len() == chunk.len(),
            "{} returned {} scores for {} images",
            detector.name(),
            scores.len(),
            chunk.len()
        );
        after_batch(ScoredBatch {
            indices: chunk,
            images: &images,
            scores: &scores,
            reconstructions: detector.reconstructions(),
        })?;
        journal.record(chunk, &scores)?;
        finished += chunk.len();
        on_batch(finished, n);
    }
    (0..n)
        .map(|i| {
            journal
                .done()
                .get(&i)
                .copied()
                .ok_or_else(|| anyhow::anyhow!("image {i} has no score"))
        })
        .collect()
}

/// Indices of `scores` from the most to the least anomalous (ties keep their order).
pub fn ranking(scores: &[f64]) -> Vec<usize> {
    let mut order: Vec<usize> = (0..scores.len()).collect();
    order.sort_by(|&a, &b| scores[b].total_cmp(&scores[a]));
    order
}

/// What `detector` reconstructs of `images` on `device` (ADGAN: each one's best g(z*)), for
/// anomaly maps.
pub fn reconstruct(
    detector: &mut dyn Detector,
    images: &Tensor,
    device: tch::Device,
) -> Result<Tensor> {
    detector.score_batch(&images.to_device(device))?;
    detector
        .reconstructions()
        .ok_or_else(|| anyhow::anyhow!("{} reconstructs nothing", detector.name()))
}
