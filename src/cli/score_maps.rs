//! `score --maps DIR`: the anomaly map of every image scored, written as its batch is scored.

use super::args::out_error;
use super::score::ScoreArgs;
use adgan::calibration::Calibration;
use adgan::run::TrainedGan;
use adgan::score::method::Method;
use adgan::score::ScoredBatch;
use anyhow::{Context, Result};

/// With --maps, a function that writes the anomaly maps of each batch scored (named by image
/// index and file name), after the legend; the folder is checked first.
pub(crate) fn map_writer<'a>(
    args: &'a ScoreArgs,
    method: Method,
    gan: &TrainedGan,
    ids: &'a [String],
    decide: Option<&'a Calibration>,
) -> Result<Option<impl FnMut(ScoredBatch) -> Result<()> + 'a>> {
    let Some(dir) = &args.maps else {
        return Ok(None);
    };
    debug_assert!(
        matches!(method, Method::Adgan | Method::AdganIc),
        "checked by run"
    );
    adgan::output::check_folder(dir, &["legend.png"], args.force)
        .map_err(out_error("--maps", dir))?;
    let scale = adgan::visual::heat_scale(gan.config.model.channels);
    adgan::visual::save_heat_legend(scale, &dir.join("legend.png"))?;
    eprintln!(
        "anomaly maps in {}: image | reconstruction | residual summed over channels (black 0 \
         to white {scale}, legend.png) | the residual over the image",
        dir.display()
    );
    Ok(Some(move |batch: ScoredBatch| {
        let reconstructions = batch
            .reconstructions
            .context("the detector gave no reconstructions")?;
        for (row, &i) in batch.indices.iter().enumerate() {
            let row = row as i64;
            let name = map_name(i, &ids[i]);
            let (image, reconstruction) = (batch.images.get(row), reconstructions.get(row));
            let score = batch.scores[row as usize];
            let caption = adgan::visual::MapCaption {
                name: ids[i].clone(),
                score,
                decision: decide.map(|c| {
                    let p = c.p_value(score);
                    (p, p <= args.alpha)
                }),
            };
            let path = dir.join(name);
            adgan::visual::save_anomaly_map(&image, &reconstruction, &caption, scale, 4, &path)?;
        }
        Ok(())
    }))
}

/// The file name of image `index`'s map: its index and the last part of its id, with only
/// letters, digits, `-` and `_` kept.
fn map_name(index: usize, id: &str) -> String {
    let last = id.rsplit(['/', ':']).next().unwrap_or("");
    let stem = last.rsplit_once('.').map_or(last, |(stem, _)| stem);
    let safe: String = stem
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' {
                c
            } else {
                '_'
            }
        })
        .collect();
    format!("{index:06}_{safe}.png")
}
