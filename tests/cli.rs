//! The `adgan` binary end to end: train, resume, info, and errors that say what to do.

use std::process::Command;

fn adgan(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_adgan"))
        .args(args)
        .output()
        .expect("adgan runs")
}

#[test]
fn train_resume_and_info() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("run");
    let out_str = out.to_str().unwrap();
    let common = [
        "train",
        "--dataset",
        "demo",
        "--normal-class",
        "square",
        "--width",
        "8",
        "--latent-dim",
        "16",
        "--batch-size",
        "16",
        "--n-critic",
        "1",
        "--device",
        "cpu",
        "--out",
        out_str,
    ];
    let first = adgan(&[&common[..], &["--iterations", "3"]].concat());
    assert!(
        first.status.success(),
        "{}",
        String::from_utf8_lossy(&first.stderr)
    );
    let again = adgan(&[&common[..], &["--iterations", "5"]].concat());
    assert!(!again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("--resume"));
    let resumed = adgan(&[&common[..], &["--iterations", "5", "--resume"]].concat());
    assert!(
        resumed.status.success(),
        "{}",
        String::from_utf8_lossy(&resumed.stderr)
    );
    assert!(String::from_utf8_lossy(&resumed.stdout).contains("trained 5 iterations"));

    let info = adgan(&["info", out_str]);
    let text = String::from_utf8_lossy(&info.stdout);
    assert!(
        info.status.success()
            && text.contains("iterations:   5 of 5")
            && text.contains("\"normal_class\": \"square\""),
        "{text}"
    );
}

#[test]
fn errors_say_what_to_do() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("no-such-folder");
    let out = adgan(&[
        "train",
        "--dataset",
        "mnist",
        "--data",
        missing.to_str().unwrap(),
        "--out",
        dir.path().join("r").to_str().unwrap(),
    ]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && err.contains("no-such-folder") && err.contains("does not exist"),
        "{err}"
    );

    let out = adgan(&["train", "--dataset", "folder", "--out", "x"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && err.contains("--data: ") && err.contains("needs the path"),
        "{err}"
    );

    let out = adgan(&[
        "train",
        "--dataset",
        "demo",
        "--normal-class",
        "triangle",
        "--out",
        "x",
    ]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && err.contains("triangle") && err.contains("disc"),
        "{err}"
    );

    let out = adgan(&["info", dir.path().to_str().unwrap()]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && err.contains("not an adgan run folder"),
        "{err}"
    );
}
