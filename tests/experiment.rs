//! The one-vs-all runner on the embedded data: all files, resumable cells, clear errors.

mod common;

use adgan::autoencoder::AutoencoderConfig;
use adgan::data::{DataSource, Fit};
use adgan::experiment::{self, Event, ExperimentConfig};
use adgan::optim::OptimizerConfig;
use adgan::score::adgan::AdganConfig;
use adgan::score::anogan::AnoganConfig;
use adgan::score::features::PcaConfig;
use adgan::score::method::Method;
use adgan::selection::SelectionConfig;
use adgan::train::TrainConfig;
use tch::Device;

fn config() -> ExperimentConfig {
    ExperimentConfig {
        source: DataSource::Demo { seed: 0 },
        classes: experiment::parse_classes("disc,stripes").unwrap(),
        methods: vec![Method::Adgan, Method::Critic, Method::Prior],
        n_test: 40,
        seed: 2,
        fit: Fit::Pad,
        model: common::tiny_model(),
        train: TrainConfig {
            iterations: 20,
            batch_size: 16,
            n_critic: 2,
            seed: 1,
            checkpoint_every: 10,
            sample_every: 1000,
            optimizer: OptimizerConfig::adam(1e-3, 0.5, 0.9),
            ..TrainConfig::gradient_penalty()
        },
        search: AdganConfig {
            n_seed: 4,
            k: 3,
            ..AdganConfig::default()
        },
        baselines: PcaConfig {
            dims: vec![8, 16],
            ..PcaConfig::default()
        },
        anogan: AnoganConfig {
            steps: 20,
            ..AnoganConfig::default()
        },
        autoencoder: AutoencoderConfig {
            code_dim: 8,
            iterations: 30,
            batch_size: 16,
            ..AutoencoderConfig::default()
        },
        alexnet: None,
        alexnet_layer: Default::default(),
        batch_images: None,
        cuda_graph: false,
        selection: SelectionConfig::default(),
        ensemble: Default::default(),
    }
}

#[test]
fn class_lists_expand() {
    assert_eq!(
        experiment::parse_classes("0-3").unwrap(),
        vec!["0", "1", "2", "3"]
    );
    assert_eq!(
        experiment::parse_classes("1, 5,cat").unwrap(),
        vec!["1", "5", "cat"]
    );
    assert!(experiment::parse_classes("5-2").is_err());
    assert!(experiment::parse_classes(" , ").is_err());
}

