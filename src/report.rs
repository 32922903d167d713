//! Writing results: per-image score tables.

use crate::data::Dataset;
use crate::output::Destination;
use crate::visual::save_gallery;
use anyhow::{ensure, Context, Result};
use serde::Serialize;
use std::path::{Path, PathBuf};

/// One scored image.
#[derive(Debug, Clone, Serialize)]
pub struct ScoreRow<'a> {
    /// Path or `split:index`.
    pub id: &'a str,
    /// Anomaly score (higher = more anomalous).
    pub score: f64,
    /// Label, when the data has one.
    pub label: Option<i64>,
    /// Conformal p-value, when the run is calibrated.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub p_value: Option<f64>,
    /// The decision p-value <= alpha, when the run is calibrated.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub anomalous: Option<bool>,
}

/// Calibrated decisions to write beside the scores: a p-value per image and the level alpha.
#[derive(Debug, Clone, Copy)]
pub struct Decisions<'a> {
    /// One conformal p-value per image (in image order).
    pub p_values: &'a [f64],
    /// Flag the images with a p-value at most this.
    pub alpha: f64,
}

fn csv_field(text: &str) -> String {
    if text.contains([',', '"', '\n']) {
        format!("\"{}\"", text.replace('"', "\"\""))
    } else {
        text.to_string()
    }
}

/// Writes one row per image (id, score, label when known) as CSV, or JSON for a `.json` file.
pub fn write_scores(
    dest: &Destination,
    data: &Dataset,
    scores: &[f64],
    decisions: Option<Decisions>,
) -> Result<()> {
    let order: Vec<usize> = (0..data.len()).collect();
    write_score_table(
        dest,
        &data.ids,
        data.labels.as_deref(),
        scores,
        decisions,
        &order,
    )
}

/// Writes a score table from ids, optional labels and scores (images that were streamed and
/// are no longer in memory), rows in the order of `order`; CSV, or JSON for a `.json` file.
pub fn write_score_table(
    dest: &Destination,
    ids: &[String],
    labels: Option<&[i64]>,
    scores: &[f64],
    decisions: Option<Decisions>,
    order: &[usize],
) -> Result<()> {
    ensure!(
        scores.len() == ids.len()
            && order.len() <= ids.len()
            && decisions.is_none_or(|d| d.p_values.len() == ids.len()),
        "{} scores for {} images",
        scores.len(),
        ids.len()
    );
    let rows: Vec<ScoreRow> = order
        .iter()
        .map(|&i| ScoreRow {
            id: &ids[i],
            score: scores[i],
            label: labels.map(|l| l[i]),
            p_value: decisions.map(|d| d.p_values[i]),
            anomalous: decisions.map(|d| d.p_values[i] <= d.alpha),
        })
        .collect();
    let text = if dest.is_json() {
        serde_json::to_string_pretty(&rows)? + "\n"
    } else {
        let mut text = String::from("id,score");
        if decisions.is_some() {
            text += ",p_value,anomalous";
        }
        if labels.is_some() {
            text += ",label";
        }
        text.push('\n');
        for row in &rows {
            text += &csv_field(row.id);
            text += &format!(",{}", row.score);
            if let (Some(p), Some(flag)) = (row.p_value, row.anomalous) {
                text += &format!(",{p},{}", u8::from(flag));
            }
            if let Some(label) = row.label {
                text += &format!(",{label}");
            }
            text.push('\n');
        }
        text
    };
    dest.write(&text)
}

/// Names of the files [`write_ranking`] writes into its folder: the score table, then the
/// galleries of the most and the least anomalous images.
pub const RANKING_FILES: [&str; 3] = ["scores.csv", "most_anomalous.png", "least_anomalous.png"];

/// The files [`write_ranking`] writes.
#[derive(Debug, Clone)]
pub struct RankingFiles {
    /// All images, most anomalous first.
    pub scores: PathBuf,
    /// Gallery of the most anomalous images.
    pub most_anomalous: PathBuf,
    /// Gallery of the least anomalous images.
    pub least_anomalous: PathBuf,
}

/// Ranks a collection (the paper's LSUN experiment, Figs. 4-6): `scores.csv` sorted from the
/// most to the least anomalous (with p-values and decisions when `decisions` are given), and
/// two galleries of `top` images each with their scores.
/// `images_of(indices)` supplies the gallery images, so the collection need not be in memory.
pub fn write_ranking(
    out: &Path,
    ids: &[String],
    labels: Option<&[i64]>,
    scores: &[f64],
    decisions: Option<Decisions>,
    top: usize,
    images_of: &mut dyn FnMut(&[usize]) -> Result<tch::Tensor>,
) -> Result<RankingFiles> {
    std::fs::create_dir_all(out).with_context(|| format!("cannot create {}", out.display()))?;
    let order = crate::score::ranking(scores);
    let files = RankingFiles {
        scores: out.join(RANKING_FILES[0]),
        most_anomalous: out.join(RANKING_FILES[1]),
        least_anomalous: out.join(RANKING_FILES[2]),
    };
    write_score_table(
        &Destination::File(files.scores.clone()),
        ids,
        labels,
        scores,
        decisions,
        &order,
    )?;
    let top = top.clamp(1, order.len());
    let least: Vec<usize> = order.iter().rev().take(top).copied().collect();
    for (indices, path) in [
        (&order[..top], &files.most_anomalous),
        (&least[..], &files.least_anomalous),
    ] {
        let images = images_of(indices)?;
        let captions: Vec<String> = indices.iter().map(|&i| format_score(scores[i])).collect();
        let zoom = if images.size()[2] <= 32 { 2 } else { 1 };
        save_gallery(&images, &captions, 8, zoom, path)?;
    }
    Ok(files)
}

/// A score in at most 7 characters for a gallery caption.
fn format_score(score: f64) -> String {
    if score.abs() >= 1e5 || (score != 0.0 && score.abs() < 1e-2) {
        format!("{score:.1e}")
    } else if score.abs() >= 100.0 {
        format!("{score:.0}")
    } else {
        format!("{score:.2}")
    }
}
