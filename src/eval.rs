//! Evaluation metrics.

use anyhow::{ensure, Result};

/// ROC-AUC of `scores` for binary `labels` (1 = anomalous, the positive class), computed
/// exactly as the Mann-Whitney statistic: the probability that a random anomaly scores higher
/// than a random normal image, with ties counted as one half.
pub fn roc_auc(scores: &[f64], labels: &[i64]) -> Result<f64> {
    ensure!(
        scores.len() == labels.len(),
        "{} scores for {} labels",
        scores.len(),
        labels.len()
    );
    ensure!(scores.iter().all(|s| !s.is_nan()), "a score is NaN");
    let mut order: Vec<usize> = (0..scores.len()).collect();
    order.sort_by(|&a, &b| scores[a].total_cmp(&scores[b]));
    // Sum of the (tie-averaged) ranks of the positives.
    let (mut rank_sum, mut i) = (0.0, 0);
    while i < order.len() {
        let mut j = i;
        while j + 1 < order.len() && scores[order[j + 1]] == scores[order[i]] {
            j += 1;
        }
        let mean_rank = (i + j) as f64 / 2.0 + 1.0;
        rank_sum += mean_rank * order[i..=j].iter().filter(|&&k| labels[k] == 1).count() as f64;
        i = j + 1;
    }
    let positives = labels.iter().filter(|&&l| l == 1).count() as f64;
    let negatives = labels.len() as f64 - positives;
    ensure!(
        positives > 0.0 && negatives > 0.0,
        "ROC-AUC needs both normal and anomalous images"
    );
    Ok((rank_sum - positives * (positives + 1.0) / 2.0) / (positives * negatives))
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
}
