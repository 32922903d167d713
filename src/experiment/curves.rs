//! The report's plots: ROC curves (the mean over classes, as the paper's Fig. 3, and each
//! class's own) and each class's validation curve (ROC-AUC on held-out validation images
//! against training length, with the point chosen), drawn with plotters as SVG text.

use crate::eval::{mean_roc, roc_curve};
use crate::experiment::{candidate_label, Cell, ExperimentConfig};
use crate::selection::Curve;
use anyhow::Result;
use plotters::prelude::*;

/// One colour per method (the experiment has up to 12), distinct on white.
pub(crate) const PALETTE: [RGBColor; 12] = [
    RGBColor(214, 39, 40),
    RGBColor(31, 119, 180),
    RGBColor(44, 160, 44),
    RGBColor(148, 103, 189),
    RGBColor(255, 127, 14),
    RGBColor(23, 190, 207),
    RGBColor(140, 86, 75),
    RGBColor(227, 119, 194),
    RGBColor(127, 127, 127),
    RGBColor(188, 189, 34),
    RGBColor(0, 0, 0),
    RGBColor(0, 0, 128),
];

/// One line of a plot: its colour, its legend and its points.
struct Line {
    colour: RGBColor,
    label: String,
    points: Vec<(f64, f64)>,
}

/// The size of a plot: the whole picture and the width of its plotting area (the legend gets
/// the column right of it, so that it hides no line).
struct Frame {
    size: (u32, u32),
    plot_width: u32,
    font: u32,
}

const LARGE: Frame = Frame {
    size: (640, 440),
    plot_width: 500,
    font: 14,
};

const SMALL: Frame = Frame {
    size: (400, 280),
    plot_width: 290,
    font: 11,
};

/// A small plot with room for longer legends (learning rates).
const SMALL_WIDE_LEGEND: Frame = Frame {
    size: (470, 280),
    plot_width: 290,
    font: 11,
};

/// Draws `lines` in `frame` over the axes' ranges, with a caption and axis names; `marks`
/// are points drawn as circles in their line's colour (a chosen point). The chance diagonal
/// is drawn when `diagonal`.
struct Plot<'a> {
    caption: &'a str,
    x: (&'a str, std::ops::Range<f64>),
    y: (&'a str, std::ops::Range<f64>),
    diagonal: bool,
}

impl Plot<'_> {
    fn svg(
        &self,
        frame: &Frame,
        lines: &[Line],
        marks: &[(RGBColor, (f64, f64))],
    ) -> Result<String> {
        let mut svg = String::new();
        {
            let root = SVGBackend::with_string(&mut svg, frame.size).into_drawing_area();
            root.fill(&WHITE)?;
            let (plot, legend) = root.split_horizontally(frame.plot_width);
            let mut chart = ChartBuilder::on(&plot)
                .caption(self.caption, ("sans-serif", frame.font + 4))
                .margin(10)
                .x_label_area_size(34)
                .y_label_area_size(44)
                .build_cartesian_2d(self.x.1.clone(), self.y.1.clone())?;
            chart
                .configure_mesh()
                .x_desc(self.x.0)
                .y_desc(self.y.0)
                .x_label_formatter(&|v| crate::report::compact(*v, 3))
                .y_label_formatter(&|v| crate::report::compact(*v, 3))
                .draw()?;
            if self.diagonal {
                let (x, y) = (&self.x.1, &self.y.1);
                chart.draw_series(LineSeries::new(
                    [(x.start, y.start), (x.end, y.end)],
                    BLACK.mix(0.3),
                ))?;
            }
            for (row, line) in lines.iter().enumerate() {
                chart.draw_series(LineSeries::new(
                    line.points.iter().copied(),
                    line.colour.stroke_width(2),
                ))?;
                let y = 40 + (frame.font as i32 + 8) * row as i32;
                legend.draw(&PathElement::new(
                    vec![(6, y), (26, y)],
                    line.colour.stroke_width(2),
                ))?;
                legend.draw(&Text::new(
                    line.label.clone(),
                    (30, y - frame.font as i32 / 2),
                    ("sans-serif", frame.font).into_font(),
                ))?;
            }
            for &(colour, point) in marks {
                chart.draw_series([Circle::new(point, 6, colour.stroke_width(2))])?;
            }
            root.present()?;
        }
        Ok(svg)
    }
}

