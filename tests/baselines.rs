//! The classic baselines (PCA + KDE, OC-SVM, Isolation Forest, GMM): hyperparameter choice,
//! separation of the demo's anomalies, and clear errors on bad input.

mod common;

use adgan::data::{self, DataSource, Dataset, Fit, ImageSpec, Split};
use adgan::eval::roc_auc;
use adgan::score::classic::{fit_classic, Classic};
use adgan::score::features::{FeatureExtractor, FeatureModel, Pca, PcaConfig, Validation};
use adgan::score::gmm::{Gmm, GmmConfig};
use adgan::score::iforest::{IsolationForest, IsolationForestConfig};
use adgan::score::kde::{bandwidth_grid, Kde};
use adgan::score::ocsvm::{OcSvm, OcSvmConfig};
use adgan::score::score_all;
use rand::Rng;
use rand_distr::StandardNormal;
use tch::{Device, Kind, Tensor};

/// Demo data in grey (1024 dimensions keep PCA fast): normal training discs, other training
/// classes, and a labelled test draw.
fn demo() -> (Dataset, Dataset, Dataset) {
    let spec = ImageSpec {
        size: 32,
        channels: 1,
    };
    let source = DataSource::Demo { seed: 0 };
    let train = source.load(Split::Train, spec, Fit::Pad).unwrap();
    let test = source.load(Split::Test, spec, Fit::Pad).unwrap();
    let normal = data::normal_class_index(&train, "disc").unwrap();
    let task = data::one_vs_all(&train, &test, normal, 200, 3).unwrap();
    let others = data::other_classes(&train, normal).unwrap();
    (task.train, others, task.test)
}

/// n points from N(centre, scale^2 I) in d dimensions, seeded.
fn gaussian(n: usize, d: usize, centre: f64, scale: f64, seed: u64) -> Tensor {
    let mut rng = adgan::rng::seeded(seed);
    let values: Vec<f64> = (0..n * d)
        .map(|_| centre + scale * rng.sample::<f64, _>(StandardNormal))
        .collect();
    Tensor::from_slice(&values).view([n as i64, d as i64])
}

fn scores(model: &dyn FeatureModel, x: &Tensor) -> Vec<f64> {
    Vec::<f64>::try_from(&model.score(x).unwrap().to_kind(Kind::Double)).unwrap()
}

#[test]
fn every_classic_baseline_separates_the_demo_anomalies() {
    let (normal, others, test) = demo();
    let config = PcaConfig {
        dims: vec![8, 16],
        ..PcaConfig::default()
    };
    let validation = Validation::draw(&normal, &others, 0.1, 0).unwrap();
    let labels = test.labels.clone().unwrap();
    let pixels = FeatureExtractor::Pixels;
    for kind in [
        Classic::Kde,
        Classic::OcSvm,
        Classic::IsolationForest,
        Classic::Gmm,
    ] {
        let mut fitted =
            fit_classic(kind, &pixels, &normal.images, Some(&validation), &config).unwrap();
        let dim = fitted.chosen["pca_dim"] as usize;
        assert!(config.dims.contains(&dim), "{kind:?} chose {dim}");
        let s = score_all(
            fitted.detector.as_mut(),
            &test.images,
            64,
            Device::Cpu,
            &mut |_, _| {},
        )
        .unwrap();
        let auc = roc_auc(&s, &labels).unwrap();
        eprintln!("{kind:?}: d' {dim}, AUC {auc:.4}");
        // On these shapes the OC-SVM and the Isolation Forest separate little, and
        // scikit-learn's do the same (bench/baselines.py on `adgan bench baselines --dataset
        // demo --dump`: equal AUCs), so only the density models must pass 0.8.
        if matches!(kind, Classic::Kde | Classic::Gmm) {
            assert!(auc > 0.8, "{kind:?}: AUC {auc}");
        }
        assert!(auc > 0.5, "{kind:?}: AUC {auc}");
        if kind == Classic::Kde {
            assert!(bandwidth_grid().contains(&fitted.chosen["bandwidth"]));
        }
        if kind == Classic::Gmm {
            let k = fitted.chosen["components"];
            assert!((2.0..=20.0).contains(&k), "{k} components");
        }
    }
}

