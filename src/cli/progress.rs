//! How the library's progress reports are drawn: a bar on a terminal, a line now and then
//! without one (a log file, CI), so that long work always shows where it is.

use adgan::data::{ImageSource, OnBadFile, SkippedImage};
use adgan::device;
use adgan::experiment::{self, Event};
use adgan::io;
use adgan::output::ScoreJournal;
use adgan::score::{AfterBatch, Detector, ScoredBatch};
use adgan::train::{self, Progress, RunConfig};
use anyhow::Result;
use indicatif::{ProgressBar, ProgressStyle};
use std::ops::ControlFlow;
use std::path::Path;
use std::time::{Duration, Instant};

fn styled(total: usize, template: &str) -> ProgressBar {
    let bar = ProgressBar::new(total as u64);
    bar.set_style(ProgressStyle::with_template(template).expect("valid template"));
    bar
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
            eprintln!("scored {done}/{total} images ({rate:.2} images/s)");
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

/// Trains with a progress bar; returns the outcome.
pub(crate) fn train_with_progress(
    out: &Path,
    config: &RunConfig,
    data: &adgan::data::Dataset,
    device: tch::Device,
    resume: bool,
) -> Result<train::TrainOutcome> {
    eprintln!(
        "training on {} images from {} on {} -> {}",
        data.len(),
        config.data.source.describe(),
        device::name(device),
        out.display()
    );
    let mut bar = iteration_bar(config.train.iterations);
    let outcome = train::train(out, config, data, device, resume, &mut |p| {
        bar.show(p);
        ControlFlow::Continue(())
    });
    bar.finish();
    outcome
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

/// Progress of an experiment: one bar that follows the stage at hand (training, fitting,
/// validating, scoring) and a line for every result; without a terminal, a line for every
/// stage as well.
pub(crate) struct ExperimentProgress {
    bar: ProgressBar,
    stage: String,
    times: ClassTimes,
    start: Instant,
}

impl ExperimentProgress {
    /// Progress of an experiment of `classes` x `methods` cells; `trains_gans` when some method
    /// needs a class's GAN.
    pub(crate) fn new(classes: usize, methods: usize, trains_gans: bool) -> Self {
        let template =
            "{prefix:>22} {bar:30} {pos}/{len}  [{elapsed_precise} < {eta_precise}]  {msg}";
        Self {
            bar: styled(0, template),
            stage: String::new(),
            times: ClassTimes::new(classes * methods, methods, trains_gans),
            start: Instant::now(),
        }
    }

    fn say(&self, line: String) {
        if self.bar.is_hidden() {
            eprintln!("{line}");
        } else {
            self.bar.println(line);
        }
    }

    /// Points the bar at a stage (resetting length and ETA when the stage changes) and moves it.
    fn show(&mut self, name: String, done: usize, total: usize) {
        if self.stage != name {
            if self.bar.is_hidden() {
                eprintln!("{name} ({total})");
            }
            self.bar.set_prefix(name.clone());
            self.bar.set_length(total as u64);
            self.bar.set_message("");
            self.bar.reset_eta();
            self.stage = name;
        }
        self.bar.set_position(done as u64);
    }

    /// Draws one report of the experiment runner.
    pub(crate) fn on_event(&mut self, event: Event) {
        self.times.observe(&event, self.start.elapsed());
        match event {
            Event::Training { class, progress } => {
                self.show(
                    format!("class {class}: train"),
                    progress.iteration,
                    progress.total,
                );
                self.bar
                    .set_message(format!("W~{:.4}", progress.losses.wasserstein));
            }
            Event::Fitting {
                class,
                method,
                done,
                total,
            } => self.show(format!("class {class}: fit {}", method.name()), done, total),
            Event::Scoring {
                class,
                method,
                done,
                total,
            } => self.show(format!("class {class}: {}", method.name()), done, total),
            Event::Validating {
                class,
                iteration,
                done,
                total,
            } => self.show(format!("class {class}: validate {iteration}"), done, total),
            Event::Validated { class, point } => self.say(format!(
                "class {class} iteration {}: validation ROC-AUC {:.4} ({}; {:.0} s)",
                point.iteration,
                point.auc,
                experiment::candidate_label(&point.search),
                point.seconds
            )),
            Event::Note(note) => self.say(format!("note: {note}")),
            Event::Skipped { class, method } => self.say(format!(
                "class {class} {}: finished earlier, kept",
                method.name()
            )),
            Event::Finished { cell } => self.say(format!(
                "class {} {}: ROC-AUC {:.4} ({:.0} s; {})",
                cell.class,
                cell.method.name(),
                cell.auc,
                cell.seconds,
                self.times.left()
            )),
        }
    }

    /// Clears the bar.
    pub(crate) fn finish(&self) {
        self.bar.finish_and_clear();
    }
}

/// The time an experiment has left, estimated from the classes done whole in this process.
/// A class that reused earlier work (kept cells, kept snapshots, a training resumed half-way)
/// took less than a class takes, so it is not counted: after a resume the estimate waits for
/// the first class done from scratch rather than promise too little.
struct ClassTimes {
    /// Cells of the whole experiment and of one class, and those done (now or earlier).
    cells: usize,
    cells_per_class: usize,
    cells_done: usize,
    /// Whether classes train a GAN (so that a class without training reused one).
    trains_gans: bool,
    /// The class at hand.
    current: Option<ClassClock>,
    /// Seconds of each class done whole in this process.
    whole_classes: Vec<f64>,
}

/// One class's work so far.
struct ClassClock {
    class: String,
    /// Time since the experiment started, when this class's first report came.
    started: Duration,
    cells_done: usize,
    /// Its GAN trained from iteration 0 in this process.
    trained_from_scratch: bool,
    /// Some of its cells were kept from an earlier run.
    kept_cells: bool,
}

impl ClassTimes {
    fn new(cells: usize, cells_per_class: usize, trains_gans: bool) -> Self {
        Self {
            cells,
            cells_per_class,
            cells_done: 0,
            trains_gans,
            current: None,
            whole_classes: Vec::new(),
        }
    }

    /// Takes one report of the runner, `now` after the experiment started.
    fn observe(&mut self, event: &Event, now: Duration) {
        let Some(class) = event_class(event) else {
            return;
        };
        if self.current.as_ref().map(|c| c.class.as_str()) != Some(class) {
            self.current = Some(ClassClock {
                class: class.to_string(),
                started: now,
                cells_done: 0,
                trained_from_scratch: false,
                kept_cells: false,
            });
        }
        let clock = self.current.as_mut().expect("just set");
        match event {
            Event::Training { progress, .. } if progress.started_at == 0 => {
                clock.trained_from_scratch = true
            }
            Event::Skipped { .. } => clock.kept_cells = true,
            _ => {}
        }
        if !matches!(event, Event::Skipped { .. } | Event::Finished { .. }) {
            return;
        }
        self.cells_done += 1;
        clock.cells_done += 1;
        if clock.cells_done == self.cells_per_class {
            let whole = !clock.kept_cells && (clock.trained_from_scratch || !self.trains_gans);
            if whole {
                self.whole_classes.push((now - clock.started).as_secs_f64());
            }
        }
    }

    /// Cells left and, once a class was done whole, the time they should take.
    fn left(&self) -> String {
        let left = self.cells.saturating_sub(self.cells_done);
        let cells_left = match left {
            0 => return "no cells left".to_string(),
            1 => "1 cell left".to_string(),
            n => format!("{n} cells left"),
        };
        if self.whole_classes.is_empty() {
            return format!("{cells_left}, time estimate after a class done whole in this run");
        }
        let per_class = self.whole_classes.iter().sum::<f64>() / self.whole_classes.len() as f64;
        let seconds = per_class * left as f64 / self.cells_per_class as f64;
        let (value, unit) = match seconds {
            s if s >= 5400.0 => (s / 3600.0, "h"),
            s if s >= 90.0 => (s / 60.0, "min"),
            s => (s, "s"),
        };
        format!("{cells_left}, about {value:.1} {unit}")
    }
}

/// The class a report is about, if any.
fn event_class<'a>(event: &Event<'a>) -> Option<&'a str> {
    match *event {
        Event::Training { class, .. }
        | Event::Fitting { class, .. }
        | Event::Scoring { class, .. }
        | Event::Validating { class, .. }
        | Event::Validated { class, .. }
        | Event::Skipped { class, .. } => Some(class),
        Event::Finished { cell } => Some(&cell.class),
        Event::Note(_) => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use adgan::experiment::Cell;
    use adgan::score::method::Method;
    use adgan::train::Losses;

    fn training(started_at: usize) -> Progress {
        Progress {
            iteration: started_at + 1,
            total: 100,
            started_at,
            losses: Losses {
                critic: 0.0,
                generator: 0.0,
                wasserstein: 0.0,
            },
            elapsed: Duration::ZERO,
        }
    }

    fn cell(class: &str, method: Method) -> Cell {
        Cell {
            class: class.to_string(),
            method,
            auc: 0.5,
            average_precision: 0.5,
            seconds: 1.0,
            ids: Vec::new(),
            test_classes: Vec::new(),
            labels: Vec::new(),
            scores: Vec::new(),
            chosen: Default::default(),
            calibration_scores: Vec::new(),
        }
    }

    fn at(seconds: u64) -> Duration {
        Duration::from_secs(seconds)
    }

    /// Two methods a class; `started_at` for its training (None: no training, as when the
    /// snapshots were kept); its cells finish at `end`.
    fn class(times: &mut ClassTimes, name: &str, started_at: Option<usize>, start: u64, end: u64) {
        let p = training(started_at.unwrap_or(0));
        if started_at.is_some() {
            times.observe(
                &Event::Training {
                    class: name,
                    progress: &p,
                },
                at(start),
            );
        } else {
            let scoring = Event::Scoring {
                class: name,
                method: Method::Adgan,
                done: 0,
                total: 1,
            };
            times.observe(&scoring, at(start));
        }
        for method in [Method::Adgan, Method::Gmm] {
            let c = cell(name, method);
            times.observe(&Event::Finished { cell: &c }, at(end));
        }
    }

    #[test]
    fn the_estimate_counts_only_classes_done_whole() {
        let mut times = ClassTimes::new(8, 2, true);
        assert!(times
            .left()
            .starts_with("8 cells left, time estimate after"));
        // A class that reused its snapshots took 10 s: no estimate from it.
        class(&mut times, "0", None, 0, 10);
        assert!(times
            .left()
            .starts_with("6 cells left, time estimate after"));
        // A training resumed half-way is not whole either.
        class(&mut times, "1", Some(50), 10, 30);
        assert!(times
            .left()
            .starts_with("4 cells left, time estimate after"));
        // A class from scratch took 100 s: so will the class left.
        class(&mut times, "2", Some(0), 30, 130);
        assert_eq!(times.left(), "2 cells left, about 1.7 min");
    }

    #[test]
    fn kept_cells_make_a_class_partial_and_without_gans_no_training_is_needed() {
        let mut times = ClassTimes::new(4, 2, false);
        let kept = Event::Skipped {
            class: "0",
            method: Method::Gmm,
        };
        times.observe(&kept, at(0));
        let c = cell("0", Method::Kde);
        times.observe(&Event::Finished { cell: &c }, at(5));
        assert!(times
            .left()
            .starts_with("2 cells left, time estimate after"));
        class(&mut times, "1", None, 5, 65);
        assert_eq!(times.left(), "no cells left");
        let mut times = ClassTimes::new(4, 2, false);
        class(&mut times, "0", None, 0, 60);
        assert_eq!(times.left(), "2 cells left, about 60.0 s");
    }
}
