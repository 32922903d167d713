//! `adgan calibrate`: ADGAN scores of normal images no model was fitted on, kept in the run
//! folder, from which `score` and `rank` compute conformal p-values and decisions.

use super::args::{DeviceArgs, EnsembleArgs, SearchArgs, SearchMethod};
use super::progress::{image_bar, on_bad_file, report_skipped};
use adgan::calibration::{self, Calibration, CALIBRATION_FILE};
use adgan::data::{load_folder, Dataset, ImageSource};
use adgan::run::{self, TrainedGan};
use adgan::score::method::Inputs;
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
    let mut inputs = Inputs::for_gan(device, &gan, search, args.search.batch_images()?);
    inputs.cuda_graph = args.search.cuda_graph;
    let ensemble = args.ensemble.config();
    if args.method == SearchMethod::Ensemble {
        // Before any scoring: bad members are refused at once.
        ensemble.validate()?;
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
fn calibrate_ensemble(
    gan: &TrainedGan,
    inputs: Inputs,
    ensemble: (&adgan::score::ensemble::EnsembleConfig, usize),
    calibration: &Calibration,
    images: &Dataset,
) -> Result<calibration::EnsembleCalibration> {
    eprintln!(
        "calibrating the ensemble ({}) on the same images",
        ensemble.0.label()
    );
    calibration::calibrate_run_ensemble(
        gan,
        inputs,
        ensemble,
        calibration,
        &images.images,
        &mut |member| eprintln!("  member {}", member.name()),
    )
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
    report_saved(calibration, run_dir);
    Ok(())
}

/// Says what the calibration saved in `run_dir` allows.
pub(crate) fn report_saved(calibration: &Calibration, run_dir: &Path) {
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
}
