//! The experiment report: mean ROC curves (SVG, drawn with plotters), galleries of the most and
//! least anomalous test images per class (like the paper's Figs. 4-6), and a self-contained
//! `report.html` holding the table, the plot and the galleries.

use crate::data::{Dataset, Split};
use crate::experiment::curves::{class_roc_svg, roc_svg, validation_svg};
use crate::experiment::{Cell, ExperimentConfig};
use crate::io::write_atomic;
use crate::report::{escape_html as escape, significant};
use crate::score::method::Method;
use crate::selection::{Curve, CURVE_FILE};
use crate::visual::save_gallery;
use anyhow::{Context, Result};
use base64::Engine;
use image::ImageEncoder;
use std::collections::HashMap;
use std::fmt::Write as _;
use std::path::Path;

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
                .map(|(k, v)| format!("{} {}", escape(k), crate::report::compact(*v, 4)))
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

/// The classes whose chosen validation ROC-AUC is below 0.5, as a warning: there the method
/// ranked the held-out anomalies below the normal images, so its test scores of that class
/// are likely inverted or uninformative.
fn inverted_warning(cells: &[Cell]) -> String {
    let inverted: Vec<String> = cells
        .iter()
        .filter_map(|c| {
            let auc = *c.chosen.get("validation_auc")?;
            (auc < 0.5).then(|| {
                format!(
                    "class {} {} ({})",
                    escape(&c.class),
                    c.method.name(),
                    significant(auc, 3)
                )
            })
        })
        .collect();
    if inverted.is_empty() {
        return String::new();
    }
    format!(
        "<p class=\"warning\" id=\"inverted\">Warning: validation ROC-AUC below 0.5 for {}. \
         There the method ranked the held-out anomalous validation images below the normal \
         ones: the anomalies of this class may look more typical than its normal images to it \
         (simpler, or inside the normal images' range), so its test scores are likely inverted \
         or uninformative. Prefer another method for such a class.</p>",
        inverted.join(", ")
    )
}

/// Each class's validation curve (from `out/runs/class-C/validation.json`), with ADGAN's
/// chosen point circled, and the warning of [`inverted_warning`]; empty without selection.
fn validation_html(config: &ExperimentConfig, cells: &[Cell], out: &Path) -> Result<String> {
    let mut plots = String::new();
    for class in &config.classes {
        let path = out
            .join("runs")
            .join(format!("class-{class}"))
            .join(CURVE_FILE);
        if !path.exists() {
            continue;
        }
        let curve: Curve = crate::io::read_json(&path, "a validation curve")?;
        let chosen = cells
            .iter()
            .find(|c| c.method == Method::Adgan && c.class == *class)
            .and_then(|c| Some((*c.chosen.get("iterations")?, *c.chosen.get("lr_theta")?)));
        plots += &validation_svg(&curve, class, chosen)?;
    }
    let warning = inverted_warning(cells);
    if plots.is_empty() {
        return Ok(warning);
    }
    Ok(format!(
        "<h2>Validation curves</h2><p>ADGAN's ROC-AUC on each class's validation images (held-out \
         normal training images and training images of the other classes; no test image) at \
         each snapshot of its training, one line per pair of learning rates; the circle marks \
         the point its cell chose.</p>{warning}<div class=\"plots\">{plots}</div>"
    ))
}

/// Each class's ROC curves, a small plot per class.
fn class_roc_html(config: &ExperimentConfig, cells: &[Cell]) -> Result<String> {
    let mut plots = String::new();
    for class in &config.classes {
        plots += &class_roc_svg(config, cells, class)?;
    }
    Ok(format!(
        "<h2>ROC curves per class</h2><p>Each method's ROC curve on the class's test images, \
         its ROC-AUC in the legend.</p><div class=\"plots\">{plots}</div>"
    ))
}

/// The calibrated decisions, or why there are none.
fn decisions_or_why_not(config: &ExperimentConfig, cells: &[Cell]) -> Result<String> {
    let html = super::decisions::decisions_html(cells)?;
    if !html.is_empty() {
        return Ok(html);
    }
    let why = match config.selection.enabled() {
        false => {
            "the experiment ran without selection on validation data, so no held-out \
                  normal images were scored to calibrate the test scores with; run it with a \
                  validation interval (<code>adgan experiment one-vs-all --select-every N</code>) \
                  to get p-values and decisions"
        }
        true => {
            "none of the methods run is calibrated: decisions come with adgan, adgan-ic \
                 and the ensemble, whose held-out normal validation scores calibrate them"
        }
    };
    Ok(format!(
        "<h2>Calibrated decisions</h2><p id=\"no-decisions\">No decisions: {why}.</p>"
    ))
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
    writeln!(html, "<style>body{{font-family:sans-serif;max-width:75em;margin:2em auto}}table{{border-collapse:collapse;display:block;overflow-x:auto;max-width:100%}}td,th{{border:1px solid #ccc;padding:.2em .6em;text-align:right}}td.text{{text-align:left}}.provenance{{color:#555;font-size:90%}}.warning{{background:#fee;border-left:4px solid #d22;padding:.4em}}.plots{{display:flex;flex-wrap:wrap;gap:8px}}.plots svg{{max-width:100%;height:auto}}img{{image-rendering:pixelated}}.gallery{{display:flex;flex-wrap:wrap;align-items:flex-start;gap:4px;margin:.3em 0}}.gallery>span{{width:8em}}figure{{margin:0;font-size:10px;text-align:center;width:72px;overflow-wrap:anywhere}}figure img{{width:64px;height:64px;border:4px solid}}figure.normal img{{border-color:#2a2}}figure.anomalous img{{border-color:#d22}}</style></head><body>")?;
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
    html += &validation_html(config, cells, out)?;
    html += &class_roc_html(config, cells)?;
    html += &decisions_or_why_not(config, cells)?;
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
            let captions: Vec<crate::visual::TileCaption> = indices
                .iter()
                .map(|&i| significant(by_id[test.ids[i].as_str()], 3).into())
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

#[cfg(test)]
mod tests {
    use super::*;

    fn cell(class: &str, validation_auc: Option<f64>) -> Cell {
        Cell {
            class: class.to_string(),
            method: Method::Adgan,
            auc: 0.5,
            average_precision: 0.5,
            seconds: 1.0,
            ids: Vec::new(),
            test_classes: Vec::new(),
            labels: Vec::new(),
            scores: Vec::new(),
            chosen: validation_auc
                .map(|auc| [("validation_auc".to_string(), auc)].into())
                .unwrap_or_default(),
            calibration_scores: Vec::new(),
        }
    }

    #[test]
    fn a_validation_auc_below_one_half_is_warned_about() {
        let cells = [
            cell("1", Some(0.41)),
            cell("2", Some(0.93)),
            cell("3", None),
        ];
        let warning = inverted_warning(&cells);
        assert!(warning.contains("class 1 adgan (0.410)"), "{warning}");
        assert!(!warning.contains("class 2") && !warning.contains("class 3"));
        assert_eq!(inverted_warning(&cells[1..]), "");
    }
}
