//! The experiment report: mean ROC curves (SVG, drawn with plotters), galleries of the most and
//! least anomalous test images per class (like the paper's Figs. 4-6), and a self-contained
//! `report.html` holding the table, the plot and the galleries.

use crate::data::{Dataset, Split};
use crate::eval::{mean_roc, roc_curve};
use crate::experiment::{Cell, ExperimentConfig};
use crate::io::write_atomic;
use crate::report::{escape_html as escape, significant};
use crate::score::method::Method;
use crate::visual::save_gallery;
use anyhow::{Context, Result};
use base64::Engine;
use image::ImageEncoder;
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
        let root = SVGBackend::with_string(&mut svg, (640, 440)).into_drawing_area();
        root.fill(&WHITE)?;
        // The legend gets its own column right of the plot, so that it hides no curve.
        let (plot, legend) = root.split_horizontally(500);
        let mut chart = ChartBuilder::on(&plot)
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
        let mut row = 0;
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
            chart.draw_series(LineSeries::new(
                mean.iter().map(|p| (p.fpr, p.tpr)),
                colour.stroke_width(2),
            ))?;
            let y = 50 + 22 * row;
            legend.draw(&PathElement::new(
                vec![(8, y), (32, y)],
                colour.stroke_width(2),
            ))?;
            legend.draw(&Text::new(
                method.name(),
                (38, y - 7),
                ("sans-serif", 14).into_font(),
            ))?;
            row += 1;
        }
        root.present()?;
    }
    Ok(svg)
}

/// The ROC-AUC table as HTML: a row per normal class, a column per method, the mean row, the
/// best of each row in bold.
/// A table of one number per class and method (`value` of each cell), with the mean over
/// classes and the best of each row in bold.
fn metric_html(
    config: &ExperimentConfig,
    cells: &[Cell],
    id: &str,
    value: fn(&Cell) -> f64,
) -> Result<String> {
    let auc = |class: &str, method: Method| {
        cells
            .iter()
            .find(|c| c.class == class && c.method == method)
            .map(value)
    };
    let mut html = format!("<table id=\"{id}\"><thead><tr><th>normal class</th>");
    for m in &config.methods {
        write!(html, "<th>{}</th>", m.name())?;
    }
    html += "</tr></thead><tbody>";
    let mut row = |label: &str, values: Vec<Option<f64>>| -> Result<()> {
        let best = values
            .iter()
            .flatten()
            .copied()
            .fold(f64::NEG_INFINITY, f64::max);
        write!(html, "<tr><th>{}</th>", escape(label))?;
        for v in values {
            match v {
                Some(v) if v == best => write!(html, "<td><b>{v:.3}</b></td>")?,
                Some(v) => write!(html, "<td>{v:.3}</td>")?,
                None => html += "<td>-</td>",
            }
        }
        html += "</tr>";
        Ok(())
    };
    for class in &config.classes {
        row(
            class,
            config.methods.iter().map(|&m| auc(class, m)).collect(),
        )?;
    }
    let means = config
        .methods
        .iter()
        .map(|&m| {
            let v: Vec<f64> = config.classes.iter().filter_map(|c| auc(c, m)).collect();
            (v.len() == config.classes.len()).then(|| v.iter().sum::<f64>() / v.len() as f64)
        })
        .collect();
    row("mean", means)?;
    html += "</tbody></table>";
    Ok(html)
}

/// The test images of `cell` ranked by its scores: (most anomalous, least anomalous) indices into
/// `test`, `top` each.
/// What each method chose on the training split's validation images, class by class (the
/// snapshot and learning rates of the search, the PCA dimension, bandwidths, ...).
fn chosen_html(cells: &[Cell]) -> String {
    let rows: Vec<String> = cells
        .iter()
        .filter(|c| !c.chosen.is_empty())
        .map(|c| {
            let chosen: Vec<String> = c
                .chosen
                .iter()
                .map(|(k, v)| format!("{} {}", escape(k), significant(*v, 4)))
                .collect();
            format!(
                "<tr><th>{}</th><td>{}</td><td class=\"text\">{}</td></tr>",
                escape(&c.class),
                c.method.name(),
                chosen.join(", ")
            )
        })
        .collect();
    if rows.is_empty() {
        return String::new();
    }
    format!(
        "<h2>What each method chose</h2><p>Chosen on validation images drawn from the training \
         split only; no test image was seen.</p><table id=\"chosen\"><thead><tr><th>normal \
         class</th><th>method</th><th>choices</th></tr></thead><tbody>{}</tbody></table>",
        rows.concat()
    )
}

/// Which program wrote the report, when, and from which command line.
fn provenance_html() -> String {
    let command: Vec<String> = std::env::args_os()
        .map(|a| a.to_string_lossy().into_owned())
        .collect();
    format!(
        "<p class=\"provenance\">Written by adgan {} on {} (UTC), by: <code>{}</code></p>",
        env!("CARGO_PKG_VERSION"),
        crate::io::now_utc(),
        escape(&command.join(" "))
    )
}

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

