//! Writing results: per-image score tables.

use crate::checkpoint::write_atomic;
use crate::data::Dataset;
use anyhow::{ensure, Result};
use serde::Serialize;
use std::path::Path;

/// One scored image.
#[derive(Debug, Clone, Serialize)]
pub struct ScoreRow<'a> {
    /// Path or `split:index`.
    pub id: &'a str,
    /// Anomaly score (higher = more anomalous).
    pub score: f64,
    /// Label, when the data has one.
    pub label: Option<i64>,
}

fn csv_field(text: &str) -> String {
    if text.contains([',', '"', '\n']) {
        format!("\"{}\"", text.replace('"', "\"\""))
    } else {
        text.to_string()
    }
}

/// Writes one row per image (id, score, label when known) as CSV, or JSON when `path` ends in
/// `.json`; atomically.
pub fn write_scores(path: &Path, data: &Dataset, scores: &[f64]) -> Result<()> {
    ensure!(
        scores.len() == data.len(),
        "{} scores for {} images",
        scores.len(),
        data.len()
    );
    let rows: Vec<ScoreRow> = (0..data.len())
        .map(|i| ScoreRow {
            id: &data.ids[i],
            score: scores[i],
            label: data.labels.as_ref().map(|l| l[i]),
        })
        .collect();
    let json = path
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("json"));
    let text = if json {
        serde_json::to_string_pretty(&rows)? + "\n"
    } else {
        let mut text = String::from(if data.labels.is_some() {
            "id,score,label\n"
        } else {
            "id,score\n"
        });
        for row in &rows {
            text += &csv_field(row.id);
            text += &format!(",{}", row.score);
            if let Some(label) = row.label {
                text += &format!(",{label}");
            }
            text.push('\n');
        }
        text
    };
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent)?;
    }
    write_atomic(path, |tmp| Ok(std::fs::write(tmp, text)?))
}
