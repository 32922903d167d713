//! Where commands write their results, checked before any work is done: a command never
//! replaces what it does not own (a device, a run's checkpoint, a file it was not asked to
//! replace), and never finds out only after hours of scoring that it cannot write.

use crate::io::write_atomic;
use crate::train::{CHECKPOINT_FILE, CONFIG_FILE};
use anyhow::{bail, ensure, Context, Result};
use std::io::Write;
use std::path::{Path, PathBuf};

/// Where a result file goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Destination {
    /// Standard output (the path `-`).
    Stdout,
    /// A file, written atomically.
    File(PathBuf),
}

impl Destination {
    /// Checks `path` as the destination of a result file, before any work: `-` is standard
    /// output; a path must not be a folder, a device, a fifo or a socket (nor a link to one),
    /// nor inside a training run's folder; an existing file is replaced only when `replace` is
    /// set.
    /// The folder it goes in is created if missing.
    pub fn check(path: &Path, replace: bool) -> Result<Self> {
        if path.as_os_str() == "-" {
            return Ok(Destination::Stdout);
        }
        let target = resolve_link(path)?;
        if let Ok(meta) = std::fs::metadata(&target) {
            if meta.is_dir() {
                bail!(
                    "{} is a folder: give the path of a file (inside it, for example)",
                    path.display()
                );
            }
            if !meta.is_file() {
                bail!(
                    "{} is not a regular file (a device, fifo or socket): results are written \
                     only to regular files",
                    path.display()
                );
            }
            if !replace {
                return Err(WouldReplace(format!("{} exists", path.display())).into());
            }
        }
        refuse_inside_run(&target)?;
        if let Some(parent) = target.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent)
                .with_context(|| format!("cannot create the folder {}", parent.display()))?;
        }
        Ok(Destination::File(target))
    }

    /// Writes `text` to the destination (atomically for a file).
    pub fn write(&self, text: &str) -> Result<()> {
        match self {
            Destination::Stdout => {
                let mut out = std::io::stdout().lock();
                out.write_all(text.as_bytes())?;
                Ok(out.flush()?)
            }
            Destination::File(path) => write_atomic(path, |tmp| Ok(std::fs::write(tmp, text)?)),
        }
    }

    /// A name for messages.
    pub fn describe(&self) -> String {
        match self {
            Destination::Stdout => "standard output".to_string(),
            Destination::File(path) => path.display().to_string(),
        }
    }

    /// Whether the rows should be JSON (a `.json` file) rather than CSV.
    pub fn is_json(&self) -> bool {
        matches!(self, Destination::File(p) if p.extension().is_some_and(|e| e.eq_ignore_ascii_case("json")))
    }
}

/// The refusal to replace an existing result without being asked to: the one refusal that the
/// user's permission (`--force` on the command line) lifts, so front ends can tell it apart.
#[derive(Debug)]
pub struct WouldReplace(pub String);

impl std::fmt::Display for WouldReplace {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} and would be replaced", self.0)
    }
}

impl std::error::Error for WouldReplace {}

/// Checks `dir` as the output folder of a command that writes the files `ours` into it: it must
/// not be a file, nor hold any of `ours` already unless `replace` is set. Created if missing.
pub fn check_folder(dir: &Path, ours: &[&str], replace: bool) -> Result<()> {
    let target = resolve_link(dir)?;
    refuse_inside_run(&target)?;
    if let Ok(meta) = std::fs::metadata(&target) {
        if !meta.is_dir() {
            bail!("{} exists and is not a folder", dir.display());
        }
        let present: Vec<&str> = ours
            .iter()
            .copied()
            .filter(|name| std::fs::symlink_metadata(target.join(name)).is_ok())
            .collect();
        if !present.is_empty() && !replace {
            let held = format!("{} already holds {}", dir.display(), present.join(", "));
            return Err(WouldReplace(held).into());
        }
        for name in present {
            let meta = std::fs::metadata(target.join(name));
            if meta.map(|m| !m.is_file()).unwrap_or(true) {
                bail!(
                    "{} is not a regular file: results are written only to regular files",
                    target.join(name).display()
                );
            }
        }
    }
    std::fs::create_dir_all(&target).with_context(|| format!("cannot create {}", dir.display()))
}

