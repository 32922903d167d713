//! `adgan calibrate`: ADGAN scores of normal images no model was fitted on, kept in the run
//! folder, from which `score` and `rank` compute conformal p-values and decisions.

use super::args::{DeviceArgs, SearchArgs};
use super::progress::{image_bar, on_bad_file, report_skipped};
use adgan::calibration::{self, Calibration, CALIBRATION_FILE};
use adgan::data::{load_folder, Dataset, ImageSource};
use adgan::run::{self, TrainedGan};
use adgan::score::adgan::AdganConfig;
use adgan::score::complexity::ComplexityLine;
use adgan::score::method::{Inputs, Method};
use anyhow::{Context, Result};
use clap::Args;
use std::path::{Path, PathBuf};

#[derive(Args, Debug)]
pub(crate) struct CalibrateArgs {
    /// Run folder of a trained GAN (made by `adgan train`).
    #[arg(long)]
    model: PathBuf,
    /// A folder of normal images to calibrate on (default: the calibration split the run kept
    /// out of training).
    #[arg(long)]
    images: Option<PathBuf>,
    /// Stop at the first image file that cannot be read (default: skip it and warn).
    #[arg(long)]
    strict: bool,
    #[command(flatten)]
    search: SearchArgs,
    #[command(flatten)]
    device: DeviceArgs,
}

pub(crate) fn run(args: &CalibrateArgs) -> Result<()> {
    let device = args.device.select()?;
    args.search.warn_if_bf16_slow(device);
    let gan = run::load_gan(&args.model, device)?;
    let search = args.search.config();
    let inputs = Inputs::for_gan(device, &gan, search, args.search.batch_images()?);
    let calibration = match &args.images {
        Some(dir) => {
            let spec = gan.config.model.image_spec();
            let fit = gan.config.data.fit;
            let images = load_folder(dir, spec, fit, on_bad_file(args.strict))?;
            report_skipped(&images.skipped, None)?;
            let origin = format!("folder {}", dir.display());
            score_calibration(
                &inputs,
                &mut { &images.images },
                images.ids.clone(),
                &origin,
            )?
        }
        None => run_split(&gan, &inputs)?,
    };
    save_and_report(&calibration, &args.model)
}

/// Calibrates on the split the run kept out of training.
fn run_split(gan: &TrainedGan, inputs: &Inputs) -> Result<Calibration> {
    let images = calibration::calibration_images(&gan.config)
        .context("--images DIR calibrates on a folder of normal images instead")?;
    run_split_images(inputs, &images)
}

/// Calibrates on `images`, the split the run kept out of training.
pub(crate) fn run_split_images(inputs: &Inputs, images: &Dataset) -> Result<Calibration> {
    score_calibration(inputs, &mut { &images.images }, images.ids.clone(), "split")
}

fn score_calibration(
    inputs: &Inputs,
    images: &mut dyn ImageSource,
    ids: Vec<String>,
    origin: &str,
) -> Result<Calibration> {
    eprintln!("calibrating on {} normal images ({origin})", ids.len());
    let mut bar = image_bar(images.len());
    let c = calibration::calibrate(inputs, images, ids, origin, &mut |d, t| bar.show(d, t))?;
    bar.finish();
    Ok(c)
}

/// Saves the calibration into the run folder and says what it allows.
pub(crate) fn save_and_report(calibration: &Calibration, run_dir: &Path) -> Result<()> {
    calibration.save(run_dir)?;
    for warning in calibration.check() {
        eprintln!("warning: {warning}");
    }
    println!(
        "calibrated on {} normal images ({}): `score` and `rank` now add p-values and decisions \
         (--alpha, at least {:.4}); kept in {}",
        calibration.scores.len(),
        calibration.origin,
        calibration.smallest_alpha(),
        run_dir.join(CALIBRATION_FILE).display()
    );
    if let Some(rate) = calibration.false_alarm_rate(calibration::DEFAULT_ALPHA) {
        println!(
            "at alpha {}, a calibration of {} images flags {:.1}% of normal images on average, \
             give or take {:.1}% (sd) for any one calibration; more images narrow that",
            calibration::DEFAULT_ALPHA,
            calibration.scores.len(),
            100.0 * rate.mean,
            100.0 * rate.sd
        );
    }
    Ok(())
}

/// The run's calibration when it was made with `search` (scores of another search are not
/// comparable: then none, with a note).
pub(crate) fn matching(run_dir: &Path, search: &AdganConfig) -> Result<Option<Calibration>> {
    let Some(calibration) = Calibration::load(run_dir)? else {
        return Ok(None);
    };
    if calibration.search != *search {
        eprintln!(
            "note: the calibration in {} was made with other search settings: no p-values; run \
             `adgan calibrate --model {}` with the same search flags to add them",
            run_dir.display(),
            run_dir.display()
        );
        return Ok(None);
    }
    for warning in calibration.check() {
        eprintln!("warning: {warning}");
    }
    Ok(Some(calibration))
}

/// The method asked for, or else the default for this run ([`calibration::default_method`]):
/// `adgan-ic` where the calibration for the search can fit its line, otherwise ADGAN, with a
/// note on how to get the default.
pub(crate) fn method_or_default(
    asked: Option<Method>,
    calibration: Option<&Calibration>,
    run_dir: &Path,
) -> Method {
    if let Some(method) = asked {
        return method;
    }
    let method = calibration::default_method(calibration);
    if method != Method::AdganIc {
        eprintln!(
            "note: scoring with adgan as in the paper; the default, adgan-ic (corrected for image \
             complexity), needs the run calibrated with the same search flags: run `adgan \
             calibrate --model {}` to use it, or pass --method adgan to silence this",
            run_dir.display()
        );
    }
    method
}

/// The complexity line of `adgan-ic`, from the run's calibration made with the same search.
pub(crate) fn complexity_line(
    calibration: Option<&Calibration>,
    run_dir: &Path,
) -> Result<ComplexityLine> {
    let calibration = calibration.with_context(|| {
        format!(
            "--method adgan-ic fits its complexity line on the run's calibration images: run \
             `adgan calibrate --model {}` with the same search flags first",
            run_dir.display()
        )
    })?;
    calibration
        .complexity_line()
        .with_context(|| format!("the calibration of {}", run_dir.display()))
}
