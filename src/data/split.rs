//! The paper's one-vs-all protocol: train on one class, test on a random draw of the test split
//! in which every other class is anomalous.

use super::Dataset;
use anyhow::{bail, ensure, Context, Result};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

/// Resolves a class given by name (a class folder, `cat`) or by index (`3`).
pub fn normal_class_index(dataset: &Dataset, class: &str) -> Result<i64> {
    if let Some(i) = dataset.class_names.iter().position(|n| n == class) {
        return Ok(i as i64);
    }
    let index: i64 = class.parse().with_context(|| {
        format!(
            "unknown class {class:?}; the classes are: {}",
            dataset.class_names.join(", ")
        )
    })?;
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

/// Draws `n_test` images of `test` without replacement with `seed` (kept in their original
/// order) and labels them 1 (anomalous: another class than `normal`) or 0; returns the draw
/// and the original class of each drawn image.
pub fn draw_test(
    test: &Dataset,
    normal: i64,
    n_test: usize,
    seed: u64,
) -> Result<(Dataset, Vec<i64>)> {
    let Some(test_labels) = &test.labels else {
        bail!("one-vs-all needs labelled test images");
    };
    ensure!(
        n_test <= test.len(),
        "--n-test {n_test} is more than the {} test images there are",
        test.len()
    );
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