/// Checks `dir` as the results folder of an experiment, which a re-run continues: it must be
/// missing, empty, or hold what an experiment writes (`experiment.json`, `cells/`, `runs/`,
/// `validation.md`); a file, a training run's folder or a folder of other files is refused.
pub fn check_experiment_folder(dir: &Path) -> Result<()> {
    let target = resolve_link(dir)?;
    let Ok(meta) = std::fs::metadata(&target) else {
        return Ok(());
    };
    if !meta.is_dir() {
        bail!("{} exists and is not a folder", dir.display());
    }
    if target.join(CHECKPOINT_FILE).exists() {
        bail!(
            "{} is the folder of a training run: give the experiment a folder of its own",
            dir.display()
        );
    }
    let ours = [
        "experiment.json",
        "cells",
        "runs",
        "partial",
        "validation.md",
        FOLDER_LOCK,
    ];
    let entries: Vec<String> = std::fs::read_dir(&target)
        .with_context(|| format!("cannot read {}", dir.display()))?
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    if !entries.is_empty() && !entries.iter().any(|e| ours.contains(&e.as_str())) {
        bail!(
            "{} holds other files ({}...) and no experiment: give the experiment a new or empty \
             folder",
            dir.display(),
            entries[0]
        );
    }
    Ok(())
}

/// `path`, or what it links to (a link whose target is missing is refused).
fn resolve_link(path: &Path) -> Result<PathBuf> {
    match std::fs::symlink_metadata(path) {
        Ok(meta) if meta.file_type().is_symlink() => std::fs::canonicalize(path)
            .with_context(|| format!("{} is a link to nothing", path.display())),
        _ => Ok(path.to_path_buf()),
    }
}

/// Refuses a path inside a training run's folder, at any depth and with links followed: every
/// file there (its configuration, checkpoints, calibration, samples, snapshots, baselines) is
/// the run's own, and no command's output may replace it, `--force` or not.
fn refuse_inside_run(path: &Path) -> Result<()> {
    let absolute =
        std::path::absolute(path).with_context(|| format!("cannot resolve {}", path.display()))?;
    // The deepest part of the path that exists, its links resolved.
    let mut existing = absolute.as_path();
    while std::fs::symlink_metadata(existing).is_err() {
        match existing.parent() {
            Some(parent) => existing = parent,
            None => return Ok(()),
        }
    }
    let resolved = std::fs::canonicalize(existing)
        .with_context(|| format!("{} is a link to nothing", existing.display()))?;
    let is_run =
        |dir: &Path| dir.join(CONFIG_FILE).is_file() && dir.join(CHECKPOINT_FILE).is_file();
    if let Some(run) = resolved.ancestors().find(|dir| is_run(dir)) {
        bail!(
            "{} is inside the training run {}, whose files are its own: write results outside \
             the run folder",
            path.display(),
            run.display()
        );
    }
    Ok(())
}

/// `value` with every null field removed, for comparing job descriptions: a setting written as
/// null by one version and left out by another is the same absent setting.
fn without_nulls(value: serde_json::Value) -> serde_json::Value {
    match value {
        serde_json::Value::Object(map) => map
            .into_iter()
            .filter(|(_, v)| !v.is_null())
            .map(|(k, v)| (k, without_nulls(v)))
            .collect(),
        other => other,
    }
}

/// Scores written as they are computed, one JSON line per image after a header line that
/// identifies the job, so that a stopped scoring job continues where it stopped instead of
/// starting over. Kept beside the result file as `<out>.partial` until the result is written.
pub struct ScoreJournal {
    /// The journal file and its path; none for a journal kept in memory only.
    file: Option<(PathBuf, std::fs::File)>,
    done: std::collections::BTreeMap<usize, f64>,
}

#[derive(serde::Serialize, serde::Deserialize)]
struct JournalEntry {
    i: usize,
    s: f64,
}

impl ScoreJournal {
    /// The journal of the result file `result`.
    pub fn path_for(result: &Path) -> PathBuf {
        let mut name = result.file_name().unwrap_or_default().to_os_string();
        name.push(".partial");
        result.with_file_name(name)
    }

