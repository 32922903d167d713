//! The ADGAN latent search: theta is reset per image, batching changes nothing, the loss
//! decreases, and anomalies of the demo data score higher than normal images.

mod common;

use adgan::data::{one_vs_all, DataSource, Fit, ImageSpec, Split};
use adgan::eval::roc_auc;
use adgan::optim::OptimizerConfig;
use adgan::run::{load_gan, TrainedGan};
use adgan::score::adgan::{
    Adgan, AdganConfig, Aggregate, Precision, ReconstructionLoss, ThetaMode,
};
use adgan::score::{score_all, Detector};
use adgan::train::CONFIG_FILE;
use adgan::train::{self, TrainConfig};
use std::path::Path;
use std::sync::OnceLock;
use tch::{Device, Kind, Tensor};

/// A small GAN trained once on the demo discs and shared by the tests (each loads its own copy).
fn trained_run() -> &'static Path {
    static RUN: OnceLock<tempfile::TempDir> = OnceLock::new();
    RUN.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        let (data, provenance) = common::demo_training_data();
        let mut config = common::tiny_run(
            TrainConfig {
                iterations: 300,
                batch_size: 32,
                seed: 3,
                checkpoint_every: 1000,
                sample_every: 1000,
                optimizer: OptimizerConfig::adam(1e-3, 0.5, 0.9),
                ..TrainConfig::gradient_penalty()
            },
            provenance,
        );
        config.model.width = 16;
        config.model.latent_dim = 32;
        let fresh = train::TrainOptions::default();
        train::train(dir.path(), &config, &data, Device::Cpu, fresh, &mut |_| {
            std::ops::ControlFlow::Continue(())
        })
        .unwrap();
        assert!(dir.path().join(CONFIG_FILE).exists());
        dir
    })
    .path()
}

fn gan() -> TrainedGan {
    load_gan(trained_run(), Device::Cpu).unwrap()
}

fn search_config(theta: ThetaMode) -> AdganConfig {
    AdganConfig {
        n_seed: 8,
        k: 5,
        lr_z: 0.5,
        lr_theta: 5e-4,
        theta,
        seed: 1,
        ..AdganConfig::default()
    }
}

fn demo_test_images(n: usize) -> (Tensor, Vec<i64>) {
    let source = DataSource::Demo { seed: 0 };
    let spec = ImageSpec {
        size: 32,
        channels: 3,
    };
    let train = source.load(Split::Train, spec, Fit::Pad).unwrap();
    let test = source.load(Split::Test, spec, Fit::Pad).unwrap();
    let task = one_vs_all(&train, &test, 0, n, 9).unwrap();
    (task.test.images, task.test.labels.unwrap())
}

fn assert_close(a: &[f64], b: &[f64], tol: f64) {
    assert_eq!(a.len(), b.len());
    for (x, y) in a.iter().zip(b) {
        assert!(
            (x - y).abs() <= tol * x.abs().max(y.abs()),
            "{x} vs {y} (relative tolerance {tol})"
        );
    }
}

#[test]
fn scores_do_not_depend_on_batch_order_or_repetition() {
    let gan = gan();
    let (images, _) = demo_test_images(6);
    for theta in [ThetaMode::Shared, ThetaMode::PerSeed, ThetaMode::Fixed] {
        let mut detector = Adgan::new(&gan.generator, search_config(theta), Device::Cpu).unwrap();
        let batched = detector.score_batch(&images).unwrap();
        let again = detector.score_batch(&images).unwrap();
        assert_eq!(
            batched, again,
            "{theta:?}: theta or Adam state leaked between calls"
        );
        // One image at a time: the per-image loop.
        let looped: Vec<f64> = (0..6)
            .flat_map(|i| detector.score_batch(&images.narrow(0, i, 1)).unwrap())
            .collect();
        assert_close(&batched, &looped, 1e-4);
        // Reversed order inside a batch.
        let reversed = images.flip([0]);
        let mut back = detector.score_batch(&reversed).unwrap();
        back.reverse();
        assert_close(&batched, &back, 1e-4);
        // The same image twice in one batch gets one score.
        let twice = Tensor::cat(&[images.narrow(0, 2, 1), images.narrow(0, 2, 1)], 0);
        let pair = detector.score_batch(&twice).unwrap();
        assert_close(&[pair[0]], &[pair[1]], 1e-5);
        assert_close(&[pair[0]], &[batched[2]], 1e-4);
    }
}

