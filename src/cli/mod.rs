//! The command line: each subcommand's flags and a short function that turns them into library
//! objects (in `args`), calls one library entry point, and prints. Library errors speak of
//! settings; the functions here add the names of the flags that set them.

mod args;
mod bench;
mod bench_baselines;
mod calibrate;
mod demo;
mod experiment;
mod experiment_progress;
mod export;
mod folder;
mod info;
mod merge;
mod progress;
mod rank;
mod resolve;
mod score;
mod score_maps;
mod search_args;
mod summary;
mod train;

use anyhow::Result;
use clap::{Parser, Subcommand};
use std::path::PathBuf;

/// Image anomaly detection with generative adversarial networks (ADGAN, Deecke et al. 2018).
#[derive(Parser, Debug)]
#[command(name = "adgan", version, about, long_about = None)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Train a Wasserstein GAN on normal images into a run folder.
    Train(train::TrainArgs),
    /// Train a small GAN on embedded shapes (no download), score held-out shapes, print ROC-AUC.
    Demo(demo::DemoArgs),
    /// Score images with a trained run (ADGAN latent search); writes one row per image.
    Score(score::ScoreArgs),
    /// Rank a folder of images from most to least anomalous, with galleries of both ends.
    Rank(rank::RankArgs),
    /// Score normal images the run did not train on, for p-values and decisions in `score`
    /// and `rank` (train does this on its own calibration split).
    Calibrate(calibrate::CalibrateArgs),
    /// Run the paper's experiments (one-vs-all ROC-AUC tables).
    #[command(subcommand)]
    Experiment(ExperimentCommand),
    /// Time the work of training or scoring (figures for BENCHMARKS.md).
    #[command(subcommand)]
    Bench(bench::BenchCommand),
    /// Join the parts of a sharded `score` or `rank` into the output one run would write.
    Merge(merge::MergeArgs),
    /// Write a trained run's generator and critic as PyTorch state dicts (safetensors).
    Export(export::ExportArgs),
    /// Show the configuration and state of a run folder or checkpoint.
    Info {
        /// A run folder (made by `adgan train`) or its checkpoint.safetensors.
        path: PathBuf,
    },
}

#[derive(Subcommand, Debug)]
enum ExperimentCommand {
    /// Train on each normal class, score a seeded test draw with every method, tabulate
    /// ROC-AUC. Finished cells are kept: re-run the same command to continue after a stop.
    OneVsAll(Box<experiment::OneVsAllArgs>),
    /// Rank candidate ensembles (members, normaliser, rule) by their validation ROC-AUC over
    /// the classes of one-vs-all folders whose ensemble members are scored. Reads no test score.
    SelectEnsemble(experiment::SelectEnsembleArgs),
}

/// Runs the parsed command.
pub fn run(cli: Cli) -> Result<()> {
    run_command(cli).map_err(args::name_the_flag)
}

fn run_command(cli: Cli) -> Result<()> {
    match cli.command {
        Command::Train(args) => train::run(&args),
        Command::Demo(args) => demo::run(&args),
        Command::Score(args) => score::run(&args),
        Command::Rank(args) => rank::run(&args),
        Command::Calibrate(args) => calibrate::run(&args),
        Command::Experiment(ExperimentCommand::OneVsAll(args)) => experiment::run(&args),
        Command::Experiment(ExperimentCommand::SelectEnsemble(args)) => {
            experiment::select_ensemble(&args)
        }
        Command::Bench(command) => bench::run(&command),
        Command::Merge(args) => merge::run(&args),
        Command::Export(args) => export::run(&args),
        Command::Info { path } => info::run(&path),
    }
}
