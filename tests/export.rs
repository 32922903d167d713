//! `adgan export`: the run's networks under PyTorch nn.Sequential keys, with the model in the
//! header; where PyTorch and safetensors are installed (`scripts/setup.sh --full`), loaded by
//! plain PyTorch models that give the same images and critic values.

mod common;

use adgan::run::load_gan;
use std::path::Path;
use tch::{Device, Kind, Tensor};

#[test]
fn an_export_loads_into_plain_pytorch_models() {
    let dir = tempfile::tempdir().unwrap();
    let run = dir.path().join("run");
    let config = common::train_tiny_gp(&run, 4);
    // The checkpoint says what it holds by itself.
    let meta = adgan::io::read_metadata(&run.join(adgan::train::CHECKPOINT_FILE)).unwrap();
    assert_eq!(meta["format"], "adgan-checkpoint");
    assert_eq!(meta["iteration"], "4");
    let out = dir.path().join("export.safetensors");
    let out_str = out.to_str().unwrap();
    common::adgan_ok(&["export", "--model", run.to_str().unwrap(), "--out", out_str]);
    let meta = adgan::io::read_metadata(&out).unwrap();
    let model: adgan::model::ModelConfig = serde_json::from_str(&meta["model"]).unwrap();
    assert_eq!(model, config.model);
    let tensors = adgan::io::load_tensors(&out).unwrap();
    for key in [
        "generator.0.weight",
        "generator.1.running_var",
        "generator.1.num_batches_tracked",
        "generator.9.weight",
        "critic.0.bias",
        "critic.6.weight",
    ] {
        assert!(tensors.contains_key(key), "{key} missing");
    }
    // A second export onto the same file needs --force.
    let again = std::process::Command::new(env!("CARGO_BIN_EXE_adgan"))
        .args(["export", "--model", run.to_str().unwrap(), "--out", out_str])
        .output()
        .unwrap();
    assert!(!again.status.success());

    let python = Path::new(env!("CARGO_MANIFEST_DIR")).join(".venv/bin/python");
    let has_torch = std::process::Command::new(&python)
        .args(["-c", "import torch, safetensors"])
        .output()
        .is_ok_and(|o| o.status.success());
    if !has_torch {
        eprintln!("skipping the PyTorch load: no torch and safetensors (scripts/setup.sh --full)");
        return;
    }
    let gan = load_gan(&run, Device::Cpu).unwrap();
    let z = adgan::rng::normal(&mut adgan::rng::seeded(9), &[3, 16], 0.0, 1.0, Device::Cpu);
    let expected = tch::no_grad(|| gan.generator.forward(&z, false));
    let critic = tch::no_grad(|| gan.critic.forward(&expected));
    let check = dir.path().join("check.safetensors");
    let contiguous = |t: &Tensor| t.contiguous().to_kind(Kind::Float);
    adgan::io::save_tensors(
        &check,
        &[
            ("z".into(), contiguous(&z)),
            ("expected".into(), contiguous(&expected)),
            ("critic".into(), contiguous(&critic)),
        ],
    )
    .unwrap();
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("bench/load_export.py");
    let output = std::process::Command::new(&python)
        .arg(script)
        .args([out_str, check.to_str().unwrap()])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let gaps: Vec<f64> = stdout
        .split_whitespace()
        .map(|v| v.parse().unwrap())
        .collect();
    assert!(
        gaps[0] < 1e-4 && gaps[1] < 1e-3,
        "PyTorch differs by {gaps:?}"
    );
}
