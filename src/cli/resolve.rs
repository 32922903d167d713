//! What `score` and `rank` tell about the scorer the library resolved ([`adgan::scorer`]):
//! its notices, and its refusals with the command that removes them.

use adgan::run::TrainedGan;
use adgan::score::method::Method;
use adgan::scorer::{NeedsCalibration, Notice, Scorer, ScorerConfig};
use anyhow::Result;

/// Resolves `config` over `gan`, printing its notices.
pub(crate) fn scorer<'g>(gan: &'g TrainedGan, config: ScorerConfig) -> Result<Scorer<'g>> {
    let alpha = config.alpha;
    let scorer = Scorer::new(gan, config).map_err(|e| with_remedy(e, gan))?;
    for notice in &scorer.notices {
        eprintln!("{}", notice_text(notice, gan, alpha));
    }
    Ok(scorer)
}

/// A notice as the command line says it, with what to run about it.
fn notice_text(notice: &Notice, gan: &TrainedGan, alpha: f64) -> String {
    let run = gan.run_dir.display();
    match notice {
        Notice::CalibrationOfOtherSearch => format!(
            "note: the calibration in {run} was made with other search settings: no p-values; \
             run `adgan calibrate --model {run}` with the same search flags to add them"
        ),
        Notice::DefaultWithoutCalibration => format!(
            "note: scoring with adgan as in the paper; the default, adgan-ic (corrected for image \
             complexity), needs the run calibrated with the same search flags: run `adgan \
             calibrate --model {run}` to use it, or pass --method adgan to silence this"
        ),
        Notice::CalibrationWarning(warning) => format!("warning: {warning}"),
        Notice::AlphaTooSmall { smallest, images } => format!(
            "warning: --alpha {alpha} is below 1 / (n_cal + 1) = {smallest:.4} for these {images} \
             calibration images: no image can be flagged; use --alpha {smallest:.4} or more, or \
             calibrate on more images"
        ),
    }
}

/// The scorer's refusal of a method the run is not calibrated for, with the command that
/// calibrates it.
fn with_remedy(err: anyhow::Error, gan: &TrainedGan) -> anyhow::Error {
    let Some(needs) = err.downcast_ref::<NeedsCalibration>() else {
        return err;
    };
    let method = needs.method;
    let also = match method {
        Method::Ensemble => " --method ensemble",
        _ => "",
    };
    let remedy = format!(
        "--method {}: run `adgan calibrate --model {}{also}` with the same search flags first",
        method.name(),
        gan.run_dir.display()
    );
    err.context(remedy)
}
