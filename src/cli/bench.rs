//! `adgan bench`: the figures of BENCHMARKS.md (training and scoring speed, baselines against
//! scikit-learn, streaming memory, where a search step spends its time).

use super::args::{value_name, DeviceArgs, SearchArgs};
use adgan::device;
use adgan::model::ModelConfig;
use adgan::score::adgan::AdganConfig;
use adgan::train::TrainConfig;
use anyhow::Result;
use clap::{Args, Subcommand};
use std::path::PathBuf;

/// Runs a benchmark.
pub(crate) fn run(command: &BenchCommand) -> Result<()> {
    match command {
        BenchCommand::Train(args) => run_bench_train(args),
        BenchCommand::Score(args) => run_bench_score(args),
        BenchCommand::Baselines(args) => super::bench_baselines::run(args),
        BenchCommand::Profile(args) => run_bench_profile(args),
        BenchCommand::Stream(args) => run_bench_stream(args),
    }
}

#[derive(Subcommand, Debug)]
pub(crate) enum BenchCommand {
    /// Milliseconds per WGAN generator iteration (n_critic critic steps + 1 generator step).
    Train(BenchTrainArgs),
    /// Images per second of ADGAN scoring: the per-image loop and the batched search.
    Score(BenchScoreArgs),
    /// The classic baselines at a fixed PCA dimension on a one-vs-all task: ROC-AUC, chosen
    /// hyperparameters and time; --dump writes the data for bench/baselines.py (scikit-learn).
    Baselines(super::bench_baselines::BenchBaselinesArgs),
    /// Peak memory and time of scoring a generated folder of --images PNGs streamed in
    /// batches (memory should follow the batch, not the folder).
    Stream(BenchStreamArgs),
    /// Where the time of one latent-search step goes: each forward op by layer, the backward
    /// pass, and the Adam updates (ms per step).
    Profile(BenchProfileArgs),
}

#[derive(Args, Debug)]
pub(crate) struct BenchProfileArgs {
    /// Images per search.
    #[arg(long, default_value_t = 1)]
    images: usize,
    /// Timed steps.
    #[arg(long, default_value_t = 10)]
    steps: usize,
    #[command(flatten)]
    shape: BenchModelArgs,
    #[command(flatten)]
    search: BenchSearchArgs,
    #[command(flatten)]
    device: DeviceArgs,
}

#[derive(Args, Debug)]
pub(crate) struct BenchStreamArgs {
    /// Images in the generated folder.
    #[arg(long, default_value_t = 100_000)]
    images: usize,
    /// Images per batch.
    #[arg(long, default_value_t = 256)]
    batch: usize,
    /// Where the PNGs are written (kept for later runs).
    #[arg(long, default_value = "bench/out/stream")]
    dir: PathBuf,
    #[command(flatten)]
    device: DeviceArgs,
}

#[derive(Args, Debug)]
pub(crate) struct BenchScoreArgs {
    /// Images scored per measurement.
    #[arg(long, default_value_t = 16)]
    images: usize,
    #[command(flatten)]
    shape: BenchModelArgs,
    #[command(flatten)]
    search: BenchSearchArgs,
    /// The device's peak arithmetic rate in TFLOP/s for the format in use (e.g. an H200: 989
    /// dense bf16, 494 dense tf32), to print the fraction of it the search reaches.
    #[arg(long)]
    peak_tflops: Option<f64>,
    #[command(flatten)]
    device: DeviceArgs,
}

/// The latent search a benchmark times (the paper's by default), on a trained or a fresh
/// generator.
#[derive(Args, Debug)]
pub(crate) struct BenchSearchArgs {
    #[command(flatten)]
    search: SearchArgs,
    /// Time the trained generator of this run folder instead of a freshly initialised one of
    /// --image-size, --channels and --width.
    #[arg(long)]
    model: Option<PathBuf>,
}

impl BenchSearchArgs {
    /// The generator to time, and a description of it.
    pub(crate) fn generator(
        &self,
        shape: &BenchModelArgs,
        device: tch::Device,
    ) -> Result<(adgan::bench::BenchGenerator, String)> {
        let bench =
            adgan::bench::BenchGenerator::new(self.model.as_deref(), shape.model()?, device)?;
        let m = bench.generator().config();
        let origin = match &self.model {
            Some(run) => format!("trained {}", run.display()),
            None => "fresh".to_string(),
        };
        let what = format!(
            "{0}x{0}x{1}, width {2}, {origin}",
            m.image_size, m.channels, m.width
        );
        Ok((bench, what))
    }

