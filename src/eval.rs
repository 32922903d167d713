//! Evaluation metrics.

use anyhow::{ensure, Result};

/// Image indices sorted by score (descending when `descending`), cut into runs of equal scores.
fn tie_groups(scores: &[f64], labels: &[i64], descending: bool) -> Result<Vec<Vec<usize>>> {
    ensure!(
        scores.len() == labels.len(),
        "{} scores for {} labels",
        scores.len(),
        labels.len()
    );
    ensure!(scores.iter().all(|s| !s.is_nan()), "a score is NaN");
    let mut order: Vec<usize> = (0..scores.len()).collect();
    order.sort_by(|&a, &b| {
        if descending {
            scores[b].total_cmp(&scores[a])
        } else {
            scores[a].total_cmp(&scores[b])
        }
    });
    Ok(order
        .chunk_by(|&a, &b| scores[a] == scores[b])
        .map(<[usize]>::to_vec)
        .collect())
}

/// ROC-AUC of `scores` for binary `labels` (1 = anomalous, the positive class), computed
/// exactly as the Mann-Whitney statistic: the probability that a random anomaly scores higher
/// than a random normal image, with ties counted as one half.
pub fn roc_auc(scores: &[f64], labels: &[i64]) -> Result<f64> {
    let groups = tie_groups(scores, labels, false)?;
    let (positives, negatives) = class_counts(labels)?;
    // Sum of the (tie-averaged) ranks of the positives.
    let (mut rank_sum, mut below) = (0.0, 0.0);
    for group in groups {
        let mean_rank = below + (group.len() as f64 + 1.0) / 2.0;
        rank_sum += mean_rank * group.iter().filter(|&&k| labels[k] == 1).count() as f64;
        below += group.len() as f64;
    }
    Ok((rank_sum - positives * (positives + 1.0) / 2.0) / (positives * negatives))
}

/// One point of a ROC curve.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct RocPoint {
    /// False-positive rate: share of normal images at or above the threshold.
    pub fpr: f64,
    /// True-positive rate: share of anomalies at or above the threshold.
    pub tpr: f64,
}

fn class_counts(labels: &[i64]) -> Result<(f64, f64)> {
    let positives = labels.iter().filter(|&&l| l == 1).count() as f64;
    let negatives = labels.len() as f64 - positives;
    ensure!(
        positives > 0.0 && negatives > 0.0,
        "ROC and precision figures need both normal and anomalous images"
    );
    Ok((positives, negatives))
}

/// The ROC curve: one point per distinct score (thresholds from high to low), from (0, 0) to
/// (1, 1). Tied scores move both rates at once, so the trapezoidal area under these points
/// equals [`roc_auc`].
pub fn roc_curve(scores: &[f64], labels: &[i64]) -> Result<Vec<RocPoint>> {
    let groups = tie_groups(scores, labels, true)?;
    let (positives, negatives) = class_counts(labels)?;
    let mut points = vec![RocPoint { fpr: 0.0, tpr: 0.0 }];
    let (mut tp, mut fp) = (0.0, 0.0);
    for group in groups {
        let group_positives = group.iter().filter(|&&k| labels[k] == 1).count() as f64;
        tp += group_positives;
        fp += group.len() as f64 - group_positives;
        points.push(RocPoint {
            fpr: fp / negatives,
            tpr: tp / positives,
        });
    }
    Ok(points)
}

/// Average precision: the mean, over anomalies, of the precision at the rank of each anomaly
/// (ties at one score share the precision reached after the whole tie), as in scikit-learn.
pub fn average_precision(scores: &[f64], labels: &[i64]) -> Result<f64> {
    let groups = tie_groups(scores, labels, true)?;
    let (positives, _) = class_counts(labels)?;
    let (mut tp, mut seen, mut ap) = (0.0, 0.0, 0.0);
    for group in groups {
        let group_positives = group.iter().filter(|&&k| labels[k] == 1).count() as f64;
        tp += group_positives;
        seen += group.len() as f64;
        ap += group_positives / positives * (tp / seen);
    }
    Ok(ap)
}

/// True-positive rate of a ROC curve at false-positive rate `fpr`, interpolated linearly
/// (the highest rate where the curve is vertical there).
pub fn tpr_at(curve: &[RocPoint], fpr: f64) -> f64 {
    let mut best = 0.0f64;
    for pair in curve.windows(2) {
        let (a, b) = (pair[0], pair[1]);
        if fpr < a.fpr || fpr > b.fpr {
            continue;
        }
        let t = if b.fpr > a.fpr {
            (fpr - a.fpr) / (b.fpr - a.fpr)
        } else {
            1.0
        };
        best = best.max(a.tpr + t * (b.tpr - a.tpr));
    }
    best
}