#[test]
fn runner_writes_everything_and_continues_after_a_stop() {
    let out = tempfile::tempdir().unwrap();
    let config = config();
    let mut finished = 0;
    let cells = experiment::run_and_report(&config, out.path(), Device::Cpu, &mut |e| {
        if let Event::Finished { .. } = e {
            finished += 1
        }
    })
    .unwrap();
    assert_eq!(finished, 6);
    assert_eq!(cells.len(), 6);
    for file in [
        "experiment.json",
        "results.json",
        "table.md",
        "runs/class-disc/checkpoint.safetensors",
        "cells/stripes-prior.json",
        "roc.svg",
        "report.html",
        "galleries/disc-most.png",
        "galleries/stripes-least.png",
    ] {
        assert!(out.path().join(file).exists(), "{file} is missing");
    }
    for cell in &cells {
        assert_eq!(cell.scores.len(), 40);
        assert!((0.0..=1.0).contains(&cell.auc));
    }
    let svg = std::fs::read_to_string(out.path().join("roc.svg")).unwrap();
    assert!(
        svg.contains("<svg")
            && svg.contains("adgan")
            && svg.contains("critic")
            && svg.contains("prior")
    );
    let html = std::fs::read_to_string(out.path().join("report.html")).unwrap();
    assert!(
        html.contains("<svg") && html.matches("data:image/png;base64,").count() == 6 * 2 * 8,
        "8 tiles at both ends of every cell's ranking"
    );
    let table = |id: &str| {
        let start = html.find(&format!("<table id=\"{id}\">")).unwrap();
        let end = start + html[start..].find("</table>").unwrap();
        html[start..end].to_string()
    };
    for id in ["auc", "ap"] {
        assert_eq!(
            table(id).matches("<tr>").count(),
            1 + 2 + 1,
            "{id}: header, two classes, mean"
        );
    }
    // Readable on a phone, and saying what wrote it.
    assert!(html.contains("name=\"viewport\"") && html.contains("overflow-x:auto"));
    assert!(html.contains("Written by adgan ") && !html.contains(">-0."));
    assert!(
        html.contains("<figure class=\"normal\">") && html.contains("<figure class=\"anomalous\">")
    );
    assert!(!html.contains("**"), "a real table, not Markdown");
    // Each class's ROC curves; without selection no validation curve, and the report says
    // why it has no decisions.
    assert_eq!(html.matches("ROC, normal class").count(), 2);
    assert!(!html.contains("validation, normal class"));
    assert!(html.contains("id=\"no-decisions\"") && html.contains("--select-every"));
    let gallery = image::open(out.path().join("galleries/disc-most.png")).unwrap();
    assert_eq!(gallery.width(), 2 + 8 * 66);
    let table = std::fs::read_to_string(out.path().join("table.md")).unwrap();
    assert_eq!(table.lines().count(), 2 + 2 + 1, "{table}");
    assert!(
        table.contains("| mean |") && table.contains("**"),
        "{table}"
    );

    // A stop before the last cells were written: they are recomputed, the others kept, and the
    // results are identical.
    let table_before = std::fs::read_to_string(out.path().join("table.md")).unwrap();
    std::fs::remove_file(out.path().join("cells/stripes-adgan.json")).unwrap();
    std::fs::remove_file(out.path().join("cells/stripes-prior.json")).unwrap();
    std::fs::remove_file(out.path().join("table.md")).unwrap();
    let (mut skipped, mut trained) = (0, 0);
    let again = experiment::run_one_vs_all(&config, out.path(), Device::Cpu, &mut |e| match e {
        Event::Skipped { .. } => skipped += 1,
        Event::Training { .. } => trained += 1,
        _ => {}
    })
    .unwrap();
    assert_eq!(
        (skipped, trained),
        (4, 0),
        "the trained GAN of class stripes is reused"
    );
    // Equal but for the time each cell took.
    let untimed = |cells: &[experiment::Cell]| {
        cells
            .iter()
            .map(|c| experiment::Cell {
                seconds: 0.0,
                ..c.clone()
            })
            .collect::<Vec<_>>()
    };
    assert_eq!(untimed(&again), untimed(&cells));
    // The runner itself rewrites the table after every class it scores.
    assert_eq!(
        std::fs::read_to_string(out.path().join("table.md")).unwrap(),
        table_before
    );

    // Methods added later are new columns: only their cells are computed, and the trained GANs
    // are reused (AnoGAN) or not needed (GMM, DCAE, VAE).
    let mut wider = config.clone();
    wider
        .methods
        .extend([Method::Gmm, Method::Anogan, Method::Dcae, Method::Vae]);
    let (mut trained, mut finished) = (0, 0);
    let cells = experiment::run_one_vs_all(&wider, out.path(), Device::Cpu, &mut |e| match e {
        Event::Finished { .. } => finished += 1,
        Event::Training { .. } => trained += 1,
        _ => {}
    })
    .unwrap();
    assert_eq!((trained, finished, cells.len()), (0, 8, 14));
    assert!(out
        .path()
        .join("runs/class-disc-dcae/autoencoder.safetensors")
        .exists());
    for cell in cells.iter().filter(|c| c.method == Method::Gmm) {
        assert!(
            [8.0, 16.0].contains(&cell.chosen["pca_dim"]),
            "{:?}",
            cell.chosen
        );
        assert!(cell.auc > 0.7, "gmm on {}: {}", cell.class, cell.auc);
    }

    // A corrupt cell and a foreign experiment give errors that name the file.
    std::fs::write(out.path().join("cells/disc-critic.json"), "{ not json").unwrap();
    let err = common::error_text(experiment::run_one_vs_all(
        &config,
        out.path(),
        Device::Cpu,
        &mut |_| {},
    ));
    assert!(err.contains("disc-critic.json"), "{err}");
    let mut other = config.clone();
    other.n_test = 30;
    let err = common::error_text(experiment::run_one_vs_all(
        &other,
        out.path(),
        Device::Cpu,
        &mut |_| {},
    ));
    assert!(err.contains("another experiment"), "{err}");
}