    pub(crate) fn config(&self) -> AdganConfig {
        self.search.config()
    }

    pub(crate) fn describe(&self) -> String {
        let c = self.config();
        let precision = value_name(&c.precision);
        format!("n_seed {}, k {}, {precision}", c.n_seed, c.k)
    }
}

/// The model a benchmark times (the paper's size by default).
#[derive(Args, Debug)]
pub(crate) struct BenchModelArgs {
    /// Image side.
    #[arg(long, default_value_t = 32)]
    image_size: i64,
    /// Image channels.
    #[arg(long, default_value_t = 3)]
    channels: i64,
    /// Base width of the networks.
    #[arg(long, default_value_t = 64)]
    width: i64,
}

impl BenchModelArgs {
    pub(crate) fn model(&self) -> Result<ModelConfig> {
        let model = ModelConfig {
            image_size: self.image_size,
            channels: self.channels,
            latent_dim: 256,
            width: self.width,
        };
        model.validate()?;
        Ok(model)
    }

    pub(crate) fn describe(&self) -> String {
        format!(
            "{0}x{0}x{1}, width {2}",
            self.image_size, self.channels, self.width
        )
    }
}

#[derive(Args, Debug)]
pub(crate) struct BenchTrainArgs {
    /// Timed iterations.
    #[arg(long, default_value_t = 10)]
    steps: usize,
    /// Untimed warm-up iterations.
    #[arg(long, default_value_t = 2)]
    warmup: usize,
    /// Images per batch.
    #[arg(long, default_value_t = 64)]
    batch_size: i64,
    /// Critic steps per generator step.
    #[arg(long, default_value_t = 5)]
    n_critic: usize,
    #[command(flatten)]
    shape: BenchModelArgs,
    /// Use WGAN-GP instead of weight clipping.
    #[arg(long)]
    gp: bool,
    /// Print where an iteration spends its time, phase by phase, instead of the total.
    #[arg(long)]
    profile: bool,
    /// Also time iterations replayed from a CUDA graph, and say how far their weights stray
    /// from those of iterations run op by op.
    #[arg(long)]
    cuda_graph: bool,
    #[command(flatten)]
    device: DeviceArgs,
}

pub(crate) fn run_bench_train(args: &BenchTrainArgs) -> Result<()> {
    let device = args.device.select()?;
    if args.cuda_graph {
        adgan::cuda_graph::check_usable(device)?;
    }
    let model = args.shape.model()?;
    let base = if args.gp {
        TrainConfig::gradient_penalty()
    } else {
        TrainConfig::default()
    };
    let train = TrainConfig {
        batch_size: args.batch_size,
        n_critic: args.n_critic,
        ..base
    };
    let what = format!(
        "{}, batch {}, {}, n_critic {}, {} threads, {}",
        if args.gp { "wgan-gp" } else { "wgan-clip" },
        args.batch_size,
        args.shape.describe(),
        args.n_critic,
        tch::get_num_threads(),
        device::name(device)
    );
    if args.profile {
        let phases = adgan::bench::training_profile(model, train, args.warmup, args.steps, device)?;
        println!(
            "train iteration profile ({what}), ms per iteration over {} iterations:",
            args.steps
        );
        let total: f64 = phases.iter().map(|(_, ms)| ms).sum();
        for (phase, ms) in &phases {
            println!("  {phase:58} {ms:8.1}  {:5.1}%", 100.0 * ms / total);
        }
        println!("  {:58} {total:8.1}", "total");
        return Ok(());
    }
    let time = |graph| {
        adgan::bench::training_iteration(model, train, args.warmup, args.steps, device, graph)
    };
    let timing = time(false)?;
    println!(
        "train iteration ({what}): mean {:.1} ms, min {:.1} ms over {} iterations",
        timing.mean_ms, timing.min_ms, timing.steps
    );
    if args.cuda_graph {
        let graphed = time(true)?;
        let difference =
            adgan::bench::cuda_graph_training_difference(model, train, args.steps, device)?;
        println!(
            "train graphed ({what}, one CUDA graph): mean {:.1} ms ({:.2}x op by op), min {:.1} \
             ms; generator weights after {} iterations differ by {difference:.1e} of the largest",
            graphed.mean_ms,
            timing.mean_ms / graphed.mean_ms,
            graphed.min_ms,
            args.steps
        );
    }
    Ok(())
}

