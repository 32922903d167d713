//! Writing results: per-image score tables.

use crate::data::Dataset;
use crate::output::Destination;
use crate::ranking_page::{write_ranking_page, PageRow};
use crate::visual::{save_gallery, MapCaption, TileCaption};
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

/// Names of the files [`write_ranking`] writes into its folder: the score table, the galleries
/// of the most and the least anomalous images, their anomaly maps, and the page of them all
/// (the maps of single images go in [`RANKING_MAPS`]).
pub const RANKING_FILES: [&str; 6] = [
    "scores.csv",
    "most_anomalous.png",
    "least_anomalous.png",
    "most_anomalous_maps.png",
    "least_anomalous_maps.png",
    "index.html",
];

/// The folder of a ranking where the anomaly map of each gallery image is kept for its page
/// (`rank-<position>.png`).
pub const RANKING_MAPS: &str = "maps";

/// Removes the single maps an earlier ranking left in `dir` (`rank-*.png`, which are a
/// ranking's own), so that a ranking replaced with fewer gallery images leaves none stale.
fn remove_single_maps(dir: &Path) -> Result<()> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Ok(());
    };
    for entry in entries {
        let path = entry?.path();
        let name = path.file_name().map(|n| n.to_string_lossy().into_owned());
        if name.is_some_and(|n| n.starts_with("rank-") && n.ends_with(".png")) {
            std::fs::remove_file(&path)
                .with_context(|| format!("cannot remove the old map {}", path.display()))?;
        }
    }
    Ok(())
}

/// A ranking's gallery caption: the file's name (its last path part), the score, and on a
/// calibrated run the p-value and the decision (a flagged tile is also framed).
fn tile_caption(id: &str, score: f64, decision: Option<(f64, bool)>) -> TileCaption {
    let name = id.rsplit(['/', '\\']).next().unwrap_or(id).to_string();
    let mut lines = vec![name, format_score(score)];
    if let Some((p, flagged)) = decision {
        // Eight characters fit under a 64-pixel tile: "p .048", then the decision.
        let p = significant(p, 2);
        lines.push(format!("p {}", p.strip_prefix('0').unwrap_or(&p)));
        lines.push(if flagged { "ANOMALY" } else { "normal" }.to_string());
    }
    TileCaption {
        lines,
        flagged: decision.is_some_and(|d| d.1),
    }
}

/// The files [`write_ranking`] writes.
#[derive(Debug, Clone)]
pub struct RankingFiles {
    /// All images, most anomalous first.
    pub scores: PathBuf,
    /// Gallery of the most anomalous images.
    pub most_anomalous: PathBuf,
    /// Gallery of the least anomalous images.
    pub least_anomalous: PathBuf,
    /// Their anomaly maps, when there are reconstructions.
    pub maps: Option<(PathBuf, PathBuf)>,
    /// The page of the ranking, every image in a row.
    pub page: PathBuf,
}

/// What gives the reconstructions of a batch of images (for the anomaly maps).
pub type Reconstruct<'a> = dyn FnMut(&tch::Tensor) -> Result<tch::Tensor> + 'a;

/// A scored collection to rank.
#[derive(Debug, Clone, Copy)]
pub struct Ranking<'a> {
    /// Image ids.
    pub ids: &'a [String],
    /// Labels, when the images have some.
    pub labels: Option<&'a [i64]>,
    /// Anomaly scores.
    pub scores: &'a [f64],
    /// p-values and alpha, when the run is calibrated.
    pub decisions: Option<Decisions<'a>>,
}