    /// Opens the journal of `result` for the job described by `job` (any JSON value that
    /// changes when the scores would: model, method, settings, the images): the scores of an
    /// earlier run of the same job are kept, a journal of another job is an error.
    pub fn open(result: &Path, job: &serde_json::Value) -> Result<Self> {
        let path = Self::path_for(result);
        let mut done = std::collections::BTreeMap::new();
        if path.exists() {
            let text = std::fs::read_to_string(&path)
                .with_context(|| format!("cannot read {}", path.display()))?;
            let mut lines = text.lines();
            let header: serde_json::Value = lines
                .next()
                .and_then(|l| serde_json::from_str(l).ok())
                .with_context(|| format!("{} is not a scoring journal", path.display()))?;
            if without_nulls(header) != without_nulls(job.clone()) {
                bail!(
                    "{} was left by scoring with other settings or images: delete it to start \
                     over, or repeat that command to finish it",
                    path.display()
                );
            }
            // A line cut short by a crash is the last one; it and anything after it is dropped.
            for line in lines {
                match serde_json::from_str::<JournalEntry>(line) {
                    Ok(entry) => {
                        done.insert(entry.i, entry.s);
                    }
                    Err(_) => break,
                }
            }
            // Rewrite it whole, so that a cut line is not followed by new ones.
            let mut text = serde_json::to_string(job)? + "\n";
            for (&i, &s) in &done {
                text += &(serde_json::to_string(&JournalEntry { i, s })? + "\n");
            }
            write_atomic(&path, |tmp| Ok(std::fs::write(tmp, &text)?))?;
        } else {
            write_atomic(&path, |tmp| {
                Ok(std::fs::write(tmp, serde_json::to_string(job)? + "\n")?)
            })?;
        }
        let file = std::fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .with_context(|| format!("cannot append to {}", path.display()))?;
        Ok(Self {
            file: Some((path, file)),
            done,
        })
    }

    /// A journal that keeps the scores in memory only (a job that is not resumed: results
    /// written to standard output).
    pub fn in_memory() -> Self {
        Self {
            file: None,
            done: std::collections::BTreeMap::new(),
        }
    }

    /// Scores already computed, by image index.
    pub fn done(&self) -> &std::collections::BTreeMap<usize, f64> {
        &self.done
    }

    /// Records the scores of a batch and flushes them to disk.
    pub fn record(&mut self, indices: &[usize], scores: &[f64]) -> Result<()> {
        let mut text = String::new();
        for (&i, &s) in indices.iter().zip(scores) {
            text += &(serde_json::to_string(&JournalEntry { i, s })? + "\n");
            self.done.insert(i, s);
        }
        if let Some((_, file)) = &mut self.file {
            file.write_all(text.as_bytes())?;
            file.sync_data()?;
        }
        Ok(())
    }

    /// Removes the journal once the result is written.
    pub fn finish(self) -> Result<()> {
        match &self.file {
            Some((path, _)) => std::fs::remove_file(path)
                .with_context(|| format!("cannot remove {}", path.display())),
            None => Ok(()),
        }
    }
}

/// What a scoring job over a folder is, as its journal and its shard records name it: the same
/// record means the same scores, so a stopped job resumes only into its own journal and only
/// the parts of one job merge.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct FolderJobRecord {
    /// The run folder, absolute.
    pub model: PathBuf,
    /// Generator iterations of the run's checkpoint.
    pub iteration: i64,
    /// The method and its settings.
    pub method: JobMethod,
    /// SHA-256 of the ids of every image of the folder (all parts), one per line.
    pub images: String,
}

/// The method of a [`FolderJobRecord`] and the settings its scores depend on.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct JobMethod {
    /// The method's name ([`crate::score::method::Method::name`]).
    pub name: String,
    /// The ADGAN search (the maps of a ranking are drawn with it too).
    pub search: crate::score::adgan::AdganConfig,
    /// The PCA dimension d' of a feature baseline, when given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pca_dim: Option<usize>,
    /// The folder of normal images a baseline was fitted on, when not the run's own.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub train: Option<PathBuf>,
    /// The AlexNet layer of the AlexNet features, when the scores depend on it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alexnet_layer: Option<String>,
}

impl FolderJobRecord {
    /// The job of scoring the folder whose images are `ids` (all of them, every part) with
    /// `method` over the run in `model` at `iteration`.
    pub fn new(model: &Path, iteration: i64, method: JobMethod, ids: &[String]) -> Result<Self> {
        use sha2::{Digest, Sha256};
        let digest = Sha256::digest(ids.join("\n").as_bytes());
        Ok(Self {
            model: std::path::absolute(model)?,
            iteration,
            method,
            images: format!("{digest:x}"),
        })
    }
}

