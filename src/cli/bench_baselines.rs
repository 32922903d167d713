//! `adgan bench baselines`: the classic baselines at a fixed PCA dimension on a one-vs-all
//! task, to compare with scikit-learn (bench/baselines.py) on the same data.

use super::args::{DataArgs, DeviceArgs};
use adgan::data::Split;
use adgan::device;
use adgan::score::classic::Classic;
use anyhow::{Context, Result};
use clap::Args;
use std::path::PathBuf;

/// What `bench baselines` fits, on which data.
#[derive(Args, Debug)]
pub(crate) struct BenchBaselinesArgs {
    #[command(flatten)]
    data: DataArgs,
    /// Test images drawn.
    #[arg(long, default_value_t = 1000)]
    n_test: usize,
    /// Seed of the test draw.
    #[arg(long, default_value_t = 0)]
    draw_seed: u64,
    /// PCA dimension d'.
    #[arg(long, default_value_t = 40)]
    pca_dim: usize,
    /// Baselines, comma-separated.
    #[arg(
        long,
        value_enum,
        value_delimiter = ',',
        default_value = "kde,ocsvm,iforest,gmm"
    )]
    methods: Vec<Classic>,
    /// Seed of the randomised baselines (Isolation Forest, GMM initialisation).
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Fit and score each baseline on the CPU too, and fail when the device's scores stray from
    /// the CPU's by more than --tolerance of their largest magnitude.
    #[arg(long)]
    against_cpu: bool,
    /// Largest relative difference --against-cpu accepts.
    #[arg(long, default_value_t = 1e-6)]
    tolerance: f64,
    /// Write the training images, test images and labels to this safetensors file.
    #[arg(long)]
    dump: Option<PathBuf>,
    #[command(flatten)]
    device: DeviceArgs,
}

/// Fits and scores the classic baselines at a fixed PCA dimension and prints what each gave.
pub(crate) fn run(args: &BenchBaselinesArgs) -> Result<()> {
    let device = args.device.select()?;
    anyhow::ensure!(
        args.tolerance >= 0.0,
        "--tolerance must be at least 0, not {}",
        args.tolerance
    );
    let class = args
        .data
        .normal_class
        .as_deref()
        .context("bench baselines needs --normal-class")?;
    let source = args.data.source.source(0)?;
    let spec = adgan::data::ImageSpec {
        size: 32,
        channels: args.data.source.default_channels(),
    };
    let train = source.load(Split::Train, spec, args.data.source.fit)?;
    let test = source.load(Split::Test, spec, args.data.source.fit)?;
    let normal = adgan::data::normal_class_index(&train, class)?;
    let task = adgan::data::one_vs_all(&train, &test, normal, args.n_test, args.draw_seed)?;
    let labels = task.test.labels.clone().unwrap_or_default();
    if let Some(path) = &args.dump {
        let labels_tensor = tch::Tensor::from_slice(&labels);
        adgan::io::save_tensors(
            path,
            &[
                ("train".to_string(), task.train.images.flatten(1, -1)),
                ("test".to_string(), task.test.images.flatten(1, -1)),
                ("labels".to_string(), labels_tensor),
            ],
        )?;
        println!("wrote {}", path.display());
    }
    println!(
        "class {class}: {} normal training images, {} test images, PCA d' = {}, {} threads, {}",
        task.train.len(),
        task.test.len(),
        args.pca_dim,
        tch::get_num_threads(),
        device::name(device)
    );
    let fit_on = |device| {
        adgan::bench::classic_baselines(
            &task.train.images,
            &task.test.images,
            &labels,
            args.pca_dim,
            args.seed,
            &args.methods,
            device,
        )
    };
    let runs = fit_on(device)?;
    for run in &runs {
        let chosen: Vec<String> = run
            .chosen
            .iter()
            .map(|(k, v)| format!("{k}={v:.6}"))
            .collect();
        println!(
            "{:<8} AUC {:.4}  fit {:.2} s  score {:.2} s  {}",
            run.kind.name(),
            run.auc,
            run.fit_seconds,
            run.score_seconds,
            chosen.join(" ")
        );
    }
    if args.against_cpu {
        compare_with_cpu(&runs, &fit_on(tch::Device::Cpu)?, args.tolerance)?;
    }
    Ok(())
}

/// Says how far each baseline's scores on the device lie from the CPU's, and fails beyond
/// `tolerance`.
fn compare_with_cpu(
    runs: &[adgan::bench::BaselineRun],
    cpu: &[adgan::bench::BaselineRun],
    tolerance: f64,
) -> Result<()> {
    let mut strayed = Vec::new();
    for (run, reference) in runs.iter().zip(cpu) {
        let difference = adgan::bench::relative_difference(&run.scores, &reference.scores);
        println!(
            "{:<8} against the CPU: largest score difference {difference:.1e} of the largest \
             score; AUC {:.4} on the CPU; fit {:.2} s there",
            run.kind.name(),
            reference.auc,
            reference.fit_seconds
        );
        if difference > tolerance {
            strayed.push(run.kind.name());
        }
    }
    anyhow::ensure!(
        strayed.is_empty(),
        "{} scored differently on the device than on the CPU (beyond a relative {tolerance:e})",
        strayed.join(", ")
    );
    Ok(())
}
