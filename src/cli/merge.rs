//! `adgan merge`: joins the parts of a sharded `score` or `rank` into the table (and, for a
//! ranking, the galleries) that one run over the whole folder writes.

use super::args::out_error;
use super::progress::on_bad_file;
use adgan::data::FolderStream;
use adgan::output::{check_merge_output, check_part_rows, Destination, OutputLock, ShardRecord};
use adgan::report::{read_score_table, write_table, Decisions, Ranking, ScoreTable, RANKING_FILES};
use adgan::score::method::{self, Inputs, Method};
use adgan::train::{RunConfig, CONFIG_FILE};
use anyhow::{bail, ensure, Context, Result};
use clap::Args;
use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};

#[derive(Args, Debug)]
pub(crate) struct MergeArgs {
    /// The parts: the --out of every `score --shard I/N` (files), or of every `rank --shard
    /// I/N` (folders) with --rank; in any order.
    #[arg(long, value_delimiter = ',', num_args = 1.., required = true)]
    parts: Vec<PathBuf>,
    /// The joined output: a score table (CSV, or `-`), or with --rank a ranking folder.
    #[arg(long, short)]
    out: PathBuf,
    /// Join `rank` parts: rank the whole and draw its galleries.
    #[arg(long, requires = "images")]
    rank: bool,
    /// With --rank: the folder the parts ranked (the galleries show its images).
    #[arg(long)]
    images: Option<PathBuf>,
    /// With --rank: images in each gallery.
    #[arg(long, default_value_t = 24)]
    top: usize,
    /// Replace the output if it exists.
    #[arg(long)]
    force: bool,
}

pub(crate) fn run(args: &MergeArgs) -> Result<()> {
    if args.rank {
        merge_ranking(args)
    } else {
        merge_scores(args)
    }
}

/// The parts' tables joined in shard order (every part must have the same columns).
fn joined(
    records: &[(PathBuf, ShardRecord)],
    table_of: impl Fn(&Path) -> PathBuf,
) -> Result<ScoreTable> {
    let mut merged: Option<ScoreTable> = None;
    let mut seen = HashSet::new();
    for (part, record) in records {
        let table = read_score_table(&table_of(part))?;
        let ids: Vec<String> = table.rows.iter().map(|r| r[0].clone()).collect();
        check_part_rows(part, record, &ids, &mut seen)?;
        match &mut merged {
            None => merged = Some(table),
            Some(m) => {
                ensure!(
                    m.header == table.header,
                    "{} has other columns than the first part",
                    part.display()
                );
                m.rows.extend(table.rows);
            }
        }
    }
    merged.context("no parts")
}

/// Joins the skipped-file lists of the parts, if any, into `list`.
fn join_skipped(lists: impl Iterator<Item = PathBuf>, list: &Path) -> Result<()> {
    let text: String = lists
        .filter(|p| p.exists())
        .map(std::fs::read_to_string)
        .collect::<std::io::Result<Vec<_>>>()?
        .concat();
    if !text.is_empty() {
        adgan::io::write_atomic(list, |tmp| Ok(std::fs::write(tmp, &text)?))?;
        eprintln!(
            "unreadable files of all parts are listed in {}",
            list.display()
        );
    }
    Ok(())
}

fn merge_scores(args: &MergeArgs) -> Result<()> {
    let records = ShardRecord::check_parts(&args.parts, false)?;
    check_merge_output(&args.out, &args.parts, false).map_err(out_error("--out", &args.out))?;
    let dest = Destination::check(&args.out, args.force).map_err(out_error("--out", &args.out))?;
    let _lock = match &dest {
        Destination::File(path) => Some(OutputLock::acquire(path, false, "adgan merge")?),
        Destination::Stdout => None,
    };
    let table = joined(&records, Path::to_path_buf)?;
    write_table(&dest, &table)?;
    if let Destination::File(path) = &dest {
        let skipped = |p: &PathBuf| p.with_file_name(format!("{}.skipped.txt", name(p)));
        join_skipped(records.iter().map(|(p, _)| skipped(p)), &skipped(path))?;
    }
    eprintln!(
        "joined {} parts ({} rows) into {}",
        records.len(),
        table.rows.len(),
        dest.describe()
    );
    Ok(())
}

fn name(path: &Path) -> String {
    path.file_name()
        .unwrap_or_default()
        .to_string_lossy()
        .into_owned()
}