#[test]
fn bf16_search_stays_close_to_f32_and_is_reproducible() {
    let gan = gan();
    let (images, labels) = demo_test_images(60);
    let score = |precision| {
        let config = AdganConfig {
            n_seed: 16,
            precision,
            ..search_config(ThetaMode::Shared)
        };
        let mut detector = Adgan::new(&gan.generator, config, Device::Cpu).unwrap();
        score_all(&mut detector, &images, 20, Device::Cpu, &mut |_, _| {}).unwrap()
    };
    let f32_scores = score(Precision::F32);
    let bf16_scores = score(Precision::Bf16);
    assert_eq!(
        bf16_scores,
        score(Precision::Bf16),
        "bf16 is not reproducible"
    );
    assert_ne!(bf16_scores, f32_scores, "bf16 computed nothing in bf16");
    // 8 bits of mantissa in the products: scores move by about a percent, rankings barely.
    assert_close(&bf16_scores, &f32_scores, 0.05);
    let (auc_f32, auc_bf16) = (
        roc_auc(&f32_scores, &labels).unwrap(),
        roc_auc(&bf16_scores, &labels).unwrap(),
    );
    assert!(
        (auc_f32 - auc_bf16).abs() < 0.02,
        "ROC-AUC f32 {auc_f32}, bf16 {auc_bf16}"
    );
}

#[test]
fn the_search_lowers_the_loss_on_normal_images() {
    let gan = gan();
    let (images, labels) = demo_test_images(40);
    let normal: Vec<i64> = (0..40).filter(|&i| labels[i as usize] == 0).collect();
    let normal_images = images.index_select(0, &Tensor::from_slice(&normal));
    for theta in [ThetaMode::Shared, ThetaMode::Fixed] {
        let detector = Adgan::new(&gan.generator, search_config(theta), Device::Cpu).unwrap();
        let history = detector.search(&normal_images).unwrap().losses;
        assert_eq!(history.size(), vec![6, normal.len() as i64]);
        let per_step: Vec<f64> = Vec::try_from(history.mean_dim(1, false, Kind::Double)).unwrap();
        for t in 1..per_step.len() {
            assert!(
                per_step[t] < per_step[t - 1],
                "{theta:?}: mean loss per step {per_step:?}"
            );
        }
    }
}

/// The minimum over seeds follows the very same search as the mean (the aggregation does not
/// touch the gradients), so it is at most the mean, image by image; the Laplacian loss lowers
/// itself along the search and separates the demo's anomalies too.
#[test]
fn aggregations_and_losses_of_the_search() {
    let gan = gan();
    let (images, labels) = demo_test_images(60);
    let scores = |config: AdganConfig| {
        let mut detector = Adgan::new(&gan.generator, config, Device::Cpu).unwrap();
        score_all(&mut detector, &images, 20, Device::Cpu, &mut |_, _| {}).unwrap()
    };
    let base = search_config(ThetaMode::Shared);
    let mean = scores(base);
    let min = scores(AdganConfig {
        aggregate: Aggregate::Min,
        ..base
    });
    assert!(mean.iter().zip(&min).all(|(m, n)| n <= m));
    assert!(mean.iter().zip(&min).any(|(m, n)| n < m));
    let laplacian = AdganConfig {
        loss: ReconstructionLoss::Laplacian,
        ..base
    };
    let detector = Adgan::new(&gan.generator, laplacian, Device::Cpu).unwrap();
    let history = detector.search(&images.narrow(0, 0, 8)).unwrap().losses;
    let per_step: Vec<f64> = Vec::try_from(history.mean_dim(1, false, Kind::Double)).unwrap();
    assert!(per_step[5] < per_step[0], "{per_step:?}");
    let auc = roc_auc(&scores(laplacian), &labels).unwrap();
    assert!(auc > 0.8, "Laplacian ROC-AUC {auc}");
}

