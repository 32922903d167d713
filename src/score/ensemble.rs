//! The ensemble (beyond the paper): several detectors, each failing in other places, made
//! comparable and combined into one score.
//!
//! A member's raw scores live on its own scale (a squared error, a negative log-density, a
//! path length), so each is first mapped through its distribution on held-out normal images
//! that none of the members trained on ([`Normalizer`]): a standardisation, or the conformal
//! p-value's surprise -ln p. The mapped scores are then combined by one [`Rule`]. Which members,
//! which normaliser and which rule are chosen on validation data only
//! ([`cross_fitted_auc`], RESULTS.md says how).
//!
//! The ensemble's own decisions need normal images that the combination was not fitted on: the
//! held-out normals are split in two ([`split_halves`]), one half fits the normalisers, the
//! other calibrates the combined statistic. Conditional on the first half, the second half's
//! statistics and a new normal image's are exchangeable, so the conformal guarantee of
//! [`crate::calibration`] holds with the second half's size as n_cal.

use super::complexity::ComplexityLine;
use super::method::Method;
use super::Detector;
use crate::eval::roc_auc;
use crate::setting::check;
use anyhow::{bail, ensure, Context, Result};
use rand::seq::SliceRandom;
use serde::{Deserialize, Serialize};
use tch::Tensor;

/// How a member's raw scores are made comparable, from its scores on held-out normal images.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "cli", derive(clap::ValueEnum))]
#[serde(rename_all = "lowercase")]
pub enum Normalizer {
    /// (s - mean) / standard deviation of the normal scores.
    Standard,
    /// (s - median) / (1.4826 MAD) of the normal scores: as `standard` for Gaussian scores,
    /// unmoved by a few extreme normal images.
    Robust,
    /// -ln p, with p the conformal p-value of s among the normal scores.
    Conformal,
}

/// How the normalised member scores become one score.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "cli", derive(clap::ValueEnum))]
#[serde(rename_all = "lowercase")]
pub enum Rule {
    /// The mean (with the conformal normaliser: Fisher's sum of -ln p, divided by the members).
    Mean,
    /// The largest: anomalous when any member says so.
    Max,
}

impl Normalizer {
    /// Every normaliser, in the order the selection tries them.
    pub const ALL: [Normalizer; 3] = [
        Normalizer::Standard,
        Normalizer::Robust,
        Normalizer::Conformal,
    ];

    /// The name used in results and on the command line.
    pub fn name(self) -> &'static str {
        match self {
            Normalizer::Standard => "standard",
            Normalizer::Robust => "robust",
            Normalizer::Conformal => "conformal",
        }
    }
}

impl Rule {
    /// Every rule, in the order the selection tries them.
    pub const ALL: [Rule; 2] = [Rule::Mean, Rule::Max];

    /// The name used in results and on the command line.
    pub fn name(self) -> &'static str {
        match self {
            Rule::Mean => "mean",
            Rule::Max => "max",
        }
    }
}

/// The methods an ensemble may combine.
pub const POOL: [Method; 8] = [
    Method::Adgan,
    Method::AdganIc,
    Method::Kde,
    Method::Gmm,
    Method::Ocsvm,
    Method::Iforest,
    Method::Dcae,
    Method::Vae,
];

/// Which members and how they are combined. The default is the candidate the selection rule of
/// RESULTS.md ("The ensemble") chose on the validation images of MNIST and CIFAR-10.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct EnsembleConfig {
    /// Members, each once, from [`POOL`].
    pub members: Vec<Method>,
    /// How each member's scores are made comparable.
    pub normalizer: Normalizer,
    /// How they are combined.
    pub rule: Rule,
}

impl Default for EnsembleConfig {
    fn default() -> Self {
        Self {
            members: vec![Method::AdganIc, Method::Kde],
            normalizer: Normalizer::Standard,
            rule: Rule::Mean,
        }
    }
}