/// With selection on, the GAN trains on the normal images outside the validation split, the
/// learning curve has a point per interval and candidate, the cells record the chosen snapshot
/// and learning rates, and a validation-only run reads no test image and reuses the curve.
#[test]
fn selection_chooses_on_the_learning_curve_and_records_the_choice() {
    let out = tempfile::tempdir().unwrap();
    let mut config = config();
    config.classes = vec!["disc".into()];
    config.methods = vec![Method::Adgan, Method::Critic];
    config.selection = SelectionConfig {
        every: 10,
        lr_theta: vec![5e-5, 5e-4],
        max_per_side: 12,
        ..SelectionConfig::default()
    };
    let mut points = Vec::new();
    let curves = experiment::run_validation(&config, out.path(), Device::Cpu, &mut |e| {
        if let Event::Validated { point, .. } = e {
            points.push(point.clone())
        }
    })
    .unwrap();
    let (written, path) =
        experiment::run_validation_and_report(&config, out.path(), Device::Cpu, &mut |_| {})
            .unwrap();
    assert_eq!(path, out.path().join("validation.md"));
    assert_eq!(std::fs::read_to_string(&path).unwrap(), written);
    let (class, curve) = (&curves[0].class, &curves[0].curve);
    assert!(curves[0].complexity.is_none(), "adgan-ic is not asked for");
    assert_eq!(class, "disc");
    assert_eq!(
        points.len(),
        2 * 2,
        "iterations 10 and 20, two lr_theta each"
    );
    assert_eq!(curve.points, points);
    assert_eq!(curve.validation_ids.len(), 24);
    let run = out.path().join("runs/class-disc");
    for iteration in [10, 20] {
        assert!(adgan::selection::snapshot_path(&run, iteration).exists());
    }
    let saved: adgan::train::RunConfig =
        adgan::io::read_json(&run.join("config.json"), "run").unwrap();
    let normal = adgan::data::demo::TRAIN_PER_CLASS;
    assert_eq!(
        saved.data.n_images,
        normal - (normal as f64 * 0.1).round() as usize,
        "the held-out tenth is not trained on"
    );
    let table = experiment::curve_table(&curves);
    assert_eq!(table, written, "a second validation run reuses the curve");
    assert_eq!(table.lines().count(), 2 + 2, "{table}");
    assert_eq!(table.matches("**").count(), 2, "one best point: {table}");

    // The full run reuses the curve (no training, no validation scoring) and scores the test
    // images with the best snapshot.
    let (mut trained, mut validated) = (0, 0);
    let cells = experiment::run_one_vs_all(&config, out.path(), Device::Cpu, &mut |e| match e {
        Event::Training { .. } => trained += 1,
        Event::Validating { .. } => validated += 1,
        _ => {}
    })
    .unwrap();
    assert_eq!((trained, validated), (0, 0));
    let best = curve.best().unwrap();
    for cell in &cells {
        assert_eq!(cell.chosen["iterations"], best.iteration as f64);
        assert_eq!(cell.chosen["lr_theta"], best.search.lr_theta);
        assert_eq!(cell.chosen["validation_auc"], best.auc);
    }
    assert!(curve.points.iter().all(|p| p.auc <= best.auc));

    // The held-out normal validation images calibrate ADGAN's test scores: the report shows
    // the decisions at alpha and a histogram.
    assert!(curve.points.iter().all(|p| p.normal_scores.len() == 12));
    // Each point keeps its anomalous validation scores too, and both lists give its ROC-AUC.
    for point in &curve.points {
        assert_eq!(point.anomalous_scores.len(), 12);
        let scores = [point.normal_scores.clone(), point.anomalous_scores.clone()].concat();
        let labels = [vec![0; 12], vec![1; 12]].concat();
        let auc = adgan::eval::roc_auc(&scores, &labels).unwrap();
        assert!(
            (auc - point.auc).abs() < 1e-12,
            "{auc} against {}",
            point.auc
        );
    }
    for cell in &cells {
        let expected = match cell.method {
            Method::Adgan => best.normal_scores.clone(),
            _ => Vec::new(),
        };
        assert_eq!(cell.calibration_scores, expected, "{:?}", cell.method);
    }
    experiment::report::write_report(&config, &cells, out.path()).unwrap();
    let html = std::fs::read_to_string(out.path().join("report.html")).unwrap();
    assert!(html.contains("<table id=\"decisions\">"));
    assert!(
        html.contains("<td>-</td><td>") && html.contains("expected (mean"),
        "12 calibration images cannot decide at alpha 0.05: no expected rate"
    );
    assert_eq!(
        html.matches("<svg").count(),
        4,
        "the mean ROC plot, the class's ROC and validation curves, and one histogram"
    );
    assert_eq!(html.matches("validation, normal class").count(), 1);
    assert!(html.contains("<circle"), "the chosen point is marked");
    assert!(!html.contains("id=\"no-decisions\""));

    // A curve saved before points kept their normal scores gets them for its best point.
    let curve_path = run.join("validation.json");
    let mut saved: adgan::selection::Curve = adgan::io::read_json(&curve_path, "curve").unwrap();
    saved
        .points
        .iter_mut()
        .for_each(|p| p.normal_scores.clear());
    adgan::io::write_json(&curve_path, &saved).unwrap();
    std::fs::remove_file(out.path().join("cells/disc-adgan.json")).unwrap();
    let cells = experiment::run_one_vs_all(&config, out.path(), Device::Cpu, &mut |_| {}).unwrap();
    let adgan_cell = cells.iter().find(|c| c.method == Method::Adgan).unwrap();
    assert_eq!(adgan_cell.calibration_scores.len(), 12);
    let saved: adgan::selection::Curve = adgan::io::read_json(&curve_path, "curve").unwrap();
    let filled: Vec<_> = saved
        .points
        .iter()
        .filter(|p| !p.normal_scores.is_empty())
        .collect();
    assert_eq!(filled.len(), 1, "only the best point is scored again");
    assert_eq!(
        (filled[0].iteration, filled[0].search),
        (best.iteration, best.search)
    );

    // A folder kept without its checkpoints (results/ in git keeps cells, curves and losses
    // only) resumes: the chosen snapshot is trained again, and a cell scored again with it is
    // the one scored before; the record of the whole curve's training is kept.
    let critic = cells.iter().find(|c| c.method == Method::Critic).unwrap();
    let losses = std::fs::read_to_string(run.join("losses.csv")).unwrap();
    let run_config = std::fs::read_to_string(run.join("config.json")).unwrap();
    std::fs::remove_dir_all(run.join("snapshots")).unwrap();
    std::fs::remove_file(run.join(adgan::train::CHECKPOINT_FILE)).unwrap();
    std::fs::remove_file(out.path().join("cells/disc-critic.json")).unwrap();
    let mut trained = 0;
    let again = experiment::run_one_vs_all(&config, out.path(), Device::Cpu, &mut |e| {
        if let Event::Training { .. } = e {
            trained += 1
        }
    })
    .unwrap();
    assert!(trained > 0, "the missing snapshot is trained again");
    let critic_again = again.iter().find(|c| c.method == Method::Critic).unwrap();
    assert_eq!(critic_again.scores, critic.scores);
    let snapshot = adgan::selection::snapshot_path(&run, best.iteration);
    assert!(snapshot.exists());
    assert_eq!(
        std::fs::read_to_string(run.join("losses.csv")).unwrap(),
        losses
    );
    assert_eq!(
        std::fs::read_to_string(run.join("config.json")).unwrap(),
        run_config
    );

    // A missing snapshot that the run has gone past is trained again aside, to the same
    // weights.
    let mut longer = config.clone();
    longer.train.iterations = 30;
    experiment::run_validation(&longer, out.path(), Device::Cpu, &mut |_| {}).unwrap();
    std::fs::remove_file(&snapshot).unwrap();
    std::fs::remove_file(out.path().join("cells/disc-critic.json")).unwrap();
    let again = experiment::run_one_vs_all(&config, out.path(), Device::Cpu, &mut |_| {}).unwrap();
    let critic_again = again.iter().find(|c| c.method == Method::Critic).unwrap();
    assert_eq!(critic_again.scores, critic.scores);
    assert!(snapshot.exists());
    assert!(!run.join(adgan::selection::REBUILD_DIR).exists());
    let checkpoint = adgan::run::load_gan(&run, Device::Cpu).unwrap();
    assert_eq!(checkpoint.iteration, 30, "the run itself is left as it was");
}