#[test]
fn without_validation_the_fallback_dimension_is_used() {
    let (normal, _, _) = demo();
    let config = PcaConfig {
        fallback_dim: 12,
        ..PcaConfig::default()
    };
    let fitted = fit_classic(
        Classic::IsolationForest,
        &FeatureExtractor::Pixels,
        &normal.images,
        None,
        &config,
    )
    .unwrap();
    assert_eq!(fitted.chosen["pca_dim"], 12.0);
}

#[test]
fn pca_finds_the_plane_the_data_lies_in() {
    // Points on a 2-D plane in 10-D (spread 3 and 1 along two orthogonal directions) plus a
    // little noise: the top two components span the plane and keep its variances.
    let plane = gaussian(500, 2, 0.0, 1.0, 1) * Tensor::from_slice(&[3.0f64, 1.0]);
    let basis = Tensor::from_slice(&[
        0.6f64, 0.8, 0., 0., 0., 0., 0., 0., 0., 0., //
        0., 0., 1., 0., 0., 0., 0., 0., 0., 0.,
    ])
    .view([2, 10]);
    let x = plane.matmul(&basis) + gaussian(500, 10, 0.0, 0.01, 2) + 5.0;
    let pca = Pca::fit(&x, 2).unwrap();
    let projected = pca.project(&x);
    let variances = Vec::<f64>::try_from(&projected.var_dim(0, true, false)).unwrap();
    assert!((variances[0] / 9.0 - 1.0).abs() < 0.2, "{variances:?}");
    assert!((variances[1] - 1.0).abs() < 0.2, "{variances:?}");
    let reconstruction_error = (&x - &x.mean_dim(0, true, Kind::Double))
        .square()
        .sum(Kind::Double)
        .double_value(&[])
        - projected.square().sum(Kind::Double).double_value(&[]);
    assert!(
        reconstruction_error / 500.0 < 0.01,
        "{reconstruction_error}"
    );
}

#[test]
fn pca_with_fewer_images_than_pixels_has_orthonormal_components() {
    // 30 points in 100-D take the N x N Gram route.
    let x = gaussian(30, 100, 0.0, 1.0, 10)
        * Tensor::linspace(0.1, 3.0, 100, (Kind::Double, Device::Cpu));
    let pca = Pca::fit(&x, 10).unwrap();
    let basis = pca.project(&(Tensor::eye(100, (Kind::Double, Device::Cpu))))
        - pca.project(&Tensor::zeros([1, 100], (Kind::Double, Device::Cpu)));
    let gram = basis.transpose(0, 1).matmul(&basis);
    let off = (&gram - Tensor::eye(10, (Kind::Double, Device::Cpu)))
        .abs()
        .max()
        .double_value(&[]);
    assert!(off < 1e-9, "components are not orthonormal: {off}");
    let variances = Vec::<f64>::try_from(&pca.project(&x).var_dim(0, true, false)).unwrap();
    assert!(
        variances.windows(2).all(|w| w[0] >= w[1] - 1e-9),
        "{variances:?}"
    );
}

#[test]
fn kde_bandwidth_follows_the_spread_of_the_data() {
    let tight =
        Kde::fit_cross_validated(&gaussian(300, 2, 0.0, 1.0, 3), &bandwidth_grid(), 10).unwrap();
    let wide =
        Kde::fit_cross_validated(&gaussian(300, 2, 0.0, 8.0, 3), &bandwidth_grid(), 10).unwrap();
    assert!(
        wide.bandwidth > tight.bandwidth,
        "{} vs {}",
        wide.bandwidth,
        tight.bandwidth
    );
    // A far point has a lower density than the centre.
    let s = scores(
        &tight,
        &Tensor::from_slice(&[0.0f64, 0.0, 6.0, 6.0]).view([2, 2]),
    );
    assert!(s[1] > s[0]);
}