impl EnsembleConfig {
    /// Checks the members: at least one, each once, each from [`POOL`].
    pub fn validate(&self) -> Result<()> {
        check(!self.members.is_empty(), "ensemble_members", || {
            "an ensemble needs at least one member".to_string()
        })?;
        for (i, m) in self.members.iter().enumerate() {
            check(POOL.contains(m), "ensemble_members", || {
                format!(
                    "{} cannot be an ensemble member (members come from {})",
                    m.name(),
                    pool_names()
                )
            })?;
            check(!self.members[..i].contains(m), "ensemble_members", || {
                format!("{} is an ensemble member twice", m.name())
            })?;
        }
        Ok(())
    }

    /// One line for tables and logs: `adgan+kde, standard, mean`.
    pub fn label(&self) -> String {
        let members: Vec<&str> = self.members.iter().map(|m| m.name()).collect();
        format!(
            "{}, {}, {}",
            members.join("+"),
            self.normalizer.name(),
            self.rule.name()
        )
    }
}

fn pool_names() -> String {
    POOL.iter().map(|m| m.name()).collect::<Vec<_>>().join(", ")
}

/// The map of one member's raw scores onto the common scale, fitted on normal scores.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum Scale {
    /// (s - centre) / spread.
    Affine { centre: f64, spread: f64 },
    /// -ln p against these normal scores (sorted ascending).
    Conformal { normal: Vec<f64> },
}

/// Below this spread (relative to the scores' magnitude) a member is taken to give every
/// normal image the same score, which no standardisation can use.
const MIN_RELATIVE_SPREAD: f64 = 1e-12;

impl Scale {
    /// Fits `normalizer` on a member's scores of normal images (`what` names the member in
    /// errors).
    pub fn fit(normalizer: Normalizer, normal: &[f64], what: &str) -> Result<Self> {
        ensure!(
            normal.len() >= 2,
            "{what}: {} normal scores are too few to normalise with (need at least 2)",
            normal.len()
        );
        ensure!(
            normal.iter().all(|s| s.is_finite()),
            "{what}: a normal image's score is NaN or infinite"
        );
        let mut sorted = normal.to_vec();
        sorted.sort_by(f64::total_cmp);
        let (centre, spread) = match normalizer {
            Normalizer::Conformal => return Ok(Scale::Conformal { normal: sorted }),
            Normalizer::Standard => {
                let n = sorted.len() as f64;
                let mean = sorted.iter().sum::<f64>() / n;
                let var = sorted.iter().map(|s| (s - mean).powi(2)).sum::<f64>() / (n - 1.0);
                (mean, var.sqrt())
            }
            Normalizer::Robust => {
                let median = median_of_sorted(&sorted);
                let mut deviations: Vec<f64> = sorted.iter().map(|s| (s - median).abs()).collect();
                deviations.sort_by(f64::total_cmp);
                // 1.4826 MAD estimates the standard deviation of Gaussian scores.
                (median, 1.4826 * median_of_sorted(&deviations))
            }
        };
        let magnitude = sorted.iter().map(|s| s.abs()).fold(0.0, f64::max).max(1.0);
        ensure!(
            spread > MIN_RELATIVE_SPREAD * magnitude,
            "{what} gives (nearly) every normal image the same score, so it cannot be \
             standardised: leave it out of the ensemble or use the conformal normaliser"
        );
        Ok(Scale::Affine { centre, spread })
    }

    /// The normalised score of a raw score `s`.
    pub fn apply(&self, s: f64) -> f64 {
        match self {
            Scale::Affine { centre, spread } => (s - centre) / spread,
            Scale::Conformal { normal } => {
                // Normal scores >= s: those from the first one not below s.
                let at_least = normal.len() - normal.partition_point(|&c| c < s);
                let p = (1 + at_least) as f64 / (normal.len() + 1) as f64;
                -p.ln()
            }
        }
    }
}

