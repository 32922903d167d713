//! Bad input, end to end: every command refuses nonsense before any expensive work, with an
//! exit code of 1 (2 for a value the command line itself rejects; never a panic, 101, or an
//! abort, 134), a message that names the offending thing, and no change to any file. Then bounded fuzzing of the readers:
//! seeded mutations of valid files must give errors, never panics.

mod common;

use rand::{Rng, SeedableRng};
use std::path::{Path, PathBuf};
use std::process::Command;

/// Runs adgan with `args` in `dir` and returns (exit code, stderr).
fn adgan_in(dir: &Path, args: &[&str]) -> (i32, String) {
    let output = Command::new(env!("CARGO_BIN_EXE_adgan"))
        .args(args)
        .current_dir(dir)
        .env("OMP_NUM_THREADS", "1")
        .output()
        .expect("adgan runs");
    let code = output.status.code().unwrap_or(-1);
    (code, String::from_utf8_lossy(&output.stderr).into_owned())
}

/// A digest of every file under `dir` (path and contents), to show nothing changed.
fn tree_digest(dir: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    let mut files = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).unwrap().flatten() {
            let path = entry.path();
            if path.is_dir() {
                stack.push(path);
            } else {
                files.push((path.clone(), std::fs::read(&path).unwrap()));
            }
        }
    }
    files.sort();
    files
}

/// Asserts that adgan refused `args` cleanly: exit code 1 (or 2 from the argument parser), no
/// panic, `wanted` in the message, and no file of `dir` changed.
fn refused(dir: &Path, args: &[&str], wanted: &str) {
    let before = tree_digest(dir);
    let (code, stderr) = adgan_in(dir, args);
    assert!(
        code == 1 || code == 2,
        "{args:?}: exit code {code}\n{stderr}"
    );
    assert!(!stderr.contains("panicked"), "{args:?}: {stderr}");
    assert!(
        stderr.contains(wanted),
        "{args:?}: no {wanted:?} in\n{stderr}"
    );
    assert!(
        stderr.len() < 2000,
        "{args:?}: a message, not a backtrace:\n{stderr}"
    );
    assert!(tree_digest(dir) == before, "{args:?} changed files");
    // --force is suggested only where it would help: never when it was given already.
    if args.contains(&"--force") {
        assert!(!stderr.contains("pass --force"), "{args:?}: {stderr}");
    }
}

/// A quick `train` on the demo data with `extra` flags, which replace the defaults they name.
fn train_args<'a>(out: &'a str, extra: &[&'a str]) -> Vec<&'a str> {
    let mut args = vec![
        "train",
        "--dataset",
        "demo",
        "--device",
        "cpu",
        "--out",
        out,
    ];
    for (flag, value) in [
        ("--normal-class", "disc"),
        ("--width", "8"),
        ("--latent-dim", "16"),
        ("--iterations", "2"),
    ] {
        if !extra.contains(&flag) {
            args.extend([flag, value]);
        }
    }
    args.extend_from_slice(extra);
    args
}

#[test]
fn nonsense_settings_are_refused_before_any_work() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::write(d.join("keep.txt"), "a file that must survive").unwrap();
    for (extra, wanted) in [
        (&["--width", "100000"][..], "width 100000 is out of range"),
        (&["--latent-dim", "100000000"], "latent dimension 100000000"),
        (&["--lr=-1"], "--lr: the learning rate must be positive"),
        (&["--lr", "0"], "learning rate must be positive"),
        (&["--lr", "NaN"], "learning rate must be positive"),
        (
            &["--objective", "clip", "--clip=-0.01"],
            "clipping bound must be positive",
        ),
        (
            &["--objective", "gp", "--lambda=-10"],
            "--lambda: the gradient penalty weight must be finite and not negative",
        ),
        (&["--objective", "clip", "--beta1", "0.5"], "--beta1"),
        // An option the objective ignores is refused, not silently dropped.
        (
            &["--objective", "gp", "--clip=-1"],
            "which the gp objective does not clip",
        ),
        (
            &["--objective", "clip", "--lambda", "5"],
            "which the clip objective does not use",
        ),
        (&["--recipe", "best"], "unknown recipe"),
        (
            &["--objective", "gp", "--beta1", "1.5"],
            "beta1 must lie in [0, 1)",
        ),
        (
            &["--n-critic", "0"],
            "--n-critic: n_critic must be at least 1",
        ),
        (&["--init", "zeros"], "unknown initialisation"),
        (&["--normal-class", "giraffe"], "unknown class \"giraffe\""),
        (&["--resume"], "holds no training run to continue"),
        (
            &["--cuda-graph"],
            "--cuda-graph: CUDA graphs need a CUDA device, not cpu",
        ),
    ] {
        refused(d, &train_args("run", extra), wanted);
    }
    let (_, stderr) = adgan_in(d, &train_args("run", &["--normal-class", "12x"]));
    assert!(!stderr.contains("invalid digit"), "{stderr}");
}