#[test]
fn gmm_bic_counts_well_separated_clusters() {
    let x = Tensor::cat(
        &[
            gaussian(150, 3, -10.0, 1.0, 4),
            gaussian(150, 3, 0.0, 1.0, 5),
            gaussian(150, 3, 10.0, 1.0, 6),
        ],
        0,
    );
    let config = GmmConfig {
        max_components: 6,
        ..GmmConfig::default()
    };
    let gmm = Gmm::fit_by_bic(&x, &config).unwrap();
    assert_eq!(gmm.components(), 3);
    let again = Gmm::fit_by_bic(&x, &config).unwrap();
    assert_eq!(gmm.bic, again.bic, "same seed, same fit");
    let s = scores(
        &gmm,
        &Tensor::from_slice(&[0.0f64, 0.0, 0.0, 5.0, 5.0, 5.0]).view([2, 3]),
    );
    assert!(s[1] > s[0] + 5.0, "{s:?}");
}

#[test]
fn ocsvm_keeps_the_nu_property() {
    // Schölkopf et al.: nu bounds the fraction of training outliers from above and the
    // fraction of support vectors from below.
    let x = gaussian(400, 5, 0.0, 1.0, 7);
    let svm = OcSvm::fit(&x, &OcSvmConfig::default()).unwrap();
    let decision = Vec::<f64>::try_from(&svm.decision(&x)).unwrap();
    let outliers = decision.iter().filter(|&&d| d < -1e-6).count() as f64 / 400.0;
    let support = svm.support_vectors() as f64 / 400.0;
    assert!(outliers <= 0.1 + 0.01, "{outliers}");
    assert!(support >= 0.1 - 1e-9, "{support}");
    assert!((svm.gamma - 1.0 / (5.0 * x.var(false).double_value(&[]))).abs() < 1e-12);
    let centre = scores(&svm, &Tensor::from_slice(&[0.0f64; 5]).view([1, 5]))[0];
    let far = scores(&svm, &Tensor::from_slice(&[6.0f64; 5]).view([1, 5]))[0];
    assert!(far > centre, "{far} vs {centre}");
}

#[test]
fn isolation_forest_isolates_a_far_point_and_is_seeded() {
    let x = gaussian(500, 4, 0.0, 1.0, 8);
    let config = IsolationForestConfig::default();
    let forest = IsolationForest::fit(&x, &config).unwrap();
    let probe = Tensor::cat(
        &[
            x.narrow(0, 0, 20),
            Tensor::full([1, 4], 8.0, (Kind::Double, Device::Cpu)),
        ],
        0,
    );
    let s = scores(&forest, &probe);
    let max_normal = s[..20].iter().cloned().fold(f64::MIN, f64::max);
    assert!(s[20] > max_normal, "{} vs {max_normal}", s[20]);
    assert!(s.iter().all(|v| (0.0..=1.0).contains(v)));
    let again = IsolationForest::fit(&x, &config).unwrap();
    assert_eq!(scores(&again, &probe), s);
}

#[test]
fn bad_input_gives_clear_errors() {
    let few = gaussian(10, 50, 0.0, 1.0, 9);
    let text = common::error_text(Pca::fit(&few, 20));
    assert!(text.contains("too few") && text.contains("PCA"), "{text}");
    let mut values = vec![0.0f64; 40];
    values[7] = f64::NAN;
    let nan = Tensor::from_slice(&values).view([20, 2]);
    for text in [
        common::error_text(Kde::fit_cross_validated(&nan, &bandwidth_grid(), 10)),
        common::error_text(OcSvm::fit(&nan, &OcSvmConfig::default())),
        common::error_text(IsolationForest::fit(
            &nan,
            &IsolationForestConfig::default(),
        )),
        common::error_text(Gmm::fit(&nan, 2, &GmmConfig::default())),
    ] {
        assert!(text.contains("NaN"), "{text}");
    }
}