/// The ROC plot's axes.
fn roc_plot(caption: &str) -> Plot<'_> {
    Plot {
        caption,
        x: ("false-positive rate", 0.0..1.0),
        y: ("true-positive rate", 0.0..1.0),
        diagonal: true,
    }
}

/// The ROC curve of each method, averaged over classes on a common false-positive grid (the
/// paper's Fig. 3), as SVG text.
pub fn roc_svg(config: &ExperimentConfig, cells: &[Cell]) -> Result<String> {
    let mut lines = Vec::new();
    for (i, &method) in config.methods.iter().enumerate() {
        let curves = cells
            .iter()
            .filter(|c| c.method == method)
            .map(|c| roc_curve(&c.scores, &c.labels))
            .collect::<Result<Vec<_>>>()?;
        if curves.is_empty() {
            continue;
        }
        lines.push(Line {
            colour: PALETTE[i % PALETTE.len()],
            label: method.name().to_string(),
            points: mean_roc(&curves, 201)
                .iter()
                .map(|p| (p.fpr, p.tpr))
                .collect(),
        });
    }
    roc_plot("ROC, mean over normal classes").svg(&LARGE, &lines, &[])
}

/// The ROC curve of each method on normal class `class`'s test images, as SVG text (the
/// methods in the colours of [`roc_svg`]).
pub fn class_roc_svg(config: &ExperimentConfig, cells: &[Cell], class: &str) -> Result<String> {
    let mut lines = Vec::new();
    for (i, &method) in config.methods.iter().enumerate() {
        let Some(cell) = cells
            .iter()
            .find(|c| c.method == method && c.class == class)
        else {
            continue;
        };
        lines.push(Line {
            colour: PALETTE[i % PALETTE.len()],
            label: format!("{} {:.3}", method.name(), cell.auc),
            points: roc_curve(&cell.scores, &cell.labels)?
                .iter()
                .map(|p| (p.fpr, p.tpr))
                .collect(),
        });
    }
    roc_plot(&format!("ROC, normal class {class}")).svg(&SMALL, &lines, &[])
}

/// Class `class`'s validation curve: ADGAN's validation ROC-AUC at each snapshot, one line
/// per search candidate (learning rates), with the point ADGAN chose circled (`chosen`:
/// iterations and lr_theta, as its cell records them).
pub fn validation_svg(curve: &Curve, class: &str, chosen: Option<(f64, f64)>) -> Result<String> {
    let mut labels: Vec<String> = Vec::new();
    let mut lines: Vec<Line> = Vec::new();
    let mut marks = Vec::new();
    for point in &curve.points {
        let label = candidate_label(&point.search);
        let index = match labels.iter().position(|l| *l == label) {
            Some(i) => i,
            None => {
                labels.push(label.clone());
                lines.push(Line {
                    colour: PALETTE[(labels.len() - 1) % PALETTE.len()],
                    label,
                    points: Vec::new(),
                });
                labels.len() - 1
            }
        };
        let xy = (point.iteration as f64, point.auc);
        lines[index].points.push(xy);
        let is_chosen = chosen.is_some_and(|(iterations, lr_theta)| {
            iterations == point.iteration as f64
                && (lr_theta - point.search.effective_lr_theta()).abs() <= 1e-12 * lr_theta.abs()
        });
        if is_chosen {
            marks.push((lines[index].colour, xy));
        }
    }
    let last = curve.points.iter().map(|p| p.iteration).max().unwrap_or(1) as f64;
    let (low, high) = curve
        .points
        .iter()
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), p| {
            (lo.min(p.auc), hi.max(p.auc))
        });
    // The range of the curve with a margin, at least 0.05 high, within [0, 1].
    let (low, high) = match low.is_finite() {
        true => ((low - 0.02).max(0.0), (high + 0.02).min(1.0)),
        false => (0.0, 1.0),
    };
    let low = low.min((high - 0.05).max(0.0));
    let plot = Plot {
        caption: &format!("validation, normal class {class}"),
        x: ("generator iterations", 0.0..last * 1.05),
        y: ("validation ROC-AUC", low..high),
        diagonal: false,
    };
    plot.svg(&SMALL_WIDE_LEGEND, &lines, &marks)
}