fn median_of_sorted(sorted: &[f64]) -> f64 {
    let n = sorted.len();
    match n % 2 {
        1 => sorted[n / 2],
        _ => 0.5 * (sorted[n / 2 - 1] + sorted[n / 2]),
    }
}

/// A fitted ensemble: its configuration and one [`Scale`] per member, in member order.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Ensemble {
    /// Members and rule.
    pub config: EnsembleConfig,
    /// Each member's map onto the common scale.
    pub scales: Vec<Scale>,
}

impl Ensemble {
    /// Fits the members' normalisers on their scores of the same normal images:
    /// `normal[j][i]` is member j's score of image i.
    pub fn fit(config: &EnsembleConfig, normal: &[Vec<f64>]) -> Result<Self> {
        config.validate()?;
        check_columns(config, normal, "normal")?;
        let scales = config
            .members
            .iter()
            .zip(normal)
            .map(|(m, scores)| Scale::fit(config.normalizer, scores, m.name()))
            .collect::<Result<Vec<_>>>()?;
        Ok(Self {
            config: config.clone(),
            scales,
        })
    }

    /// The ensemble's scores of images whose member scores are `scores[j][i]` (member j,
    /// image i; higher = more anomalous).
    pub fn combine(&self, scores: &[Vec<f64>]) -> Result<Vec<f64>> {
        check_columns(&self.config, scores, "scored")?;
        let n = scores[0].len();
        for (m, column) in self.config.members.iter().zip(scores) {
            if let Some(i) = column.iter().position(|s| !s.is_finite()) {
                bail!("{} gave image {i} a NaN or infinite score", m.name());
            }
        }
        Ok((0..n)
            .map(|i| {
                let mapped = self.scales.iter().zip(scores).map(|(s, c)| s.apply(c[i]));
                match self.config.rule {
                    Rule::Mean => mapped.sum::<f64>() / self.scales.len() as f64,
                    Rule::Max => mapped.fold(f64::NEG_INFINITY, f64::max),
                }
            })
            .collect())
    }
}

/// Checks that there is one column of scores per member, all of one length.
fn check_columns(config: &EnsembleConfig, columns: &[Vec<f64>], what: &str) -> Result<()> {
    ensure!(
        columns.len() == config.members.len(),
        "{} columns of {what} scores for {} ensemble members",
        columns.len(),
        config.members.len()
    );
    let n = columns[0].len();
    ensure!(
        columns.iter().all(|c| c.len() == n),
        "the ensemble members scored different numbers of {what} images"
    );
    Ok(())
}

/// A seeded split of `n` held-out normal images in two halves (the first has the extra one):
/// the first fits the members' normalisers, the second calibrates the ensemble's statistic.
pub fn split_halves(n: usize, seed: u64) -> (Vec<usize>, Vec<usize>) {
    let mut order: Vec<usize> = (0..n).collect();
    order.shuffle(&mut crate::rng::seeded(seed));
    let second = order.split_off(n.div_ceil(2));
    (order, second)
}

/// Picks the rows `rows` of every column.
pub fn select_rows(columns: &[Vec<f64>], rows: &[usize]) -> Vec<Vec<f64>> {
    columns
        .iter()
        .map(|c| rows.iter().map(|&i| c[i]).collect())
        .collect()
}

/// Validation scores of the members, for choosing an ensemble: `normal[j]` and `anomalous[j]`
/// hold member j's scores of the held-out normal and the anomalous validation images, in the
/// order of `members`.
#[derive(Debug, Clone, PartialEq)]
pub struct MemberValidation {
    /// The members whose scores these are.
    pub members: Vec<Method>,
    /// Scores of the normal validation images, one column per member.
    pub normal: Vec<Vec<f64>>,
    /// Scores of the anomalous validation images, one column per member.
    pub anomalous: Vec<Vec<f64>>,
}

