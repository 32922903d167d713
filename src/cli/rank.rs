//! `adgan rank`: a folder of images from the most to the least anomalous (the paper's LSUN
//! experiment), with galleries of both ends.

use super::args::{out_error, DeviceArgs, SearchArgs, SearchMethod};
use super::folder::{FolderJob, ScoredFolder};
use adgan::data::Shard;
use adgan::output::{ScoreJournal, ShardRecord};
use adgan::report::{write_score_table, Decisions, Ranking, RANKING_FILES};
use adgan::run;
use adgan::score::method::Method;
use adgan::scorer::ScorerConfig;
use anyhow::{bail, Result};
use clap::Args;
use std::path::PathBuf;

#[derive(Args, Debug)]
pub(crate) struct RankArgs {
    /// Run folder of a trained GAN (made by `adgan train`).
    #[arg(long)]
    model: PathBuf,
    /// The folder of images to rank (flat or with subfolders; no labels needed).
    #[arg(long)]
    images: PathBuf,
    /// Images in each gallery.
    #[arg(long, default_value_t = 24)]
    top: usize,
    /// Output folder (scores.csv, most_anomalous.png, least_anomalous.png); files of an
    /// earlier ranking there are replaced only with --force.
    #[arg(long, short)]
    out: PathBuf,
    /// Replace the files of an earlier ranking in --out.
    #[arg(long)]
    force: bool,
    /// Score only part I of N of the folder's sorted images (from 0), for one of several
    /// machines; `adgan merge --rank` ranks the parts as one.
    #[arg(long)]
    shard: Option<Shard>,
    /// With a calibrated run, flag the images whose conformal p-value is at most alpha (see
    /// `adgan score --help`).
    #[arg(long, default_value_t = adgan::calibration::DEFAULT_ALPHA)]
    alpha: f64,
    /// Stop at the first image file that cannot be read (default: skip it, warn, and list it
    /// in OUT/skipped.txt).
    #[arg(long)]
    strict: bool,
    /// Score: adgan (the paper's), adgan-ic (corrected for image complexity), or ensemble
    /// (calibrated by `adgan train`, or later by `adgan calibrate --method ensemble`)
    /// [default: adgan-ic where the run is calibrated with the same search flags, as `adgan
    /// train` leaves it; else adgan].
    #[arg(long, value_enum)]
    method: Option<SearchMethod>,
    #[command(flatten)]
    search: SearchArgs,
    #[command(flatten)]
    device: DeviceArgs,
}

pub(crate) fn run(args: &RankArgs) -> Result<()> {
    // A journal left in --out is an earlier ranking that stopped before its last file: this
    // one finishes it (the journal refuses other settings), so its files are not "earlier
    // results" to protect.
    let journal = ScoreJournal::path_for(&args.out.join(RANKING_FILES[0]));
    let resuming = journal.is_file();
    adgan::output::check_folder(&args.out, &RANKING_FILES, args.force || resuming)
        .map_err(out_error("--out", &args.out))?;
    if args.top == 0 {
        bail!("--top must be at least 1: the number of images in each gallery");
    }
    let device = args.device.select()?;
    args.search.warn_if_bf16_slow(device);
    let gan = run::load_gan(&args.model, device)?;
    let job = FolderJob {
        model: &args.model,
        gan: &gan,
        dir: &args.images,
        shard: args.shard.unwrap_or(Shard::WHOLE),
        strict: args.strict,
    };
    let stream = job.open()?;
    let search = args.search.config();
    let config = ScorerConfig {
        method: args.method.map(Method::from),
        search,
        batch_images: args.search.batch_images()?,
        cuda_graph: args.search.cuda_graph,
        alpha: args.alpha,
        ..ScorerConfig::default()
    };
    let scorer = super::resolve::scorer(&gan, config)?;
    // The settings are checked: from here on this command owns its folder.
    let _lock = adgan::output::OutputLock::acquire(&args.out, true, "adgan rank")?;
    let mut built = scorer.build(None, device, &mut |_, _| {})?;
    eprintln!("{} on {}", built.summary, adgan::device::name(device));
    let (chosen, calibration) = (scorer.method, scorer.decisions.as_ref());
    let method = adgan::output::JobMethod {
        name: chosen.name().to_string(),
        search,
        pca_dim: None,
        train: None,
        alexnet_layer: None,
    };
    let table = args.out.join(RANKING_FILES[0]);
    let alpha = calibration.map(|_| args.alpha);
    let mut done = job.score(stream, &mut built, method, Some(&table), alpha, None)?;
    let p_values = done.scored.p_values(calibration);
    let decisions = p_values.as_deref().map(|p_values| Decisions {
        p_values,
        alpha: args.alpha,
    });
    let scored = &done.scored;
    if job.shard.count > 1 {
        // A part: its scores in folder order; `adgan merge --rank` ranks the whole.
        let dest = adgan::output::Destination::File(table);
        let labels = scored.labels.as_deref();
        write_score_table(
            &dest,
            &scored.ids,
            labels,
            &scored.scores,
            decisions,
            &scored.kept,
        )?;
        println!(
            "scored shard {} ({} images) into {}; join the parts with `adgan merge --rank`",
            job.shard,
            scored.kept.len(),
            args.out.display()
        );
    } else {
        let reconstruct = &mut |images: &tch::Tensor| {
            adgan::score::reconstruct(built.detector.as_mut(), images, device)
        };
        write_whole_ranking(args, &mut done, p_values.as_deref(), reconstruct)?;
    }
    let record_at = ShardRecord::path_for(&args.out, true);
    done.finish(record_at, Some(&args.out.join("skipped.txt")))
}

/// Ranks the images of a whole folder (unreadable ones left out) and draws the galleries.
fn write_whole_ranking(
    args: &RankArgs,
    done: &mut ScoredFolder,
    p_values: Option<&[f64]>,
    reconstruct: &mut adgan::report::Reconstruct,
) -> Result<()> {
    let scored = &done.scored;
    let kept = scored.kept.clone();
    let pick = |v: &[f64]| -> Vec<f64> { kept.iter().map(|&i| v[i]).collect() };
    let ids: Vec<String> = kept.iter().map(|&i| scored.ids[i].clone()).collect();
    let labels: Option<Vec<i64>> = scored
        .labels
        .as_ref()
        .map(|l| kept.iter().map(|&i| l[i]).collect());
    let (scores, p_kept) = (pick(&scored.scores), p_values.map(pick));
    let ranking = Ranking {
        ids: &ids,
        labels: labels.as_deref(),
        scores: &scores,
        decisions: p_kept.as_deref().map(|p_values| Decisions {
            p_values,
            alpha: args.alpha,
        }),
    };
    let stream = &mut done.stream;
    let files = adgan::report::write_ranking(
        &args.out,
        &ranking,
        args.top,
        &mut |rows: &[usize]| stream.images(&rows.iter().map(|&r| kept[r]).collect::<Vec<_>>()),
        Some(reconstruct),
    )?;
    super::summary::print_ranking(&ranking, &files, args.alpha);
    Ok(())
}
