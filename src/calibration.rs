//! Calibrated decisions: a split of the normal training images that training never sees, their
//! ADGAN scores, and for a new image the conformal p-value
//! p = (1 + #{calibration scores >= s}) / (n_cal + 1). Flagging the images with p <= alpha
//! raises a false alarm on a normal image with probability at most alpha, whatever the
//! distribution of the scores, as long as the calibration images and the new normal images come
//! from the same distribution (they are exchangeable; Vovk et al., "Algorithmic Learning in a
//! Random World", 2005).

use crate::data::{Dataset, ImageSource};
use crate::io::{read_json, write_json};
use crate::run::TrainedGan;
use crate::score::adgan::AdganConfig;
use crate::score::complexity::{self, ComplexityLine};
use crate::score::ensemble::{select_rows, split_halves, Ensemble, EnsembleConfig};
use crate::score::method::{self, Inputs, Method};
use crate::score::{score_source, Detector};
use crate::train::{load_training_data, RunConfig};
use anyhow::{bail, ensure, Context, Result};
use serde::{Deserialize, Serialize};
use std::path::Path;
use tch::Tensor;

/// The alpha of decisions when none is asked for: `score`, `rank` and the experiment report.
pub const DEFAULT_ALPHA: f64 = 0.05;

/// File of the calibration inside a run folder.
pub const CALIBRATION_FILE: &str = "calibration.json";

/// The ADGAN scores of normal images no model was fitted on, saved in the run folder.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Calibration {
    /// Where the images came from: `split` (the run's own calibration split) or a folder.
    pub origin: String,
    /// The search that scored them; a score from another search is not comparable.
    pub search: AdganConfig,
    /// The images' ids.
    pub ids: Vec<String>,
    /// Their ADGAN scores.
    pub scores: Vec<f64>,
    /// Their complexities (PNG lengths), which fit the line of `adgan-ic` (absent from
    /// calibrations made before it).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub lengths: Vec<f64>,
    /// The ensemble, when the run was calibrated for it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ensemble: Option<EnsembleCalibration>,
}

/// The ensemble of a run ([`crate::score::ensemble`]): its members' normalisers, fitted on the
/// first half of the calibration images ([`split_halves`]), and its own scores of the second
/// half, which calibrate its p-values (n_cal is that half's size).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EnsembleCalibration {
    /// The fitted ensemble.
    pub ensemble: Ensemble,
    /// PCA dimension d' of its classic members (fitted on the run's training images).
    pub pca_dim: usize,
    /// Ids of the images that calibrate it.
    pub ids: Vec<String>,
    /// Its scores of them.
    pub scores: Vec<f64>,
}

/// The method `score` and `rank` use when none is asked for: `adgan-ic` (ADGAN corrected for
/// image complexity, which won on validation on MNIST and CIFAR-10 by the rule in RESULTS.md)
/// where the run's calibration for the search holds the image complexities its line is fitted
/// on; otherwise ADGAN as in the paper.
pub fn default_method(calibration: Option<&Calibration>) -> Method {
    match calibration {
        Some(c) if !c.lengths.is_empty() => Method::AdganIc,
        _ => Method::Adgan,
    }
}

/// The fewest calibration images a calibration may have: with fewer, no p-value can reach
/// the default alpha ([`DEFAULT_ALPHA`]; the smallest p-value is 1 / (n_cal + 1)).
pub const MIN_CALIBRATION_IMAGES: usize = 19;

/// The fewest calibration images the ensemble can be calibrated on: its normalisers take one
/// half and its own calibration the other, each at least [`MIN_CALIBRATION_IMAGES`].
pub const MIN_ENSEMBLE_CALIBRATION_IMAGES: usize = 2 * MIN_CALIBRATION_IMAGES;

/// How many standard deviations (of a binomial count) above its expected value the number of
/// far-out calibration scores may lie before [`Calibration::check`] warns.
const FENCE: f64 = 3.0;

