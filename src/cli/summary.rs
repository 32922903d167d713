//! What `rank` and `merge --rank` print when a ranking is written.

use adgan::report::{Ranking, RankingFiles};

/// Prints what a ranking flagged, its most anomalous images and where its files are.
pub(crate) fn print_ranking(ranking: &Ranking, files: &RankingFiles, alpha: f64) {
    if let Some(decisions) = &ranking.decisions {
        let flagged = decisions.p_values.iter().filter(|&&v| v <= alpha).count();
        println!(
            "flagged {flagged} of {} images as anomalous at alpha {alpha} (on normal images the \
             expected rate of false alarms is at most {alpha})",
            decisions.p_values.len(),
        );
    }
    println!("ranked {} images; most anomalous:", ranking.ids.len());
    for i in adgan::score::ranking(ranking.scores).into_iter().take(5) {
        println!("  {:>10.2}  {}", ranking.scores[i], ranking.ids[i]);
    }
    println!("  page:            {}", files.page.display());
    println!("  scores:          {}", files.scores.display());
    println!("  most anomalous:  {}", files.most_anomalous.display());
    println!("  least anomalous: {}", files.least_anomalous.display());
    if let Some((most, least)) = &files.maps {
        println!("  anomaly maps:    {}, {}", most.display(), least.display());
    }
}
