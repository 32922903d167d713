//! Scoring sharded over machines: three parts joined by `adgan merge` give the very table (and
//! for a ranking the very galleries) that one run over the whole folder gives.

mod common;

use std::path::Path;

fn bytes(path: &Path) -> Vec<u8> {
    std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

#[test]
fn three_shards_merged_equal_one_run() {
    let dir = tempfile::tempdir().unwrap();
    let d = |name: &str| dir.path().join(name).to_str().unwrap().to_string();
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
        "--calibration-fraction",
        "0.05",
        "--device",
        "cpu",
        "--out",
        &d("run"),
    ]);
    let images = dir.path().join("images");
    std::fs::create_dir(&images).unwrap();
    let (raw, _) = adgan::data::demo::generate(adgan::data::Split::Test, 4);
    for i in 0..14 {
        let path = images.join(format!("{i:02}, odd \"name\".png"));
        common::save_demo_png(&raw, i, &path);
    }
    let (run, imgs) = (d("run"), images.to_str().unwrap().to_string());
    let search = ["--n-seed", "64", "--device", "cpu"];
    let score = |out: &str, extra: &[&str]| {
        let mut args = vec!["score", "--model", &run, "--images", &imgs, "--out", out];
        args.extend_from_slice(&search);
        args.extend_from_slice(extra);
        common::adgan_ok(&args);
    };
    score(&d("whole.csv"), &[]);
    let parts: Vec<String> = (0..3).map(|i| d(&format!("part{i}.csv"))).collect();
    for (i, part) in parts.iter().enumerate().rev() {
        score(part, &["--shard", &format!("{i}/3")]);
    }
    common::adgan_ok(&[
        "merge",
        "--parts",
        &parts.join(","),
        "--out",
        &d("merged.csv"),
    ]);
    let whole = bytes(&dir.path().join("whole.csv"));
    assert!(String::from_utf8_lossy(&whole).starts_with("id,score,p_value,anomalous\n"));
    assert_eq!(bytes(&dir.path().join("merged.csv")), whole);
    // A missing part is refused.
    let two = format!("{},{}", parts[0], parts[2]);
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_adgan"))
        .args(["merge", "--parts", &two, "--out", &d("bad.csv")])
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&output.stderr).contains("give every shard"));

    let rank = |out: &str, extra: &[&str]| {
        let mut args = vec![
            "rank", "--model", &run, "--images", &imgs, "--top", "4", "--out", out,
        ];
        args.extend_from_slice(&search);
        args.extend_from_slice(extra);
        common::adgan_ok(&args);
    };
    rank(&d("ranked"), &[]);
    let parts: Vec<String> = (0..3).map(|i| d(&format!("rank{i}"))).collect();
    for (i, part) in parts.iter().enumerate() {
        rank(part, &["--shard", &format!("{i}/3")]);
    }
    common::adgan_ok(&[
        "merge",
        "--rank",
        "--images",
        &imgs,
        "--top",
        "4",
        "--parts",
        &parts.join(","),
        "--out",
        &d("ranked-merged"),
    ]);
    for file in adgan::report::RANKING_FILES {
        assert_eq!(
            bytes(&dir.path().join("ranked-merged").join(file)),
            bytes(&dir.path().join("ranked").join(file)),
            "{file}"
        );
    }
}
