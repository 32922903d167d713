//! Calibrated decisions on the demo data: `train` keeps a calibration split and scores it,
//! `score` adds conformal p-values and decisions whose false-positive rate on held-out normal
//! images stays within a binomial bound of alpha, and a calibration set with anomalies in it is
//! warned about.

mod common;

use std::path::Path;
use std::process::Command;

fn adgan(args: &[&str]) -> (bool, String, String) {
    let output = Command::new(env!("CARGO_BIN_EXE_adgan"))
        .args(args)
        .output()
        .expect("adgan runs");
    (
        output.status.success(),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

/// Rows of a score table with p-values: (p_value, anomalous flag, label).
fn decisions(path: &Path) -> Vec<(f64, u8, i64)> {
    let text = std::fs::read_to_string(path).unwrap();
    let mut lines = text.lines();
    assert_eq!(lines.next().unwrap(), "id,score,p_value,anomalous,label");
    lines
        .map(|l| {
            let f: Vec<&str> = l.rsplitn(4, ',').collect();
            (
                f[2].parse().unwrap(),
                f[1].parse().unwrap(),
                f[0].parse().unwrap(),
            )
        })
        .collect()
}

#[test]
fn p_values_keep_false_alarms_near_alpha_and_bad_calibration_is_flagged() {
    let dir = tempfile::tempdir().unwrap();
    let run = dir.path().join("run");
    let run_str = run.to_str().unwrap();
    let (ok, stdout, stderr) = adgan(&[
        "train",
        "--dataset",
        "demo",
        "--normal-class",
        "disc",
        "--objective",
        "gp",
        "--width",
        "16",
        "--latent-dim",
        "32",
        "--iterations",
        "300",
        "--batch-size",
        "32",
        "--lr",
        "1e-3",
        "--beta1",
        "0.5",
        "--seed",
        "3",
        "--calibration-fraction",
        "0.3",
        "--device",
        "cpu",
        "--out",
        run_str,
    ]);
    assert!(ok, "{stderr}");
    assert!(
        stdout.contains("calibrated on 307 normal images"),
        "{stdout}"
    );
    // floor(0.05 * 308) = 15 of 308: the mean false-alarm rate of one calibration.
    assert!(
        stdout.contains("a calibration of 307 images flags 4.9% of normal images on average"),
        "{stdout}"
    );
    let saved: adgan::train::RunConfig =
        adgan::io::read_json(&run.join("config.json"), "run").unwrap();
    assert_eq!(
        saved.data.n_images,
        1024 - 307,
        "the calibration split is not trained on"
    );
    // The search of the score must be the calibration's: recalibrate with a quicker one.
    let search = ["--n-seed", "8", "--lr-z", "0.5"];
    let (ok, _, stderr) = adgan(
        &[
            &["calibrate", "--model", run_str, "--device", "cpu"][..],
            &search,
        ]
        .concat(),
    );
    assert!(ok, "{stderr}");
    let table = dir.path().join("scores.csv");
    let table_str = table.to_str().unwrap();
    // `method` None: the default. `search` again: the calibration's.
    let score_with = |method: Option<&str>, n_test: &str, alpha: &str, search: &[&str]| {
        let method = method.map(|m| ["--method", m]);
        let args = [
            "score",
            "--model",
            run_str,
            "--dataset",
            "demo",
            "--normal-class",
            "disc",
            "--n-test",
            n_test,
            "--alpha",
            alpha,
            "--device",
            "cpu",
            "--force",
            "--out",
            table_str,
        ];
        adgan(&[&args[..], method.as_ref().map_or(&[], |m| &m[..]), search].concat())
    };
    let score_demo =
        |method: &str, n_test: &str, alpha: &str| score_with(Some(method), n_test, alpha, &search);
    // adgan-ic's p-values come from the calibration images' cross-fitted corrected scores,
    // and keep the same guarantee.
    for (method, alpha) in [("adgan", "0.05"), ("adgan", "0.2"), ("adgan-ic", "0.2")] {
        let (ok, stdout, stderr) = score_demo(method, "1024", alpha);
        assert!(ok, "{stderr}");
        assert!(
            stdout.contains("flagged") && stdout.contains("false-positive rate"),
            "{stdout}"
        );
        let rows = decisions(&table);
        let alpha: f64 = alpha.parse().unwrap();
        let normal: Vec<&(f64, u8, i64)> = rows.iter().filter(|r| r.2 == 0).collect();
        let (m, n_cal) = (normal.len() as f64, 307.0);
        let fpr = normal.iter().filter(|r| r.1 == 1).count() as f64 / m;
        // The conformal guarantee makes the expected rate at most alpha, and (the scores being
        // continuous) at least alpha - 1/(n_cal + 1). Given the calibration set the rate is a
        // Beta variable of variance about alpha(1 - alpha)/n_cal, and the m test normals add a
        // binomial one of alpha(1 - alpha)/m: three standard deviations of both.
        let bound =
            3.0 * (alpha * (1.0 - alpha) * (1.0 / m + 1.0 / n_cal)).sqrt() + 1.0 / (n_cal + 1.0);
        assert!(
            (fpr - alpha).abs() <= bound,
            "{method} at alpha {alpha}: false-positive rate {fpr} (bound {bound})"
        );
        assert!(
            rows.iter().all(|r| (r.0 <= alpha) == (r.1 == 1)),
            "flag = p <= alpha"
        );
    }

    // By default a calibrated run scores with adgan-ic: the same table as asking for it.
    let (ok, _, stderr) = score_demo("adgan-ic", "64", "0.05");
    assert!(ok, "{stderr}");
    let asked = std::fs::read_to_string(&table).unwrap();
    let (ok, _, stderr) = score_with(None, "64", "0.05", &search);
    assert!(ok, "{stderr}");
    assert!(stderr.contains("with adgan-ic"), "{stderr}");
    assert_eq!(std::fs::read_to_string(&table).unwrap(), asked);
    // Without a calibration for the search, ADGAN, with a note on how to get the default.
    let (ok, _, stderr) = score_with(None, "64", "0.05", &["--n-seed", "4"]);
    assert!(ok, "{stderr}");
    assert!(
        stderr.contains("note: scoring with adgan as in the paper")
            && stderr.contains("adgan calibrate")
            && stderr.contains("images with adgan\n"),
        "{stderr}"
    );

    // A calibration set with anomalies in it (stripes among the discs) is warned about. (An
    // anomaly that scores like the normal images cannot be told from them, and shifts the
    // p-values little.)
    let mixed = dir.path().join("mixed");
    std::fs::create_dir(&mixed).unwrap();
    let (raw, labels) = adgan::data::demo::generate(adgan::data::Split::Test, 11);
    let (mut discs, mut stripes) = (0, 0);
    for (i, &label) in labels.iter().enumerate() {
        let keep = (label == 0 && discs < 80) || (label == 3 && stripes < 20);
        if !keep {
            continue;
        }
        if label == 0 {
            discs += 1
        } else {
            stripes += 1
        }
        common::save_demo_png(&raw, i, &mixed.join(format!("{i:04}.png")));
    }
    let (ok, _, stderr) = adgan(
        &[
            &[
                "calibrate",
                "--model",
                run_str,
                "--images",
                mixed.to_str().unwrap(),
                "--device",
                "cpu",
            ][..],
            &search,
        ]
        .concat(),
    );
    assert!(ok, "{stderr}");
    assert!(stderr.contains("may hold anomalies"), "{stderr}");
    // adgan-ic reads that calibration for its line and its decisions alike: warned once.
    let (ok, _, stderr) = score_demo("adgan-ic", "64", "0.05");
    assert!(ok, "{stderr}");
    assert_eq!(stderr.matches("may hold anomalies").count(), 1, "{stderr}");
}
