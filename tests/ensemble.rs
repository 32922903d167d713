//! The ensemble of a trained run: `calibrate --method ensemble` fits its classic members on the
//! run's training images and its normalisers on half of the calibration images; `score` and
//! `rank` with `--method ensemble` combine the members and decide with the other half.

mod common;

use std::process::Command;

/// Runs adgan with `args` and the quick search every command here shares.
fn adgan(args: &[&str]) -> (bool, String, String) {
    let output = Command::new(env!("CARGO_BIN_EXE_adgan"))
        .args(args)
        .args(["--n-seed", "4", "--device", "cpu"])
        .output()
        .unwrap();
    (
        output.status.success(),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

#[test]
fn a_run_calibrated_for_the_ensemble_scores_and_ranks_with_it() {
    let dir = tempfile::tempdir().unwrap();
    let d = |name: &str| dir.path().join(name).to_str().unwrap().to_string();
    let run = d("run");
    common::adgan_ok(&[
        "train",
        "--dataset",
        "demo",
        "--normal-class",
        "disc",
        "--width",
        "8",
        "--latent-dim",
        "16",
        "--iterations",
        "5",
        "--batch-size",
        "16",
        "--device",
        "cpu",
        "--out",
        &run,
    ]);
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