impl Calibration {
    /// Reads the calibration of a run folder, if it has one, checked whole
    /// ([`Self::validate`]).
    pub fn load(run_dir: &Path) -> Result<Option<Self>> {
        let path = run_dir.join(CALIBRATION_FILE);
        if !path.exists() {
            return Ok(None);
        }
        let calibration: Calibration = read_json(&path, "adgan calibration")?;
        calibration.validate().with_context(|| {
            format!(
                "{} is corrupt: run `adgan calibrate` on the run again",
                path.display()
            )
        })?;
        Ok(Some(calibration))
    }

    /// Checks that the calibration can decide: enough images ([`MIN_CALIBRATION_IMAGES`]), one
    /// id and one finite score each, and positive finite complexities where it has them.
    pub fn validate(&self) -> Result<()> {
        let n = self.scores.len();
        ensure!(
            n >= MIN_CALIBRATION_IMAGES,
            "{n} calibration images are too few: at least {MIN_CALIBRATION_IMAGES} are needed \
             for a p-value to reach alpha {DEFAULT_ALPHA}"
        );
        ensure!(
            self.ids.len() == n,
            "{} ids for {n} calibration scores",
            self.ids.len()
        );
        if let Some(i) = self.scores.iter().position(|s| !s.is_finite()) {
            bail!(
                "calibration score {i} ({}) is not a finite number",
                self.scores[i]
            );
        }
        ensure!(
            self.lengths.is_empty() || self.lengths.len() == n,
            "{} image complexities for {n} calibration scores",
            self.lengths.len()
        );
        if let Some(i) = self
            .lengths
            .iter()
            .position(|l| !(l.is_finite() && *l > 0.0))
        {
            bail!(
                "the complexity (PNG length) of calibration image {i} is {}, not a positive number",
                self.lengths[i]
            );
        }
        match &self.ensemble {
            Some(e) => {
                let part = Calibration {
                    ids: e.ids.clone(),
                    scores: e.scores.clone(),
                    lengths: Vec::new(),
                    ensemble: None,
                    ..self.clone()
                };
                part.validate().context("the ensemble's calibration")?;
                e.ensemble.config.validate()
            }
            None => Ok(()),
        }
    }

    /// Writes it into a run folder, atomically.
    pub fn save(&self, run_dir: &Path) -> Result<()> {
        write_json(&run_dir.join(CALIBRATION_FILE), self)
    }

    /// The conformal p-value of a score ([`p_value`] over these calibration scores).
    pub fn p_value(&self, score: f64) -> f64 {
        p_value(&self.scores, score)
    }

    /// The score above which an image is flagged at `alpha` ([`threshold`] over these
    /// calibration scores); None below [`Self::smallest_alpha`].
    pub fn threshold(&self, alpha: f64) -> Option<f64> {
        threshold(&self.scores, alpha)
    }

    /// The complexity line of `adgan-ic`, fitted on these normal images.
    pub fn complexity_line(&self) -> Result<ComplexityLine> {
        ensure!(
            !self.lengths.is_empty(),
            "this calibration was made before adgan-ic and has no image complexities: run \
             `adgan calibrate` again"
        );
        ComplexityLine::fit(&self.scores, &self.lengths)
    }

    /// The calibration of `adgan-ic`: these images' corrected scores, each by the line fitted
    /// on the other half of them (cross-fitted), so that they stand as a new normal image's
    /// corrected score would.
    pub fn complexity_corrected(&self) -> Result<Calibration> {
        self.complexity_line()?;
        Ok(Calibration {
            scores: complexity::cross_fitted(&self.scores, &self.lengths)?,
            ..self.clone()
        })
    }

