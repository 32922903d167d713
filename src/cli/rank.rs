//! `adgan rank`: a folder of images from the most to the least anomalous (the paper's LSUN
//! experiment), with galleries of both ends.

use super::args::{out_error, DeviceArgs, SearchArgs};
use super::calibrate;
use super::progress::{on_bad_file, report_skipped, score_with_progress};
use super::score::{folder_ids, score_job};
use adgan::data::{FolderStream, Shard, SkippedImage};
use adgan::output::{ScoreJournal, ShardRecord};
use adgan::report::{Decisions, Ranking};
use adgan::run;
use adgan::score::method::{self, Inputs, Method};
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
    #[arg(long, default_value_t = 0.05)]
    alpha: f64,
    /// Stop at the first image file that cannot be read (default: skip it, warn, and list it
    /// in OUT/skipped.txt).
    #[arg(long)]
    strict: bool,
    #[command(flatten)]
    search: SearchArgs,
    #[command(flatten)]
    device: DeviceArgs,
}

pub(crate) fn run(args: &RankArgs) -> Result<()> {
    adgan::output::check_folder(&args.out, &adgan::report::RANKING_FILES, args.force)
        .map_err(out_error("--out", &args.out))?;
    let device = args.device.select()?;
    let gan = run::load_gan(&args.model, device)?;
    let spec = gan.config.model.image_spec();
    let shard = args.shard.unwrap_or(Shard::WHOLE);
    let on_bad = on_bad_file(args.strict);
    let mut stream =
        FolderStream::open_shard(&args.images, spec, gan.config.data.fit, on_bad, shard)?;
    if !(0.0..1.0).contains(&args.alpha) {
        bail!("--alpha must lie in [0, 1), not {}", args.alpha);
    }
    let search = args.search.config();
    search.validate(&gan.config.model)?;
    let calibration = calibrate::matching(&args.model, &search)?;
    let inputs = Inputs::for_gan(
        device,
        &gan,
        args.search.config(),
        args.search.batch_images()?,
    );
    let built = method::build(Method::Adgan, &inputs, &mut |_, _| {})?;
    eprintln!("{} on {}", built.summary, adgan::device::name(device));
    let (mut detector, batch) = (built.detector, built.batch);
    let table = args.out.join(adgan::report::RANKING_FILES[0]);
    let method = serde_json::json!({"name": "adgan", "search": args.search.config()});
    let all_ids = folder_ids(&args.images)?;
    let job = score_job(&args.model, &gan, method, &all_ids)?;
    let mut in_shard = job.clone();
    in_shard["shard"] = serde_json::json!(shard);
    let mut journal = ScoreJournal::open(&table, &in_shard)?;
    let all_scores = score_with_progress(
        detector.as_mut(),
        &mut stream,
        batch,
        device,
        Some(&mut journal),
        None,
    )?;
    // Unreadable files are left out of the ranking and listed beside it.
    let skipped = stream.skipped();
    let left_out: std::collections::BTreeSet<usize> = skipped.iter().map(|(i, _)| *i).collect();
    let kept: Vec<usize> = (0..all_scores.len())
        .filter(|i| !left_out.contains(i))
        .collect();
    let shard_ids = stream.ids();
    let ids: Vec<String> = kept.iter().map(|&i| shard_ids[i].clone()).collect();
    let labels: Option<Vec<i64>> = stream
        .labels()
        .map(|l| kept.iter().map(|&i| l[i]).collect());
    let scores: Vec<f64> = kept.iter().map(|&i| all_scores[i]).collect();
    let p_values: Option<Vec<f64>> = calibration
        .as_ref()
        .map(|c| scores.iter().map(|&s| c.p_value(s)).collect());
    let decisions = p_values.as_deref().map(|p_values| Decisions {
        p_values,
        alpha: args.alpha,
    });
    if shard.count > 1 {
        // A part: its scores in folder order; `adgan merge --rank` ranks the whole.
        let order: Vec<usize> = (0..ids.len()).collect();
        let dest = adgan::output::Destination::File(table.clone());
        let labels = labels.as_deref();
        adgan::report::write_score_table(&dest, &ids, labels, &scores, decisions, &order)?;
        let record = ShardRecord {
            shard,
            images: all_ids.len(),
            job,
            alpha: calibration.as_ref().map(|_| args.alpha),
        };
        adgan::io::write_json(&ShardRecord::path_for(&args.out, true), &record)?;
        journal.finish()?;
        let skipped: Vec<SkippedImage> = skipped.into_iter().map(|(_, s)| s).collect();
        report_skipped(&skipped, Some(&args.out.join("skipped.txt")))?;
        println!(
            "scored shard {shard} ({} images) into {}; join the parts with `adgan merge --rank`",
            ids.len(),
            args.out.display()
        );
        return Ok(());
    }
    let ranking = Ranking {
        ids: &ids,
        labels: labels.as_deref(),
        scores: &scores,
        decisions,
    };
    let files = adgan::report::write_ranking(
        &args.out,
        &ranking,
        args.top,
        &mut |indices: &[usize]| {
            let original: Vec<usize> = indices.iter().map(|&i| kept[i]).collect();
            stream.images(&original)
        },
        Some(&mut |images: &tch::Tensor| reconstruct(detector.as_mut(), images, device)),
    )?;
    journal.finish()?;
    let skipped: Vec<SkippedImage> = skipped.into_iter().map(|(_, s)| s).collect();
    report_skipped(&skipped, Some(&args.out.join("skipped.txt")))?;
    let order = adgan::score::ranking(&scores);
    if let Some(p) = &p_values {
        let flagged = p.iter().filter(|&&v| v <= args.alpha).count();
        println!(
            "flagged {flagged} of {} images as anomalous at alpha {} (on normal images the \
             expected rate of false alarms is at most {})",
            p.len(),
            args.alpha,
            args.alpha
        );
    }
    println!("ranked {} images; most anomalous:", ids.len());
    for &i in order.iter().take(5) {
        println!("  {:>10.2}  {}", scores[i], ids[i]);
    }
    println!("  scores:          {}", files.scores.display());
    println!("  most anomalous:  {}", files.most_anomalous.display());
    println!("  least anomalous: {}", files.least_anomalous.display());
    if let Some((most, least)) = &files.maps {
        println!("  anomaly maps:    {}, {}", most.display(), least.display());
    }
    Ok(())
}

/// What `detector` reconstructs of `images` (ADGAN: each one's best g(z*)).
pub(crate) fn reconstruct(
    detector: &mut dyn adgan::score::Detector,
    images: &tch::Tensor,
    device: tch::Device,
) -> Result<tch::Tensor> {
    detector.score_batch(&images.to_device(device))?;
    detector
        .reconstructions()
        .ok_or_else(|| anyhow::anyhow!("{} reconstructs nothing", detector.name()))
}
