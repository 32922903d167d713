//! The ensemble of a trained run: `calibrate --method ensemble` fits its classic members on the
//! run's training images and its normalisers on half of the calibration images; `score` and
//! `rank` with `--method ensemble` combine the members and decide with the other half.

mod common;

/// Runs adgan with `args` and the quick search every command here shares.
fn adgan(args: &[&str]) -> (bool, String, String) {
    common::adgan_output(&[args, &["--n-seed", "4", "--device", "cpu"]].concat())
}

#[test]
fn a_run_calibrated_for_the_ensemble_scores_and_ranks_with_it() {
    let dir = tempfile::tempdir().unwrap();
    let d = |name: &str| dir.path().join(name).to_str().unwrap().to_string();
    let run = d("run");
    common::train_demo(&run, 5, &["--no-ensemble"]);
    let score = |out: &str, extra: &[&str]| {
        let args = [
            "score",
            "--model",
            &run,
            "--dataset",
            "demo",
            "--normal-class",
            "disc",
            "--n-test",
            "40",
            "--out",
            out,
            "--method",
            "ensemble",
        ];
        adgan(&[&args[..], extra].concat())
    };

    // Without an ensemble calibration, scoring with it says what to run.
    let (ok, _, stderr) = score(&d("none.csv"), &[]);
    assert!(!ok && stderr.contains("--method ensemble"), "{stderr}");
    // A member that cannot be one is refused before any scoring.
    let (ok, _, stderr) = adgan(&[
        "calibrate",
        "--model",
        &run,
        "--method",
        "ensemble",
        "--ensemble-members",
        "adgan,critic",
    ]);
    assert!(!ok && stderr.contains("members come from"), "{stderr}");
    let (ok, stdout, stderr) = adgan(&[
        "calibrate",
        "--model",
        &run,
        "--method",
        "ensemble",
        "--ensemble-members",
        "adgan,adgan-ic,kde",
        "--ensemble-normalizer",
        "robust",
        "--pca-dim",
        "8",
    ]);
    assert!(ok, "{stderr}");
    assert!(
        stdout.contains("the ensemble (adgan+adgan-ic+kde, robust, mean)"),
        "{stdout}"
    );
    let calibration: adgan::calibration::Calibration =
        adgan::io::read_json(&dir.path().join("run/calibration.json"), "calibration").unwrap();
    let ensemble = calibration.ensemble.clone().unwrap();
    assert_eq!(ensemble.pca_dim, 8);
    let n = calibration.scores.len();
    assert_eq!(
        ensemble.scores.len(),
        n / 2,
        "the second half calibrates it"
    );
    assert!(ensemble.ids.iter().all(|id| calibration.ids.contains(id)));
    // Its classic member is kept in the run, fitted on the training images only.
    let kept: adgan::score::kept::KeptRecord =
        adgan::io::read_json(&dir.path().join("run/baselines/kde/fitted.json"), "kept").unwrap();
    assert_eq!(kept.pca_dim, 8);
    assert!(kept.images > 0 && !calibration.ids.is_empty());

    // Another PCA dimension than the calibration's is refused; left out, it is the calibration's.
    let (ok, _, stderr) = score(&d("bad.csv"), &["--pca-dim", "16"]);
    assert!(!ok && stderr.contains("calibrated with 8"), "{stderr}");
    let (ok, _, stderr) = score(&d("scores.csv"), &[]);
    assert!(ok, "{stderr}");
    assert!(
        stderr.contains("ensemble of adgan+adgan-ic+kde"),
        "{stderr}"
    );
    // score loads the member that calibrate kept rather than fitting it again.
    assert!(
        stderr.contains("member kde fitted on") && stderr.contains("loaded from"),
        "{stderr}"
    );
    let table = std::fs::read_to_string(d("scores.csv")).unwrap();
    let mut lines = table.lines();
    let header: Vec<&str> = lines.next().unwrap().split(',').collect();
    let column = |name: &str| header.iter().position(|h| *h == name).unwrap();
    let (s, p) = (column("score"), column("p_value"));
    let rows: Vec<Vec<&str>> = lines.map(|l| l.split(',').collect()).collect();
    assert_eq!(rows.len(), 40);
    for row in &rows {
        let score: f64 = row[s].parse().unwrap();
        let p_value: f64 = row[p].parse().unwrap();
        let expected = adgan::calibration::p_value(&ensemble.scores, score);
        assert!(
            (p_value - expected).abs() < 1e-6,
            "{p_value} against {expected}"
        );
    }
    // rank ranks by it too, its galleries showing the search's reconstructions.
    let (ok, _, stderr) = adgan(&[
        "rank",
        "--model",
        &run,
        "--images",
        &d("imgs"),
        "--out",
        &d("ranked"),
        "--method",
        "ensemble",
        "--top",
        "4",
    ]);
    assert!(
        !ok && stderr.contains("imgs"),
        "no such folder yet: {stderr}"
    );
    std::fs::create_dir(d("imgs")).unwrap();
    let (raw, _) = adgan::data::demo::generate(adgan::data::Split::Test, 4);
    for i in 0..12 {
        common::save_demo_png(&raw, i, &dir.path().join(format!("imgs/{i:02}.png")));
    }
    let (ok, stdout, stderr) = adgan(&[
        "rank",
        "--model",
        &run,
        "--images",
        &d("imgs"),
        "--out",
        &d("ranked"),
        "--method",
        "ensemble",
        "--top",
        "4",
    ]);
    assert!(ok, "{stderr}");
    assert!(stdout.contains("ranked 12 images"), "{stdout}");
    assert!(
        stderr.contains("ensemble of adgan+adgan-ic+kde"),
        "{stderr}"
    );
    // score loads the member that calibrate kept rather than fitting it again.
    assert!(
        stderr.contains("member kde fitted on") && stderr.contains("loaded from"),
        "{stderr}"
    );
}

