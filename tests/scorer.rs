//! The scorer that `score`, `rank` and the Python API share: what it resolves from a run
//! before any work, and what it refuses.

mod common;

use adgan::calibration::Calibration;
use adgan::run::load_gan;
use adgan::score::method::Method;
use adgan::scorer::{NeedsCalibration, Notice, Scorer, ScorerConfig};
use adgan::setting::BadSetting;
use tch::Device;

#[test]
fn the_scorer_resolves_method_calibration_and_alpha_before_any_work() {
    let dir = tempfile::tempdir().unwrap();
    let run = dir.path().join("run");
    common::train_demo(run.to_str().unwrap(), 20, &[]);
    let gan = load_gan(&run, Device::Cpu).unwrap();
    let calibration = Calibration::load(&run).unwrap().unwrap();
    let calibrated = ScorerConfig {
        search: calibration.search,
        ..ScorerConfig::default()
    };

    // The run's default: adgan-ic, with p-values from its corrected calibration.
    let scorer = Scorer::new(&gan, calibrated.clone()).unwrap();
    assert_eq!(scorer.method, Method::AdganIc);
    assert!(scorer.notices.iter().all(|n| !matches!(
        n,
        Notice::DefaultWithoutCalibration | Notice::CalibrationOfOtherSearch
    )));
    let built = scorer.build(None, Device::Cpu, &mut |_, _| {}).unwrap();
    let (raw, _) = adgan::data::demo::generate(adgan::data::Split::Test, 6);
    let images = raw
        .to_model_input(gan.config.model.image_spec(), gan.config.data.fit)
        .unwrap()
        .narrow(0, 0, 4);
    let mut detector = built.detector;
    let scores =
        adgan::score::score_all(detector.as_mut(), &images, 4, Device::Cpu, &mut |_, _| {})
            .unwrap();
    let p = scorer.p_values(&scores).unwrap();
    assert_eq!(p.len(), 4);
    assert!(p.iter().all(|&p| p > 0.0 && p <= 1.0), "{p:?}");

    // Another search: no calibration for it, so the default falls back to ADGAN, said twice.
    let mut other = calibrated.clone();
    other.search.n_seed += 1;
    let scorer = Scorer::new(&gan, other.clone()).unwrap();
    assert_eq!(scorer.method, Method::Adgan);
    assert!(scorer.decisions.is_none());
    assert!(scorer.notices.contains(&Notice::CalibrationOfOtherSearch));
    assert!(scorer.notices.contains(&Notice::DefaultWithoutCalibration));
    // ...and adgan-ic, asked for, is refused, as is the ensemble (calibrated for the run's
    // search only).
    other.method = Some(Method::AdganIc);
    let err = Scorer::new(&gan, other.clone()).err().unwrap();
    assert_eq!(
        err.downcast_ref::<NeedsCalibration>().unwrap().method,
        Method::AdganIc
    );
    other.method = Some(Method::Ensemble);
    let err = Scorer::new(&gan, other).err().unwrap();
    assert_eq!(
        err.downcast_ref::<NeedsCalibration>().unwrap().method,
        Method::Ensemble,
        "{err:#}"
    );
    // `train` calibrated the ensemble on the run's search: it resolves, with decisions.
    let ensemble = ScorerConfig {
        method: Some(Method::Ensemble),
        ..calibrated.clone()
    };
    let scorer = Scorer::new(&gan, ensemble).unwrap();
    let kept = calibration.ensemble.as_ref().unwrap();
    assert_eq!(scorer.decisions.unwrap().scores, kept.scores);

    // alpha: outside [0, 1) refused by name; below what the calibration can flag, noted.
    let bad = ScorerConfig {
        alpha: 1.0,
        ..calibrated.clone()
    };
    let err = Scorer::new(&gan, bad).err().unwrap();
    assert_eq!(err.downcast_ref::<BadSetting>().unwrap().name, "alpha");
    let tiny = ScorerConfig {
        alpha: 1e-6,
        ..calibrated.clone()
    };
    let scorer = Scorer::new(&gan, tiny).unwrap();
    assert!(scorer.notices.iter().any(
        |n| matches!(n, Notice::AlphaTooSmall { images, .. } if *images == calibration.scores.len())
    ));

    // A classic baseline has no p-values and is fitted on the GAN's training images, then kept.
    let kde = ScorerConfig {
        method: Some(Method::Kde),
        pca_dim: 4,
        ..calibrated
    };
    let scorer = Scorer::new(&gan, kde).unwrap();
    assert!(scorer.fits_baselines() && scorer.decisions.is_none());
    scorer.build(None, Device::Cpu, &mut |_, _| {}).unwrap();
    assert!(run.join("baselines/kde/fitted.json").is_file());
}