#[test]
fn anomalies_of_the_demo_score_higher() {
    let gan = gan();
    let (images, labels) = demo_test_images(200);
    let mut detector = Adgan::new(
        &gan.generator,
        AdganConfig {
            n_seed: 16,
            ..search_config(ThetaMode::Shared)
        },
        Device::Cpu,
    )
    .unwrap();
    let scores = score_all(&mut detector, &images, 50, Device::Cpu, &mut |_, _| {}).unwrap();
    let auc = roc_auc(&scores, &labels).unwrap();
    assert!(auc > 0.9, "ROC-AUC {auc}");
}

#[test]
fn score_command_writes_one_row_per_image() {
    let dir = tempfile::tempdir().unwrap();
    let images = dir.path().join("images");
    std::fs::create_dir(&images).unwrap();
    let (raw, _) = adgan::data::demo::generate(Split::Test, 5);
    for i in 0..3 {
        common::save_demo_png(&raw, i, &images.join(format!("{i}.png")));
    }
    let out = dir.path().join("scores.csv");
    let run_with = |out: &Path, extra: &[&str]| {
        std::process::Command::new(env!("CARGO_BIN_EXE_adgan"))
            .args([
                "score",
                "--model",
                trained_run().to_str().unwrap(),
                "--images",
                images.to_str().unwrap(),
                "--n-seed",
                "4",
                "--device",
                "cpu",
                "--out",
                out.to_str().unwrap(),
            ])
            .args(extra)
            .output()
            .unwrap()
    };
    let run = |out: &Path| run_with(out, &[]);
    let output = run(&out);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let text = std::fs::read_to_string(&out).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines[0], "id,score");
    assert_eq!(lines.len(), 4);
    assert!(lines[1].contains("0.png,"));
    let score: f64 = lines[1].rsplit(',').next().unwrap().parse().unwrap();
    assert!(score.is_finite() && score > 0.0);
    // Deterministic: a second run writes the same file; JSON carries the same scores.
    let again = dir.path().join("again.csv");
    run(&again);
    assert_eq!(std::fs::read_to_string(&again).unwrap(), text);
    let json_path = dir.path().join("scores.json");
    run(&json_path);
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&json_path).unwrap()).unwrap();
    assert_eq!(json[0]["score"].as_f64().unwrap(), score);
    // The other methods: the critic, and a classic baseline fitted on the run's own training
    // images (the demo discs), which the command finds through the run's data provenance.
    for (i, extra) in [
        &["--method", "critic"][..],
        &["--method", "gmm", "--pca-dim", "8"],
    ]
    .into_iter()
    .enumerate()
    {
        let path = dir.path().join(format!("other-{i}.csv"));
        let output = run_with(&path, extra);
        assert!(
            output.status.success(),
            "{extra:?}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        let text = std::fs::read_to_string(&path).unwrap();
        assert_eq!(text.lines().count(), 4, "{extra:?}: {text}");
        assert_ne!(text, std::fs::read_to_string(&out).unwrap());
    }

    // What --out may not replace is refused before any scoring, and nothing is left behind:
    // an existing file (unless --force), the run's own checkpoint and a folder (even with it).
    let checkpoint_path = trained_run().join(train::CHECKPOINT_FILE);
    let checkpoint_bytes = std::fs::read(&checkpoint_path).unwrap();
    let no_flag: &[&str] = &[];
    for (target, flags, wanted) in [
        (&out, no_flag, "--force"),
        (&checkpoint_path, &["--force"], "inside the training run"),
        (&images, &["--force"], "is a folder"),
    ] {
        let output = run_with(target, flags);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(
            !output.status.success() && stderr.contains(wanted),
            "{stderr}"
        );
        assert!(
            !stderr.contains("scoring") && !stderr.contains("panicked"),
            "{stderr}"
        );
    }
    assert_eq!(std::fs::read(&checkpoint_path).unwrap(), checkpoint_bytes);
    assert_eq!(std::fs::read_to_string(&out).unwrap(), text);
    let leftovers: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().ends_with(".tmp"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
    // --maps writes one strip per image (image | reconstruction | residual, 3 panels of 4x the
    // image with 2-pixel borders) and the legend; other methods have no reconstruction.
    let maps = dir.path().join("maps");
    let output = run_with(
        &dir.path().join("mapped.csv"),
        &["--maps", maps.to_str().unwrap()],
    );
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    // Four 128-pixel panels under their names, the caption (name, score, and p-value and
    // decision on a calibrated run) and the colour bar with its unit.
    let strip = image::open(maps.join("000000_0.png")).unwrap().to_rgb8();
    assert_eq!(strip.width(), 2 + 4 * 130 + 4);
    let lines = (strip.height() - (2 + 10 + 128 + 2 + 2 + 34)) / 10;
    assert!((2..=3).contains(&lines), "{} high", strip.height());
    let ink = |y0: u32, y1: u32| {
        (0..strip.width())
            .filter(|&x| (y0..y1).any(|y| strip.get_pixel(x, y)[0] < 128))
            .count()
    };
    assert!(ink(2, 10) > 100, "the panels are named");
    assert!(
        ink(142, 152) > 20,
        "the image's name is written under its strip"
    );
    assert!(maps.join("legend.png").exists() && maps.join("000002_2.png").exists());
    let output = run_with(
        &dir.path().join("critic-maps.csv"),
        &[
            "--method",
            "critic",
            "--maps",
            maps.to_str().unwrap(),
            "--force",
        ],
    );
    assert!(String::from_utf8_lossy(&output.stderr).contains("--maps needs --method adgan"));

    // --force replaces; `-` writes the table to standard output.
    assert!(run_with(&out, &["--force"]).status.success());
    assert_eq!(std::fs::read_to_string(&out).unwrap(), text);
    let output = run(Path::new("-"));
    assert_eq!(String::from_utf8_lossy(&output.stdout), text);
}

/// A scoring job killed in the middle continues where it stopped when the same command runs
/// again, and ends with the same table as a run that was never stopped.
#[test]
fn a_killed_score_resumes_where_it_stopped() {
    let dir = tempfile::tempdir().unwrap();
    let images = dir.path().join("images");
    std::fs::create_dir(&images).unwrap();
    let (raw, _) = adgan::data::demo::generate(Split::Test, 6);
    for i in 0..12 {
        common::save_demo_png(&raw, i, &images.join(format!("{i:02}.png")));
    }
    let command = |out: &Path| {
        let mut c = std::process::Command::new(env!("CARGO_BIN_EXE_adgan"));
        c.args(["score", "--model", trained_run().to_str().unwrap()])
            .args([
                "--images",
                images.to_str().unwrap(),
                "--n-seed",
                "32",
                "--k",
                "20",
            ])
            .args(["--device", "cpu", "--out", out.to_str().unwrap()])
            .env("OMP_NUM_THREADS", "1");
        c
    };
    let whole = dir.path().join("whole.csv");
    assert!(command(&whole).output().unwrap().status.success());
    let out = dir.path().join("stopped.csv");
    let journal = adgan::output::ScoreJournal::path_for(&out);
    let mut child = command(&out)
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let scored =
        || std::fs::read_to_string(&journal).map_or(0, |t| t.lines().count().saturating_sub(1));
    let start = std::time::Instant::now();
    while scored() < 3 && start.elapsed().as_secs() < 300 {
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    let before = scored();
    assert!((3..12).contains(&before), "stopped after {before} images");
    assert!(!out.exists(), "no table before the job is finished");
    let output = command(&out).output().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    assert!(
        stderr.contains(&format!("continuing: {before} of 12 images")),
        "{stderr}"
    );
    assert_eq!(
        std::fs::read_to_string(&out).unwrap(),
        std::fs::read_to_string(&whole).unwrap()
    );
    assert!(
        !journal.exists(),
        "the journal is removed once the table is written"
    );
}

#[test]
fn critic_and_prior_scores() {
    use adgan::score::{
        critic::CriticScore,
        prior::{log_prior, PriorScore},
    };
    // log N(0; 0, I) in d = 4 is -2 log(2 pi); a unit vector costs 0.5 more.
    let z = Tensor::from_slice(&[0f32, 0., 0., 0., 1., 0., 0., 0.]).view([2, 4]);
    let lp: Vec<f64> = Vec::try_from(log_prior(&z).to_kind(Kind::Double)).unwrap();
    let base = -2.0 * (2.0 * std::f64::consts::PI).ln();
    assert!(
        (lp[0] - base).abs() < 1e-5 && (lp[1] - (base - 0.5)).abs() < 1e-5,
        "{lp:?}"
    );

    let gan = gan();
    let (images, _) = demo_test_images(8);
    let mut critic = CriticScore::new(&gan.critic);
    let scores = critic.score_batch(&images).unwrap();
    let values: Vec<f64> =
        Vec::try_from(gan.critic.forward(&images).to_kind(Kind::Double)).unwrap();
    for (s, v) in scores.iter().zip(&values) {
        assert_eq!(*s, -v, "critic score is the negated critic value");
    }

    let search = Adgan::new(
        &gan.generator,
        search_config(ThetaMode::Shared),
        Device::Cpu,
    )
    .unwrap();
    let latents = search.search(&images).unwrap().latents;
    assert_eq!(latents.size(), vec![8, 8, 32]);
    let mut prior = PriorScore::new(search);
    let scores = prior.score_batch(&images).unwrap();
    let expected: Vec<f64> =
        Vec::try_from((-log_prior(&latents).mean_dim(1, false, Kind::Float)).to_kind(Kind::Double))
            .unwrap();
    assert_close(&scores, &expected, 1e-6);
    // The search moves the latents, so the prior score differs from that of the initial draw.
    let d = 32.0;
    assert!(scores
        .iter()
        .all(|&s| s > 0.5 * d * (2.0 * std::f64::consts::PI).ln()));
}

#[test]
fn rank_command_sorts_a_folder_and_draws_galleries() {
    let dir = tempfile::tempdir().unwrap();
    let images = dir.path().join("collection");
    std::fs::create_dir(&images).unwrap();
    let (raw, labels) = adgan::data::demo::generate(Split::Test, 6);
    // Ten discs (normal) and two stripes (anomalous), in a flat folder without labels.
    let (mut discs, mut stripes) = (0, 0);
    for (i, &label) in labels.iter().enumerate() {
        let take = (label == 0 && discs < 10) || (label == 3 && stripes < 2);
        if !take {
            continue;
        }
        if label == 0 {
            discs += 1
        } else {
            stripes += 1
        }
        let name = format!("{}-{i}.png", if label == 0 { "disc" } else { "stripes" });
        common::save_demo_png(&raw, i, &images.join(name));
    }
    let out = dir.path().join("ranked");
    let (run, images, out_arg) = (
        trained_run().to_str().unwrap(),
        images.to_str().unwrap(),
        out.to_str().unwrap(),
    );
    common::adgan_ok(&[
        "rank",
        "--model",
        run,
        "--images",
        images,
        "--top",
        "4",
        "--n-seed",
        "8",
        "--lr-z",
        "0.5",
        "--lr-theta",
        "5e-4",
        "--device",
        "cpu",
        "--out",
        out_arg,
    ]);
    let text = std::fs::read_to_string(out.join("scores.csv")).unwrap();
    let rows: Vec<(String, f64)> = text
        .lines()
        .skip(1)
        .map(|l| {
            let (id, score) = l.rsplit_once(',').unwrap();
            (id.to_string(), score.parse().unwrap())
        })
        .collect();
    assert_eq!(rows.len(), 12);
    assert!(
        rows.windows(2).all(|w| w[0].1 >= w[1].1),
        "sorted from most anomalous"
    );
    assert!(
        rows[0].0.contains("stripes") && rows[1].0.contains("stripes"),
        "{rows:?}"
    );
    for name in ["most_anomalous.png", "least_anomalous.png"] {
        let gallery = image::open(out.join(name)).unwrap().to_rgb8();
        // Four 64x64 tiles in one row, each with two caption lines (name, score: the run is
        // not calibrated, so no p-value or decision).
        assert_eq!(
            (gallery.width(), gallery.height()),
            (2 + 4 * 66, 2 + 64 + 2 * 10 + 2 + 2)
        );
        let caption_ink = (2..gallery.width() - 2)
            .filter(|&x| (67..77).any(|y| gallery.get_pixel(x, y)[0] < 64))
            .count();
        assert!(caption_ink > 10, "captions are drawn under the tiles");
    }
    // The anomaly maps of both ends: four strips of four 128x128 panels (4 to a row).
    for name in ["most_anomalous_maps.png", "least_anomalous_maps.png"] {
        let maps = image::open(out.join(name)).unwrap();
        assert_eq!(maps.width(), 2 + 4 * (4 * 130 + 4));
        assert!(maps.height() >= 2 + 10 + 128 + 2 + 2 * 10 + 2 + 34);
    }
    // The page: a row per image in the table's order, each with a thumbnail of its file, and
    // the single maps of the eight gallery images, which exist beside it.
    let page = std::fs::read_to_string(out.join("index.html")).unwrap();
    let body = page.split("<tbody>").nth(1).unwrap();
    assert_eq!(body.matches("<tr").count(), 12);
    assert_eq!(body.matches("class=\"thumb\"").count(), 12);
    let first_name = body.split("<td class=\"name\">").nth(1).unwrap();
    assert!(first_name.starts_with(&rows[0].0), "{first_name}");
    let maps: Vec<&str> = body
        .split("class=\"map\" loading=\"lazy\" alt=\"map\" src=\"")
        .skip(1)
        .map(|s| s.split('"').next().unwrap())
        .collect();
    assert_eq!(maps.len(), 8, "{maps:?}");
    assert!(maps.iter().all(|m| out.join(m).is_file()), "{maps:?}");
    // A ranking killed before its last file is finished by the same command, without --force:
    // its journal says the folder's files are an unfinished ranking of the same job.
    let again = dir.path().join("again");
    let rank_args = |to: &Path| -> Vec<String> {
        let to = to.to_str().unwrap();
        [
            "rank", "--model", run, "--images", images, "--top", "4", "--n-seed", "8",
        ]
        .iter()
        .chain(&[
            "--lr-z",
            "0.5",
            "--lr-theta",
            "5e-4",
            "--device",
            "cpu",
            "--out",
            to,
        ])
        .map(|s| s.to_string())
        .collect()
    };
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_adgan"))
        .args(rank_args(&again))
        .stderr(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let journal = again.join("scores.csv.partial");
    while !journal.exists() && child.try_wait().unwrap().is_none() {
        std::thread::sleep(std::time::Duration::from_millis(2));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(journal.exists(), "the ranking was killed while it ran");
    // Where it would have stopped after its table: the table is there, the galleries are not.
    std::fs::copy(out.join("scores.csv"), again.join("scores.csv")).unwrap();
    let args = rank_args(&again);
    common::adgan_ok(&args.iter().map(String::as_str).collect::<Vec<_>>());
    assert!(!journal.exists() && again.join("most_anomalous.png").exists());
    assert_eq!(
        std::fs::read_to_string(again.join("scores.csv")).unwrap(),
        text,
        "the finished ranking equals an uninterrupted one"
    );
    // Once finished, its files are protected again.
    let repeat = std::process::Command::new(env!("CARGO_BIN_EXE_adgan"))
        .args(&args)
        .output()
        .unwrap();
    assert!(!repeat.status.success());
    assert!(String::from_utf8_lossy(&repeat.stderr).contains("already holds"));

    // Ranking is by the ADGAN search (or the ensemble around it); `rank -h` lists only
    // those, and another method is refused by the parser before any work, naming them.
    let refused = std::process::Command::new(env!("CARGO_BIN_EXE_adgan"))
        .args([
            "rank", "--model", run, "--images", images, "--method", "kde",
        ])
        .args(["--force", "--out", out_arg])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(!refused.status.success());
    assert!(
        stderr.contains("invalid value 'kde'") && stderr.contains("adgan, adgan-ic, ensemble"),
        "{stderr}"
    );
}

#[test]
fn anogan_searches_z_only_and_separates_the_demo() {
    use adgan::score::anogan::{Anogan, AnoganConfig};
    let gan = gan();
    let (images, labels) = demo_test_images(60);
    let config = |steps| AnoganConfig {
        steps,
        ..AnoganConfig::default()
    };
    let mut short = Anogan::new(&gan.generator, &gan.critic, config(1), Device::Cpu).unwrap();
    let mut long = Anogan::new(&gan.generator, &gan.critic, config(100), Device::Cpu).unwrap();
    let before = short.score_batch(&images).unwrap();
    let after = long.score_batch(&images).unwrap();
    let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len() as f64;
    assert!(
        mean(&after) < mean(&before),
        "{} vs {}",
        mean(&after),
        mean(&before)
    );
    // The generator and critic are never trained by the search.
    assert!(!gan.generator.convs[0].ws.grad().defined());
    assert!(!gan.critic.convs[0].ws.grad().defined());
    // One image alone scores as in the batch.
    let alone = long.score_batch(&images.narrow(0, 3, 1)).unwrap();
    assert!(
        (alone[0] - after[3]).abs() < 1e-3 * after[3].abs(),
        "{} vs {}",
        alone[0],
        after[3]
    );
    let auc = roc_auc(&after, &labels).unwrap();
    assert!(auc > 0.7, "AnoGAN ROC-AUC {auc}");
}

#[test]
fn search_benchmarks_run_on_a_trained_generator() {
    let run = trained_run().to_str().unwrap();
    let bench = |args: &[&str]| {
        let common = [
            "--model", run, "--n-seed", "4", "--k", "2", "--device", "cpu",
        ];
        common::adgan_ok(&[&["bench"], args, &common].concat())
    };
    // The trained run is 32x32x3 with width 16: the figures name that, not the defaults.
    let score = bench(&["score", "--images", "2", "--batch-images", "2"]);
    assert!(score.contains("32x32x3, width 16, trained"), "{score}");
    assert_eq!(score.matches("images/s").count(), 2, "{score}");
    let profile = bench(&["profile", "--steps", "1", "--precision", "bf16"]);
    assert!(profile.contains("bf16"), "{profile}");
    assert!(profile.contains("backward (all layers)"), "{profile}");
    // A graph the CPU cannot record is refused before any timing, naming the flag.
    for command in ["score", "train"] {
        let (ok, stdout, stderr) =
            common::adgan_output(&["bench", command, "--cuda-graph", "--device", "cpu"]);
        assert!(!ok && stdout.is_empty(), "{command}: {stdout}");
        assert!(
            stderr.contains("--cuda-graph: CUDA graphs need a CUDA device"),
            "{command}: {stderr}"
        );
    }
}

/// The encoder start (an option beyond the paper): the encoder is trained once into the run
/// folder and loaded after that, and its guesses start the search nearer to each image than
/// the prior's draws do.
#[test]
fn the_encoder_start_begins_nearer_to_the_image() {
    use adgan::inverse::{encoder_dir, EncoderConfig, LatentEncoder};
    use adgan::score::adgan::SearchStart;
    let gan = gan();
    let config = EncoderConfig {
        iterations: 200,
        ..EncoderConfig::default()
    };
    let mut steps = 0;
    let encoder =
        LatentEncoder::train_or_load(&gan, None, config, Device::Cpu, &mut |_, _| steps += 1)
            .unwrap();
    assert_eq!(steps, 200);
    assert!(encoder_dir(&gan).join("encoder.json").exists());
    let loaded = LatentEncoder::train_or_load(&gan, None, config, Device::Cpu, &mut |_, _| {
        panic!("trained again")
    })
    .unwrap();
    let (images, _) = demo_test_images(24);
    assert!(loaded.encode(&images).equal(&encoder.encode(&images)));
    let start_loss = |adgan: Adgan| -> Vec<f64> {
        let search = adgan.search(&images).unwrap();
        Vec::<f64>::try_from(search.losses.get(0)).unwrap()
    };
    let prior_config = search_config(ThetaMode::Shared);
    let prior = start_loss(Adgan::new(&gan.generator, prior_config, Device::Cpu).unwrap());
    let encoder_config = AdganConfig {
        start: SearchStart::Encoder,
        ..prior_config
    };
    let guided = Adgan::new(&gan.generator, encoder_config, Device::Cpu).unwrap();
    let guided = start_loss(guided.with_encoder(encoder));
    let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len() as f64;
    eprintln!(
        "start loss: prior {:.1}, encoder {:.1}",
        mean(&prior),
        mean(&guided)
    );
    assert!(mean(&guided) < 0.8 * mean(&prior));
    // Without an encoder, an encoder start is refused rather than silently started at 0.
    let missing = Adgan::new(&gan.generator, encoder_config, Device::Cpu).unwrap();
    assert!(missing.search(&images).is_err());
}