/// `adgan-ic` chooses its point on the same curve by the corrected validation ROC-AUC, scores
/// after ADGAN whatever the order asked, reuses ADGAN's test scores when the point is ADGAN's
/// (searching again otherwise), and is calibrated by its own cross-fitted normal validation
/// scores.
#[test]
fn the_complexity_corrected_score_comes_from_the_same_curve() {
    // Returns the adgan-ic and adgan cells, whether adgan-ic searched on its own, and how many
    // training iterations ran.
    fn run(
        every: usize,
        lr_theta: Vec<f64>,
        out: &std::path::Path,
        methods: &[Method],
    ) -> (Vec<experiment::Cell>, bool, usize) {
        let mut config = config();
        config.classes = vec!["disc".into()];
        config.methods = methods.to_vec();
        config.selection = SelectionConfig {
            every,
            lr_theta,
            max_per_side: 12,
            ..SelectionConfig::default()
        };
        let (mut searched, mut trained) = (false, 0);
        let cells = experiment::run_one_vs_all(&config, out, Device::Cpu, &mut |e| match e {
            Event::Scoring {
                method: Method::AdganIc,
                ..
            } => searched = true,
            Event::Training { .. } => trained += 1,
            _ => {}
        })
        .unwrap();
        (cells, searched, trained)
    }
    let same = |a: &experiment::Cell, b: &experiment::Cell| {
        a.chosen["iterations"] == b.chosen["iterations"]
            && a.chosen["lr_theta"] == b.chosen["lr_theta"]
    };

    // Without selection there are no held-out images to fit the line on: refused at once.
    let mut refused = config();
    refused.methods = vec![Method::AdganIc];
    let empty = tempfile::tempdir().unwrap();
    let err =
        experiment::run_one_vs_all(&refused, empty.path(), Device::Cpu, &mut |_| {}).unwrap_err();
    // The library names the setting in its own terms; the command names its flag.
    let bad = err.downcast_ref::<adgan::setting::BadSetting>().unwrap();
    assert_eq!(bad.name, "select_every");
    assert!(!err.to_string().contains("--"), "{err}");
    assert_eq!(std::fs::read_dir(empty.path()).unwrap().count(), 0);
    let cli = common::adgan_err(&[
        "experiment",
        "one-vs-all",
        "--dataset",
        "demo",
        "--classes",
        "disc",
        "--methods",
        "adgan-ic",
        "--out",
        empty.path().to_str().unwrap(),
    ]);
    assert!(cli.contains("--select-every"), "{cli}");

    // Two points with two candidates each: here adgan-ic's corrected ROC-AUC picks another point than
    // ADGAN's, and its search runs again.
    let out = tempfile::tempdir().unwrap();
    let (cells, searched, _) = run(
        10,
        vec![5e-5, 5e-4],
        out.path(),
        &[Method::AdganIc, Method::Adgan],
    );
    let (ic, adgan) = (&cells[0], &cells[1]);
    assert_eq!((ic.method, adgan.method), (Method::AdganIc, Method::Adgan));
    assert!(
        !same(ic, adgan) && searched,
        "{:?} {:?}",
        ic.chosen,
        adgan.chosen
    );
    assert_eq!(ic.calibration_scores.len(), 12);
    assert!(ic.scores.iter().all(|s| s.is_finite()));
    let curve: adgan::selection::Curve =
        adgan::io::read_json(&out.path().join("runs/class-disc/validation.json"), "curve").unwrap();
    assert!(curve
        .points
        .iter()
        .any(|p| p.iteration as f64 == ic.chosen["iterations"]
            && p.search.lr_theta == ic.chosen["lr_theta"]));
    // A validation run adds the corrected figures of the same points, adgan-ic's in bold; it
    // needs no snapshot, so a folder kept without them trains nothing.
    let run_dir = out.path().join("runs/class-disc");
    std::fs::remove_dir_all(run_dir.join("snapshots")).unwrap();
    std::fs::remove_file(run_dir.join(adgan::train::CHECKPOINT_FILE)).unwrap();
    let mut validation = config();
    validation.classes = vec!["disc".into()];
    validation.methods = vec![Method::AdganIc];
    validation.selection = SelectionConfig {
        every: 10,
        lr_theta: vec![5e-5, 5e-4],
        max_per_side: 12,
        ..SelectionConfig::default()
    };
    let mut trained = false;
    let (table, _) =
        experiment::run_validation_and_report(&validation, out.path(), Device::Cpu, &mut |e| {
            trained |= matches!(e, Event::Training { .. })
        })
        .unwrap();
    assert!(!trained && !run_dir.join("snapshots").exists());
    let (plain, corrected) = table.split_once("adgan-ic, the same points").unwrap();
    assert_eq!(plain.matches("**").count(), 2, "{table}");
    assert_eq!(corrected.matches("**").count(), 2, "{table}");
    let bold = format!("**{:.4}**", ic.chosen["validation_auc"]);
    assert!(corrected.contains(&bold), "{bold} in {table}");
    // Scored again from the saved curve, the cell is the same; both points' snapshots are
    // trained again aside in one pass (the run's record goes past the first), each iteration
    // once.
    std::fs::remove_file(out.path().join("cells/disc-adgan-ic.json")).unwrap();
    let (again, _, trained) = run(
        10,
        vec![5e-5, 5e-4],
        out.path(),
        &[Method::AdganIc, Method::Adgan],
    );
    assert_eq!(again[0].scores, ic.scores);
    eprintln!(
        "DEBUG {} {}",
        ic.chosen["iterations"], adgan.chosen["iterations"]
    );
    let last = ic.chosen["iterations"].max(adgan.chosen["iterations"]);
    assert_eq!(trained as f64, last);
    assert!(!run_dir.join(adgan::selection::REBUILD_DIR).exists());

    // One point with one candidate: both choose it, and adgan-ic corrects ADGAN's own test
    // scores by the recorded line, without a search.
    let out = tempfile::tempdir().unwrap();
    let (cells, searched, _) = run(
        20,
        vec![5e-4],
        out.path(),
        &[Method::AdganIc, Method::Adgan],
    );
    let (ic, adgan) = (&cells[0], &cells[1]);
    let config = config();
    let test = config
        .source
        .load(
            adgan::data::Split::Test,
            config.model.image_spec(),
            config.fit,
        )
        .unwrap();
    let rows: Vec<i64> = (ic.ids.iter())
        .map(|id| test.ids.iter().position(|t| t == id).unwrap() as i64)
        .collect();
    let images = test.images.index_select(0, &tch::Tensor::from_slice(&rows));
    let lengths = adgan::score::complexity::png_lengths(&images).unwrap();
    let line = adgan::score::complexity::ComplexityLine {
        intercept: ic.chosen["complexity_intercept"],
        slope: ic.chosen["complexity_slope"],
    };
    assert!(same(ic, adgan) && !searched);
    // The report calibrates both: a row and a histogram each.
    let mut reported = config.clone();
    reported.classes = vec!["disc".into()];
    reported.methods = vec![Method::AdganIc, Method::Adgan];
    experiment::report::write_report(&reported, &cells, out.path()).unwrap();
    let html = std::fs::read_to_string(out.path().join("report.html")).unwrap();
    assert!(html.contains("<td>adgan-ic</td>") && html.contains("<td>adgan</td>"));
    assert_eq!(
        html.matches("<svg").count(),
        5,
        "the mean ROC plot, the class's ROC and validation curves, and two histograms"
    );
    for ((&a, &l), &c) in adgan.scores.iter().zip(&lengths).zip(&ic.scores) {
        assert!((line.correct(a, l) - c).abs() < 1e-12);
    }
    // Asked for on its own later, adgan-ic reads ADGAN's cell from the folder: no search.
    std::fs::remove_file(out.path().join("cells/disc-adgan-ic.json")).unwrap();
    let (alone, searched, _) = run(20, vec![5e-4], out.path(), &[Method::AdganIc]);
    assert_eq!(alone.len(), 1);
    assert!(!searched, "ADGAN's scores are on disk");
    assert_eq!(alone[0].scores, ic.scores);
}