    /// The calibration that decides the scores of `method` (ADGAN's, `adgan-ic` or the
    /// ensemble): these scores, their complexity-corrected ones, or the ensemble's.
    pub fn for_method(&self, method: Method) -> Result<Calibration> {
        match method {
            Method::AdganIc => self.complexity_corrected(),
            Method::Ensemble => {
                let e = self.ensemble.as_ref().context(
                    "this calibration has no ensemble: calibrate the run for the ensemble first",
                )?;
                Ok(Calibration {
                    ids: e.ids.clone(),
                    scores: e.scores.clone(),
                    lengths: Vec::new(),
                    ensemble: None,
                    ..self.clone()
                })
            }
            _ => Ok(self.clone()),
        }
    }

    /// The false-alarm rate of this calibration's decisions at `alpha` ([`false_alarm_rate`]).
    pub fn false_alarm_rate(&self, alpha: f64) -> Option<FalseAlarmRate> {
        false_alarm_rate(self.scores.len(), alpha)
    }

    /// The smallest alpha this calibration can decide with: 1 / (n_cal + 1). Below it no image
    /// is ever flagged.
    pub fn smallest_alpha(&self) -> f64 {
        1.0 / (self.scores.len() + 1) as f64
    }

    /// Warnings about calibration scores that do not look like the scores of normal images:
    /// more of them lie far above the others (beyond the upper quartile plus three
    /// interquartile ranges, Tukey's far-out fence) than normal data would put there, which is
    /// what anomalies among the calibration images look like.
    pub fn check(&self) -> Vec<String> {
        let mut warnings = Vec::new();
        let n = self.scores.len();
        if n < 20 {
            warnings.push(format!(
                "only {n} calibration scores: p-values are coarse (no p-value below {:.3})",
                self.smallest_alpha()
            ));
            return warnings;
        }
        let mut sorted = self.scores.clone();
        sorted.sort_by(f64::total_cmp);
        let quantile = |q: f64| sorted[((n - 1) as f64 * q).round() as usize];
        let (q1, q3) = (quantile(0.25), quantile(0.75));
        let fence = q3 + 3.0 * (q3 - q1);
        let far = sorted.iter().filter(|&&s| s > fence).count();
        // Far-out values are rare in the scores of normal images (well under 1% for the
        // skewed, light-tailed distributions reconstruction errors have); a count well above
        // 1% of n is a sign of anomalies in the set.
        let expected = 0.01 * n as f64;
        let bound = expected + FENCE * (expected * 0.99).sqrt();
        if far as f64 > bound {
            warnings.push(format!(
                "{far} of {n} calibration images score far above the others (beyond {fence:.1}): \
                 the calibration set may hold anomalies, which makes every p-value too large \
                 and hides anomalies; calibrate on normal images only"
            ));
        }
        warnings
    }
}

/// Relative difference below which two scores are the same score: the same image scored twice
/// through different arithmetic (a complexity correction, a sum in another order) may differ in
/// its last bits, and a tie must stay a tie.
pub const TIE_TOLERANCE: f64 = 1e-12;

/// The conformal p-value of `score` against the scores of normal calibration images:
/// (1 + #{calibration scores >= score}) / (n_cal + 1), a calibration score within
/// [`TIE_TOLERANCE`] of `score` counting as equal.
pub fn p_value(calibration_scores: &[f64], score: f64) -> f64 {
    let floor = score - TIE_TOLERANCE * score.abs().max(1.0);
    let at_least = calibration_scores.iter().filter(|&&c| c >= floor).count();
    (1 + at_least) as f64 / (calibration_scores.len() + 1) as f64
}

/// The score above which an image is flagged at `alpha` (p-value at most alpha): the (m+1)-th
/// largest calibration score with m = floor(alpha (n_cal + 1)) - 1, since a score strictly
/// above it has at most m calibration scores at least as large. None when alpha is below
/// 1 / (n_cal + 1) (no image can be flagged).
pub fn threshold(calibration_scores: &[f64], alpha: f64) -> Option<f64> {
    let n = calibration_scores.len();
    let m = (alpha * (n + 1) as f64).floor() as usize;
    if m == 0 || n == 0 {
        return None;
    }
    let mut sorted = calibration_scores.to_vec();
    sorted.sort_by(|a, b| b.total_cmp(a));
    Some(sorted[(m - 1).min(n - 1)])
}