pub(crate) fn run_bench_score(args: &BenchScoreArgs) -> Result<()> {
    let device = args.device.select()?;
    if args.search.search.cuda_graph {
        // Before the other timings, not after them.
        adgan::cuda_graph::check_usable(device)?;
    }
    args.search.search.warn_if_bf16_slow(device);
    let search = args.search.config();
    let (bench, what) = args.search.generator(&args.shape, device)?;
    let generator = bench.generator();
    // On the CPU the automatic choice is the loop itself; time 8 images per search there.
    let batch = match args.search.search.batch_images()? {
        Some(b) => b,
        None if !device.is_cuda() => 8,
        None => adgan::score::adgan::auto_batch(generator, &search, device),
    }
    .clamp(1, args.images);
    let shape = format!(
        "{what}, {}, {} threads, {}",
        args.search.describe(),
        tch::get_num_threads(),
        device::name(device)
    );
    let flops = adgan::bench::search_flops(generator, &search);
    let tflops = |rate: f64| {
        let achieved = rate * flops / 1e12;
        match args.peak_tflops {
            Some(peak) => format!(
                "{achieved:.3} TFLOP/s = {:.1}% of peak",
                100.0 * achieved / peak
            ),
            None => format!("{achieved:.3} TFLOP/s"),
        }
    };
    let graph = args.search.search.cuda_graph;
    let measure = |batch, graph| {
        adgan::bench::scoring_throughput(generator, search, batch, args.images, device, graph)
    };
    let looped = measure(1, false)?;
    println!(
        "score loop    ({shape}, 1 image per search): {looped:.2} images/s, {}",
        tflops(looped)
    );
    let batched = measure(batch, false)?;
    println!(
        "score batched ({shape}, {batch} images per search): {batched:.2} images/s ({:.2}x the \
         loop), {}",
        batched / looped,
        tflops(batched)
    );
    if graph {
        let replayed = measure(batch, true)?;
        let difference =
            adgan::bench::cuda_graph_difference(generator, search, batch, 2 * batch, device)?;
        println!(
            "score graphed ({shape}, {batch} images per search, one CUDA graph): {replayed:.2} \
             images/s ({:.2}x batched), {}; scores differ from batched by {difference:.1e} of \
             the largest",
            replayed / batched,
            tflops(replayed)
        );
    }
    Ok(())
}

pub(crate) fn run_bench_profile(args: &BenchProfileArgs) -> Result<()> {
    let device = args.device.select()?;
    args.search.search.warn_if_bf16_slow(device);
    let search = args.search.config();
    let (bench, what) = args.search.generator(&args.shape, device)?;
    let phases =
        adgan::bench::search_profile(bench.generator(), search, args.images, args.steps, device)?;
    let total: f64 = phases.iter().map(|(_, ms)| ms).sum();
    println!(
        "one search step ({what}, {}, {} image(s), {} threads, {}): {total:.1} ms",
        args.search.describe(),
        args.images,
        tch::get_num_threads(),
        device::name(device)
    );
    for (name, ms) in phases {
        println!("  {name:<34} {ms:>8.2} ms  {:>5.1}%", 100.0 * ms / total);
    }
    Ok(())
}

pub(crate) fn run_bench_stream(args: &BenchStreamArgs) -> Result<()> {
    let device = args.device.select()?;
    let f = adgan::bench::streaming_scoring(&args.dir, args.images, args.batch, device)?;
    let peak = f
        .peak_rss_mib
        .map_or("unknown".to_string(), |m| format!("{m:.0} MiB"));
    println!(
        "streamed {} images from {} in {:.1} s ({:.0} images/s, critic, batch {}); peak \
         memory {peak}; the images as one tensor would take {:.0} MiB",
        f.images,
        args.dir.display(),
        f.seconds,
        f.images as f64 / f.seconds,
        args.batch,
        f.tensor_mib
    );
    Ok(())
}