impl MemberValidation {
    /// The scores of `members` alone (each must be among ours).
    pub fn of(&self, members: &[Method]) -> Result<MemberValidation> {
        let mut normal = Vec::new();
        let mut anomalous = Vec::new();
        for m in members {
            let j = self
                .members
                .iter()
                .position(|x| x == m)
                .with_context(|| format!("no validation scores of {}", m.name()))?;
            normal.push(self.normal[j].clone());
            anomalous.push(self.anomalous[j].clone());
        }
        Ok(MemberValidation {
            members: members.to_vec(),
            normal,
            anomalous,
        })
    }
}

/// How many times [`cross_fitted_auc`] splits the normal images in two.
pub const CROSS_FIT_REPEATS: usize = 5;

/// The validation ROC-AUC of the ensemble `config`, honest about its normalisers: the normal
/// images are split in two halves ([`split_halves`], `repeats` seeded draws), the normalisers
/// are fitted on one half and the ROC-AUC measured on the other half against every anomalous
/// image, then the halves swap; the mean over all of these. This mirrors how the ensemble is
/// used (normalisers fitted on half of the held-out normal images).
pub fn cross_fitted_auc(
    config: &EnsembleConfig,
    validation: &MemberValidation,
    repeats: usize,
    seed: u64,
) -> Result<f64> {
    let MemberValidation {
        normal, anomalous, ..
    } = validation.of(&config.members)?;
    let n = normal[0].len();
    ensure!(
        n >= 4,
        "{n} normal validation images are too few to choose an ensemble on"
    );
    let mut total = 0.0;
    let mut count = 0;
    for r in 0..repeats.max(1) {
        let (a, b) = split_halves(n, crate::rng::mix(seed, r as u64));
        for (fit, held) in [(&a, &b), (&b, &a)] {
            let ensemble = Ensemble::fit(config, &select_rows(&normal, fit))?;
            let normal_scores = ensemble.combine(&select_rows(&normal, held))?;
            let anomalous_scores = ensemble.combine(&anomalous)?;
            let labels: Vec<i64> = [
                vec![0; normal_scores.len()],
                vec![1; anomalous_scores.len()],
            ]
            .concat();
            total += roc_auc(&[normal_scores, anomalous_scores].concat(), &labels)?;
            count += 1;
        }
    }
    Ok(total / count as f64)
}

/// Every ensemble over a non-empty subset of `pool` (kept in pool order), with every
/// normaliser and rule.
pub fn candidates(pool: &[Method]) -> Vec<EnsembleConfig> {
    let mut all = Vec::new();
    for mask in 1u32..(1 << pool.len()) {
        let members: Vec<Method> = (0..pool.len())
            .filter(|j| mask & (1 << j) != 0)
            .map(|j| pool[j])
            .collect();
        for normalizer in Normalizer::ALL {
            for rule in Rule::ALL {
                all.push(EnsembleConfig {
                    members: members.clone(),
                    normalizer,
                    rule,
                });
            }
        }
    }
    all
}

/// One candidate's figures in a selection: its cross-fitted validation ROC-AUC per task (a
/// class of a data set) and their mean.
#[derive(Debug, Clone, PartialEq)]
pub struct Scored {
    /// The candidate.
    pub config: EnsembleConfig,
    /// Cross-fitted validation ROC-AUC per task, in the order given.
    pub aucs: Vec<f64>,
    /// Their mean.
    pub mean: f64,
}

/// Scores every candidate over `pool` on every task's validation scores and ranks them by mean
/// cross-fitted validation ROC-AUC (best first; on ties fewer members, then the earlier).
pub fn rank_candidates(
    pool: &[Method],
    tasks: &[MemberValidation],
    seed: u64,
) -> Result<Vec<Scored>> {
    ensure!(
        !tasks.is_empty(),
        "no validation scores to choose an ensemble on"
    );
    let mut scored = candidates(pool)
        .into_iter()
        .map(|config| {
            let aucs = tasks
                .iter()
                .map(|t| cross_fitted_auc(&config, t, CROSS_FIT_REPEATS, seed))
                .collect::<Result<Vec<f64>>>()?;
            let mean = aucs.iter().sum::<f64>() / aucs.len() as f64;
            Ok(Scored { config, aucs, mean })
        })
        .collect::<Result<Vec<_>>>()?;
    // A stable sort keeps the candidates' order among equals.
    scored.sort_by(|a, b| {
        b.mean
            .total_cmp(&a.mean)
            .then(a.config.members.len().cmp(&b.config.members.len()))
    });
    Ok(scored)
}

