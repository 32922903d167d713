//! ADGAN's calibrated decisions on an experiment's test draws: under selection, the held-out
//! normal validation images of a class calibrate its test scores (conformal p-values, as
//! `adgan score --alpha` gives a user). The report shows, per class, how many test images
//! are flagged at alpha, the false-positive rate that the guarantee bounds, and a histogram
//! of normal and anomalous test scores with the threshold drawn.

use crate::calibration::{self, decision_quality, DecisionQuality, FalseAlarmRate, DEFAULT_ALPHA};
use crate::experiment::Cell;
use anyhow::Result;
use plotters::prelude::*;
use std::fmt::Write as _;

/// Histogram bins of the score plots.
const BINS: usize = 40;

/// One class's decisions at alpha.
pub struct ClassDecisions<'a> {
    /// The ADGAN cell of the class, with its calibration scores (the validation normals').
    pub cell: &'a Cell,
    /// The score above which an image is flagged, if any can be.
    pub threshold: Option<f64>,
    /// Flags, false-positive rate on normal test images, precision and recall.
    pub quality: DecisionQuality,
    /// The false-alarm rate that a calibration of this size gives at alpha, on average and
    /// its spread (none when nothing can be flagged).
    pub expected: Option<FalseAlarmRate>,
}

/// The decisions of every cell that carries calibration scores (ADGAN's, and `adgan-ic`'s).
pub fn class_decisions(cells: &[Cell], alpha: f64) -> Vec<ClassDecisions<'_>> {
    cells
        .iter()
        .filter(|c| !c.calibration_scores.is_empty())
        .map(|cell| {
            let calibration = &cell.calibration_scores;
            let p: Vec<f64> = cell
                .scores
                .iter()
                .map(|&s| calibration::p_value(calibration, s))
                .collect();
            ClassDecisions {
                cell,
                threshold: calibration::threshold(calibration, alpha),
                quality: decision_quality(&p, &cell.labels, alpha),
                expected: calibration::false_alarm_rate(calibration.len(), alpha),
            }
        })
        .collect()
}

/// The report's section: a table of the decisions and one histogram per class; empty when no
/// cell is calibrated.
pub fn decisions_html(cells: &[Cell]) -> Result<String> {
    let decisions = class_decisions(cells, DEFAULT_ALPHA);
    if decisions.is_empty() {
        return Ok(String::new());
    }
    let mut html = format!(
        "<h2>Calibrated decisions (alpha {DEFAULT_ALPHA})</h2><p>The held-out normal \
         validation images of each class (never trained on) calibrate its test scores (ADGAN's, \
         and adgan-ic's when it is run); an image \
         is flagged when its conformal p-value is at most alpha, which bounds the expected \
         false-positive rate on normal images by alpha; the rate one calibration gives varies \
         about its mean by the standard deviation shown, and a test draw adds its own \
         sampling noise. In the histograms (test \
         images, each colour normalised to its own count): green normal, red anomalous, the \
         blue line the threshold above which images are flagged.</p><table id=\"decisions\"><thead><tr>\
         <th>normal class</th><th>method</th><th>calibration images</th><th>threshold</th><th>flagged</th>\
         <th>false-positive rate</th><th>expected (mean &plusmn; sd)</th><th>precision</th><th>recall</th></tr></thead><tbody>"
    );
    for d in &decisions {
        let q = &d.quality;
        let threshold = d
            .threshold
            .map_or("-".into(), |t| crate::report::significant(t, 4));
        let expected = d.expected.as_ref().map_or("-".into(), |r| {
            format!("{:.3} &plusmn; {:.3}", r.mean, r.sd)
        });
        // Precision is undefined when nothing is flagged.
        let precision = match q.flagged {
            0 => "-".into(),
            _ => format!("{:.3}", q.precision),
        };
        write!(
            html,
            "<tr><th>{}</th><td>{}</td><td>{}</td><td>{threshold}</td><td>{}</td><td>{:.3}</td>\
             <td>{expected}</td><td>{precision}</td><td>{:.3}</td></tr>",
            crate::report::escape_html(&d.cell.class),
            d.cell.method.name(),
            d.cell.calibration_scores.len(),
            q.flagged,
            q.false_positive_rate,
            q.recall
        )?;
    }
    html += "</tbody></table><div class=\"gallery\">";
    for d in &decisions {
        html += &histogram_svg(d)?;
    }
    html += "</div>";
    Ok(html)
}

