//! Isolation Forest (Liu, Ting and Zhou 2008), the paper's IF baseline, with the usual
//! defaults: 100 trees, each grown on 256 points drawn without replacement, to depth
//! ceil(log2 256) = 8. Anomalies are isolated by fewer random splits; the score is
//! 2^(-E[h(x)] / c(256)) with h the path length, so higher = more anomalous.
//!
//! Written here rather than taken from a crate: the algorithm is a few dozen lines of branching
//! on host memory, and the Rust crates for it carry their own data types and RNGs, which would
//! break the project's one seeded ChaCha stream per run.

use super::features::{check_features, parameter, scalar_parameter, scalar_tensor, FeatureModel};
use anyhow::{bail, ensure, Result};
use rand::seq::index::sample;
use rand::Rng;
use rand_chacha::ChaCha8Rng;
use std::collections::HashMap;
use tch::{Kind, Tensor};

/// Forest settings.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct IsolationForestConfig {
    /// Number of trees.
    pub trees: usize,
    /// Points drawn for each tree (psi).
    pub samples_per_tree: usize,
    /// Seed of the draws and splits.
    pub seed: u64,
}

impl Default for IsolationForestConfig {
    fn default() -> Self {
        Self {
            trees: 100,
            samples_per_tree: 256,
            seed: 0,
        }
    }
}

/// A tree node: a split, or a leaf with the number of training points that reached it.
#[derive(Debug)]
enum Node {
    Split {
        feature: usize,
        threshold: f64,
        left: Box<Node>,
        right: Box<Node>,
    },
    Leaf {
        size: usize,
    },
}

/// A fitted forest.
#[derive(Debug)]
pub struct IsolationForest {
    trees: Vec<Node>,
    samples_per_tree: usize,
}

/// Average path length of an unsuccessful search in a binary search tree of n points, c(n):
/// the normaliser of path lengths.
fn average_path_length(n: usize) -> f64 {
    match n {
        0 | 1 => 0.0,
        2 => 1.0,
        _ => {
            let n = n as f64;
            2.0 * ((n - 1.0).ln() + 0.577_215_664_901_532_9) - 2.0 * (n - 1.0) / n
        }
    }
}

/// Rows of an N x d feature tensor as host vectors.
fn rows(features: &Tensor) -> Vec<Vec<f64>> {
    let host = features.to_device(tch::Device::Cpu).to_kind(Kind::Double);
    let d = host.size()[1] as usize;
    let flat = Vec::<f64>::try_from(&host.flatten(0, -1)).expect("doubles");
    flat.chunks(d.max(1)).map(<[f64]>::to_vec).collect()
}

fn grow(points: &[&[f64]], depth: usize, limit: usize, rng: &mut ChaCha8Rng) -> Node {
    if depth >= limit || points.len() <= 1 {
        return Node::Leaf { size: points.len() };
    }
    let d = points[0].len();
    let feature = rng.gen_range(0..d);
    let (min, max) = points
        .iter()
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), p| {
            (lo.min(p[feature]), hi.max(p[feature]))
        });
    if min >= max {
        // All points agree on this feature: no split isolates anything here.
        return Node::Leaf { size: points.len() };
    }
    let threshold = rng.gen_range(min..max);
    let (left, right): (Vec<&[f64]>, Vec<&[f64]>) =
        points.iter().partition(|p| p[feature] < threshold);
    Node::Split {
        feature,
        threshold,
        left: Box::new(grow(&left, depth + 1, limit, rng)),
        right: Box::new(grow(&right, depth + 1, limit, rng)),
    }
}

fn path_length(node: &Node, x: &[f64], depth: usize) -> f64 {
    match node {
        Node::Leaf { size } => depth as f64 + average_path_length(*size),
        Node::Split {
            feature,
            threshold,
            left,
            right,
        } => {
            let next = if x[*feature] < *threshold {
                left
            } else {
                right
            };
            path_length(next, x, depth + 1)
        }
    }
}

impl IsolationForest {
    /// Grows the forest on the rows of `train` (N x d).
    pub fn fit(train: &Tensor, config: &IsolationForestConfig) -> Result<IsolationForest> {
        check_features(train, 1, "Isolation Forest")?;
        let data = rows(train);
        let psi = config.samples_per_tree.min(data.len());
        let limit = (psi as f64).log2().ceil() as usize;
        let mut rng = crate::rng::seeded(config.seed);
        let trees = (0..config.trees)
            .map(|_| {
                let drawn: Vec<&[f64]> = sample(&mut rng, data.len(), psi)
                    .iter()
                    .map(|i| data[i].as_slice())
                    .collect();
                grow(&drawn, 0, limit, &mut rng)
            })
            .collect();
        Ok(IsolationForest {
            trees,
            samples_per_tree: psi,
        })
    }
}

