//! The paper's one-vs-all protocol: train on one class, test on a random draw of the test split
//! in which every other class is anomalous.

use super::Dataset;
use anyhow::{bail, ensure, Result};
use rand::seq::SliceRandom;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};
use tch::Tensor;

/// Resolves a class given by name (a class folder, `cat`) or by index (`3`).
pub fn normal_class_index(dataset: &Dataset, class: &str) -> Result<i64> {
    if let Some(i) = dataset.class_names.iter().position(|n| n == class) {
        return Ok(i as i64);
    }
    let Ok(index) = class.parse::<i64>() else {
        bail!(
            "unknown class {class:?}; the classes are: {}",
            if dataset.class_names.is_empty() {
                "numbered (give an index)".to_string()
            } else {
                dataset.class_names.join(", ")
            }
        );
    };
    let known = dataset
        .labels
        .as_ref()
        .map(|l| l.contains(&index))
        .unwrap_or(false);
    ensure!(
        known,
        "class {index} does not occur in the data (classes: {})",
        if dataset.class_names.is_empty() {
            "unnamed".to_string()
        } else {
            dataset.class_names.join(", ")
        }
    );
    Ok(index)
}

/// The images of one class.
pub fn only_class(dataset: &Dataset, class: i64) -> Result<Dataset> {
    let Some(labels) = &dataset.labels else {
        bail!("the data has no labels, so no class can be selected; train on all of it instead");
    };
    let indices: Vec<usize> = (0..labels.len()).filter(|&i| labels[i] == class).collect();
    ensure!(!indices.is_empty(), "no image has class {class}");
    Ok(dataset.select(&indices))
}

/// The images of every class but one (the anomalies a validation set can draw from).
pub fn other_classes(dataset: &Dataset, class: i64) -> Result<Dataset> {
    let Some(labels) = &dataset.labels else {
        bail!("the data has no labels, so no other class can be selected");
    };
    let indices: Vec<usize> = (0..labels.len()).filter(|&i| labels[i] != class).collect();
    ensure!(
        !indices.is_empty(),
        "no image has a class other than {class}"
    );
    Ok(dataset.select(&indices))
}

/// A one-vs-all task (the paper's Sect. 4.1).
#[derive(Debug)]
pub struct OneVsAll {
    /// All training images of the normal class.
    pub train: Dataset,
    /// `n_test` test images; `labels` are 1 for anomalous (another class), 0 for normal.
    pub test: Dataset,
    /// The original class of each test image.
    pub test_classes: Vec<i64>,
}

/// Draws `n_test` images of `test` (all of them when there are fewer) without replacement with
/// `seed` (kept in their original order) and labels them 1 (anomalous: another class than
/// `normal`) or 0; returns the draw and the original class of each drawn image.
pub fn draw_test(
    test: &Dataset,
    normal: i64,
    n_test: usize,
    seed: u64,
) -> Result<(Dataset, Vec<i64>)> {
    let Some(test_labels) = &test.labels else {
        bail!("one-vs-all needs labelled test images");
    };
    let n_test = n_test.min(test.len());
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut indices = rand::seq::index::sample(&mut rng, test.len(), n_test).into_vec();
    indices.sort_unstable();
    let mut drawn = test.select(&indices);
    let classes: Vec<i64> = indices.iter().map(|&i| test_labels[i]).collect();
    drawn.labels = Some(classes.iter().map(|&c| i64::from(c != normal)).collect());
    Ok((drawn, classes))
}

/// Builds the one-vs-all split: the normal class of `train`, and `n_test` images of `test`
/// drawn by [`draw_test`].
pub fn one_vs_all(
    train: &Dataset,
    test: &Dataset,
    normal: i64,
    n_test: usize,
    seed: u64,
) -> Result<OneVsAll> {
    let (test, test_classes) = draw_test(test, normal, n_test, seed)?;
    Ok(OneVsAll {
        train: only_class(train, normal)?,
        test,
        test_classes,
    })
}

/// One of `count` equal parts of a list of images (contiguous, in list order), so that several
/// machines can each score a part of one collection; `index` counts from 0.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Shard {
    /// Which part, from 0.
    pub index: usize,
    /// How many parts.
    pub count: usize,
}

