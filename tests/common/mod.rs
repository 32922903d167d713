//! Helpers shared by the integration tests.
#![allow(dead_code)]

use adgan::data::{DataSource, Dataset, Fit, ImageSpec};
use adgan::model::ModelConfig;
use adgan::train::{self, RunConfig, TrainConfig, FORMAT_VERSION};

/// A model small enough to train in seconds on two cores.
pub fn tiny_model() -> ModelConfig {
    ModelConfig {
        image_size: 32,
        channels: 3,
        latent_dim: 16,
        width: 8,
    }
}

/// The demo's normal class (discs) fitted to the tiny model, with its provenance.
pub fn demo_training_data() -> (Dataset, train::DataProvenance) {
    let spec = ImageSpec {
        size: 32,
        channels: 3,
    };
    train::load_training_data(&DataSource::Demo { seed: 0 }, Some("disc"), spec, Fit::Pad).unwrap()
}

/// A run configuration for the tiny model on demo data.
pub fn tiny_run(train: TrainConfig, data: train::DataProvenance) -> RunConfig {
    RunConfig {
        format_version: FORMAT_VERSION,
        model: tiny_model(),
        train,
        data,
    }
}

/// Trains the tiny model on the demo discs for `iterations` WGAN-GP steps (batch 16, one critic
/// step) into `run`; returns its configuration.
pub fn train_tiny_gp(run: &std::path::Path, iterations: usize) -> RunConfig {
    let (data, provenance) = demo_training_data();
    let config = tiny_run(
        TrainConfig {
            iterations,
            batch_size: 16,
            n_critic: 1,
            checkpoint_every: 100,
            sample_every: 100,
            optimizer: adgan::optim::OptimizerConfig::adam(1e-3, 0.5, 0.9),
            ..TrainConfig::gradient_penalty()
        },
        provenance,
    );
    let fresh = train::TrainOptions::default();
    train::train(run, &config, &data, tch::Device::Cpu, fresh, &mut |_| {
        std::ops::ControlFlow::Continue(())
    })
    .unwrap();
    config
}

/// Path of the shared data folder, when present.
pub fn shared_data(name: &str) -> Option<std::path::PathBuf> {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../shared/data")
        .join(name);
    if path.is_dir() {
        Some(path)
    } else {
        eprintln!("skipping: {} is absent", path.display());
        None
    }
}

/// The full error chain of a result that must be an error.
pub fn error_text<T>(result: anyhow::Result<T>) -> String {
    match result {
        Ok(_) => panic!("expected an error"),
        Err(err) => format!("{err:#}"),
    }
}

/// Runs the `adgan` binary with `args`, checks that it succeeded (showing its stderr if not) and
/// returns its standard output.
pub fn adgan_ok(args: &[&str]) -> String {
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_adgan"))
        .args(args)
        .output()
        .expect("the adgan binary runs");
    assert!(
        output.status.success(),
        "adgan {args:?} failed:\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).expect("UTF-8 output")
}

/// Runs the `adgan` binary with `args`: whether it succeeded, its standard output and its
/// standard error.
pub fn adgan_output(args: &[&str]) -> (bool, String, String) {
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_adgan"))
        .args(args)
        .output()
        .expect("the adgan binary runs");
    (
        output.status.success(),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

/// Trains a tiny GAN (width 8, d' 16, batch 16) on the demo's discs with `adgan train` into
/// `run` for `iterations` steps on the CPU, with `extra` flags; checks that it succeeded and
/// returns its standard output and error.
pub fn train_demo(run: &str, iterations: usize, extra: &[&str]) -> (String, String) {
    let iterations = iterations.to_string();
    let args = [
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
        &iterations,
        "--batch-size",
        "16",
        "--device",
        "cpu",
        "--out",
        run,
    ];
    let (ok, stdout, stderr) = adgan_output(&[&args[..], extra].concat());
    assert!(ok, "adgan train failed:\n{stderr}");
    (stdout, stderr)
}

/// Runs the `adgan` binary with `args`, checks that it failed and returns its standard error.
pub fn adgan_err(args: &[&str]) -> String {
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_adgan"))
        .args(args)
        .output()
        .expect("the adgan binary runs");
    assert!(!output.status.success(), "adgan {args:?} succeeded");
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// Writes image `i` of the demo's images `raw` (RGB) to `path` as a PNG.
pub fn save_demo_png(raw: &adgan::data::RawImages, i: usize, path: &std::path::Path) {
    assert_eq!(raw.channels, 3, "the demo's images are RGB");
    let len = raw.image_len();
    let pixels = &raw.pixels[i * len..(i + 1) * len];
    let (width, height) = (raw.width as u32, raw.height as u32);
    image::save_buffer(path, pixels, width, height, image::ExtendedColorType::Rgb8).unwrap();
}