/// Test images shown at each end of a method's ranking, per class.
const GALLERY_TILES: usize = 8;

/// One gallery tile as HTML: test image `i` as an inline PNG, with its id, its score in `cell`
/// and a mark for whether it is normal or anomalous.
fn tile(test: &Dataset, i: usize, cell: &Cell) -> Result<String> {
    let id = &test.ids[i];
    let k = cell
        .ids
        .iter()
        .position(|x| x == id)
        .context("a gallery image is not in its cell")?;
    let (score, anomalous) = (cell.scores[k], cell.labels[k] == 1);
    let (w, h, c, pixels) = crate::visual::grid_pixels(&test.images.narrow(0, i as i64, 1), 1)?;
    let mut png = Vec::new();
    let colour = if c == 1 {
        image::ExtendedColorType::L8
    } else {
        image::ExtendedColorType::Rgb8
    };
    image::codecs::png::PngEncoder::new(&mut png)
        .write_image(&pixels, w, h, colour)
        .context("encoding a gallery tile")?;
    let class = if anomalous { "anomalous" } else { "normal" };
    Ok(format!(
        "<figure class=\"{class}\"><img alt=\"{class} {}\" src=\"data:image/png;base64,{}\"><figcaption>{}<br>{}</figcaption></figure>",
        escape(id),
        base64::engine::general_purpose::STANDARD.encode(png),
        escape(id),
        significant(score, 4)
    ))
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
        "<!doctype html><html><head><meta charset=\"utf-8\"><meta name=\"viewport\" content=\"width=device-width, initial-scale=1\"><title>adgan one-vs-all report</title>"
    )?;
    writeln!(html, "<style>body{{font-family:sans-serif;max-width:75em;margin:2em auto}}table{{border-collapse:collapse;display:block;overflow-x:auto;max-width:100%}}td,th{{border:1px solid #ccc;padding:.2em .6em;text-align:right}}td.text{{text-align:left}}.provenance{{color:#555;font-size:90%}}img{{image-rendering:pixelated}}.gallery{{display:flex;flex-wrap:wrap;align-items:flex-start;gap:4px;margin:.3em 0}}.gallery>span{{width:8em}}figure{{margin:0;font-size:10px;text-align:center;width:72px;overflow-wrap:anywhere}}figure img{{width:64px;height:64px;border:4px solid}}figure.normal img{{border-color:#2a2}}figure.anomalous img{{border-color:#d22}}</style></head><body>")?;
    writeln!(html, "<h1>One-vs-all anomaly detection</h1><p>Data: {}; {} test images per class, drawn with seed {}; GAN: {} generator iterations, width {}, d' = {}.</p>",
        escape(&config.source.describe()), config.n_test, config.seed, config.train.iterations, config.model.width, config.model.latent_dim)?;
    writeln!(
        html,
        "<h2>ROC-AUC</h2>{}",
        metric_html(config, cells, "auc", |c| c.auc)?
    )?;
    writeln!(
        html,
        "<h2>Average precision</h2><p>Anomalies as the positive class; a random ranking \
         scores their share of the test images.</p>{}",
        metric_html(config, cells, "ap", |c| c.average_precision)?
    )?;
    writeln!(html, "<h2>Mean ROC curves</h2>{svg}")?;
    html += &chosen_html(cells);
    html += &super::decisions::decisions_html(cells)?;
    // The first method's galleries are also kept as PNG files, one per class and end.
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
                .map(|&i| significant(by_id[test.ids[i].as_str()], 3))
                .collect();
            let path = galleries.join(format!("{}-{name}.png", cell.class));
            save_gallery(&test.images.index_select(0, &index), &captions, 8, 2, &path)?;
        }
    }
    writeln!(
        html,
        "<h2>Most and least anomalous test images</h2><p>Each tile: the image, its id and \
         score; a green mark for a normal image, a red one for an anomalous image.</p>"
    )?;
    for cell in cells {
        let (most, least) = gallery_indices(cell, &test_index, GALLERY_TILES)?;
        writeln!(
            html,
            "<h3>normal class {}, {}</h3>",
            escape(&cell.class),
            cell.method.name()
        )?;
        for (name, indices) in [("most anomalous", &most), ("least anomalous", &least)] {
            writeln!(html, "<div class=\"gallery\"><span>{name}</span>")?;
            for &i in indices.iter() {
                html += &tile(&test, i, cell)?;
            }
            html += "</div>";
        }
    }
    writeln!(html, "{}</body></html>", provenance_html())?;
    write_atomic(&out.join("report.html"), |tmp| {
        Ok(std::fs::write(tmp, &html)?)
    })
}