/// The long cells (ADGAN's search, AnoGAN) keep their scores so far in `partial/`: a stopped
/// run continues after the images already scored, to the scores of an uninterrupted run.
#[test]
fn a_long_cell_continues_after_the_images_already_scored() {
    let out = tempfile::tempdir().unwrap();
    let mut config = config();
    config.classes = vec!["disc".into()];
    config.methods = vec![Method::Adgan, Method::Prior, Method::Anogan];
    config.n_test = 700;
    config.anogan.steps = 3;
    config.batch_images = Some(32);
    let whole = experiment::run_one_vs_all(&config, out.path(), Device::Cpu, &mut |_| {}).unwrap();
    let partial = out.path().join("partial");
    assert_eq!(
        std::fs::read_dir(&partial).unwrap().count(),
        0,
        "nothing is left once the cells are saved"
    );

    // As a run stopped after the first 640 images (20 batches of the search, 10 of AnoGAN)
    // leaves them; the first score is marked to show that it is not scored again.
    let first = 640;
    let mark = |scores: &[f64]| {
        let mut kept = scores[..first].to_vec();
        kept[0] = 12345.0;
        kept
    };
    let ids = &whole[0].ids[..first];
    let write = |name: &str, columns: Vec<Vec<f64>>| {
        let json = serde_json::json!({"ids": ids, "columns": columns, "seconds": 1.0});
        std::fs::write(partial.join(name), json.to_string()).unwrap();
    };
    write(
        "disc-search.json",
        vec![mark(&whole[0].scores), mark(&whole[1].scores)],
    );
    write("disc-anogan.json", vec![mark(&whole[2].scores)]);
    for method in ["adgan", "prior", "anogan"] {
        std::fs::remove_file(out.path().join(format!("cells/disc-{method}.json"))).unwrap();
    }
    let resumed =
        experiment::run_one_vs_all(&config, out.path(), Device::Cpu, &mut |_| {}).unwrap();
    for (again, before) in resumed.iter().zip(&whole) {
        assert_eq!(again.scores[0], 12345.0, "{:?}", again.method);
        assert_eq!(again.scores[1..], before.scores[1..], "{:?}", again.method);
    }
    assert_eq!(std::fs::read_dir(&partial).unwrap().count(), 0);

    // Scores of other images are refused, with the file to delete.
    let mut other = ids.to_vec();
    other.swap(0, 1);
    let json = serde_json::json!({"ids": other, "columns": [vec![0.0; first]], "seconds": 1.0});
    std::fs::write(partial.join("disc-anogan.json"), json.to_string()).unwrap();
    std::fs::remove_file(out.path().join("cells/disc-anogan.json")).unwrap();
    let err = experiment::run_one_vs_all(&config, out.path(), Device::Cpu, &mut |_| {})
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("disc-anogan.json holds the scores of other images"),
        "{err}"
    );
}

