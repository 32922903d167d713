//! `adgan calibrate`: ADGAN scores of normal images no model was fitted on, kept in the run
//! folder, from which `score` and `rank` compute conformal p-values and decisions.

use super::args::{DeviceArgs, EnsembleArgs, SearchArgs, SearchMethod};
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
    /// What to calibrate: adgan (ADGAN's scores and the images' complexities, which also
    /// calibrate adgan-ic), or ensemble (those, and the ensemble of --ensemble-members, whose
    /// classic members are fitted on the run's training images).
    #[arg(long, value_enum, default_value = "adgan")]
    method: SearchMethod,
    /// PCA dimension d' of the ensemble's classic members (no labelled anomalies here to
    /// choose it with).
    #[arg(long, default_value_t = adgan::score::features::PcaConfig::default().fallback_dim)]
    pca_dim: usize,
    #[command(flatten)]
    ensemble: EnsembleArgs,
    #[command(flatten)]
    search: SearchArgs,
    #[command(flatten)]
    device: DeviceArgs,
}

pub(crate) fn run(args: &CalibrateArgs) -> Result<()> {
    let device = args.device.select()?;
    args.search.warn_if_bf16_slow(device);
    let gan = run::load_gan(&args.model, device)?;
    let _lock = adgan::output::OutputLock::acquire(&args.model, true, "adgan calibrate")?;
    let search = args.search.config();
    let inputs = Inputs::for_gan(device, &gan, search, args.search.batch_images()?);
    let ensemble = args.ensemble.config();
    if args.method == SearchMethod::Ensemble {
        // Before any scoring: bad members are refused at once.
        ensemble.validate().context("--ensemble-members")?;
    }
    let (images, origin) = match &args.images {
        Some(dir) => {
            let spec = gan.config.model.image_spec();
            let fit = gan.config.data.fit;
            let images = load_folder(dir, spec, fit, on_bad_file(args.strict))?;
            report_skipped(&images.skipped, None)?;
            (images, format!("folder {}", dir.display()))
        }
        None => {
            let images = calibration::calibration_images(&gan.config)
                .context("--images DIR calibrates on a folder of normal images instead")?;
            (images, "split".to_string())
        }
    };
    let mut calibration = score_calibration(
        &inputs,
        &mut { &images.images },
        images.ids.clone(),
        &origin,
    )?;
    if args.method == SearchMethod::Ensemble {
        calibration.ensemble = Some(calibrate_ensemble(
            &args.model,
            &gan,
            inputs,
            (&ensemble, args.pca_dim),
            &calibration,
            &images,
        )?);
    }
    save_and_report(&calibration, &args.model)
}

/// The ensemble's calibration: its classic members fitted on the run's training images (never
/// on a calibration image), every member scoring the calibration images.
pub(crate) fn calibrate_ensemble(
    run_dir: &Path,
    gan: &TrainedGan,
    inputs: Inputs,
    (ensemble, pca_dim): (&adgan::score::ensemble::EnsembleConfig, usize),
    calibration: &Calibration,
    images: &Dataset,
) -> Result<calibration::EnsembleCalibration> {
    let training = member_training_images(gan, ensemble)?;
    let baseline_dir = |m: Method| adgan::run::baseline_dir(run_dir, m.name());
    let inputs = Inputs {
        trained_on: None,
        normal: training.as_ref(),
        autoencoder_dir: &baseline_dir,
        classic_dir: Some(&baseline_dir),
        pca: adgan::score::features::PcaConfig {
            fallback_dim: pca_dim,
            ..Default::default()
        },
        ..inputs
    };
    eprintln!(
        "calibrating the ensemble ({}) on the same images",
        ensemble.label()
    );
    calibration::calibrate_ensemble(
        &inputs,
        ensemble,
        calibration,
        &images.images,
        gan.config.train.seed,
        &mut |member| eprintln!("  member {}", member.name()),
    )
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
    if let Some(e) = &calibration.ensemble {
        println!(
            "the ensemble ({}) is calibrated on {} of the images (its normalisers on the \
             others): `score` and `rank` with --method ensemble decide at alpha {:.4} or more",
            e.ensemble.config.label(),
            e.scores.len(),
            1.0 / (e.scores.len() + 1) as f64
        );
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

/// What building a run's ensemble needs beyond the search: its calibration, and the run's
/// training images when a member is fitted on them.
pub(crate) struct EnsembleParts {
    pub(crate) calibration: calibration::EnsembleCalibration,
    pub(crate) training: Option<Dataset>,
}

/// The [`EnsembleParts`] of the run in `run_dir`, from its calibration for the search.
pub(crate) fn ensemble_parts(
    run_dir: &Path,
    gan: &TrainedGan,
    calibration: Option<&Calibration>,
) -> Result<EnsembleParts> {
    let e = run_ensemble(run_dir, calibration)?.clone();
    let training = member_training_images(gan, &e.ensemble.config)?;
    Ok(EnsembleParts {
        calibration: e,
        training,
    })
}

/// The ensemble of the run's calibration for the search, or what to run to get one.
pub(crate) fn run_ensemble<'c>(
    run_dir: &Path,
    calibration: Option<&'c Calibration>,
) -> Result<&'c calibration::EnsembleCalibration> {
    calibration
        .and_then(|c| c.ensemble.as_ref())
        .with_context(|| {
            format!(
                "--method ensemble: the run has no ensemble calibrated with these search flags; \
                 run `adgan calibrate --model {} --method ensemble` with them first",
                run_dir.display()
            )
        })
}

/// The images the run trained on, when a member of `ensemble` is fitted on them.
fn member_training_images(
    gan: &TrainedGan,
    ensemble: &adgan::score::ensemble::EnsembleConfig,
) -> Result<Option<Dataset>> {
    if ensemble.members.iter().all(|m| m.needs_gan()) {
        return Ok(None);
    }
    let images = gan
        .training_images()
        .context("the ensemble's members are fitted on them")?;
    Ok(Some(images))
}

/// Warns when `alpha` is below the smallest p-value `calibration` can give: then no image is
/// ever flagged.
pub(crate) fn warn_if_alpha_too_small(alpha: f64, calibration: &Calibration) {
    let smallest = calibration.smallest_alpha();
    if alpha < smallest {
        eprintln!(
            "warning: --alpha {alpha} is below 1 / (n_cal + 1) = {smallest:.4} for these {} \
             calibration images: no image can be flagged; use --alpha {smallest:.4} or more, or \
             calibrate on more images",
            calibration.scores.len()
        );
    }
}
