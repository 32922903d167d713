//! The DCAE and VAE baselines: training lowers the loss, the scores separate the demo's
//! anomalies, a trained network is reused, and another configuration is refused.

mod common;

use adgan::autoencoder::{Autoencoder, AutoencoderConfig, AutoencoderKind};
use adgan::data::{one_vs_all, DataSource, Dataset, Fit, ImageSpec, Split};
use adgan::eval::roc_auc;
use adgan::model::ModelConfig;
use adgan::score::dcae::DcaeScore;
use adgan::score::vae::VaeScore;
use adgan::score::{score_all, Detector};
use tch::Device;

fn model() -> ModelConfig {
    ModelConfig {
        width: 16,
        ..common::tiny_model()
    }
}

fn config() -> AutoencoderConfig {
    AutoencoderConfig {
        code_dim: 16,
        iterations: 150,
        batch_size: 32,
        ..AutoencoderConfig::default()
    }
}

/// Demo discs to train on and a labelled test draw.
fn demo() -> (Dataset, Dataset) {
    let spec = ImageSpec {
        size: 32,
        channels: 3,
    };
    let source = DataSource::Demo { seed: 0 };
    let train = source.load(Split::Train, spec, Fit::Pad).unwrap();
    let test = source.load(Split::Test, spec, Fit::Pad).unwrap();
    let task = one_vs_all(&train, &test, 0, 120, 4).unwrap();
    (task.train, task.test)
}

fn train(kind: AutoencoderKind, data: &Dataset, dir: &std::path::Path) -> (Autoencoder, Vec<f64>) {
    let mut losses = Vec::new();
    let ae = Autoencoder::train_or_load(
        kind,
        model(),
        config(),
        data,
        dir,
        Device::Cpu,
        &mut |_, l| losses.push(l),
    )
    .unwrap();
    (ae, losses)
}

fn mean(v: &[f64]) -> f64 {
    v.iter().sum::<f64>() / v.len() as f64
}

#[test]
fn dcae_and_vae_learn_and_separate_the_demo() {
    let (normal, test) = demo();
    let labels = test.labels.clone().unwrap();
    for kind in [AutoencoderKind::Dcae, AutoencoderKind::Vae] {
        let dir = tempfile::tempdir().unwrap();
        let (ae, losses) = train(kind, &normal, dir.path());
        assert_eq!(losses.len(), 150);
        let (first, last) = (mean(&losses[..20]), mean(&losses[130..]));
        assert!(last < first, "{kind:?}: loss {first} -> {last}");
        let mut detector: Box<dyn Detector> = match kind {
            AutoencoderKind::Dcae => Box::new(DcaeScore::new(ae).unwrap()),
            AutoencoderKind::Vae => Box::new(VaeScore::new(ae, 0).unwrap()),
        };
        let scores = score_all(
            detector.as_mut(),
            &test.images,
            50,
            Device::Cpu,
            &mut |_, _| {},
        )
        .unwrap();
        // Scores depend on the image alone: one at a time gives the same numbers.
        let alone = score_all(
            detector.as_mut(),
            &test.images.narrow(0, 0, 5),
            1,
            Device::Cpu,
            &mut |_, _| {},
        )
        .unwrap();
        for (a, b) in alone.iter().zip(&scores) {
            assert!(
                (a - b).abs() <= 1e-4 * b.abs().max(1.0),
                "{kind:?}: {a} vs {b}"
            );
        }
        let auc = roc_auc(&scores, &labels).unwrap();
        eprintln!("{kind:?}: AUC {auc:.4}");
        assert!(auc > 0.8, "{kind:?}: ROC-AUC {auc}");

        // Trained once: a second call loads the weights, and scores the same.
        let (again, losses) = train(kind, &normal, dir.path());
        assert!(losses.is_empty(), "{kind:?} was trained again");
        let mut detector: Box<dyn Detector> = match kind {
            AutoencoderKind::Dcae => Box::new(DcaeScore::new(again).unwrap()),
            AutoencoderKind::Vae => Box::new(VaeScore::new(again, 0).unwrap()),
        };
        let reloaded = detector.score_batch(&test.images.narrow(0, 0, 5)).unwrap();
        for (a, b) in reloaded.iter().zip(&scores) {
            assert!(
                (a - b).abs() <= 1e-4 * b.abs().max(1.0),
                "{kind:?}: {a} vs {b}"
            );
        }
    }
}

#[test]
fn another_autoencoder_in_the_folder_is_refused() {
    let (normal, _) = demo();
    let dir = tempfile::tempdir().unwrap();
    let small = AutoencoderConfig {
        iterations: 2,
        ..config()
    };
    let dcae = |config| {
        Autoencoder::train_or_load(
            AutoencoderKind::Dcae,
            model(),
            config,
            &normal,
            dir.path(),
            Device::Cpu,
            &mut |_, _| {},
        )
    };
    dcae(small).unwrap();
    let text = common::error_text(dcae(AutoencoderConfig {
        code_dim: 8,
        ..small
    }));
    assert!(
        text.contains("another autoencoder") && text.contains(dir.path().to_str().unwrap()),
        "{text}"
    );
    // A truncated weights file names itself.
    std::fs::write(dir.path().join("autoencoder.safetensors"), b"\x10\x00").unwrap();
    let text = common::error_text(dcae(small));
    assert!(text.contains("autoencoder.safetensors"), "{text}");
}
