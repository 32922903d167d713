//! `adgan train`: a Wasserstein GAN on normal images, into a run folder.

use super::args::{DataArgs, DeviceArgs, EnsembleArgs, GanArgs};
use super::calibrate;
use super::progress::{image_bar, iteration_bar, report_skipped};
use adgan::data::CalibrationSplit;
use adgan::train_run::{train_run, TrainEvent, TrainRequest};
use anyhow::Result;
use clap::Args;
use std::ops::ControlFlow;
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
    /// On a CUDA GPU: record one training iteration as a CUDA graph and replay it for every
    /// later one, without the launch cost of its many small kernels (the same weights; whether
    /// it pays on a given GPU: BENCHMARKS.md, "GPU").
    #[arg(long)]
    cuda_graph: bool,
    #[command(flatten)]
    gan: GanArgs,
    /// Fraction of the normal images held out of training to calibrate p-values and decisions
    /// on (scored with ADGAN after training); 0 keeps none.
    #[arg(long, default_value_t = CalibrationSplit::default().fraction)]
    calibration_fraction: f64,
    /// Calibrate ADGAN only: do not fit the ensemble's classic members on the training images
    /// nor calibrate `--method ensemble` (`adgan calibrate --method ensemble` does it later).
    #[arg(long)]
    no_ensemble: bool,
    #[command(flatten)]
    ensemble: EnsembleArgs,
    /// PCA dimension d' of the ensemble's classic members (no labelled anomalies here to
    /// choose it with).
    #[arg(long, default_value_t = adgan::score::features::PcaConfig::default().fallback_dim)]
    pca_dim: usize,
    #[command(flatten)]
    device: DeviceArgs,
}

pub(crate) fn run(args: &TrainArgs) -> Result<()> {
    let model = args.gan.model_config(args.data.source.default_channels())?;
    let request = TrainRequest {
        out: &args.out,
        source: args.data.source.source(args.gan.seed)?,
        normal_class: args.data.normal_class.as_deref(),
        fit: args.data.source.fit,
        model,
        train: args.gan.train_config()?,
        calibration_fraction: args.calibration_fraction,
        resume: args.resume,
        cuda_graph: args.cuda_graph,
        strict: args.data.strict,
        // The paper's search with this version's defaults; `adgan calibrate` redoes it for
        // other search settings.
        calibration_search: adgan::score::adgan::AdganConfig::default(),
        ensemble: (!args.no_ensemble).then(|| (args.ensemble.config(), args.pca_dim)),
    };
    let device = args.device.select()?;
    let mut bar = iteration_bar(request.train.iterations);
    let mut calibration_bar = None;
    let describe = request.source.describe();
    let trained = train_run(&request, device, &mut |event| {
        match event {
            TrainEvent::Skipped(skipped) => {
                if let Err(e) = report_skipped(skipped, None) {
                    eprintln!("warning: {e:#}");
                }
            }
            TrainEvent::BatchSizeReduced { asked, images } => eprintln!(
                "note: --batch-size {asked} is more than the {images} training images: batches \
                 of {images} are used"
            ),
            TrainEvent::NoCheckpointYet => eprintln!(
                "note: {} holds no checkpoint yet (the run stopped before its first one): \
                 training starts from iteration 0",
                args.out.display()
            ),
            TrainEvent::Started { images } => eprintln!(
                "training on {images} images from {describe} on {} -> {}",
                adgan::device::name(device),
                args.out.display()
            ),
            TrainEvent::Progress(p) => bar.show(p),
            TrainEvent::Calibrating { done, total } => {
                let bar = calibration_bar.get_or_insert_with(|| {
                    eprintln!("calibrating on {total} normal images (split)");
                    image_bar(total)
                });
                bar.show(done, total);
            }
            TrainEvent::EnsembleMember(member) => {
                if let Some(bar) = calibration_bar.take() {
                    bar.finish();
                    eprintln!("calibrating the ensemble on the same images");
                }
                eprintln!("  member {}", member.name());
            }
            TrainEvent::EnsembleSkipped { images, needs } => eprintln!(
                "note: the ensemble is not calibrated: it needs {needs} calibration images (two \
                 halves), and {images} were held out; raise --calibration-fraction, or run \
                 `adgan calibrate --method ensemble --images DIR` on more normal images"
            ),
        }
        ControlFlow::Continue(())
    })?;
    bar.finish();
    println!(
        "trained {} iterations; run folder: {}",
        trained.outcome.iteration,
        trained.outcome.run_dir.display()
    );
    if let Some(calibration) = &trained.calibration {
        if let Some(bar) = &calibration_bar {
            bar.finish();
        }
        calibrate::report_saved(calibration, &args.out);
    }
    Ok(())
}