/// One member of an [`EnsembleDetector`].
pub enum Member<'g> {
    /// A detector of its own.
    Own(Box<dyn Detector + 'g>),
    /// An earlier member's scores (the index of it) corrected for image complexity: `adgan-ic`
    /// beside `adgan`, so that the one search serves both.
    Corrected {
        /// Index of the member whose scores are corrected.
        of: usize,
        /// The complexity line.
        line: ComplexityLine,
    },
}

/// The ensemble as a [`Detector`]: every member scores the batch, and the fitted ensemble
/// combines their scores.
pub struct EnsembleDetector<'g> {
    members: Vec<Member<'g>>,
    ensemble: Ensemble,
}

impl<'g> EnsembleDetector<'g> {
    /// The members' detectors, in the order of `ensemble`'s members.
    pub fn new(members: Vec<Member<'g>>, ensemble: Ensemble) -> Result<Self> {
        ensure!(
            members.len() == ensemble.config.members.len(),
            "{} detectors for {} ensemble members",
            members.len(),
            ensemble.config.members.len()
        );
        for (i, m) in members.iter().enumerate() {
            if let Member::Corrected { of, .. } = m {
                ensure!(*of < i, "member {i} corrects a later member");
            }
        }
        Ok(Self { members, ensemble })
    }
}