#[test]
fn scoring_refuses_nonsense_before_scoring() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let (code, stderr) = adgan_in(
        d,
        &train_args("run", &["--batch-size", "5000", "--n-critic", "1"]),
    );
    assert_eq!(code, 0, "{stderr}");
    assert!(
        stderr.contains("--batch-size 5000 is more than the 922 training images"),
        "{stderr}"
    );
    let score = |extra: &[&'static str]| -> Vec<&'static str> {
        let mut args = vec![
            "score",
            "--model",
            "run",
            "--dataset",
            "demo",
            "--normal-class",
            "disc",
            "--n-test",
            "8",
            "--device",
            "cpu",
        ];
        args.extend_from_slice(extra);
        args
    };
    std::os::unix::fs::symlink(d.join("run/calibration.json"), d.join("link-to-run.csv")).unwrap();
    // Outputs another process holds are refused before any work, naming the holder.
    let _held = adgan::output::OutputLock::acquire(&d.join("held.csv"), false, "a test").unwrap();
    for (extra, wanted) in [
        (
            &["--out", "s.csv", "--lr-z", "0"][..],
            "lr_z must be positive",
        ),
        (
            &["--out", "s.csv", "--lr-theta=-1"],
            "lr_theta must be positive",
        ),
        (&["--out", "s.csv", "--n-seed", "100000000"], "lower n_seed"),
        (
            &["--out", "s.csv", "--batch-images", "0"],
            "--batch-images must be at least 1",
        ),
        (
            &["--out", "s.csv", "--method", "kde", "--pca-dim", "0"],
            "PCA dimensions must be at least 1",
        ),
        (
            &["--out", "s.csv", "--method", "kde", "--maps", "maps"],
            "--maps needs --method adgan or adgan-ic",
        ),
        (
            &["--out", "run/checkpoint.safetensors", "--force"],
            "inside the training run",
        ),
        (
            &["--out", "run/config.json", "--force"],
            "inside the training run",
        ),
        (
            &["--out", "run/calibration.json", "--force"],
            "inside the training run",
        ),
        (
            &["--out", "run/samples/new.png", "--force"],
            "inside the training run",
        ),
        (&["--out", "run/new-scores.csv"], "inside the training run"),
        (
            &["--out", "link-to-run.csv", "--force"],
            "inside the training run",
        ),
        (&["--out", "run", "--force"], "is a folder"),
        (&["--out", "/dev/null", "--force"], "not a regular file"),
        (
            &["--out", "run/samples/../losses.csv"],
            "pass --force to replace it",
        ),
    ] {
        refused(d, &score(extra), wanted);
    }
    // The flag is named, and why it cannot run here.
    for wanted in [
        "error: --cuda-graph: ",
        "CUDA graphs need a CUDA device, not cpu",
    ] {
        refused(d, &score(&["--out", "s.csv", "--cuda-graph"]), wanted);
    }
    assert!(
        d.join("run/calibration.json").is_file() && !d.join("run/new-scores.csv").exists(),
        "the run's files are untouched"
    );
    refused(
        d,
        &[
            "score",
            "--model",
            "run",
            "--dataset",
            "demo",
            "--n-test",
            "40",
            "--out",
            "s.csv",
        ],
        "--normal-class",
    );
    refused(
        d,
        &[
            "rank", "--model", "run", "--images", "run", "--top", "0", "--out", "r",
        ],
        "--top must be at least 1",
    );
    // A run written by a newer adgan is refused, not misread.
    let config_path = d.join("run/config.json");
    let config = std::fs::read_to_string(&config_path).unwrap();
    let newer = config.replacen("\"format_version\": ", "\"format_version\": 9", 1);
    assert_ne!(newer, config);
    std::fs::write(&config_path, &newer).unwrap();
    refused(
        d,
        &score(&["--out", "s.csv"]),
        "newer than this adgan reads",
    );
    std::fs::write(&config_path, &config).unwrap();
    let run_lock = adgan::output::OutputLock::acquire(&d.join("run"), true, "a test").unwrap();
    refused(d, &train_args("run", &["--resume"]), "(a test)");
    refused(
        d,
        &["calibrate", "--model", "run", "--device", "cpu"],
        "run is in use",
    );
    drop(run_lock);
    // An experiment with a class the data does not have fails before any class trains.
    let (code, stderr) = adgan_in(
        d,
        &[
            "experiment",
            "one-vs-all",
            "--dataset",
            "demo",
            "--classes",
            "disc,unicorn",
            "--width",
            "8",
            "--iterations",
            "2",
            "--device",
            "cpu",
            "--out",
            "exp",
        ],
    );
    assert_eq!(code, 1, "{stderr}");
    assert!(stderr.contains("unknown class \"unicorn\""), "{stderr}");
    assert!(!d.join("exp").exists(), "nothing was trained or written");
    // An experiment into a training run's folder, or onto a file, is refused.
    for out in ["run", "run/losses.csv"] {
        refused(
            d,
            &[
                "experiment",
                "one-vs-all",
                "--dataset",
                "demo",
                "--classes",
                "disc",
                "--out",
                out,
            ],
            out,
        );
    }
}