#[test]
fn train_fits_the_ensemble_members_and_calibrates_the_ensemble() {
    let dir = tempfile::tempdir().unwrap();
    let d = |name: &str| dir.path().join(name).to_str().unwrap().to_string();
    let train = |out: &str, fraction: &str| {
        common::train_demo(
            out,
            3,
            &["--pca-dim", "8", "--calibration-fraction", fraction],
        )
    };
    let (stdout, _) = train(&d("run"), "0.1");
    assert!(
        stdout.contains("the ensemble (adgan-ic+kde, standard, mean) is calibrated"),
        "{stdout}"
    );
    let config: adgan::train::RunConfig =
        adgan::io::read_json(&dir.path().join("run/config.json"), "config").unwrap();
    let calibration: adgan::calibration::Calibration =
        adgan::io::read_json(&dir.path().join("run/calibration.json"), "calibration").unwrap();
    let ensemble = calibration.ensemble.clone().unwrap();
    assert_eq!(ensemble.pca_dim, 8);
    assert_eq!(ensemble.scores.len(), calibration.scores.len() / 2);
    // The member is fitted on the training images, never on the hold-out.
    let kept: adgan::score::kept::KeptRecord =
        adgan::io::read_json(&dir.path().join("run/baselines/kde/fitted.json"), "kept").unwrap();
    let training = adgan::calibration::training_images(&config).unwrap();
    assert_eq!(kept.images, training.len());
    assert_eq!(kept.images_sha256, training.fingerprint());
    assert!(training.ids.iter().all(|id| !calibration.ids.contains(id)));
    // Scoring with it works at once (the calibration's search), loading the kept member.
    let (ok, _, stderr) = common::adgan_output(&[
        "score",
        "--model",
        &d("run"),
        "--dataset",
        "demo",
        "--normal-class",
        "disc",
        "--n-test",
        "20",
        "--out",
        &d("scores.csv"),
        "--method",
        "ensemble",
        "--device",
        "cpu",
    ]);
    assert!(ok, "{stderr}");
    assert!(stderr.contains("loaded from"), "{stderr}");
    let table = std::fs::read_to_string(d("scores.csv")).unwrap();
    assert!(table.lines().next().unwrap().contains("p_value"), "{table}");

    // `info` says what the run can score with.
    let info = common::adgan_ok(&["info", &d("run")]);
    assert!(
        info.contains("p-values for adgan and adgan-ic")
            && info.contains("ensemble:     adgan-ic+kde, standard, mean, PCA d' 8")
            && info.contains(&format!(
                "kept:         kde on pixels features, PCA d' 8, fitted on {} training images",
                training.len()
            )),
        "{info}"
    );

    // A kept record that cannot be read is named, not left out.
    let record = dir.path().join("run/baselines/kde/fitted.json");
    let intact = std::fs::read(&record).unwrap();
    std::fs::write(&record, b"{ not json").unwrap();
    let info = common::adgan_ok(&["info", &d("run")]);
    assert!(
        info.contains("kept:         kde: unreadable") && info.contains("delete its folder"),
        "{info}"
    );
    std::fs::write(&record, intact).unwrap();

    // A PCA dimension the training images cannot give is refused before training.
    let stderr = common::adgan_err(&[
        "train",
        "--dataset",
        "demo",
        "--normal-class",
        "disc",
        "--pca-dim",
        "5000",
        "--device",
        "cpu",
        "--out",
        &d("too-many-components"),
    ]);
    assert!(
        stderr.contains("--pca-dim") && stderr.contains("choose from 1 to"),
        "{stderr}"
    );
    assert!(!dir.path().join("too-many-components").exists());

    // A hold-out too small for two halves calibrates ADGAN alone, with a note.
    let (stdout, stderr) = train(&d("small"), "0.03");
    assert!(
        stderr.contains("the ensemble is not calibrated: it needs 38"),
        "{stderr}"
    );
    assert!(!stdout.contains("the ensemble ("), "{stdout}");
    assert!(!dir.path().join("small/baselines").exists());
    let info = common::adgan_ok(&["info", &d("small")]);
    assert!(
        info.contains("ensemble:     not calibrated") && !info.contains("kept:"),
        "{info}"
    );
}
