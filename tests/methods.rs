//! The method registry: every method builds from one set of inputs, scores images, says what
//! it chose, and `adgan` and `prior` from one shared search equal their own detectors.

mod common;

use adgan::autoencoder::AutoencoderConfig;
use adgan::data::{DataSource, Fit, Split};
use adgan::run::load_gan;
use adgan::score::adgan::AdganConfig;
use adgan::score::anogan::AnoganConfig;
use adgan::score::complexity::{self, ComplexityLine};
use adgan::score::ensemble::{Ensemble, EnsembleConfig, Normalizer, Rule};
use adgan::score::features::{PcaConfig, Validation};
use adgan::score::method::{self, Inputs, Method};
use adgan::score::score_all;
use tch::Device;

#[test]
fn every_method_builds_and_scores_from_one_set_of_inputs() {
    let dir = tempfile::tempdir().unwrap();
    let run = dir.path().join("run");
    let config = common::train_tiny_gp(&run, 10);
    let (data, _) = common::demo_training_data();
    let gan = load_gan(&run, Device::Cpu).unwrap();
    let spec = config.model.image_spec();
    let all = DataSource::Demo { seed: 0 }
        .load(Split::Train, spec, Fit::Pad)
        .unwrap();
    let others = adgan::data::other_classes(&all, 0).unwrap();
    let validation = Validation::draw(&data, &others, 0.1, 0).unwrap();
    let probe = DataSource::Demo { seed: 0 }
        .load(Split::Test, spec, Fit::Pad)
        .unwrap()
        .images
        .narrow(0, 0, 5);
    let autoencoder_dir = |m: Method| dir.path().join(m.name());
    // An ensemble of ADGAN and KDE, its normalisers fitted on made-up normal scores.
    let ensemble = Ensemble::fit(
        &EnsembleConfig {
            members: vec![Method::Adgan, Method::Kde],
            normalizer: Normalizer::Standard,
            rule: Rule::Mean,
        },
        &[vec![0.1, 0.2, 0.3], vec![-5.0, 0.0, 5.0]],
    )
    .unwrap();
    let inputs = Inputs {
        device: Device::Cpu,
        model: config.model,
        gan: Some(&gan),
        search: AdganConfig {
            n_seed: 4,
            k: 2,
            ..AdganConfig::default()
        },
        batch_images: Some(2),
        cuda_graph: false,
        anogan: AnoganConfig {
            steps: 3,
            ..AnoganConfig::default()
        },
        autoencoder: AutoencoderConfig {
            code_dim: 4,
            iterations: 3,
            batch_size: 8,
            ..AutoencoderConfig::default()
        },
        autoencoder_dir: &autoencoder_dir,
        classic_dir: None,
        trained_on: None,
        normal: Some(&data),
        validation: Some(&validation),
        pca: PcaConfig {
            dims: vec![4, 8],
            ..PcaConfig::default()
        },
        alexnet: None,
        alexnet_layer: Default::default(),
        complexity: Some(ComplexityLine {
            intercept: -3.0,
            slope: 0.5,
        }),
        ensemble: Some(&ensemble),
    };
    let mut scores = std::collections::HashMap::new();
    for method in Method::ALL {
        if method.uses_alexnet() {
            let err = method::build(method, &inputs, &mut |_, _| {})
                .err()
                .unwrap();
            assert!(format!("{err:#}").contains("AlexNet weights"), "{err:#}");
            continue;
        }
        let mut fitted = 0;
        let mut built = method::build(method, &inputs, &mut |_, _| fitted += 1).unwrap();
        let s = score_all(
            built.detector.as_mut(),
            &probe,
            built.batch,
            Device::Cpu,
            &mut |_, _| {},
        )
        .unwrap();
        assert_eq!(s.len(), 5, "{method:?}");
        assert!(s.iter().all(|v| v.is_finite()), "{method:?}: {s:?}");
        assert!(!built.summary.is_empty());
        match method {
            Method::Adgan | Method::Prior => {
                assert_eq!(built.batch, 2, "--batch-images reaches it")
            }
            Method::Dcae | Method::Vae => assert_eq!(fitted, 3, "{method:?} trains its iterations"),
            m if m.classic().is_some() => {
                assert!(
                    [4.0, 8.0].contains(&built.chosen["pca_dim"]),
                    "{:?}",
                    built.chosen
                )
            }
            _ => {}
        }
        scores.insert(method, s);
    }
    // The ensemble combines its members' scores, as they are on their own.
    let members = [scores[&Method::Adgan].clone(), scores[&Method::Kde].clone()];
    assert_eq!(
        ensemble.combine(&members).unwrap(),
        scores[&Method::Ensemble]
    );
    // `adgan` and `prior` from one search are the scores of their own detectors.
    let [adgan, prior] = method::search_columns(&inputs, &probe, &mut |_, _| {}).unwrap();
    assert_eq!(adgan, scores[&Method::Adgan]);
    assert_eq!(prior, scores[&Method::Prior]);
    // `adgan-ic` is ADGAN's score, corrected by the line for each image's PNG length.
    let lengths = complexity::png_lengths(&probe).unwrap();
    let line = inputs.complexity.unwrap();
    for ((&a, &l), &c) in adgan.iter().zip(&lengths).zip(&scores[&Method::AdganIc]) {
        assert!(
            (line.correct(a, l) - c).abs() < 1e-12,
            "{c} against {a} at {l}"
        );
    }
    let no_line = Inputs {
        complexity: None,
        pca: inputs.pca.clone(),
        ..inputs
    };
    let err = method::build(Method::AdganIc, &no_line, &mut |_, _| {})
        .err()
        .unwrap();
    assert!(format!("{err:#}").contains("adgan calibrate"), "{err:#}");
    // A method that needs what the inputs lack says so.
    let no_gan = Inputs {
        gan: None,
        ..inputs
    };
    let err = method::build(Method::Critic, &no_gan, &mut |_, _| {})
        .err()
        .unwrap();
    assert!(
        format!("{err:#}").contains("critic needs a trained GAN"),
        "{err:#}"
    );
}

/// A method has one name: in tables and files, in JSON, and on the command line.
#[test]
fn every_method_has_one_name() {
    use clap::ValueEnum;
    assert_eq!(Method::value_variants(), Method::ALL.as_slice());
    for method in Method::ALL {
        let json = serde_json::to_string(&method).unwrap();
        assert_eq!(json, format!("\"{}\"", method.name()));
        let cli = method.to_possible_value().unwrap();
        assert_eq!(cli.get_name(), method.name());
    }
}