/// An IDX file whose header promises empty or impossible dimensions is refused by name.
#[test]
fn impossible_idx_headers_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    for (name, dims) in [
        ("zero.idx", [3u32, 0, 0]),
        ("huge.idx", [u32::MAX, u32::MAX, u32::MAX]),
    ] {
        let path = dir.path().join(name);
        let mut bytes = vec![0u8, 0, 8, 3];
        for d in dims {
            bytes.extend(d.to_be_bytes());
        }
        std::fs::write(&path, bytes).unwrap();
        let text = common::error_text(adgan::data::idx::read_images(&path));
        assert!(text.contains(name), "{text}");
    }
}

/// Applies one seeded mutation to `bytes`: flipped bytes, a cut, a random 32-bit field, junk at
/// the end, or a repeated slice.
fn mutate(bytes: &[u8], rng: &mut rand_chacha::ChaCha8Rng) -> Vec<u8> {
    let mut out = bytes.to_vec();
    if out.is_empty() {
        return vec![rng.gen()];
    }
    match rng.gen_range(0..5) {
        0 => {
            for _ in 0..rng.gen_range(1..8) {
                let i = rng.gen_range(0..out.len());
                out[i] = rng.gen();
            }
        }
        1 => out.truncate(rng.gen_range(0..out.len())),
        2 => {
            let i = rng.gen_range(0..out.len().saturating_sub(4).max(1));
            let field: u32 = rng.gen();
            for (k, b) in field.to_be_bytes().iter().enumerate() {
                if i + k < out.len() {
                    out[i + k] = *b;
                }
            }
        }
        3 => out.extend((0..rng.gen_range(1..64)).map(|_| rng.gen::<u8>())),
        _ => {
            let i = rng.gen_range(0..out.len());
            let j = rng.gen_range(i..out.len());
            let copy = out[i..j].to_vec();
            out.splice(i..i, copy);
        }
    }
    out
}