/// A randomly initialised AlexNet state dict with torchvision's names and shapes (He-scaled so
/// activations survive the ReLUs), optionally without one key.
fn random_alexnet(path: &std::path::Path, without: Option<&str>) {
    let layers: [(&str, Vec<i64>); 7] = [
        ("features.0", vec![64, 3, 11, 11]),
        ("features.3", vec![192, 64, 5, 5]),
        ("features.6", vec![384, 192, 3, 3]),
        ("features.8", vec![256, 384, 3, 3]),
        ("features.10", vec![256, 256, 3, 3]),
        ("classifier.1", vec![4096, 9216]),
        ("classifier.4", vec![4096, 4096]),
    ];
    let mut rng = adgan::rng::seeded(11);
    let mut tensors = Vec::new();
    for (name, shape) in layers {
        let fan_in: i64 = shape[1..].iter().product();
        let std = (2.0 / fan_in as f64).sqrt();
        let weight = adgan::rng::normal(&mut rng, &shape, 0.0, std, Device::Cpu);
        tensors.push((format!("{name}.weight"), weight));
        tensors.push((
            format!("{name}.bias"),
            Tensor::zeros([shape[0]], (Kind::Float, Device::Cpu)),
        ));
    }
    tensors.retain(|(name, _)| Some(name.as_str()) != without);
    adgan::io::save_tensors(path, &tensors).unwrap();
}

#[test]
fn alexnet_features_feed_the_classic_baselines() {
    use adgan::alexnet::{AlexNet, AlexNetLayer};
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("alexnet.safetensors");
    random_alexnet(&path, None);
    let (normal, _, test) = demo();
    let images = normal.images.narrow(0, 0, 60);
    for (layer, dim) in [(AlexNetLayer::Conv5, 9216), (AlexNetLayer::Fc7, 4096)] {
        let net = AlexNet::load(&path, layer, Device::Cpu).unwrap();
        let features = net.features(&images.narrow(0, 0, 3));
        assert_eq!(features.size(), vec![3, dim]);
        assert!(
            features.min().double_value(&[]) >= 0.0,
            "{layer:?} follows a ReLU"
        );
        assert!(
            features.max().double_value(&[]) > 0.0,
            "the features are not all zero"
        );
    }
    let net = AlexNet::load(&path, AlexNetLayer::Conv5, Device::Cpu).unwrap();
    let extractor = FeatureExtractor::AlexNet(std::rc::Rc::new(net));
    let config = PcaConfig {
        fallback_dim: 8,
        ..PcaConfig::default()
    };
    let mut fitted = fit_classic(Classic::Kde, &extractor, &images, None, &config).unwrap();
    let probe = test.images.narrow(0, 0, 10);
    let first = score_all(
        fitted.detector.as_mut(),
        &probe,
        4,
        Device::Cpu,
        &mut |_, _| {},
    )
    .unwrap();
    let again = score_all(
        fitted.detector.as_mut(),
        &probe,
        10,
        Device::Cpu,
        &mut |_, _| {},
    )
    .unwrap();
    assert!(first.iter().all(|s| s.is_finite()));
    for (a, b) in first.iter().zip(&again) {
        assert!((a - b).abs() < 1e-6 * b.abs().max(1.0), "{a} vs {b}");
    }

    // A state dict that is not AlexNet's names what is missing; conv5 needs no classifier.
    let broken = dir.path().join("broken.safetensors");
    random_alexnet(&broken, Some("classifier.4.weight"));
    let text = common::error_text(AlexNet::load(&broken, AlexNetLayer::Fc7, Device::Cpu));
    assert!(
        text.contains("classifier.4.weight") && text.contains("broken.safetensors"),
        "{text}"
    );
    assert!(AlexNet::load(&broken, AlexNetLayer::Conv5, Device::Cpu).is_ok());
}