/// The false-alarm rate of one calibration: the fraction of new normal images that its
/// threshold at alpha flags. Over draws of the calibration images it follows
/// Beta(m, n_cal + 1 - m), m = floor(alpha (n_cal + 1)), for scores without ties (Vovk,
/// "Conditional validity of inductive conformal predictors", ACML 2012): the guarantee bounds
/// its mean by alpha; its spread is how far one calibration may stray, which only more
/// calibration images narrow.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct FalseAlarmRate {
    /// Mean over calibrations: m / (n_cal + 1), at most alpha.
    pub mean: f64,
    /// Standard deviation over calibrations.
    pub sd: f64,
}

/// The [`FalseAlarmRate`] of a calibration of `n_cal` images at `alpha`; None when nothing can
/// be flagged (alpha below 1 / (n_cal + 1)).
pub fn false_alarm_rate(n_cal: usize, alpha: f64) -> Option<FalseAlarmRate> {
    let n = (n_cal + 1) as f64;
    let m = (alpha * n).floor();
    if m < 1.0 || n_cal == 0 {
        return None;
    }
    let variance = m * (n - m) / (n * n * (n + 1.0));
    Some(FalseAlarmRate {
        mean: m / n,
        sd: variance.sqrt(),
    })
}

/// The run's normal training images split again as they were when it was trained: (the images
/// it trained on, its calibration images), checked against the fingerprint of the images it
/// trained on. Without a calibration split, every normal image and none.
pub fn run_images(run: &RunConfig) -> Result<(Dataset, Option<Dataset>)> {
    let data = &run.data;
    let spec = run.model.image_spec();
    let (normal, _) =
        load_training_data(&data.source, data.normal_class.as_deref(), spec, data.fit)?;
    let (trained, held) = match data.calibration {
        Some(split) => {
            let (trained, held) = split.split(&normal)?;
            (trained, Some(held))
        }
        None => (normal, None),
    };
    ensure!(
        trained.fingerprint() == data.fingerprint,
        "the training data of this run ({}) changed since it was trained",
        data.source.describe()
    );
    Ok((trained, held))
}

/// The run's own calibration images ([`run_images`]).
pub fn calibration_images(run: &RunConfig) -> Result<Dataset> {
    ensure!(
        run.data.calibration.is_some(),
        "the run kept no calibration split (trained with a fraction of 0, or before \
         calibration existed): calibrate on a folder of normal images instead"
    );
    let (_, held) = run_images(run).context("calibrate on a folder of normal images instead")?;
    held.context("no calibration split")
}

/// The images the run trained on ([`run_images`]): what its baselines are fitted on, so that
/// none of them has seen a calibration image.
pub fn training_images(run: &RunConfig) -> Result<Dataset> {
    Ok(run_images(run)?.0)
}

