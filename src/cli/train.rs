//! `adgan train`: a Wasserstein GAN on normal images, into a run folder.

use super::args::{DataArgs, DeviceArgs, GanArgs};
use super::progress::{report_skipped, train_with_progress};
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
    let (data, provenance) = train::load_training_data(
        &source,
        args.data.normal_class.as_deref(),
        spec,
        args.data.source.fit,
    )?;
    report_skipped(&data.skipped, None)?;
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
    let outcome = train_with_progress(&args.out, &config, &data, device, args.resume)?;
    println!(
        "trained {} iterations; run folder: {}",
        outcome.iteration,
        outcome.run_dir.display()
    );
    Ok(())
}
