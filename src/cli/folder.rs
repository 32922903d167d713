//! What `score` and `rank` share: a folder (or one shard of it) scored resumably by one
//! detector, its unreadable files set aside, the record that `adgan merge` joins, and the
//! written scores with their summary.

use super::progress::{on_bad_file, report_skipped, score_with_progress};
use adgan::calibration::Calibration;
use adgan::data::{FolderStream, Shard, SkippedImage};
use adgan::output::{Destination, FolderJobRecord, JobMethod, ScoreJournal, ShardRecord};
use adgan::report::Decisions;
use adgan::run::TrainedGan;
use adgan::score::method::Built;
use adgan::score::AfterBatch;
use anyhow::Result;
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

/// A folder to score: the run, the images, which part of them, and how bad files are treated.
pub(crate) struct FolderJob<'a> {
    pub(crate) model: &'a Path,
    pub(crate) gan: &'a TrainedGan,
    pub(crate) dir: &'a Path,
    pub(crate) shard: Shard,
    pub(crate) strict: bool,
}

/// A scored folder: the scores (unreadable files kept as rows, left out by `scored.kept`), the
/// stream (to fetch gallery images), and the journal, to be finished once the outputs are
/// written so that a crash before then loses no score.
pub(crate) struct ScoredFolder {
    pub(crate) scored: Scored,
    pub(crate) stream: FolderStream,
    pub(crate) skipped: Vec<SkippedImage>,
    pub(crate) record: ShardRecord,
    journal: Option<ScoreJournal>,
}

impl FolderJob<'_> {
    /// Lists the folder's part and reads every header, before any work.
    pub(crate) fn open(&self) -> Result<FolderStream> {
        let spec = self.gan.config.model.image_spec();
        let fit = self.gan.config.data.fit;
        let on_bad = on_bad_file(self.strict);
        FolderStream::open_shard(self.dir, spec, fit, on_bad, self.shard)
    }

    /// Scores `stream` with `built`, continuing the journal at `journal_at` (none: standard
    /// output, not resumable). `method` names the method and its settings in the journal;
    /// `alpha` goes into the shard record when the scores come with decisions.
    pub(crate) fn score(
        &self,
        mut stream: FolderStream,
        built: &mut Built,
        method: JobMethod,
        journal_at: Option<&Path>,
        alpha: Option<f64>,
        after_batch: Option<&mut AfterBatch>,
    ) -> Result<ScoredFolder> {
        // The job names every image of the folder, so that the shards of one job agree.
        let all_ids = folder_ids(self.dir)?;
        let job = FolderJobRecord::new(self.model, self.gan.iteration, method, &all_ids)?;
        let mut journal = match journal_at {
            Some(path) => Some(self.open_journal(path, &job, stream.len())?),
            None => None,
        };
        let device = self.gan.generator_vs.device();
        let scores = score_with_progress(
            built.detector.as_mut(),
            &mut stream,
            built.batch,
            device,
            journal.as_mut(),
            after_batch,
        )?;
        let skipped = stream.skipped();
        let left_out: BTreeSet<usize> = skipped.iter().map(|(i, _)| *i).collect();
        let kept = (0..scores.len())
            .filter(|i| !left_out.contains(i))
            .collect();
        let scored = Scored {
            ids: stream.ids(),
            labels: stream.labels(),
            scores,
            kept,
            anomaly_labels: false,
        };
        let record = ShardRecord {
            shard: self.shard,
            images: all_ids.len(),
            job,
            alpha,
            rows: Some(scored.kept.len()),
        };
        let skipped = skipped.into_iter().map(|(_, s)| s).collect();
        Ok(ScoredFolder {
            scored,
            stream,
            skipped,
            record,
            journal,
        })
    }

    fn open_journal(&self, path: &Path, job: &FolderJobRecord, n: usize) -> Result<ScoreJournal> {
        let mut in_shard = serde_json::to_value(job)?;
        in_shard["shard"] = serde_json::json!(self.shard);
        let journal = ScoreJournal::open(path, &in_shard)?;
        if !journal.done().is_empty() {
            eprintln!(
                "continuing: {} of {n} images were scored by an earlier run of this command",
                journal.done().len()
            );
        }
        Ok(journal)
    }
}