/// `batch_images` reaches the experiment's search: images are scored that many at a time.
#[test]
fn the_experiment_scores_batch_images_at_a_time() {
    let out = tempfile::tempdir().unwrap();
    let mut config = config();
    config.classes = vec!["disc".into()];
    config.methods = vec![Method::Adgan];
    config.n_test = 12;
    config.batch_images = Some(4);
    // The validation images are searched in batches of the same size.
    config.selection = SelectionConfig {
        every: 20,
        max_per_side: 6,
        ..SelectionConfig::default()
    };
    let (mut steps, mut validation_steps) = (Vec::new(), Vec::new());
    experiment::run_one_vs_all(&config, out.path(), Device::Cpu, &mut |e| match e {
        Event::Scoring { done, .. } => steps.push(done),
        Event::Validating { done, .. } => validation_steps.push(done),
        _ => {}
    })
    .unwrap();
    assert_eq!(steps, vec![4, 8, 12]);
    assert_eq!(validation_steps, vec![4, 8, 12]);
}

/// An experiment recorded with its data folder spelled one way continues when the same folder
/// is given another way (another checkout's relative path), and is still told apart from
/// another folder.
#[test]
fn the_same_data_folder_spelled_otherwise_is_the_same_experiment() {
    let tmp = tempfile::tempdir().unwrap();
    let (data, other) = (tmp.path().join("data"), tmp.path().join("other"));
    for dir in [&data, &other, &tmp.path().join("checkout")] {
        std::fs::create_dir_all(dir).unwrap();
    }
    let out = tmp.path().join("out");
    std::fs::create_dir_all(&out).unwrap();
    let recorded = ExperimentConfig {
        source: DataSource::Folder {
            root: tmp.path().join("checkout/../data"),
        },
        ..config()
    };
    adgan::io::write_json(&out.join("experiment.json"), &recorded).unwrap();
    let run = |root: &std::path::Path| {
        let config = ExperimentConfig {
            source: DataSource::Folder {
                root: root.to_path_buf(),
            },
            ..config()
        };
        common::error_text(experiment::run_one_vs_all(
            &config,
            &out,
            Device::Cpu,
            &mut |_| {},
        ))
    };
    // The folders are empty: the same experiment gets as far as reading its images.
    let err = run(&data);
    assert!(!err.contains("another experiment"), "{err}");
    assert!(err.contains("data"), "{err}");
    let err = run(&other);
    assert!(err.contains("another experiment"), "{err}");
}