/// Calibrates the ensemble `config` on normal images no member was fitted on: `images`, whose
/// ADGAN scores and complexities `calibration` holds (the same images, in order). Each
/// member's scores of them are taken (ADGAN's and `adgan-ic`'s from `calibration`, the others
/// by building the member from `inputs`, which give the images the baselines are fitted on);
/// the normalisers are fitted on the first half ([`split_halves`] with `seed`) and the
/// ensemble's scores of the second half calibrate it.
pub fn calibrate_ensemble(
    inputs: &Inputs,
    config: &EnsembleConfig,
    calibration: &Calibration,
    images: &Tensor,
    seed: u64,
    on_member: &mut dyn FnMut(Method),
) -> Result<EnsembleCalibration> {
    config.validate()?;
    let n = calibration.scores.len();
    ensure!(
        images.size()[0] as usize == n,
        "{} calibration images for {n} calibration scores",
        images.size()[0]
    );
    ensure!(
        n >= MIN_ENSEMBLE_CALIBRATION_IMAGES,
        "the ensemble calibrates on half of the calibration images: {n} give {}, fewer than the \
         {MIN_CALIBRATION_IMAGES} a calibration needs; calibrate on at least \
         {MIN_ENSEMBLE_CALIBRATION_IMAGES} normal images",
        n / 2
    );
    let mut columns = Vec::new();
    for &member in &config.members {
        on_member(member);
        let scores = match member {
            Method::Adgan => calibration.scores.clone(),
            Method::AdganIc => calibration.complexity_corrected()?.scores,
            _ => {
                let mut built = method::build(member, inputs, &mut |_, _| {})
                    .with_context(|| format!("fitting the ensemble member {}", member.name()))?;
                crate::score::score_all(
                    built.detector.as_mut(),
                    images,
                    built.batch,
                    inputs.device,
                    &mut |_, _| {},
                )?
            }
        };
        columns.push(scores);
    }
    let (fit, held) = split_halves(n, seed);
    let ensemble = Ensemble::fit(config, &select_rows(&columns, &fit))?;
    let scores = ensemble.combine(&select_rows(&columns, &held))?;
    Ok(EnsembleCalibration {
        ensemble,
        pca_dim: inputs.pca.fallback_dim,
        ids: held.iter().map(|&i| calibration.ids[i].clone()).collect(),
        scores,
    })
}

/// Calibrates the ensemble `config` of the run `gan` on its held-out normal images
/// (`calibration` holds their ADGAN scores, `images` the images, in order). Its classic
/// members are fitted on the run's training images ([`TrainedGan::training_images`], never a
/// calibration image) at PCA dimension `pca_dim` and kept in the run's `baselines/` folder, or
/// loaded from there when a kept one matches. `search` carries the device and the search of
/// the ADGAN members; `on_member` sees each member as it is scored.
pub fn calibrate_run_ensemble(
    gan: &TrainedGan,
    search: Inputs,
    (config, pca_dim): (&EnsembleConfig, usize),
    calibration: &Calibration,
    images: &Tensor,
    on_member: &mut dyn FnMut(Method),
) -> Result<EnsembleCalibration> {
    config.validate()?;
    let training = if config.members.iter().all(|m| m.needs_gan()) {
        None
    } else {
        Some(
            gan.training_images()
                .context("the ensemble's members are fitted on them")?,
        )
    };
    let baseline_dir = |m: Method| crate::run::baseline_dir(&gan.run_dir, m.name());
    let inputs = Inputs {
        trained_on: None,
        normal: training.as_ref(),
        autoencoder_dir: &baseline_dir,
        classic_dir: Some(&baseline_dir),
        pca: crate::score::features::PcaConfig {
            fallback_dim: pca_dim,
            ..Default::default()
        },
        ..search
    };
    calibrate_ensemble(
        &inputs,
        config,
        calibration,
        images,
        gan.config.train.seed,
        on_member,
    )
}

/// Scores `images` (normal images no model was fitted on, with their `ids`) with the ADGAN
/// search of `inputs`; `origin` says where they came from, `on_batch(done, total)` follows it.
pub fn calibrate(
    inputs: &Inputs,
    images: &mut dyn ImageSource,
    ids: Vec<String>,
    origin: &str,
    on_batch: &mut dyn FnMut(usize, usize),
) -> Result<Calibration> {
    ensure!(
        images.len() >= MIN_CALIBRATION_IMAGES,
        "{origin} has {} images: a calibration needs at least {MIN_CALIBRATION_IMAGES} normal \
         images for a p-value to reach alpha {DEFAULT_ALPHA}",
        images.len()
    );
    let mut built = method::build(Method::Adgan, inputs, &mut |_, _| {})?;
    let mut measured = MeasuringLengths {
        inner: built.detector.as_mut(),
        lengths: Vec::new(),
    };
    let scores = score_source(&mut measured, images, built.batch, inputs.device, on_batch)?;
    Ok(Calibration {
        origin: origin.to_string(),
        search: inputs.search,
        ids,
        scores,
        lengths: measured.lengths,
        ensemble: None,
    })
}