/// Ranks a collection (the paper's LSUN experiment, Figs. 4-6): `scores.csv` sorted from the
/// most to the least anomalous (with p-values and decisions when there are some), and two
/// galleries of `top` images each with their scores. `images_of(indices)` supplies the gallery
/// images, so the collection need not be in memory; `reconstruct(images)`, when given, their
/// reconstructions, drawn as anomaly maps (image | reconstruction | residual).
pub fn write_ranking(
    out: &Path,
    ranking: &Ranking,
    top: usize,
    images_of: &mut dyn FnMut(&[usize]) -> Result<tch::Tensor>,
    reconstruct: Option<&mut Reconstruct>,
) -> Result<RankingFiles> {
    std::fs::create_dir_all(out).with_context(|| format!("cannot create {}", out.display()))?;
    let scores = ranking.scores;
    let order = crate::score::ranking(scores);
    let path = |i: usize| out.join(RANKING_FILES[i]);
    let files = RankingFiles {
        scores: path(0),
        most_anomalous: path(1),
        least_anomalous: path(2),
        maps: reconstruct.is_some().then(|| (path(3), path(4))),
        page: path(5),
    };
    write_score_table(
        &Destination::File(files.scores.clone()),
        ranking.ids,
        ranking.labels,
        scores,
        ranking.decisions,
        &order,
    )?;
    let top = top.clamp(1, order.len());
    let least: Vec<usize> = order.iter().rev().take(top).copied().collect();
    let mut position = vec![0; order.len()];
    for (rank, &i) in order.iter().enumerate() {
        position[i] = rank;
    }
    remove_single_maps(&out.join(RANKING_MAPS))?;
    let mut single_maps = std::collections::HashMap::new();
    let decision = |i: usize| {
        ranking
            .decisions
            .as_ref()
            .map(|d| (d.p_values[i], d.p_values[i] <= d.alpha))
    };
    let mut reconstruct = reconstruct;
    for (k, indices) in [&order[..top], &least[..]].into_iter().enumerate() {
        let images = images_of(indices)?;
        let captions: Vec<TileCaption> = indices
            .iter()
            .map(|&i| tile_caption(&ranking.ids[i], scores[i], decision(i)))
            .collect();
        let zoom = if images.size()[2] <= 32 { 2 } else { 1 };
        save_gallery(&images, &captions, 8, zoom, &path(1 + k))?;
        if let Some(reconstruct) = reconstruct.as_mut() {
            let reconstructions = reconstruct(&images)?;
            let channels = images.size()[1];
            let scale = crate::visual::heat_scale(channels);
            let captions: Vec<MapCaption> = indices
                .iter()
                .map(|&i| MapCaption {
                    name: ranking.ids[i].clone(),
                    score: scores[i],
                    decision: decision(i),
                })
                .collect();
            std::fs::create_dir_all(out.join(RANKING_MAPS))?;
            for (row, (&i, caption)) in indices.iter().zip(&captions).enumerate() {
                let name = format!("{RANKING_MAPS}/rank-{:06}.png", position[i] + 1);
                crate::visual::save_anomaly_map(
                    &images.get(row as i64),
                    &reconstructions.get(row as i64),
                    caption,
                    scale,
                    zoom * 2,
                    &out.join(&name),
                )?;
                single_maps.insert(i, name);
            }
            crate::visual::save_anomaly_maps(
                &images,
                &reconstructions,
                &captions,
                scale,
                zoom * 2,
                4,
                &path(3 + k),
            )?;
        }
    }
    let rows: Vec<PageRow> = order
        .iter()
        .map(|&i| PageRow {
            id: &ranking.ids[i],
            score: scores[i],
            decision: decision(i),
            map: single_maps.remove(&i),
        })
        .collect();
    let alpha = ranking.decisions.as_ref().map_or(0.0, |d| d.alpha);
    write_ranking_page(&files.page, "adgan ranking", &rows, alpha)?;
    Ok(files)
}

/// A score in at most 7 characters for a gallery caption.
fn format_score(score: f64) -> String {
    let text = if score.abs() >= 1e5 || (score != 0.0 && score.abs() < 1e-2) {
        format!("{score:.1e}")
    } else if score.abs() >= 100.0 {
        format!("{score:.0}")
    } else {
        format!("{score:.2}")
    };
    without_negative_zero(text)
}

/// `x` with `digits` significant digits in plain notation (scientific beyond 1e6 or below
/// 1e-4), so that small values such as adgan-ic's thresholds keep their digits, and never
/// `-0`.
pub fn significant(x: f64, digits: usize) -> String {
    if !x.is_finite() {
        return format!("{x}");
    }
    if x == 0.0 {
        return "0".to_string();
    }
    let magnitude = x.abs().log10().floor() as i32;
    let text = if !(-4..6).contains(&magnitude) {
        format!("{x:.*e}", digits.saturating_sub(1))
    } else {
        let decimals = (digits as i32 - 1 - magnitude).max(0) as usize;
        format!("{x:.decimals$}")
    };
    without_negative_zero(text)
}

/// `x` with at most `digits` significant digits and no trailing zeros (`10`, `0.25`, `5e-4`):
/// for settings and axis ticks, where `10.00` would suggest a precision that is not there.
pub fn compact(x: f64, digits: usize) -> String {
    let text = significant(x, digits);
    let (mantissa, exponent) = match text.split_once('e') {
        Some((m, e)) => (m.to_string(), format!("e{e}")),
        None => (text, String::new()),
    };
    let mantissa = match mantissa.contains('.') {
        true => mantissa
            .trim_end_matches('0')
            .trim_end_matches('.')
            .to_string(),
        false => mantissa,
    };
    mantissa + &exponent
}