#[test]
fn a_kept_baseline_loads_with_the_scores_of_a_fresh_fit() {
    use adgan::score::kept::{fit_or_load, Provenance, KEPT_RECORD};
    let (normal, _, test) = demo();
    let pixels = FeatureExtractor::Pixels;
    let config = PcaConfig {
        fallback_dim: 8,
        ..PcaConfig::default()
    };
    let folder = tempfile::tempdir().unwrap();
    let score = |fitted: &mut adgan::score::classic::FittedClassic| {
        score_all(
            fitted.detector.as_mut(),
            &test.images,
            64,
            Device::Cpu,
            &mut |_, _| {},
        )
        .unwrap()
    };
    for kind in [
        Classic::Kde,
        Classic::OcSvm,
        Classic::IsolationForest,
        Classic::Gmm,
    ] {
        let dir = folder.path().join(kind.name());
        let mut fresh = fit_classic(kind, &pixels, &normal.images, None, &config).unwrap();
        let (mut first, how) =
            fit_or_load(kind, &pixels, &normal, &config, &dir, Device::Cpu).unwrap();
        assert_eq!(how, Provenance::Kept, "{kind:?}");
        let (mut loaded, how) =
            fit_or_load(kind, &pixels, &normal, &config, &dir, Device::Cpu).unwrap();
        assert_eq!(how, Provenance::Loaded, "{kind:?}");
        let expected = score(&mut fresh);
        assert_eq!(score(&mut first), expected, "{kind:?}: kept fit");
        assert_eq!(score(&mut loaded), expected, "{kind:?}: loaded");
        assert_eq!(loaded.chosen, fresh.chosen, "{kind:?}");
    }

    // Other images, or another dimension, are fitted anew and leave the kept fit alone.
    let dir = folder.path().join("kde");
    let kept = std::fs::read(dir.join(KEPT_RECORD)).unwrap();
    let fewer = normal.select(&(0..normal.len() - 1).collect::<Vec<_>>());
    let (_, how) = fit_or_load(Classic::Kde, &pixels, &fewer, &config, &dir, Device::Cpu).unwrap();
    assert!(
        matches!(&how, Provenance::NotKept(why) if why.contains("SHA-256")),
        "{how:?}"
    );
    let wider = PcaConfig {
        fallback_dim: 9,
        ..config.clone()
    };
    let (_, how) = fit_or_load(Classic::Kde, &pixels, &normal, &wider, &dir, Device::Cpu).unwrap();
    assert!(
        matches!(&how, Provenance::NotKept(why) if why.contains("PCA dimension 8 kept, 9 here")),
        "{how:?}"
    );
    assert_eq!(std::fs::read(dir.join(KEPT_RECORD)).unwrap(), kept);

    // A record from a newer adgan, or a damaged tensor file, is refused with what to do.
    let text = String::from_utf8(kept).unwrap();
    std::fs::write(
        dir.join(KEPT_RECORD),
        text.replace("\"format_version\": 1", "\"format_version\": 9"),
    )
    .unwrap();
    let err = fit_or_load(Classic::Kde, &pixels, &normal, &config, &dir, Device::Cpu)
        .err()
        .unwrap();
    assert!(format!("{err:#}").contains("newer"), "{err:#}");
    std::fs::write(dir.join(KEPT_RECORD), &text).unwrap();
    let tensors = dir.join(adgan::score::kept::KEPT_TENSORS);
    let bytes = std::fs::read(&tensors).unwrap();
    std::fs::write(&tensors, &bytes[..bytes.len() / 2]).unwrap();
    let err = fit_or_load(Classic::Kde, &pixels, &normal, &config, &dir, Device::Cpu)
        .err()
        .unwrap();
    let message = format!("{err:#}");
    assert!(
        message.contains("delete") && message.contains("kde"),
        "{message}"
    );
}

#[test]
fn bench_baselines_compares_the_device_with_the_cpu() {
    let args = [
        "bench",
        "baselines",
        "--dataset",
        "demo",
        "--normal-class",
        "disc",
        "--n-test",
        "200",
        "--pca-dim",
        "8",
        "--methods",
        "kde,gmm",
        "--device",
        "cpu",
        "--against-cpu",
    ];
    let stdout = common::adgan_ok(&args);
    for method in ["kde", "gmm"] {
        assert!(
            stdout.contains(&format!(
                "{method:<8} against the CPU: largest score difference 0.0e0"
            )),
            "{stdout}"
        );
    }
    // A tolerance below 0 is refused before any fit.
    let stderr = common::adgan_err(&[&args[..], &["--tolerance=-1"]].concat());
    assert!(
        stderr.contains("--tolerance must be at least 0, not -1"),
        "{stderr}"
    );
}