fn merge_ranking(args: &MergeArgs) -> Result<()> {
    if args.top == 0 {
        bail!("--top must be at least 1: the number of images in each gallery");
    }
    let records = ShardRecord::check_parts(&args.parts, true)?;
    check_merge_output(&args.out, &args.parts, true).map_err(out_error("--out", &args.out))?;
    adgan::output::check_folder(&args.out, &RANKING_FILES, args.force)
        .map_err(out_error("--out", &args.out))?;
    let _lock = OutputLock::acquire(&args.out, true, "adgan merge --rank")?;
    let table = joined(&records, |p| p.join(RANKING_FILES[0]))?;
    let (job, alpha) = (&records[0].1.job, records[0].1.alpha);
    let columns = Columns::of(&table)?;
    let decisions = match (columns.p_values.as_deref(), alpha) {
        (Some(p_values), Some(alpha)) => Some(Decisions { p_values, alpha }),
        (None, None) => None,
        _ => bail!("the parts have p-values but no alpha, or the reverse"),
    };
    // The galleries need the images: the folder the parts ranked, read as they read it.
    let model = job.model.clone();
    let images = args.images.as_deref().context("--rank needs --images")?;
    let (mut stream, index) = ranked_folder(&model, images, records[0].1.images, &columns.ids)?;
    // The maps come from the same search over the same generator as in one run.
    let device = tch::Device::Cpu;
    let gan = adgan::run::load_gan(&model, device)?;
    let inputs = Inputs::for_gan(device, &gan, job.method.search, None);
    let mut detector = method::build(Method::Adgan, &inputs, &mut |_, _| {})?.detector;
    let ranking = Ranking {
        ids: &columns.ids,
        labels: columns.labels.as_deref(),
        scores: &columns.scores,
        decisions,
    };
    let files = adgan::report::write_ranking(
        &args.out,
        &ranking,
        args.top,
        &mut |rows: &[usize]| stream.images(&rows.iter().map(|&r| index[r]).collect::<Vec<_>>()),
        Some(&mut |images: &tch::Tensor| {
            adgan::score::reconstruct(detector.as_mut(), images, device)
        }),
    )?;
    join_skipped(
        records.iter().map(|(p, _)| p.join("skipped.txt")),
        &args.out.join("skipped.txt"),
    )?;
    println!("joined {} parts", records.len());
    super::summary::print_ranking(&ranking, &files, alpha.unwrap_or_default());
    Ok(())
}

/// The columns of a joined score table.
struct Columns {
    ids: Vec<String>,
    scores: Vec<f64>,
    p_values: Option<Vec<f64>>,
    labels: Option<Vec<i64>>,
}

impl Columns {
    fn of(table: &ScoreTable) -> Result<Self> {
        let column = |name: &str| table.header.iter().position(|h| h == name);
        let numbers = |i: usize| -> Result<Vec<f64>> {
            table
                .rows
                .iter()
                .map(|r| {
                    r[i].parse::<f64>()
                        .with_context(|| format!("{:?} is not a number", r[i]))
                })
                .collect()
        };
        let labels = column("label").map(numbers).transpose()?;
        Ok(Columns {
            ids: table.rows.iter().map(|r| r[0].clone()).collect(),
            scores: numbers(column("score").context("no score column")?)?,
            p_values: column("p_value").map(numbers).transpose()?,
            labels: labels.map(|l| l.into_iter().map(|v| v as i64).collect()),
        })
    }
}

/// The folder the parts ranked, opened as they opened it (`n_images` of them), and the row of
/// each of `ids` in it.
fn ranked_folder(
    model: &Path,
    images: &Path,
    n_images: usize,
    ids: &[String],
) -> Result<(FolderStream, Vec<usize>)> {
    let run: RunConfig = adgan::io::read_json(&model.join(CONFIG_FILE), "adgan run configuration")?;
    let spec = run.model.image_spec();
    let stream = FolderStream::open(images, spec, run.data.fit, on_bad_file(false))?;
    ensure!(
        stream.len() == n_images,
        "{} holds {} images, the parts ranked {n_images}: give the folder they ranked",
        images.display(),
        stream.len(),
    );
    let position: HashMap<String, usize> = stream
        .ids()
        .into_iter()
        .enumerate()
        .map(|(i, id)| (id, i))
        .collect();
    let index = ids
        .iter()
        .map(|id| {
            let row = position.get(id).copied();
            row.with_context(|| format!("{id} is not in {}", images.display()))
        })
        .collect::<Result<Vec<usize>>>()?;
    Ok((stream, index))
}