impl Detector for EnsembleDetector<'_> {
    fn name(&self) -> &str {
        Method::Ensemble.name()
    }

    fn score_batch(&mut self, images: &Tensor) -> Result<Vec<f64>> {
        let mut columns: Vec<Vec<f64>> = Vec::with_capacity(self.members.len());
        for member in &mut self.members {
            let scores = match member {
                Member::Own(detector) => detector.score_batch(images)?,
                Member::Corrected { of, line } => line.correct_images(&columns[*of], images)?,
            };
            columns.push(scores);
        }
        self.ensemble.combine(&columns)
    }

    /// The first member's reconstructions that has some (the ADGAN search's).
    fn reconstructions(&mut self) -> Option<Tensor> {
        self.members.iter_mut().find_map(|m| match m {
            Member::Own(detector) => detector.reconstructions(),
            Member::Corrected { .. } => None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(members: &[Method], normalizer: Normalizer, rule: Rule) -> EnsembleConfig {
        EnsembleConfig {
            members: members.to_vec(),
            normalizer,
            rule,
        }
    }

    #[test]
    fn standardising_makes_scales_comparable() {
        // The second member is the first times 1000 plus 5: after standardising, both agree.
        let a = vec![1.0, 2.0, 3.0, 4.0];
        let b: Vec<f64> = a.iter().map(|s| 1000.0 * s + 5.0).collect();
        let c = config(
            &[Method::Adgan, Method::Kde],
            Normalizer::Standard,
            Rule::Mean,
        );
        let e = Ensemble::fit(&c, &[a.clone(), b.clone()]).unwrap();
        let single = Ensemble::fit(
            &config(&[Method::Adgan], Normalizer::Standard, Rule::Mean),
            std::slice::from_ref(&a),
        )
        .unwrap();
        let both = e.combine(&[vec![10.0], vec![10_005.0]]).unwrap();
        let one = single.combine(&[vec![10.0]]).unwrap();
        assert!((both[0] - one[0]).abs() < 1e-9);
        assert!(both[0] > 5.0);
    }

    #[test]
    fn conformal_surprise_follows_the_p_value() {
        let s = Scale::fit(Normalizer::Conformal, &[1.0, 2.0, 3.0], "m").unwrap();
        // Above every normal score: p = 1/4; equal to the largest: p = 2/4 (ties count).
        assert!((s.apply(10.0) - 4f64.ln()).abs() < 1e-12);
        assert!((s.apply(3.0) - 2f64.ln()).abs() < 1e-12);
        assert!(s.apply(0.0).abs() < 1e-12);
    }

    #[test]
    fn robust_scale_ignores_one_extreme_normal() {
        let mut normal: Vec<f64> = (0..21).map(f64::from).collect();
        let robust = Scale::fit(Normalizer::Robust, &normal, "m").unwrap();
        normal[20] = 1e9;
        let moved = Scale::fit(Normalizer::Robust, &normal, "m").unwrap();
        assert_eq!(robust, moved);
        let standard = Scale::fit(Normalizer::Standard, &normal, "m").unwrap();
        assert!(standard.apply(30.0) < 0.01);
        assert!(moved.apply(30.0) > 1.0);
    }

    #[test]
    fn max_rule_flags_what_one_member_sees() {
        let normal = vec![vec![0.0, 1.0, 2.0, 3.0], vec![0.0, 1.0, 2.0, 3.0]];
        let mean = Ensemble::fit(
            &config(
                &[Method::Adgan, Method::Kde],
                Normalizer::Standard,
                Rule::Mean,
            ),
            &normal,
        )
        .unwrap();
        let max = Ensemble {
            config: config(
                &[Method::Adgan, Method::Kde],
                Normalizer::Standard,
                Rule::Max,
            ),
            ..mean.clone()
        };
        // Image 0: one member far out; image 1: both mildly out.
        let scores = vec![vec![20.0, 5.0], vec![1.5, 5.0]];
        let by_mean = mean.combine(&scores).unwrap();
        let by_max = max.combine(&scores).unwrap();
        assert!(by_max[0] > by_max[1]);
        assert!(by_max[0] > by_mean[0]);
    }

    #[test]
    fn bad_members_and_scores_are_refused() {
        let dup = config(
            &[Method::Kde, Method::Kde],
            Normalizer::Standard,
            Rule::Mean,
        );
        assert!(dup.validate().unwrap_err().to_string().contains("twice"));
        let critic = config(&[Method::Critic], Normalizer::Standard, Rule::Mean);
        assert!(critic
            .validate()
            .unwrap_err()
            .to_string()
            .contains("members come from"));
        let flat = Ensemble::fit(
            &config(&[Method::Kde], Normalizer::Standard, Rule::Mean),
            &[vec![2.0; 10]],
        );
        assert!(flat.unwrap_err().to_string().contains("same score"));
        let e = Ensemble::fit(
            &config(&[Method::Kde], Normalizer::Robust, Rule::Mean),
            &[vec![1.0, 2.0, 3.0]],
        )
        .unwrap();
        assert!(e
            .combine(&[vec![f64::NAN]])
            .unwrap_err()
            .to_string()
            .contains("kde"));
        assert!(e.combine(&[vec![1.0], vec![2.0]]).is_err());
    }

    #[test]
    fn halves_split_every_image_once() {
        let (a, b) = split_halves(11, 3);
        assert_eq!((a.len(), b.len()), (6, 5));
        let mut all = [a.clone(), b].concat();
        all.sort();
        assert_eq!(all, (0..11).collect::<Vec<_>>());
        assert_eq!(split_halves(11, 3).0, a);
        assert_ne!(split_halves(11, 4).0, a);
    }

    /// The guarantee of the ensemble's decisions, as a statistic: normalisers fitted on one half
    /// of the held-out normal images, the combined statistic calibrated on the other half, the
    /// false-positive rate at alpha over many draws of calibration and test normal images is
    /// floor(alpha (n_cal + 1)) / (n_cal + 1) on average, within three standard errors. The
    /// members' scores are skewed and correlated, as real members' are.
    #[test]
    fn decisions_keep_their_false_positive_rate() {
        use rand_distr::{Distribution, Normal};
        let normal = Normal::new(0.0, 1.0).unwrap();
        let mut rng = crate::rng::seeded(11);
        let mut draw = |n: usize| -> Vec<Vec<f64>> {
            let shared: Vec<f64> = (0..n).map(|_| normal.sample(&mut rng)).collect();
            let own: Vec<Vec<f64>> = (0..3)
                .map(|_| (0..n).map(|_| normal.sample(&mut rng)).collect())
                .collect();
            vec![
                shared
                    .iter()
                    .zip(&own[0])
                    .map(|(a, b)| (a + b).exp())
                    .collect(),
                shared
                    .iter()
                    .zip(&own[1])
                    .map(|(a, b)| a - 0.5 * b)
                    .collect(),
                own[2].iter().map(|b| b.powi(2)).collect(),
            ]
        };
        let members = vec![Method::Adgan, Method::Kde, Method::Gmm];
        for (normalizer, rule, alpha) in [
            (Normalizer::Standard, Rule::Mean, 0.1),
            (Normalizer::Robust, Rule::Max, 0.05),
            (Normalizer::Conformal, Rule::Mean, 0.2),
        ] {
            let config = config(&members, normalizer, rule);
            let (repeats, n_held, n_test) = (400, 80, 200);
            let mut rates = Vec::new();
            for r in 0..repeats {
                let held = draw(n_held);
                let (fit, cal) = split_halves(n_held, r as u64);
                let ensemble = Ensemble::fit(&config, &select_rows(&held, &fit)).unwrap();
                let calibration = ensemble.combine(&select_rows(&held, &cal)).unwrap();
                let test = ensemble.combine(&draw(n_test)).unwrap();
                let flagged = test
                    .iter()
                    .filter(|&&s| crate::calibration::p_value(&calibration, s) <= alpha)
                    .count();
                rates.push(flagged as f64 / n_test as f64);
            }
            let mean = rates.iter().sum::<f64>() / repeats as f64;
            let sd = (rates.iter().map(|r| (r - mean).powi(2)).sum::<f64>() / (repeats - 1) as f64)
                .sqrt();
            let se = sd / (repeats as f64).sqrt();
            let n_cal = (n_held / 2) as f64;
            let expected = (alpha * (n_cal + 1.0)).floor() / (n_cal + 1.0);
            assert!(
                (mean - expected).abs() <= 3.0 * se,
                "{normalizer:?} {rule:?}: false-positive rate {mean:.4} against {expected:.4} \
                 (se {se:.4})"
            );
        }
    }

    /// Two members, each seeing half of the anomalies: the ensemble of both beats either on
    /// validation, and the ranking puts it first.
    #[test]
    fn selection_prefers_members_that_complement_each_other() {
        use rand::Rng;
        let mut rng = crate::rng::seeded(7);
        let mut noise = |n: usize| -> Vec<f64> { (0..n).map(|_| rng.gen::<f64>()).collect() };
        let n = 200;
        let normal = vec![noise(n), noise(n)];
        let (mut a, mut b) = (noise(n), noise(n));
        for i in 0..n {
            match i % 2 {
                0 => a[i] += 1.5,
                _ => b[i] += 1.5,
            }
        }
        let validation = MemberValidation {
            members: vec![Method::Adgan, Method::Kde],
            normal,
            anomalous: vec![a, b],
        };
        let ranked = rank_candidates(&[Method::Adgan, Method::Kde], &[validation], 0).unwrap();
        assert_eq!(ranked.len(), 3 * 3 * 2);
        assert_eq!(ranked[0].config.members, vec![Method::Adgan, Method::Kde]);
        assert_eq!(ranked[0].config.rule, Rule::Max);
        let single = ranked.iter().find(|s| s.config.members.len() == 1).unwrap();
        assert!(ranked[0].mean > single.mean + 0.1);
    }
}