/// `text` without its minus sign when it shows zero (`-0.00` is `0.00`).
fn without_negative_zero(text: String) -> String {
    match text.strip_prefix('-') {
        Some(rest) if rest.chars().all(|c| c == '0' || c == '.') => rest.to_string(),
        _ => text,
    }
}

/// A score table as written by [`write_score_table`] in CSV: its header and its rows, each a
/// list of fields (quotes removed).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScoreTable {
    /// Column names.
    pub header: Vec<String>,
    /// Rows of fields.
    pub rows: Vec<Vec<String>>,
}

/// Splits one CSV line written by [`csv_field`] into fields.
fn csv_fields(line: &str) -> Result<Vec<String>> {
    let mut fields = Vec::new();
    let mut chars = line.chars().peekable();
    loop {
        let mut field = String::new();
        if chars.peek() == Some(&'"') {
            chars.next();
            loop {
                match chars.next() {
                    Some('"') if chars.peek() == Some(&'"') => {
                        chars.next();
                        field.push('"');
                    }
                    Some('"') => break,
                    Some(c) => field.push(c),
                    None => anyhow::bail!("an unterminated quoted field in {line:?}"),
                }
            }
        } else {
            while let Some(&c) = chars.peek() {
                if c == ',' {
                    break;
                }
                field.push(c);
                chars.next();
            }
        }
        fields.push(field);
        match chars.next() {
            Some(',') => continue,
            None => return Ok(fields),
            Some(c) => anyhow::bail!("unexpected {c:?} after a quoted field in {line:?}"),
        }
    }
}

/// Reads a CSV score table written by [`write_score_table`] (ids with commas, quotes or line
/// breaks are quoted).
pub fn read_score_table(path: &Path) -> Result<ScoreTable> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    // A quoted id may hold a line break: join lines until the quotes balance.
    let mut lines = Vec::new();
    let mut pending = String::new();
    for line in text.lines() {
        if !pending.is_empty() {
            pending.push('\n');
        }
        pending.push_str(line);
        if pending.matches('"').count().is_multiple_of(2) {
            lines.push(std::mem::take(&mut pending));
        }
    }
    let mut rows = lines.iter().map(|l| csv_fields(l));
    let header = rows
        .next()
        .transpose()?
        .with_context(|| format!("{} is empty", path.display()))?;
    ensure!(
        header.first().map(String::as_str) == Some("id"),
        "{} is not an adgan score table (its header is {header:?})",
        path.display()
    );
    let rows = rows
        .collect::<Result<Vec<_>>>()
        .with_context(|| format!("reading {}", path.display()))?;
    ensure!(
        rows.iter().all(|r| r.len() == header.len()),
        "{} has rows of other lengths than its header",
        path.display()
    );
    Ok(ScoreTable { header, rows })
}

/// Writes a score table read by [`read_score_table`] back as CSV.
pub fn write_table(dest: &Destination, table: &ScoreTable) -> Result<()> {
    let line = |fields: &[String]| {
        fields
            .iter()
            .map(|f| csv_field(f))
            .collect::<Vec<_>>()
            .join(",")
            + "\n"
    };
    let mut text = line(&table.header);
    for row in &table.rows {
        text += &line(row);
    }
    dest.write(&text)
}

/// `text` safe inside HTML text and quoted attributes (file names may hold any of these).
pub fn escape_html(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_keep_their_significant_digits_and_no_negative_zero() {
        assert_eq!(significant(0.1234567, 3), "0.123");
        assert_eq!(significant(-0.0004567, 3), "-0.000457");
        assert_eq!(significant(1234.567, 3), "1235");
        assert_eq!(significant(12.0, 3), "12.0");
        assert_eq!(significant(2.5e-7, 2), "2.5e-7");
        assert_eq!(significant(-0.0, 3), "0");
        assert_eq!(significant(-1e-300, 3), "-1.00e-300");
        assert_eq!(format_score(-0.001), "-1.0e-3");
        assert_eq!(format_score(-0.0), "0.00");
        assert_eq!(without_negative_zero("-0.000".into()), "0.000");
        assert_eq!(without_negative_zero("-0.001".into()), "-0.001");
        assert_eq!(compact(10.0, 4), "10");
        assert_eq!(compact(0.25, 4), "0.25");
        assert_eq!(compact(5e-4, 4), "0.0005");
        assert_eq!(compact(2.5e-7, 4), "2.5e-7");
        assert_eq!(compact(0.28444, 4), "0.2844");
        assert_eq!(compact(1500.0, 3), "1500");
        assert_eq!(compact(-0.0, 3), "0");
    }
}