/// The class's test scores as two histograms (each normalised to its own count, so that the
/// few normal images show beside the many anomalous ones), with the threshold as a line. The
/// range ends at the 99th percentile; higher scores count in the last bin.
fn histogram_svg(d: &ClassDecisions) -> Result<String> {
    let cell = d.cell;
    let mut sorted = cell.scores.clone();
    sorted.sort_by(f64::total_cmp);
    let (low, high) = (sorted[0], sorted[(sorted.len() - 1) * 99 / 100]);
    let high = d.threshold.map_or(high, |t| high.max(t)).max(low + 1e-9);
    let width = (high - low) / BINS as f64;
    let fractions = |label: i64| -> Vec<f64> {
        let mut counts = vec![0.0; BINS];
        let mut n = 0.0;
        for (&s, &l) in cell.scores.iter().zip(&cell.labels) {
            if l == label {
                let bin = (((s - low) / width).floor().max(0.0) as usize).min(BINS - 1);
                counts[bin] += 1.0;
                n += 1.0;
            }
        }
        counts.iter().map(|c| c / f64::max(n, 1.0)).collect()
    };
    let (normal, anomalous) = (fractions(0), fractions(1));
    let top = normal.iter().chain(&anomalous).copied().fold(0.0, f64::max) * 1.1;
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (360, 220)).into_drawing_area();
        root.fill(&WHITE)?;
        let mut chart = ChartBuilder::on(&root)
            .caption(
                format!("class {}, {}", cell.class, cell.method.name()),
                ("sans-serif", 14),
            )
            .margin(8)
            .x_label_area_size(36)
            .y_label_area_size(40)
            .build_cartesian_2d(low..high, 0f64..top.max(1e-9))?;
        let label = |v: &f64| crate::report::significant(*v, 3);
        chart
            .configure_mesh()
            .x_desc("score")
            .y_desc("fraction")
            .x_labels(4)
            .y_labels(4)
            .x_label_formatter(&label)
            .y_label_formatter(&label)
            .light_line_style(WHITE)
            .draw()?;
        for (fractions, colour, name) in [
            (&anomalous, RGBColor(214, 39, 40), "anomalous"),
            (&normal, RGBColor(44, 160, 44), "normal"),
        ] {
            chart
                .draw_series(fractions.iter().enumerate().map(|(i, &f)| {
                    let x = low + i as f64 * width;
                    Rectangle::new([(x, 0.0), (x + width, f)], colour.mix(0.45).filled())
                }))?
                .label(name)
                .legend(move |(x, y)| {
                    Rectangle::new([(x, y - 4), (x + 10, y + 4)], colour.mix(0.45).filled())
                });
        }
        // Blue, so that it is not taken for the black frame of the plot.
        let threshold_colour = RGBColor(31, 119, 180);
        if let Some(t) = d.threshold {
            chart
                .draw_series(LineSeries::new(
                    [(t, 0.0), (t, top)],
                    threshold_colour.stroke_width(2),
                ))?
                .label("threshold")
                .legend(move |(x, y)| {
                    PathElement::new(vec![(x, y), (x + 10, y)], threshold_colour.stroke_width(2))
                });
        }
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::UpperRight)
            .background_style(WHITE.mix(0.8))
            .border_style(RGBColor(200, 200, 200))
            .label_font(("sans-serif", 11))
            .draw()?;
        root.present()?;
    }
    Ok(svg)
}