/// What a part of a sharded job says about itself, written beside its output: which shard,
/// of how many images in all, of which job (model, method, settings, every image's id), and
/// the decision level its p-values were flagged at. `adgan merge` checks the parts against each
/// other with it.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ShardRecord {
    /// The part.
    pub shard: crate::data::Shard,
    /// Images in the whole collection.
    pub images: usize,
    /// The job, the same for every part.
    pub job: FolderJobRecord,
    /// alpha of the decisions, when the run was calibrated.
    pub alpha: Option<f64>,
    /// Rows the part wrote (its images less the unreadable ones); absent from records written
    /// before it was kept.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rows: Option<usize>,
}

impl ShardRecord {
    /// Where the record of the output `out` goes: `<out>.shard.json` beside a file, or
    /// `shard.json` inside a folder.
    pub fn path_for(out: &Path, folder: bool) -> PathBuf {
        if folder {
            return out.join("shard.json");
        }
        let mut name = out.file_name().unwrap_or_default().to_os_string();
        name.push(".shard.json");
        out.with_file_name(name)
    }

    /// Reads the records of `parts` and checks that they are the parts 0..N of one job, once
    /// each; returns them in shard order with their paths.
    pub fn check_parts(parts: &[PathBuf], folder: bool) -> Result<Vec<(PathBuf, ShardRecord)>> {
        let mut records = Vec::new();
        for part in parts {
            let path = Self::path_for(part, folder);
            let record: ShardRecord = crate::io::read_json(&path, "adgan shard record")
                .with_context(|| {
                    format!("{} is not the output of a sharded job", part.display())
                })?;
            records.push((part.clone(), record));
        }
        let Some((first_path, first)) = records.first().cloned() else {
            bail!("no parts to merge");
        };
        for (path, record) in &records {
            if record.job != first.job
                || record.images != first.images
                || record.alpha != first.alpha
            {
                bail!(
                    "{} and {} are parts of different jobs (other model, settings or images)",
                    first_path.display(),
                    path.display()
                );
            }
        }
        records.sort_by_key(|(_, r)| r.shard.index);
        for (path, record) in &records {
            if let Some(rows) = record.rows {
                ensure!(
                    rows <= record.shard.range(record.images).len(),
                    "{} says it wrote {rows} rows, more than its shard has images: the record is \
                     corrupt",
                    path.display()
                );
            }
        }
        let count = first.shard.count;
        let indices: Vec<usize> = records.iter().map(|(_, r)| r.shard.index).collect();
        if indices != (0..count).collect::<Vec<_>>()
            || records.iter().any(|(_, r)| r.shard.count != count)
        {
            bail!(
                "the parts are shards {:?} of {count}: give every shard 0..{count} once",
                indices
            );
        }
        Ok(records)
    }
}

/// Checks the table a part of a sharded job holds against its record: as many rows as the part
/// wrote (a part cut short, or edited, is refused), and none of `seen`'s ids (ids already
/// joined from other parts), which it adds.
pub fn check_part_rows(
    part: &Path,
    record: &ShardRecord,
    ids: &[String],
    seen: &mut std::collections::HashSet<String>,
) -> Result<()> {
    if let Some(rows) = record.rows {
        ensure!(
            ids.len() == rows,
            "{} holds {} rows, but the part wrote {rows}: it was cut short or changed; score \
             that shard again",
            part.display(),
            ids.len()
        );
    }
    for id in ids {
        ensure!(
            seen.insert(id.clone()),
            "{} holds {id}, which another part (or an earlier row) holds too: the parts overlap",
            part.display()
        );
    }
    Ok(())
}

/// Refuses `out` as the output of a merge when it is one of the `parts` or the output of a
/// sharded job itself (it has a shard record): merging would overwrite a part.
pub fn check_merge_output(out: &Path, parts: &[PathBuf], folder: bool) -> Result<()> {
    if out.as_os_str() == "-" {
        return Ok(());
    }
    let same = |a: &Path, b: &Path| match (std::fs::canonicalize(a), std::fs::canonicalize(b)) {
        (Ok(a), Ok(b)) => a == b,
        _ => std::path::absolute(a).ok() == std::path::absolute(b).ok(),
    };
    if let Some(part) = parts.iter().find(|p| same(out, p)) {
        bail!(
            "{} is one of the parts: write the merged output elsewhere",
            part.display()
        );
    }
    let record = ShardRecord::path_for(out, folder);
    ensure!(
        !record.exists(),
        "{} is the output of a sharded job ({} is beside it): write the merged output elsewhere",
        out.display(),
        record.display()
    );
    Ok(())
}

