//! Progress of an experiment: a bar that follows the stage at hand, a line for every result,
//! and the time left; without a terminal, a line for every stage and every tenth of it.

use super::progress::styled;
use adgan::experiment::{self, Event};
use indicatif::ProgressBar;
use std::time::{Duration, Instant};

/// Progress of an experiment: one bar that follows the stage at hand (training, fitting,
/// validating, scoring) and a line for every result; without a terminal, a line for every
/// stage as well.
pub(crate) struct ExperimentProgress {
    bar: ProgressBar,
    stage: String,
    /// Without a terminal: when the stage began, where it began, and the next count to log.
    stage_clock: StageClock,
    times: ClassTimes,
    start: Instant,
}

/// Lines for a stage without a terminal: one at every tenth of it, with the time it has left
/// at its rate so far (a resumed stage counts from where it resumed).
struct StageClock {
    started: Instant,
    first: usize,
    next_log: usize,
}

impl StageClock {
    fn new(done: usize) -> Self {
        Self {
            started: Instant::now(),
            first: done,
            next_log: 0,
        }
    }

    /// The line to print at `done` of `total`, when a tenth more is done since the last one.
    fn line(&mut self, name: &str, done: usize, total: usize) -> Option<String> {
        let step = (total / 10).max(1);
        if done < self.next_log || done == self.first || done >= total {
            return None;
        }
        self.next_log = (done / step + 1) * step;
        let rate = (done - self.first) as f64 / self.started.elapsed().as_secs_f64().max(1e-9);
        let left = (total - done) as f64 / rate.max(1e-9);
        Some(format!(
            "{name}: {done}/{total} ({}%, {} left)",
            100 * done / total.max(1),
            super::progress::duration_words(left)
        ))
    }
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
            stage_clock: StageClock::new(0),
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
            self.stage_clock = StageClock::new(done);
            self.stage = name;
        } else if self.bar.is_hidden() {
            if let Some(line) = self.stage_clock.line(&self.stage, done, total) {
                eprintln!("{line}");
            }
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
        format!(
            "{cells_left}, about {}",
            super::progress::duration_words(seconds)
        )
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
    use adgan::train::{Losses, Progress};

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
    fn a_stage_logs_every_tenth_with_the_time_left() {
        let mut clock = StageClock::new(0);
        let lines: Vec<String> = (1..=100)
            .filter_map(|done| clock.line("class 0: train", done, 100))
            .collect();
        // At 1 (the first report after the start) and every tenth after, not at the end.
        assert_eq!(lines.len(), 10, "{lines:?}");
        assert!(
            lines[1].starts_with("class 0: train: 10/100 (10%, "),
            "{lines:?}"
        );
        assert!(lines.iter().all(|l| l.ends_with(" left)")), "{lines:?}");
        // A stage resumed at 40 logs from 50 on.
        let mut clock = StageClock::new(40);
        let resumed: Vec<String> = (40..=100)
            .filter_map(|done| clock.line("s", done, 100))
            .collect();
        assert!(resumed[0].starts_with("s: 41/100"), "{resumed:?}");
        assert_eq!(resumed.len(), 6, "{resumed:?}");
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