/// The ensemble column: members scored on the validation images (the GAN members from the
/// learning curve, the others fitted again outside the validation split), kept in the run
/// folder, combined on the test images with normalisers fitted on half of the normal
/// validation images and calibrated on the other half.
#[test]
fn the_ensemble_combines_members_normalised_on_validation_images() {
    use adgan::score::ensemble::{EnsembleConfig, Normalizer, Rule};
    let mut config = config();
    config.classes = vec!["disc".into()];
    config.selection = SelectionConfig {
        every: 10,
        lr_theta: vec![5e-4],
        max_per_side: 12,
        ..SelectionConfig::default()
    };
    config.ensemble = EnsembleConfig {
        members: vec![Method::Adgan, Method::AdganIc, Method::Kde],
        normalizer: Normalizer::Robust,
        rule: Rule::Mean,
    };
    // A GAN member's test scores are its cell's: without that method, refused at once.
    let mut refused = config.clone();
    refused.methods = vec![Method::Adgan, Method::Ensemble];
    let empty = tempfile::tempdir().unwrap();
    let err = experiment::run_one_vs_all(&refused, empty.path(), Device::Cpu, &mut |_| {})
        .unwrap_err()
        .to_string();
    assert!(err.contains("add adgan-ic to the methods"), "{err}");

    let out = tempfile::tempdir().unwrap();
    // The members' validation scores first, alone: no test image is scored.
    let mut validation_only = config.clone();
    validation_only.methods = vec![Method::Adgan, Method::AdganIc, Method::Ensemble];
    experiment::run_validation(&validation_only, out.path(), Device::Cpu, &mut |_| {}).unwrap();
    let members_path = out
        .path()
        .join("runs/class-disc")
        .join(experiment::MEMBERS_FILE);
    let members: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&members_path).unwrap()).unwrap();
    assert_eq!(members["validation_ids"].as_array().unwrap().len(), 24);
    for m in ["adgan", "adgan-ic", "kde"] {
        assert_eq!(
            members["members"][m]["validation"]
                .as_array()
                .unwrap()
                .len(),
            24
        );
        assert!(members["members"][m]["test"].as_array().unwrap().is_empty());
    }
    let (ranked, names) = experiment::rank_ensembles(
        &[out.path().to_path_buf()],
        &[Method::Adgan, Method::Kde],
        0,
    )
    .unwrap();
    assert_eq!((ranked.len(), names.len()), (3 * 3 * 2, 1));
    assert!(
        experiment::ranking_table(&ranked, &names, 5)
            .lines()
            .count()
            == 7
    );

    config.methods = vec![Method::Adgan, Method::AdganIc, Method::Ensemble];
    let mut refitted = Vec::new();
    let cells = experiment::run_one_vs_all(&config, out.path(), Device::Cpu, &mut |e| {
        if let Event::Fitting { method, .. } = e {
            refitted.push(method)
        }
    })
    .unwrap();
    let ensemble = cells.iter().find(|c| c.method == Method::Ensemble).unwrap();
    let adgan = cells.iter().find(|c| c.method == Method::Adgan).unwrap();
    assert_eq!(ensemble.scores.len(), 40);
    assert!(ensemble.scores.iter().all(|s| s.is_finite()));
    assert_eq!(
        ensemble.calibration_scores.len(),
        6,
        "half of 12 normal images"
    );
    assert!(ensemble.chosen["validation_auc"] > 0.0);
    assert!([8.0, 16.0].contains(&ensemble.chosen["kde_pca_dim"]));
    // The GAN members' test scores are their cells'.
    let members: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&members_path).unwrap()).unwrap();
    let adgan_test: Vec<f64> =
        serde_json::from_value(members["members"]["adgan"]["test"].clone()).unwrap();
    assert_eq!(adgan_test, adgan.scores);
    // Scored again, the cell is the same and no member is fitted again.
    std::fs::remove_file(out.path().join("cells/disc-ensemble.json")).unwrap();
    let mut refitted_again = false;
    let again = experiment::run_one_vs_all(&config, out.path(), Device::Cpu, &mut |e| {
        refitted_again |= matches!(
            e,
            Event::Scoring {
                method: Method::Kde,
                ..
            }
        )
    })
    .unwrap();
    let again = again.iter().find(|c| c.method == Method::Ensemble).unwrap();
    assert_eq!(again.scores, ensemble.scores);
    assert!(!refitted_again);
}