/// An advisory lock on what a command writes (a run folder, an experiment folder, an output
/// file), held until it is dropped or the process ends, so that a second command on the same
/// output stops before any work instead of mixing its writes with the first one's. It is
/// `flock` on a lock file: the system releases it when the holder exits, even killed, so a
/// crash leaves no stale lock (the file stays, harmless).
#[derive(Debug)]
pub struct OutputLock {
    _file: std::fs::File,
}

/// Name of the lock file inside a locked folder.
pub const FOLDER_LOCK: &str = ".adgan.lock";

impl OutputLock {
    /// The lock file of `out`: [`FOLDER_LOCK`] inside a folder, `.NAME.lock` beside a file.
    pub fn path_for(out: &Path, folder: bool) -> PathBuf {
        if folder {
            return out.join(FOLDER_LOCK);
        }
        let name = out.file_name().unwrap_or_default().to_string_lossy();
        out.with_file_name(format!(".{name}.lock"))
    }

    /// Takes the lock of `out` (creating its folder where it is a folder), or says which
    /// process holds it. `what` says what the holder does, for the message a second process
    /// gets.
    pub fn acquire(out: &Path, folder: bool, what: &str) -> Result<Self> {
        use std::os::unix::io::AsRawFd;
        let path = Self::path_for(out, folder);
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent)
                .with_context(|| format!("cannot create {}", parent.display()))?;
        }
        let mut file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .with_context(|| {
                format!(
                    "cannot write the lock file {} (nothing was computed yet): the output's \
                     folder must be writable, so choose one that is",
                    path.display()
                )
            })?;
        // SAFETY: flock on a file descriptor this function owns; it touches no memory.
        let taken = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } == 0;
        if !taken {
            let mut holder = String::new();
            let _ = std::io::Read::read_to_string(&mut file, &mut holder);
            let holder = holder.trim();
            let holder = match holder.is_empty() {
                true => "another process".to_string(),
                false => holder.to_string(),
            };
            bail!(
                "{} is in use: {holder}; wait for it to finish (or stop it), or choose another \
                 output",
                out.display()
            );
        }
        // The holder's description, for whoever finds the lock taken.
        file.set_len(0)?;
        let text = format!(
            "process {} ({what}) since {}",
            std::process::id(),
            crate::io::now_utc()
        );
        std::io::Write::write_all(&mut file, text.as_bytes())?;
        file.sync_data()?;
        Ok(Self { _file: file })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_journal_resumes_its_own_job_only() {
        let dir = tempfile::tempdir().unwrap();
        let result = dir.path().join("scores.csv");
        let job = serde_json::json!({"model": "/r", "method": {"name": "kde", "train": null}});
        let mut journal = ScoreJournal::open(&result, &job).unwrap();
        journal.record(&[0, 2], &[1.5, 2.5]).unwrap();
        drop(journal);
        // The same job written without its null setting (by a typed record) resumes.
        let same = serde_json::json!({"model": "/r", "method": {"name": "kde"}});
        let resumed = ScoreJournal::open(&result, &same).unwrap();
        assert_eq!(resumed.done().len(), 2);
        assert_eq!(resumed.done()[&2], 2.5);
        drop(resumed);
        let other = serde_json::json!({"model": "/r", "method": {"name": "gmm"}});
        let err = ScoreJournal::open(&result, &other).err().unwrap();
        assert!(err.to_string().contains("other settings"), "{err}");
    }

    #[test]
    fn a_folder_job_is_named_by_every_image_id() {
        let method = JobMethod {
            name: "adgan".into(),
            search: Default::default(),
            pca_dim: None,
            train: None,
            alexnet_layer: None,
        };
        let ids = ["a.png".to_string(), "b.png".to_string()];
        let job = FolderJobRecord::new(Path::new("run"), 10, method.clone(), &ids).unwrap();
        assert!(job.model.is_absolute());
        let again = FolderJobRecord::new(Path::new("run"), 10, method.clone(), &ids).unwrap();
        assert_eq!(job, again);
        let fewer = FolderJobRecord::new(Path::new("run"), 10, method, &ids[..1]).unwrap();
        assert_ne!(job.images, fewer.images);
        // Its JSON leaves out the settings a method has not, and reads back the same.
        let text = serde_json::to_string(&job).unwrap();
        assert!(!text.contains("pca_dim"), "{text}");
        assert_eq!(serde_json::from_str::<FolderJobRecord>(&text).unwrap(), job);
    }
}