/// A detector that also keeps the complexity of every image it scores (the calibration images
/// are streamed, so they are measured as they pass).
struct MeasuringLengths<'a> {
    inner: &'a mut dyn Detector,
    lengths: Vec<f64>,
}

impl Detector for MeasuringLengths<'_> {
    fn name(&self) -> &str {
        self.inner.name()
    }

    fn score_batch(&mut self, images: &Tensor) -> Result<Vec<f64>> {
        self.lengths.extend(complexity::png_lengths(images)?);
        self.inner.score_batch(images)
    }
}

/// What the decisions at `alpha` give on labelled images (label 1 = anomalous).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct DecisionQuality {
    /// Images flagged.
    pub flagged: usize,
    /// Fraction of normal images flagged (false-positive rate).
    pub false_positive_rate: f64,
    /// Fraction of flagged images that are anomalous.
    pub precision: f64,
    /// Fraction of anomalous images flagged.
    pub recall: f64,
}

/// The quality of the decisions `p <= alpha` against `labels`.
pub fn decision_quality(p_values: &[f64], labels: &[i64], alpha: f64) -> DecisionQuality {
    let flagged: Vec<bool> = p_values.iter().map(|&p| p <= alpha).collect();
    let count = |label: i64, flag: bool| {
        flagged
            .iter()
            .zip(labels)
            .filter(|&(&f, &l)| l == label && f == flag)
            .count()
    };
    let (fp, tn, tp, fn_) = (
        count(0, true),
        count(0, false),
        count(1, true),
        count(1, false),
    );
    let ratio = |a: usize, b: usize| {
        if a + b == 0 {
            0.0
        } else {
            a as f64 / (a + b) as f64
        }
    };
    DecisionQuality {
        flagged: fp + tp,
        false_positive_rate: ratio(fp, tn),
        precision: ratio(tp, fp),
        recall: ratio(tp, fn_),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn calibration(scores: Vec<f64>) -> Calibration {
        Calibration {
            origin: "test".into(),
            search: AdganConfig::default(),
            ids: (0..scores.len()).map(|i| i.to_string()).collect(),
            scores,
            lengths: Vec::new(),
            ensemble: None,
        }
    }

    #[test]
    fn adgan_ic_calibrates_on_cross_fitted_scores_and_needs_the_lengths() {
        let mut c = calibration(vec![1.0, 2.0, 4.0, 8.0]);
        let err = c.complexity_line().unwrap_err().to_string();
        assert!(err.contains("adgan calibrate"), "{err}");
        // Scores proportional to length: a line fits every half exactly.
        c.lengths = vec![100.0, 200.0, 400.0, 800.0];
        let corrected = c.for_method(Method::AdganIc).unwrap();
        assert_eq!(c.for_method(Method::Adgan).unwrap(), c);
        assert!(
            corrected.scores.iter().all(|s| s.abs() < 1e-9),
            "{corrected:?}"
        );
        assert_eq!(
            (corrected.ids, corrected.lengths),
            (c.ids.clone(), c.lengths.clone())
        );
    }

    #[test]
    fn the_default_method_is_adgan_ic_only_where_its_line_can_be_fitted() {
        assert_eq!(default_method(None), Method::Adgan);
        let mut c = calibration(vec![1.0, 2.0]);
        assert_eq!(
            default_method(Some(&c)),
            Method::Adgan,
            "made before adgan-ic"
        );
        c.lengths = vec![100.0, 200.0];
        assert_eq!(default_method(Some(&c)), Method::AdganIc);
    }

    #[test]
    fn p_values_count_the_calibration_scores_at_least_as_large() {
        let c = calibration(vec![1.0, 2.0, 3.0, 4.0]);
        assert_eq!(c.p_value(10.0), 0.2, "above all: 1 / 5");
        assert_eq!(c.p_value(3.0), 0.6, "ties count: (1 + 2) / 5");
        assert_eq!(c.p_value(0.0), 1.0);
        assert_eq!(c.smallest_alpha(), 0.2);
    }

    #[test]
    fn a_rounding_residue_is_still_a_tie() {
        let c = calibration(vec![1.0, 2.0, 3.0, 4.0]);
        assert_eq!(c.p_value(3.0 + 8.9e-16), c.p_value(3.0));
        assert_eq!(c.p_value(-0.5 - 1e-17), 1.0);
        assert!(
            c.p_value(3.0 + 1e-9) < c.p_value(3.0),
            "a real difference is kept"
        );
    }

    #[test]
    fn a_corrupt_calibration_is_refused_on_load() {
        let dir = tempfile::tempdir().unwrap();
        let good = calibration((0..30).map(f64::from).collect());
        good.save(dir.path()).unwrap();
        assert_eq!(Calibration::load(dir.path()).unwrap(), Some(good.clone()));
        let bad = [
            (
                Calibration {
                    lengths: vec![0.0; 30],
                    ..good.clone()
                },
                "positive",
            ),
            (
                Calibration {
                    scores: [vec![f64::NAN], good.scores[1..].to_vec()].concat(),
                    ..good.clone()
                },
                "finite",
            ),
            (calibration(vec![1.0, 2.0]), "at least 19"),
            (
                Calibration {
                    ids: vec!["a".into()],
                    ..good.clone()
                },
                "ids",
            ),
        ];
        for (calibration, why) in bad {
            // NaN has no JSON spelling: the file says null, which is refused as well.
            calibration.save(dir.path()).unwrap();
            let err = format!("{:#}", Calibration::load(dir.path()).unwrap_err());
            assert!(err.contains("corrupt") || err.contains("null"), "{err}");
            if why != "finite" {
                assert!(err.contains(why), "{why}: {err}");
            }
        }
    }

    #[test]
    fn the_threshold_separates_flagged_from_kept_scores() {
        let c = calibration((1..=99).map(f64::from).collect());
        for alpha in [0.01, 0.05, 0.2, 0.5] {
            let t = c.threshold(alpha).unwrap();
            for s in [t - 0.5, t, t + 0.5] {
                assert_eq!(c.p_value(s) <= alpha, s > t, "alpha {alpha}, score {s}");
            }
        }
        assert_eq!(
            c.threshold(0.005),
            None,
            "below 1 / (n + 1) nothing is flagged"
        );
    }

    #[test]
    fn the_false_alarm_rate_of_one_calibration_spreads_as_predicted() {
        use rand::{Rng, SeedableRng};
        // Scores uniform on (0, 1): a threshold t flags a fraction 1 - t of new normal images.
        let (n_cal, alpha, draws) = (99, 0.05, 4000);
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(7);
        let rates: Vec<f64> = (0..draws)
            .map(|_| {
                let scores: Vec<f64> = (0..n_cal).map(|_| rng.gen::<f64>()).collect();
                1.0 - threshold(&scores, alpha).unwrap()
            })
            .collect();
        let mean = rates.iter().sum::<f64>() / draws as f64;
        let sd = (rates.iter().map(|r| (r - mean).powi(2)).sum::<f64>() / draws as f64).sqrt();
        let predicted = false_alarm_rate(n_cal, alpha).unwrap();
        assert_eq!(predicted.mean, 0.05, "m = 5 of n_cal + 1 = 100");
        assert!(
            (mean - predicted.mean).abs() < 0.002,
            "{mean} against {predicted:?}"
        );
        assert!(
            (sd / predicted.sd - 1.0).abs() < 0.08,
            "{sd} against {predicted:?}"
        );
        assert!(false_alarm_rate(1000, alpha).unwrap().sd < predicted.sd / 2.0);
        assert_eq!(false_alarm_rate(10, alpha), None, "alpha below 1 / 11");
    }

    #[test]
    fn anomalies_in_the_calibration_set_are_warned_about() {
        let normal: Vec<f64> = (0..200).map(|i| 100.0 + (i % 37) as f64).collect();
        assert!(calibration(normal.clone()).check().is_empty());
        let mut mixed = normal;
        mixed.extend((0..15).map(|i| 500.0 + i as f64));
        let warnings = calibration(mixed).check();
        assert!(warnings[0].contains("15 of 215"), "{warnings:?}");
        assert!(calibration(vec![1.0; 5]).check()[0].contains("coarse"));
    }

    #[test]
    fn decision_quality_counts_flags_by_label() {
        let q = decision_quality(&[0.01, 0.5, 0.02, 0.9], &[1, 0, 0, 1], 0.05);
        assert_eq!(q.flagged, 2);
        assert_eq!(
            (q.false_positive_rate, q.precision, q.recall),
            (0.5, 0.5, 0.5)
        );
    }

    /// The guarantee of `adgan` and `adgan-ic` decisions, as a statistic: over many random
    /// splits of one fixed set of normal images into calibration and test images, the mean
    /// false-positive rate at alpha is at most alpha plus three standard errors. The scores
    /// grow with the images' complexity, as ADGAN's do, so that `adgan-ic` corrects them: its
    /// calibration scores by the cross-fitted lines, a test image's by the line of all of them.
    #[test]
    fn decisions_of_adgan_and_adgan_ic_keep_their_false_positive_rate() {
        use rand::seq::SliceRandom;
        use rand_distr::{Distribution, Normal};
        let normal = Normal::new(0.0f64, 1.0).unwrap();
        let mut rng = crate::rng::seeded(5);
        let pool: Vec<(f64, f64)> = (0..1500)
            .map(|_| {
                let log_length = 7.0 + 0.4 * normal.sample(&mut rng);
                let log_score = -4.0 + 1.3 * log_length + 0.3 * normal.sample(&mut rng);
                (log_score.exp(), log_length.exp())
            })
            .collect();
        let (repeats, n_cal) = (300, 150);
        for alpha in [0.05, 0.1, 0.2] {
            for method in [Method::Adgan, Method::AdganIc] {
                let mut rates = Vec::new();
                let mut order: Vec<usize> = (0..pool.len()).collect();
                for _ in 0..repeats {
                    order.shuffle(&mut rng);
                    let (cal, test) = order.split_at(n_cal);
                    let run = Calibration {
                        lengths: cal.iter().map(|&i| pool[i].1).collect(),
                        ..calibration(cal.iter().map(|&i| pool[i].0).collect())
                    };
                    let decides = run.for_method(method).unwrap();
                    let line = run.complexity_line().unwrap();
                    let flagged = test
                        .iter()
                        .map(|&i| match method {
                            Method::AdganIc => line.correct(pool[i].0, pool[i].1),
                            _ => pool[i].0,
                        })
                        .filter(|&s| decides.p_value(s) <= alpha)
                        .count();
                    rates.push(flagged as f64 / test.len() as f64);
                }
                let mean = rates.iter().sum::<f64>() / repeats as f64;
                let var =
                    rates.iter().map(|r| (r - mean).powi(2)).sum::<f64>() / (repeats - 1) as f64;
                let se = (var / repeats as f64).sqrt();
                assert!(
                    mean <= alpha + 3.0 * se,
                    "{}: false-positive rate {mean:.4} at alpha {alpha} (se {se:.4})",
                    method.name()
                );
                // And the decisions are not needlessly timid: the rate is near alpha.
                assert!(
                    mean >= alpha - 0.02,
                    "{}: false-positive rate {mean:.4} at alpha {alpha}",
                    method.name()
                );
            }
        }
    }
}
