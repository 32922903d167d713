//! How the library's progress reports are drawn: a bar on a terminal, a line now and then
//! without one (a log file, CI), so that long work always shows where it is.

use adgan::data::{ImageSource, OnBadFile, SkippedImage};
use adgan::io;
use adgan::output::ScoreJournal;
use adgan::score::{AfterBatch, Detector, ScoredBatch};
use adgan::train::Progress;
use anyhow::Result;
use indicatif::{ProgressBar, ProgressStyle};
use std::path::Path;
use std::time::Instant;

pub(crate) fn styled(total: usize, template: &str) -> ProgressBar {
    let bar = ProgressBar::new(total as u64);
    bar.set_style(ProgressStyle::with_template(template).expect("valid template"));
    bar
}

/// `seconds` in the unit a person reads best: "45.0 s", "2.5 min", "1.7 h".
pub(crate) fn duration_words(seconds: f64) -> String {
    let (value, unit) = match seconds {
        s if s >= 5400.0 => (s / 3600.0, "h"),
        s if s >= 90.0 => (s / 60.0, "min"),
        s => (s, "s"),
    };
    format!("{value:.1} {unit}")
}

/// Progress of GAN training: a bar with the losses, or a line every 5% without a terminal.
pub(crate) struct IterationBar {
    bar: ProgressBar,
    started: bool,
}

/// A bar for training up to `total` iterations.
pub(crate) fn iteration_bar(total: usize) -> IterationBar {
    let template = "{bar:30} {pos}/{len} it  {per_sec}  [{elapsed_precise} < {eta_precise}]  {msg}";
    IterationBar {
        bar: styled(total, template),
        started: false,
    }
}

impl IterationBar {
    /// Shows the iteration just finished.
    pub(crate) fn show(&mut self, p: &Progress) {
        if !self.started {
            // A resumed run starts part-way: the rate counts from here.
            self.bar.set_position(p.iteration as u64);
            self.bar.reset_eta();
            self.started = true;
        }
        let message = format!(
            "W~{:.4} critic {:.4} gen {:.4}",
            p.losses.wasserstein, p.losses.critic, p.losses.generator
        );
        if self.bar.is_hidden() && p.iteration.is_multiple_of((p.total / 20).max(1)) {
            let done = (p.iteration - p.started_at) as f64;
            let left = (p.total - p.iteration) as f64 * p.elapsed.as_secs_f64() / done.max(1.0);
            eprintln!(
                "iteration {}/{}  {message}  ({left:.0} s left)",
                p.iteration, p.total
            );
        }
        self.bar.set_position(p.iteration as u64);
        self.bar.set_message(message);
    }

    /// Leaves the finished bar on the terminal.
    pub(crate) fn finish(&self) {
        self.bar.finish();
    }
}

/// Progress of scoring: a bar with the rate, or a line every 10% without a terminal.
pub(crate) struct ImageBar {
    bar: ProgressBar,
    start: Instant,
    first: Option<usize>,
    next_log: usize,
}

/// A bar for scoring `total` images.
pub(crate) fn image_bar(total: usize) -> ImageBar {
    let template = "{bar:30} {pos}/{len} images  {per_sec}  [{elapsed_precise} < {eta_precise}]";
    ImageBar {
        bar: styled(total, template),
        start: Instant::now(),
        first: None,
        next_log: 0,
    }
}

impl ImageBar {
    /// Shows `done` of `total` images scored (the first call may start part-way, when a job
    /// resumes).
    pub(crate) fn show(&mut self, done: usize, total: usize) {
        let earlier = *self.first.get_or_insert(done);
        if self.bar.is_hidden() && done >= self.next_log {
            let rate = (done - earlier) as f64 / self.start.elapsed().as_secs_f64().max(1e-9);
            let eta = match done > earlier && done < total {
                true => format!(", {} left", duration_words((total - done) as f64 / rate)),
                false => String::new(),
            };
            eprintln!("scored {done}/{total} images ({rate:.2} images/s{eta})");
            self.next_log = done + (total / 10).max(1);
        }
        self.bar.set_position(done as u64);
    }

    /// Leaves the finished bar on the terminal.
    pub(crate) fn finish(&self) {
        self.bar.finish();
    }
}

/// A plain count bar (an autoencoder's training iterations), drawn only once it moves.
pub(crate) struct CountBar {
    bar: Option<ProgressBar>,
    total: usize,
}

/// A bar for `total` iterations, shown from the first one reported.
pub(crate) fn iteration_count_bar(total: usize) -> CountBar {
    CountBar { bar: None, total }
}

impl CountBar {
    /// Shows `done` iterations.
    pub(crate) fn set(&mut self, done: usize) {
        let total = self.total;
        let bar = self
            .bar
            .get_or_insert_with(|| styled(total, "{bar:30} {pos}/{len} it  [{elapsed_precise}]"));
        bar.set_position(done as u64);
    }

    /// Clears the bar.
    pub(crate) fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}

/// Scores `images` with a progress bar; with a journal, images it already holds are not
/// scored again and every batch is recorded; `after_batch` sees every batch scored.
pub(crate) fn score_with_progress(
    detector: &mut dyn Detector,
    images: &mut dyn ImageSource,
    batch: usize,
    device: tch::Device,
    journal: Option<&mut ScoreJournal>,
    after_batch: Option<&mut AfterBatch>,
) -> Result<Vec<f64>> {
    let mut bar = image_bar(images.len());
    let mut in_memory = ScoreJournal::in_memory();
    let journal = journal.unwrap_or(&mut in_memory);
    let mut nothing = |_: ScoredBatch| Ok(());
    let after_batch = after_batch.unwrap_or(&mut nothing);
    let scores = adgan::score::score_resumable(
        detector,
        images,
        batch,
        device,
        journal,
        &mut |done, total| bar.show(done, total),
        after_batch,
    );
    bar.finish();
    scores
}

/// Prints a warning for each file that could not be read, and lists them in `list` (a text
/// file, one `id<TAB>reason` per line) when given and there are any.
pub(crate) fn report_skipped(skipped: &[SkippedImage], list: Option<&Path>) -> Result<()> {
    for s in skipped {
        eprintln!("warning: skipped {}: {}", s.id, s.reason);
    }
    if let (Some(path), false) = (list, skipped.is_empty()) {
        let text: String = skipped
            .iter()
            .map(|s| format!("{}\t{}\n", s.id, s.reason.replace(['\n', '\t'], " ")))
            .collect();
        io::write_atomic(path, |tmp| Ok(std::fs::write(tmp, text)?))?;
        eprintln!(
            "{} unreadable files are listed in {}",
            skipped.len(),
            path.display()
        );
    }
    Ok(())
}

/// How unreadable image files are handled: skipped, or an error with --strict.
pub(crate) fn on_bad_file(strict: bool) -> OnBadFile {
    if strict {
        OnBadFile::Fail
    } else {
        OnBadFile::Skip
    }
}