/// The mean of several ROC curves on a common grid of `points` false-positive rates from 0 to
/// 1 (the averaging of the paper's Fig. 3).
pub fn mean_roc(curves: &[Vec<RocPoint>], points: usize) -> Vec<RocPoint> {
    let points = points.max(2);
    (0..points)
        .map(|i| {
            let fpr = i as f64 / (points - 1) as f64;
            let tpr =
                curves.iter().map(|c| tpr_at(c, fpr)).sum::<f64>() / curves.len().max(1) as f64;
            RocPoint { fpr, tpr }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::roc_auc;

    #[test]
    fn hand_computed_cases() {
        assert_eq!(roc_auc(&[0.1, 0.2, 0.8, 0.9], &[0, 0, 1, 1]).unwrap(), 1.0);
        assert_eq!(roc_auc(&[0.9, 0.8, 0.2, 0.1], &[0, 0, 1, 1]).unwrap(), 0.0);
        // Pairs (pos, neg): (0.5 vs 0.1) win, (0.5 vs 0.7) loss, (0.9 vs both) wins: 3 of 4.
        assert_eq!(roc_auc(&[0.1, 0.5, 0.7, 0.9], &[0, 1, 0, 1]).unwrap(), 0.75);
        // A tie between a positive and a negative counts one half: (1 + 0.5) / 2.
        assert_eq!(roc_auc(&[0.3, 0.5, 0.5], &[0, 0, 1]).unwrap(), 0.75);
        assert_eq!(roc_auc(&[2.0; 5], &[0, 1, 0, 1, 1]).unwrap(), 0.5);
        assert!(roc_auc(&[1.0, 2.0], &[1, 1]).is_err());
        assert!(roc_auc(&[f64::NAN, 2.0], &[0, 1]).is_err());
    }

    fn trapezoid(curve: &[super::RocPoint]) -> f64 {
        curve
            .windows(2)
            .map(|p| (p[1].fpr - p[0].fpr) * (p[1].tpr + p[0].tpr) / 2.0)
            .sum()
    }

    #[test]
    fn roc_curve_matches_auc_with_ties() {
        let scores = [0.3, 0.5, 0.5, 0.9, 0.1, 0.5, 0.7];
        let labels = [0, 0, 1, 1, 0, 1, 0];
        let curve = super::roc_curve(&scores, &labels).unwrap();
        assert_eq!(curve.first().map(|p| (p.fpr, p.tpr)), Some((0.0, 0.0)));
        assert_eq!(curve.last().map(|p| (p.fpr, p.tpr)), Some((1.0, 1.0)));
        // Five distinct scores: five points after the origin.
        assert_eq!(curve.len(), 6);
        let auc = roc_auc(&scores, &labels).unwrap();
        assert!((trapezoid(&curve) - auc).abs() < 1e-12);
        // The tie at 0.5 (one normal, two anomalies) is one diagonal step.
        assert_eq!((curve[3].fpr, curve[3].tpr), (0.5, 1.0));
    }

    #[test]
    fn average_precision_hand_computed() {
        // Ranked: 0.9 (pos), 0.7 (neg), 0.5 (pos): precision 1 and 2/3 -> AP 5/6.
        let ap = super::average_precision(&[0.5, 0.9, 0.7], &[1, 1, 0]).unwrap();
        assert!((ap - 5.0 / 6.0).abs() < 1e-12);
        // All equal: precision of the whole set, the share of anomalies.
        let ap = super::average_precision(&[1.0; 4], &[1, 0, 0, 0]).unwrap();
        assert!((ap - 0.25).abs() < 1e-12);
    }

    #[test]
    fn mean_roc_on_a_grid() {
        let perfect = super::roc_curve(&[0.0, 1.0], &[0, 1]).unwrap();
        let chance = super::roc_curve(&[1.0, 1.0], &[0, 1]).unwrap();
        let mean = super::mean_roc(&[perfect, chance], 5);
        let tprs: Vec<f64> = mean.iter().map(|p| p.tpr).collect();
        assert_eq!(tprs, vec![0.5, 0.625, 0.75, 0.875, 1.0]);
    }
}