impl Shard {
    /// The whole list.
    pub const WHOLE: Shard = Shard { index: 0, count: 1 };

    /// The indices of the part in a list of `n`: [floor(index n / count), floor((index + 1) n /
    /// count)).
    pub fn range(&self, n: usize) -> std::ops::Range<usize> {
        self.index * n / self.count..(self.index + 1) * n / self.count
    }
}

impl std::str::FromStr for Shard {
    type Err = anyhow::Error;

    /// `I/N`: part I (from 0) of N.
    fn from_str(text: &str) -> Result<Self> {
        let parsed = text
            .split_once('/')
            .and_then(|(i, n)| Some((i.trim().parse().ok()?, n.trim().parse().ok()?)));
        match parsed {
            Some((index, count)) if count > 0 && index < count => Ok(Shard { index, count }),
            _ => bail!("{text:?} is not a shard: write I/N with 0 <= I < N (e.g. 0/4)"),
        }
    }
}

impl std::fmt::Display for Shard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.index, self.count)
    }
}

/// How many of `n` images a hold-out of `fraction` takes: rounded, and at least one.
pub fn holdout_size(n: usize, fraction: f64) -> usize {
    ((n as f64 * fraction).round() as usize).max(1)
}

/// Indices of `count` of `n` images held out at random with `rng`, and of the others (both in
/// the drawn order).
pub fn hold_out(n: usize, count: usize, rng: &mut ChaCha8Rng) -> (Vec<usize>, Vec<usize>) {
    let mut order: Vec<usize> = (0..n).collect();
    order.shuffle(rng);
    let kept = order.split_off(count.min(n));
    (order, kept)
}

/// A validation split drawn from the training split only, so that every choice made on it
/// (the PCA dimension of the classic baselines, the GAN's training length, the search's learning
/// rates) never sees a test image.
#[derive(Debug)]
pub struct ValidationSplit {
    /// The normal training images that are not held out: what models are fitted on.
    pub fit: Dataset,
    /// Held-out normal training images, then as many training images of other classes, labelled
    /// 0 (normal) and 1 (anomalous).
    pub validation: Dataset,
}

impl ValidationSplit {
    /// Holds out `fraction` of `normal` (at least one image, seeded) and draws as many images of
    /// `others` as anomalies.
    pub fn draw(normal: &Dataset, others: &Dataset, fraction: f64, seed: u64) -> Result<Self> {
        ensure!(
            fraction > 0.0 && fraction < 1.0,
            "the validation fraction must lie strictly between 0 and 1, not {fraction}"
        );
        let n = normal.len();
        let n_holdout = holdout_size(n, fraction);
        ensure!(
            n_holdout < n && others.len() >= n_holdout,
            "a validation split needs at least 2 normal training images and {n_holdout} of other \
             classes (have {n} and {})",
            others.len()
        );
        let mut rng = crate::rng::seeded(seed);
        let (held, kept) = hold_out(n, n_holdout, &mut rng);
        let (held, kept) = (&held[..], &kept[..]);
        let mut other_order: Vec<usize> = (0..others.len()).collect();
        other_order.shuffle(&mut rng);
        let held = normal.select(held);
        let anomalies = others.select(&other_order[..n_holdout]);
        let validation = Dataset {
            images: Tensor::cat(&[&held.images, &anomalies.images], 0),
            labels: Some([vec![0; n_holdout], vec![1; n_holdout]].concat()),
            ids: [held.ids, anomalies.ids].concat(),
            class_names: normal.class_names.clone(),
            skipped: Vec::new(),
        };
        Ok(Self {
            fit: normal.select(kept),
            validation,
        })
    }

    /// Number of held-out normal images (the validation set has as many anomalies).
    pub fn per_side(&self) -> usize {
        self.validation.len() / 2
    }

    /// The first `max` normal and the first `max` anomalous validation images (both already in
    /// a random order): a smaller validation set for an expensive detector.
    pub fn capped(&self, max: usize) -> Dataset {
        let side = self.per_side();
        let keep = max.min(side);
        let indices: Vec<usize> = (0..keep).chain(side..side + keep).collect();
        self.validation.select(&indices)
    }
}

