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
    common::train_demo(&d("run"), 5, &["--calibration-fraction", "0.05"]);
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
    let merge_refused = |parts: &[String], out: &str, wanted: &str| {
        let output = std::process::Command::new(env!("CARGO_BIN_EXE_adgan"))
            .args([
                "merge",
                "--parts",
                &parts.join(","),
                "--out",
                out,
                "--force",
            ])
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(
            !output.status.success() && stderr.contains(wanted),
            "{wanted}: {stderr}"
        );
    };
    // The output may not be one of the parts, nor any sharded job's output.
    merge_refused(&parts, &parts[1], "one of the parts");
    std::fs::copy(d("part0.csv.shard.json"), d("other.csv.shard.json")).unwrap();
    merge_refused(&parts, &d("other.csv"), "output of a sharded job");
    // A part cut at a line boundary is refused, and so are parts that hold the same images.
    let part1 = std::fs::read_to_string(&parts[1]).unwrap();
    let cut: Vec<&str> = part1.lines().collect();
    std::fs::write(&parts[1], cut[..cut.len() - 2].join("\n") + "\n").unwrap();
    merge_refused(&parts, &d("bad.csv"), "cut short");
    let part0 = std::fs::read_to_string(&parts[0]).unwrap();
    let record_path = d("part1.csv.shard.json");
    let mut record: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&record_path).unwrap()).unwrap();
    record["rows"] = serde_json::json!(part0.lines().count() - 1);
    std::fs::write(&record_path, record.to_string()).unwrap();
    std::fs::write(&parts[1], &part0).unwrap();
    merge_refused(&parts, &d("bad.csv"), "the parts overlap");
    assert!(!dir.path().join("bad.csv").exists());

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