/// Appends `node` in preorder: a split as (its feature, its threshold) and then both subtrees,
/// a leaf as (-1, its size).
fn flatten_tree(node: &Node, features: &mut Vec<i64>, values: &mut Vec<f64>) {
    match node {
        Node::Leaf { size } => {
            features.push(-1);
            values.push(*size as f64);
        }
        Node::Split {
            feature,
            threshold,
            left,
            right,
        } => {
            features.push(*feature as i64);
            values.push(*threshold);
            flatten_tree(left, features, values);
            flatten_tree(right, features, values);
        }
    }
}

/// The tree that starts at `*at` of a [`flatten_tree`] encoding; `depth` bounds the recursion
/// on a corrupt file.
fn unflatten_tree(features: &[i64], values: &[f64], at: &mut usize, depth: usize) -> Result<Node> {
    let (Some(&feature), Some(&value)) = (features.get(*at), values.get(*at)) else {
        bail!("the kept Isolation Forest ends inside a tree");
    };
    ensure!(
        depth <= 64,
        "the kept Isolation Forest has a tree deeper than 64"
    );
    *at += 1;
    if feature < 0 {
        ensure!(
            value >= 0.0 && value.fract() == 0.0,
            "the kept Isolation Forest has a leaf of size {value}"
        );
        return Ok(Node::Leaf {
            size: value as usize,
        });
    }
    let left = unflatten_tree(features, values, at, depth + 1)?;
    let right = unflatten_tree(features, values, at, depth + 1)?;
    Ok(Node::Split {
        feature: feature as usize,
        threshold: value,
        left: Box::new(left),
        right: Box::new(right),
    })
}

impl IsolationForest {
    /// The forest of [`FeatureModel::parameters`].
    pub fn from_parameters(parameters: &HashMap<String, Tensor>) -> Result<IsolationForest> {
        let features =
            Vec::<i64>::try_from(&parameter(parameters, "node_features")?.flatten(0, -1))?;
        let values = Vec::<f64>::try_from(
            &parameter(parameters, "node_values")?
                .to_kind(Kind::Double)
                .flatten(0, -1),
        )?;
        ensure!(
            features.len() == values.len(),
            "the kept Isolation Forest has {} node features for {} node values",
            features.len(),
            values.len()
        );
        let count = scalar_parameter(parameters, "trees")?;
        let samples = scalar_parameter(parameters, "samples_per_tree")?;
        ensure!(
            count >= 1.0 && samples >= 1.0,
            "the kept Isolation Forest has {count} trees of {samples} points"
        );
        let mut at = 0;
        let trees = (0..count as usize)
            .map(|_| unflatten_tree(&features, &values, &mut at, 0))
            .collect::<Result<Vec<_>>>()?;
        ensure!(
            at == features.len(),
            "the kept Isolation Forest has nodes beyond its last tree"
        );
        Ok(IsolationForest {
            trees,
            samples_per_tree: samples as usize,
        })
    }
}

impl FeatureModel for IsolationForest {
    fn parameters(&self) -> Vec<(String, Tensor)> {
        let (mut features, mut values) = (Vec::new(), Vec::new());
        for tree in &self.trees {
            flatten_tree(tree, &mut features, &mut values);
        }
        vec![
            ("node_features".to_string(), Tensor::from_slice(&features)),
            ("node_values".to_string(), Tensor::from_slice(&values)),
            ("trees".to_string(), scalar_tensor(self.trees.len() as f64)),
            (
                "samples_per_tree".to_string(),
                scalar_tensor(self.samples_per_tree as f64),
            ),
        ]
    }

    fn score(&self, features: &Tensor) -> Result<Tensor> {
        let norm = average_path_length(self.samples_per_tree).max(f64::MIN_POSITIVE);
        let scores: Vec<f64> = rows(features)
            .iter()
            .map(|x| {
                let mean_path = self.trees.iter().map(|t| path_length(t, x, 0)).sum::<f64>()
                    / self.trees.len() as f64;
                2f64.powf(-mean_path / norm)
            })
            .collect();
        Ok(Tensor::from_slice(&scores))
    }
}