/// How the calibration split is drawn from the normal training images.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct CalibrationSplit {
    /// Fraction of the normal training images held out (never trained on).
    pub fraction: f64,
    /// Seed of the draw.
    pub seed: u64,
}

impl Default for CalibrationSplit {
    fn default() -> Self {
        Self {
            fraction: 0.1,
            seed: 0,
        }
    }
}

impl CalibrationSplit {
    /// Splits `normal` into (training images, calibration images).
    pub fn split(&self, normal: &Dataset) -> Result<(Dataset, Dataset)> {
        ensure!(
            self.fraction > 0.0 && self.fraction < 1.0,
            "the calibration fraction must lie strictly between 0 and 1, not {}",
            self.fraction
        );
        let n = normal.len();
        let count = holdout_size(n, self.fraction);
        ensure!(
            count < n,
            "{n} normal images are too few to hold out a calibration split"
        );
        let (held, kept) = hold_out(n, count, &mut crate::rng::seeded(self.seed));
        Ok((normal.select(&kept), normal.select(&held)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labelled(n: usize, class: i64, tag: &str) -> Dataset {
        Dataset {
            images: Tensor::arange(n as i64, (tch::Kind::Float, tch::Device::Cpu))
                .view([n as i64, 1, 1, 1]),
            labels: Some(vec![class; n]),
            ids: (0..n).map(|i| format!("{tag}{i}")).collect(),
            class_names: Vec::new(),
            skipped: Vec::new(),
        }
    }

    #[test]
    fn validation_split_holds_out_normals_and_draws_as_many_anomalies() {
        let normal = labelled(50, 0, "n");
        let others = labelled(80, 1, "o");
        let split = ValidationSplit::draw(&normal, &others, 0.2, 7).unwrap();
        assert_eq!((split.fit.len(), split.per_side()), (40, 10));
        let labels = split.validation.labels.clone().unwrap();
        assert_eq!(labels, [vec![0; 10], vec![1; 10]].concat());
        // Held-out normals are never in the fit set, and together they are the normal class.
        let mut all: Vec<&String> = split.fit.ids.iter().collect();
        all.extend(&split.validation.ids[..10]);
        all.sort();
        all.dedup();
        assert_eq!(all.len(), 50);
        assert!(split.validation.ids[10..]
            .iter()
            .all(|id| id.starts_with('o')));
        // Seeded: the same seed draws the same split, another seed another one.
        let again = ValidationSplit::draw(&normal, &others, 0.2, 7).unwrap();
        assert_eq!(again.validation.ids, split.validation.ids);
        let other = ValidationSplit::draw(&normal, &others, 0.2, 8).unwrap();
        assert_ne!(other.validation.ids, split.validation.ids);
        // Capping keeps the first normals and the first anomalies, balanced.
        let capped = split.capped(3);
        assert_eq!(capped.labels.unwrap(), vec![0, 0, 0, 1, 1, 1]);
        assert_eq!(capped.ids[..3], split.validation.ids[..3]);
        assert_eq!(capped.ids[3..], split.validation.ids[10..13]);
        assert_eq!(split.capped(100).len(), 20);
    }

    #[test]
    fn shards_cover_the_list_once() {
        for n in [0usize, 1, 7, 100] {
            let parts: Vec<usize> = (0..3)
                .flat_map(|i| Shard { index: i, count: 3 }.range(n))
                .collect();
            assert_eq!(parts, (0..n).collect::<Vec<_>>());
        }
        assert_eq!(
            "1/4".parse::<Shard>().unwrap(),
            Shard { index: 1, count: 4 }
        );
        for bad in ["4/4", "1/0", "a/2", "3"] {
            assert!(bad.parse::<Shard>().is_err(), "{bad}");
        }
    }

    #[test]
    fn validation_split_refuses_what_cannot_be_split() {
        let normal = labelled(5, 0, "n");
        assert!(ValidationSplit::draw(&normal, &labelled(1, 1, "o"), 0.5, 0).is_err());
        assert!(ValidationSplit::draw(&normal, &labelled(9, 1, "o"), 0.0, 0).is_err());
        assert!(ValidationSplit::draw(&labelled(1, 0, "n"), &labelled(9, 1, "o"), 0.5, 0).is_err());
    }
}
