//! `adgan experiment one-vs-all`: the paper's one-vs-all table, and the validation study that
//! chooses ADGAN's training length and learning rates.

use super::args::{DeviceArgs, EnsembleArgs, GanArgs, SearchArgs, SelectionArgs, SourceArgs};
use super::experiment_progress::ExperimentProgress;
use adgan::alexnet::AlexNetLayer;
use adgan::autoencoder::AutoencoderConfig;
use adgan::experiment::{self, Event, ExperimentConfig};
use adgan::score::anogan::AnoganConfig;
use adgan::score::features::PcaConfig;
use adgan::score::method::Method;
use anyhow::Result;
use clap::Args;
use std::path::PathBuf;

#[derive(Args, Debug)]
pub(crate) struct OneVsAllArgs {
    #[command(flatten)]
    source: SourceArgs,
    /// Normal classes: a list and ranges, e.g. 0-9, 0,5 or cat,dog.
    #[arg(long, default_value = "0-9")]
    classes: String,
    /// Methods, comma-separated [default: adgan,critic,prior, and adgan-ic and ensemble with
    /// --select-every].
    #[arg(long, value_enum, value_delimiter = ',')]
    methods: Option<Vec<Method>>,
    /// Test images drawn per class.
    #[arg(long, default_value_t = 5000)]
    n_test: usize,
    /// Seed of the test draws.
    #[arg(long, default_value_t = 0)]
    draw_seed: u64,
    /// PCA dimensions the classic baselines (kde, ocsvm, iforest, gmm) choose from, on a
    /// validation set drawn from the train split.
    #[arg(long, value_delimiter = ',', default_value = "20,40,60,80,100")]
    pca_dims: Vec<usize>,
    /// AlexNet weights for kde-alexnet and ocsvm-alexnet: torchvision's state dict saved as
    /// safetensors (not shipped; see the README).
    #[arg(long)]
    alexnet: Option<PathBuf>,
    /// AlexNet layer of the features: conv5 (the final convolutional layer, the paper's) or fc7.
    #[arg(long, default_value = "conv5")]
    alexnet_layer: AlexNetLayer,
    #[command(flatten)]
    ensemble: EnsembleArgs,
    /// Results folder.
    #[arg(long, short)]
    out: PathBuf,
    #[command(flatten)]
    gan: GanArgs,
    #[command(flatten)]
    search: SearchArgs,
    #[command(flatten)]
    selection: SelectionArgs,
    #[command(flatten)]
    device: DeviceArgs,
}

pub(crate) fn run(args: &OneVsAllArgs) -> Result<()> {
    let source = args.source.source(args.gan.seed)?;
    let default_channels = args.source.default_channels();
    let selection = args.selection.config(&args.search.config());
    let config = ExperimentConfig {
        source,
        classes: experiment::parse_classes(&args.classes)?,
        methods: args
            .methods
            .clone()
            .unwrap_or_else(|| experiment::default_methods(selection.enabled())),
        n_test: args.n_test,
        seed: args.draw_seed,
        fit: args.source.fit,
        model: args.gan.model_config(default_channels)?,
        train: args.gan.train_config()?,
        search: args.search.config(),
        selection,
        baselines: PcaConfig {
            dims: args.pca_dims.clone(),
            ..PcaConfig::default()
        },
        anogan: AnoganConfig::default(),
        autoencoder: AutoencoderConfig::default(),
        alexnet: args.alexnet.clone(),
        alexnet_layer: args.alexnet_layer,
        batch_images: args.search.batch_images()?,
        cuda_graph: args.search.cuda_graph,
        ensemble: args.ensemble.config(),
    };
    let device = args.device.select()?;
    args.search.warn_if_bf16_slow(device);
    let start = std::time::Instant::now();
    let trains_gans = config.methods.iter().any(|m| m.needs_gan());
    let mut progress =
        ExperimentProgress::new(config.classes.len(), config.methods.len(), trains_gans);
    let mut on_event = |event: Event| progress.on_event(event);
    if args.selection.validation_only {
        let (table, path) =
            experiment::run_validation_and_report(&config, &args.out, device, &mut on_event)?;
        progress.finish();
        println!("{table}");
        println!(
            "validation ROC-AUC of ADGAN in {}; {:.0} s",
            path.display(),
            start.elapsed().as_secs_f64()
        );
        return Ok(());
    }
    let cells = experiment::run_and_report(&config, &args.out, device, &mut on_event)?;
    progress.finish();
    println!("{}", experiment::auc_table(&config, &cells));
    println!(
        "results in {} (results.json, table.md, roc.svg, galleries/, report.html); {:.0} s",
        args.out.display(),
        start.elapsed().as_secs_f64()
    );
    Ok(())
}

#[derive(Args, Debug)]
pub(crate) struct SelectEnsembleArgs {
    /// One-vs-all folders (`--out` of `experiment one-vs-all`) whose members are scored.
    #[arg(required = true)]
    folders: Vec<PathBuf>,
    /// The methods the candidates are drawn from (every non-empty subset, with every
    /// normaliser and rule).
    #[arg(
        long,
        value_enum,
        value_delimiter = ',',
        default_value = "adgan,adgan-ic,kde,gmm,ocsvm,iforest"
    )]
    pool: Vec<Method>,
    /// How many of the best candidates to print.
    #[arg(long, default_value_t = 20)]
    top: usize,
    /// Seed of the halves the normalisers are fitted on.
    #[arg(long, default_value_t = 0)]
    seed: u64,
}

pub(crate) fn select_ensemble(args: &SelectEnsembleArgs) -> Result<()> {
    let (ranked, names) = experiment::rank_ensembles(&args.folders, &args.pool, args.seed)?;
    println!("{}", experiment::ranking_table(&ranked, &names, args.top));
    // Each member alone, for comparison (its best normaliser and rule).
    // The ranking is best first: each member's first row is its best normaliser and rule.
    let singles: Vec<_> = ranked.iter().filter(|s| s.config.members.len() == 1).fold(
        Vec::new(),
        |mut best: Vec<adgan::score::ensemble::Scored>, s| {
            if !best.iter().any(|b| b.config.members == s.config.members) {
                best.push(s.clone());
            }
            best
        },
    );
    println!("each member alone:\n");
    println!(
        "{}",
        experiment::ranking_table(&singles, &names, singles.len())
    );
    println!(
        "{} candidates on {} classes; mean cross-fitted validation ROC-AUC",
        ranked.len(),
        names.len()
    );
    Ok(())
}
