//! `adgan train`: a Wasserstein GAN on normal images, into a run folder.

use super::args::{DataArgs, DeviceArgs, GanArgs};
use super::calibrate;
use super::progress::{report_skipped, train_with_progress};
use adgan::data::CalibrationSplit;
use adgan::score::adgan::AdganConfig;
use adgan::score::method::Inputs;
use adgan::train::{self, RunConfig, CHECKPOINT_FILE, CONFIG_FILE, FORMAT_VERSION};
use anyhow::{bail, Result};
use clap::Args;
use std::path::PathBuf;

#[derive(Args, Debug)]
pub(crate) struct TrainArgs {
    #[command(flatten)]
    data: DataArgs,
    /// Output run folder.
    #[arg(long, short)]
    out: PathBuf,
    /// Continue the run in --out from its last checkpoint.
    #[arg(long)]
    resume: bool,
    #[command(flatten)]
    gan: GanArgs,
    /// Fraction of the normal images held out of training to calibrate p-values and decisions
    /// on (scored with ADGAN after training); 0 keeps none.
    #[arg(long, default_value_t = CalibrationSplit::default().fraction)]
    calibration_fraction: f64,
    #[command(flatten)]
    device: DeviceArgs,
}

pub(crate) fn run(args: &TrainArgs) -> Result<()> {
    let source = args.data.source.source(args.gan.seed)?;
    let model = args.gan.model_config(args.data.source.default_channels())?;
    let spec = model.image_spec();
    let mut train = args.gan.train_config()?;
    let checkpoint_path = args.out.join(CHECKPOINT_FILE);
    if !args.resume && checkpoint_path.exists() {
        bail!(
            "{} already holds a training run: pass --resume to continue it, or choose another --out",
            args.out.display()
        );
    }
    if args.resume && !checkpoint_path.exists() {
        if args.out.join(CONFIG_FILE).exists() {
            eprintln!(
                "note: {} holds no checkpoint yet (the run stopped before its first one): \
                 training starts from iteration 0",
                args.out.display()
            );
        } else {
            bail!(
                "--resume: {} holds no training run to continue; leave out --resume to start one",
                args.out.display()
            );
        }
    }
    let calibration = (args.calibration_fraction > 0.0).then_some(CalibrationSplit {
        fraction: args.calibration_fraction,
        seed: args.gan.seed,
    });
    let (data, held_out, provenance) = train::load_training_split(
        &source,
        args.data.normal_class.as_deref(),
        spec,
        args.data.source.fit,
        calibration,
    )?;
    report_skipped(&data.skipped, None)?;
    if let Some(held) = &held_out {
        // Refused before training, not after it: a calibration this small cannot decide.
        if held.len() < adgan::calibration::MIN_CALIBRATION_IMAGES {
            bail!(
                "--calibration-fraction {} holds out {} of the {} normal images, fewer than the \
                 {} a calibration needs: raise it, or pass 0 and calibrate on a folder later",
                args.calibration_fraction,
                held.len(),
                held.len() + data.len(),
                adgan::calibration::MIN_CALIBRATION_IMAGES
            );
        }
    }
    if args.data.strict && !data.skipped.is_empty() {
        bail!(
            "--strict: {} image files could not be read (listed above)",
            data.skipped.len()
        );
    }
    if train.batch_size as usize > data.len() {
        eprintln!(
            "note: --batch-size {} is more than the {} training images: batches of {} are used",
            train.batch_size,
            data.len(),
            data.len()
        );
        train.batch_size = data.len() as i64;
    }
    let config = RunConfig {
        format_version: FORMAT_VERSION,
        model,
        train,
        data: provenance,
    };
    let device = args.device.select()?;
    // One training at a time per run folder: a second one stops here, before it trains.
    let _lock = adgan::output::OutputLock::acquire(&args.out, true, "adgan train")?;
    if !args.resume && checkpoint_path.exists() {
        bail!(
            "{} already holds a training run (one that started just now?): pass --resume to \
             continue it, or choose another --out",
            args.out.display()
        );
    }
    let outcome = train_with_progress(&args.out, &config, &data, device, args.resume)?;
    println!(
        "trained {} iterations; run folder: {}",
        outcome.iteration,
        outcome.run_dir.display()
    );
    if let (Some(images), false) = (held_out, outcome.interrupted) {
        // The paper's search with this version's defaults; `adgan calibrate` redoes it for
        // other search settings.
        let gan = adgan::run::load_gan(&args.out, device)?;
        let inputs = Inputs::for_gan(device, &gan, AdganConfig::default(), None);
        let calibration = calibrate::run_split_images(&inputs, &images)?;
        calibrate::save_and_report(&calibration, &args.out)?;
    }
    Ok(())
}
