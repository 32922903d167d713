//! `adgan demo`: a small GAN on embedded shapes, scored, with its ROC-AUC; no download.

use super::args::{DeviceArgs, SearchArgs};
use super::progress;
use adgan::demo::{self, DemoConfig};
use anyhow::Result;
use clap::Args;
use std::path::PathBuf;

#[derive(Args, Debug)]
pub(crate) struct DemoArgs {
    /// Output folder.
    #[arg(long, short, default_value = "runs/demo")]
    out: PathBuf,
    /// Generator iterations of the demo GAN.
    #[arg(long, default_value_t = 400)]
    iterations: usize,
    /// Seed of the data and the training.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Held-out images to score (normal discs and anomalous shapes).
    #[arg(long, default_value_t = 400)]
    n_test: usize,
    #[command(flatten)]
    search: SearchArgs,
    #[command(flatten)]
    device: DeviceArgs,
}

pub(crate) fn run(args: &DemoArgs) -> Result<()> {
    let mut search = args.search.config();
    if args.search.lr_theta.is_none() {
        search.lr_theta = demo::DEMO_LR_THETA;
    }
    let config = DemoConfig {
        iterations: args.iterations,
        seed: args.seed,
        n_test: args.n_test,
        search,
        batch_images: args.search.batch_images()?,
    };
    let device = args.device.select()?;
    if args.out.join(adgan::train::CHECKPOINT_FILE).exists() {
        eprintln!(
            "{} holds an earlier demo run: continuing it",
            args.out.display()
        );
    }
    eprintln!(
        "demo: training a GAN on embedded discs on {} -> {}",
        adgan::device::name(device),
        args.out.display()
    );
    let mut train_bar = progress::iteration_bar(args.iterations);
    let mut score_bar = progress::image_bar(args.n_test);
    let outcome = demo::run(
        &args.out,
        &config,
        device,
        &mut |p| {
            train_bar.show(p);
            std::ops::ControlFlow::Continue(())
        },
        &mut |done, total| score_bar.show(done, total),
    )?;
    train_bar.finish();
    score_bar.finish();
    let run = outcome.run_dir.display();
    println!(
        "demo: GAN trained for {} iterations on {} normal images (discs)",
        outcome.iterations, outcome.n_train
    );
    println!(
        "demo: scored {} held-out images: ROC-AUC {:.3} (mean score normal {:.1}, anomalous {:.1})",
        outcome.n_scored, outcome.auc, outcome.mean_normal, outcome.mean_anomalous
    );
    println!("  run folder:  {run}");
    println!(
        "  samples:     {run}/samples/iter_{:06}.png",
        outcome.iterations
    );
    println!("  scores:      {}", outcome.scores.display());
    println!("  losses:      {run}/losses.csv");
    println!("  inspect:     adgan info {run}");
    Ok(())
}
