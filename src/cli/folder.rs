//! What `score --images` and `rank` share: a folder (or one shard of it) scored resumably by
//! one detector, its unreadable files set aside, and the record that `adgan merge` joins.

use super::progress::{on_bad_file, report_skipped, score_with_progress};
use super::score::Scored;
use adgan::data::{FolderStream, Shard, SkippedImage};
use adgan::output::{ScoreJournal, ShardRecord};
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
        method: serde_json::Value,
        journal_at: Option<&Path>,
        alpha: Option<f64>,
        after_batch: Option<&mut AfterBatch>,
    ) -> Result<ScoredFolder> {
        // The job names every image of the folder, so that the shards of one job agree.
        let all_ids = super::score::folder_ids(self.dir)?;
        let job = super::score::score_job(self.model, self.gan, method, &all_ids)?;
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

    fn open_journal(&self, path: &Path, job: &serde_json::Value, n: usize) -> Result<ScoreJournal> {
        let mut in_shard = job.clone();
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