/// Feeds `cases` mutations of `valid` to `read` (through a file at `path`), asserting that none
/// panics; returns how many were refused with an error.
fn fuzz(
    valid: &[u8],
    path: &Path,
    cases: usize,
    seed: u64,
    read: &dyn Fn(&Path) -> anyhow::Result<()>,
) -> usize {
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    let mut errors = 0;
    for case in 0..cases {
        let bytes = mutate(valid, &mut rng);
        std::fs::write(path, &bytes).unwrap();
        let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| read(path)));
        match outcome {
            Ok(Ok(())) => {}
            Ok(Err(_)) => errors += 1,
            Err(_) => panic!(
                "case {case} (seed {seed}) panicked on {} bytes: {:?}",
                bytes.len(),
                &bytes[..bytes.len().min(64)]
            ),
        }
    }
    errors
}

/// Mutations per reader: 300 in CI, more with ADGAN_FUZZ_CASES (a longer run by hand).
fn fuzz_cases() -> usize {
    std::env::var("ADGAN_FUZZ_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(300)
}

/// Bounded fuzzing of every reader and of checkpoint loading: seeded mutations of valid files.
#[test]
fn readers_survive_mutated_files() {
    let cases = fuzz_cases();
    use adgan::data::{cifar, folder, idx, RawImages, Split};
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let raw = RawImages {
        count: 4,
        height: 5,
        width: 6,
        channels: 1,
        pixels: (0..120).map(|i| i as u8).collect(),
    };
    let idx_path = d.join("images.idx");
    idx::write(&idx_path, &[4, 5, 6], &raw.pixels, false).unwrap();
    let valid = std::fs::read(&idx_path).unwrap();
    let target = d.join("fuzz.idx");
    let errors = fuzz(&valid, &target, cases, 1, &|p| {
        idx::read_images(p).map(|_| ())
    });
    assert!(errors > cases / 6, "many mutations are refused ({errors})");
    let gz_path = d.join("labels.idx.gz");
    idx::write(&gz_path, &[4], &[1, 2, 3, 4], true).unwrap();
    let valid = std::fs::read(&gz_path).unwrap();
    fuzz(&valid, &d.join("fuzz.idx.gz"), cases, 2, &|p| {
        idx::read_labels(p).map(|_| ())
    });

    // CIFAR-10 binary: a test batch of three records.
    let cifar_dir = d.join("cifar");
    std::fs::create_dir(&cifar_dir).unwrap();
    let rgb = RawImages {
        count: 3,
        height: 32,
        width: 32,
        channels: 3,
        pixels: (0..3 * 32 * 32 * 3).map(|i| (i % 251) as u8).collect(),
    };
    let batch = cifar_dir.join("test_batch.bin");
    cifar::write_batch(&batch, &rgb, &[1, 2, 3]).unwrap();
    let valid = std::fs::read(&batch).unwrap();
    fuzz(&valid, &batch, cases, 3, &|_| {
        cifar::read(&cifar_dir, Split::Test).map(|_| ())
    });

    // A PNG read by the folder reader.
    let png = d.join("x.png");
    let pixels: Vec<u8> = (0..8 * 8 * 3).map(|i| i as u8).collect();
    image::save_buffer(&png, &pixels, 8, 8, image::ExtendedColorType::Rgb8).unwrap();
    let valid = std::fs::read(&png).unwrap();
    fuzz(&valid, &png, cases, 4, &|p| {
        folder::decode(p, 3).map(|_| ())
    });

    // A checkpoint: its safetensors header and tensors.
    let ckpt = d.join("checkpoint.safetensors");
    let t = tch::Tensor::arange(64, (tch::Kind::Float, tch::Device::Cpu)).view([4, 16]);
    adgan::io::save_tensors(&ckpt, &[("generator/conv0.weight".into(), t)]).unwrap();
    let valid = std::fs::read(&ckpt).unwrap();
    fuzz(&valid, &ckpt, cases, 5, &|p| {
        adgan::io::load_tensors(p).map(|_| ())
    });
}