impl ScoredFolder {
    /// After the outputs are written: writes the shard record (for a part of several) at
    /// `record_at`, ends the journal, and lists the skipped files at `skipped_at`.
    pub(crate) fn finish(self, record_at: PathBuf, skipped_at: Option<&Path>) -> Result<()> {
        if self.record.shard.count > 1 {
            adgan::io::write_json(&record_at, &self.record)?;
        }
        if let Some(journal) = self.journal {
            journal.finish()?;
        }
        report_skipped(&self.skipped, skipped_at)
    }
}

/// Scores of a command, with what is needed to write and summarise them.
pub(crate) struct Scored {
    pub(crate) ids: Vec<String>,
    pub(crate) labels: Option<Vec<i64>>,
    pub(crate) scores: Vec<f64>,
    /// The rows to report, in order (unreadable files are left out).
    pub(crate) kept: Vec<usize>,
    /// Whether `labels` say anomalous (1) or normal (0), as in a one-vs-all draw, rather than
    /// naming classes.
    pub(crate) anomaly_labels: bool,
}

impl Scored {
    /// The p-values of the scores under `calibration`.
    pub(crate) fn p_values(&self, calibration: Option<&Calibration>) -> Option<Vec<f64>> {
        calibration.map(|c| self.scores.iter().map(|&s| c.p_value(s)).collect())
    }

    /// Writes the table (with p-values and decisions when calibrated) and prints a summary:
    /// how many images were flagged and, with labels, how good that is.
    pub(crate) fn write(
        &self,
        dest: &Destination,
        calibration: Option<&Calibration>,
        alpha: f64,
    ) -> Result<()> {
        let p_values = self.p_values(calibration);
        let decisions = p_values
            .as_deref()
            .map(|p_values| Decisions { p_values, alpha });
        let labels = self.labels.as_deref();
        adgan::report::write_score_table(
            dest,
            &self.ids,
            labels,
            &self.scores,
            decisions,
            &self.kept,
        )?;
        eprintln!("wrote {} scores to {}", self.kept.len(), dest.describe());
        self.summarise(p_values.as_deref(), alpha)
    }

    /// Prints the decisions' summary, and with labels their quality and the ROC-AUC.
    pub(crate) fn summarise(&self, p_values: Option<&[f64]>, alpha: f64) -> Result<()> {
        let pick = |v: &[f64]| -> Vec<f64> { self.kept.iter().map(|&i| v[i]).collect() };
        let labels: Option<Vec<i64>> = match (&self.labels, self.anomaly_labels) {
            (Some(l), true) => Some(self.kept.iter().map(|&i| l[i]).collect()),
            _ => None,
        };
        if let Some(p) = p_values {
            let p = pick(p);
            let flagged = p.iter().filter(|&&v| v <= alpha).count();
            println!(
                "flagged {flagged} of {} images as anomalous at alpha {alpha} (on normal images \
                 the expected rate of false alarms is at most {alpha})",
                p.len()
            );
            if let Some(labels) = &labels {
                let q = adgan::calibration::decision_quality(&p, labels, alpha);
                println!(
                    "with the labels: false-positive rate {:.4} on normal images, precision \
                     {:.4}, recall {:.4}",
                    q.false_positive_rate, q.precision, q.recall
                );
            }
        }
        if let Some(labels) = &labels {
            let scores = pick(&self.scores);
            if labels.contains(&0) && labels.contains(&1) {
                let auc = adgan::eval::roc_auc(&scores, labels)?;
                let ap = adgan::eval::average_precision(&scores, labels)?;
                println!(
                    "ROC-AUC {auc:.4}, average precision {ap:.4} on {} images",
                    scores.len()
                );
            }
        }
        Ok(())
    }
}

/// The ids of every image of a folder, in the order they are scored.
pub(crate) fn folder_ids(dir: &Path) -> Result<Vec<String>> {
    let listing = adgan::data::folder::list(dir)?;
    Ok(listing
        .paths
        .iter()
        .map(|p| adgan::data::id_of_path(p))
        .collect())
}
