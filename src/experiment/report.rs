//! The experiment report: mean ROC curves (SVG, drawn with plotters), galleries of the most and
//! least anomalous test images per class (like the paper's Figs. 4-6), and a self-contained
//! `report.html` holding the table, the plot and the galleries.

use crate::data::{Dataset, Split};
use crate::eval::{mean_roc, roc_curve};
use crate::experiment::{auc_table, Cell, ExperimentConfig};
use crate::io::write_atomic;
use crate::score::method::Method;
use crate::visual::save_gallery;
use anyhow::{Context, Result};
use base64::Engine;
use plotters::prelude::*;
use std::collections::HashMap;
use std::fmt::Write as _;
use std::path::Path;

/// One colour per method (the experiment has up to 12), distinct on white.
const PALETTE: [RGBColor; 12] = [
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

/// Draws the ROC curve of each method, averaged over classes on a common false-positive grid
/// (the paper's Fig. 3), as SVG text.
pub fn roc_svg(config: &ExperimentConfig, cells: &[Cell]) -> Result<String> {
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (520, 440)).into_drawing_area();
        root.fill(&WHITE)?;
        let mut chart = ChartBuilder::on(&root)
            .caption("ROC, mean over normal classes", ("sans-serif", 18))
            .margin(12)
            .x_label_area_size(36)
            .y_label_area_size(44)
            .build_cartesian_2d(0f64..1f64, 0f64..1f64)?;
        chart
            .configure_mesh()
            .x_desc("false-positive rate")
            .y_desc("true-positive rate")
            .draw()?;
        chart.draw_series(LineSeries::new([(0.0, 0.0), (1.0, 1.0)], BLACK.mix(0.3)))?;
        for (i, &method) in config.methods.iter().enumerate() {
            let curves = cells
                .iter()
                .filter(|c| c.method == method)
                .map(|c| roc_curve(&c.scores, &c.labels))
                .collect::<Result<Vec<_>>>()?;
            if curves.is_empty() {
                continue;
            }
            let colour = PALETTE[i % PALETTE.len()];
            let mean = mean_roc(&curves, 201);
            chart
                .draw_series(LineSeries::new(
                    mean.iter().map(|p| (p.fpr, p.tpr)),
                    colour.stroke_width(2),
                ))?
                .label(method.name())
                .legend(move |(x, y)| {
                    PathElement::new(vec![(x, y), (x + 20, y)], colour.stroke_width(2))
                });
        }
        chart
            .configure_series_labels()
            .background_style(WHITE.mix(0.8))
            .border_style(BLACK)
            .draw()?;
        root.present()?;
    }
    Ok(svg)
}

/// The test images of `cell` ranked by its scores: (most anomalous, least anomalous) indices into
/// `test`, `top` each.
fn gallery_indices(
    cell: &Cell,
    test_index: &HashMap<&str, usize>,
    top: usize,
) -> Result<(Vec<usize>, Vec<usize>)> {
    let order = crate::score::ranking(&cell.scores);
    let lookup = |k: &usize| {
        let id = cell.ids[*k].as_str();
        test_index
            .get(id)
            .copied()
            .with_context(|| format!("test image {id} of class {} is not in the data", cell.class))
    };
    let most = order.iter().take(top).map(lookup).collect::<Result<_>>()?;
    let least = order
        .iter()
        .rev()
        .take(top)
        .map(lookup)
        .collect::<Result<_>>()?;
    Ok((most, least))
}

fn png_data_uri(path: &Path) -> Result<String> {
    let bytes = std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
    Ok(format!(
        "data:image/png;base64,{}",
        base64::engine::general_purpose::STANDARD.encode(bytes)
    ))
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// Writes `roc.svg`, `galleries/<class>-most.png` and `-least.png` (ranked by the first method
/// of the experiment) and `report.html` into `out`.
pub fn write_report(config: &ExperimentConfig, cells: &[Cell], out: &Path) -> Result<()> {
    let svg = roc_svg(config, cells)?;
    write_atomic(&out.join("roc.svg"), |tmp| Ok(std::fs::write(tmp, &svg)?))?;
    let spec = config.model.image_spec();
    let test: Dataset = config.source.load(Split::Test, spec, config.fit)?;
    let test_index: HashMap<&str, usize> = test
        .ids
        .iter()
        .enumerate()
        .map(|(i, id)| (id.as_str(), i))
        .collect();
    let galleries = out.join("galleries");
    std::fs::create_dir_all(&galleries)?;
    let ranking_method = config.methods.first().copied().unwrap_or(Method::Adgan);
    let mut html = String::new();
    writeln!(
        html,
        "<!doctype html><html><head><meta charset=\"utf-8\"><title>adgan one-vs-all report</title>"
    )?;
    writeln!(html, "<style>body{{font-family:sans-serif;max-width:70em;margin:2em auto}}table{{border-collapse:collapse}}td,th{{border:1px solid #ccc;padding:.2em .6em;text-align:right}}img{{image-rendering:pixelated}}</style></head><body>")?;
    writeln!(html, "<h1>One-vs-all anomaly detection</h1><p>Data: {}; {} test images per class, drawn with seed {}; GAN: {} generator iterations, width {}, d' = {}.</p>",
        escape(&config.source.describe()), config.n_test, config.seed, config.train.iterations, config.model.width, config.model.latent_dim)?;
    writeln!(
        html,
        "<h2>ROC-AUC</h2><pre>{}</pre>",
        escape(&auc_table(config, cells))
    )?;
    writeln!(html, "<h2>Mean ROC curves</h2>{svg}")?;
    writeln!(
        html,
        "<h2>Most and least anomalous test images ({})</h2>",
        ranking_method.name()
    )?;
    for cell in cells.iter().filter(|c| c.method == ranking_method) {
        let (most, least) = gallery_indices(cell, &test_index, 16)?;
        for (name, indices) in [("most", &most), ("least", &least)] {
            let index =
                tch::Tensor::from_slice(&indices.iter().map(|&i| i as i64).collect::<Vec<_>>());
            let by_id: HashMap<&str, f64> = cell
                .ids
                .iter()
                .map(String::as_str)
                .zip(cell.scores.iter().copied())
                .collect();
            let captions: Vec<String> = indices
                .iter()
                .map(|&i| format!("{:.1}", by_id[test.ids[i].as_str()]))
                .collect();
            let path = galleries.join(format!("{}-{name}.png", cell.class));
            save_gallery(&test.images.index_select(0, &index), &captions, 8, 2, &path)?;
            writeln!(html, "<h3>normal class {}: {name} anomalous</h3><img alt=\"{name} anomalous\" src=\"{}\">", escape(&cell.class), png_data_uri(&path)?)?;
        }
    }
    writeln!(html, "</body></html>")?;
    write_atomic(&out.join("report.html"), |tmp| {
        Ok(std::fs::write(tmp, &html)?)
    })
}
