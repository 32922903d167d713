//! What an experiment reports: the paper's Table 1 layout in Markdown, the learning curves,
//! and `results.json`.

use super::{Cell, ClassCurve, ExperimentConfig};
use crate::io::{self, write_json};
use crate::score::adgan::{AdganConfig, ThetaMode};
use crate::score::method::Method;
use crate::selection::CurvePoint;
use anyhow::Result;
use serde::Serialize;
use std::path::Path;

/// The paper's Table 1 layout in Markdown: a row per normal class, a column per method, a mean
/// row, the best ROC-AUC of each row in bold.
pub fn auc_table(config: &ExperimentConfig, cells: &[Cell]) -> String {
    let find = |class: &str, method: Method| {
        cells
            .iter()
            .find(|c| c.class == class && c.method == method)
            .map(|c| c.auc)
    };
    let mut text = String::from("| normal class |");
    for m in &config.methods {
        text += &format!(" {} |", m.name());
    }
    text += "\n| --- |";
    text += &" ---: |".repeat(config.methods.len());
    text.push('\n');
    let mut row = |label: &str, values: Vec<Option<f64>>| {
        let best = values
            .iter()
            .flatten()
            .copied()
            .fold(f64::NEG_INFINITY, f64::max);
        text += &format!("| {label} |");
        for v in values {
            text += &match v {
                Some(v) if v == best => format!(" **{v:.3}** |"),
                Some(v) => format!(" {v:.3} |"),
                None => " - |".to_string(),
            };
        }
        text.push('\n');
    };
    for class in &config.classes {
        row(
            class,
            config.methods.iter().map(|&m| find(class, m)).collect(),
        );
    }
    let means = config
        .methods
        .iter()
        .map(|&m| {
            let aucs: Vec<f64> = config.classes.iter().filter_map(|c| find(c, m)).collect();
            (aucs.len() == config.classes.len())
                .then(|| aucs.iter().sum::<f64>() / aucs.len() as f64)
        })
        .collect();
    row("mean", means);
    text
}

/// The learning curves as a Markdown table: a row per (class, iteration), a column per
/// candidate search, the best point of each class in bold. With `adgan-ic`, a second table
/// gives the same points' complexity-corrected ROC-AUC, its choice in bold.
pub fn curve_table(curves: &[ClassCurve]) -> String {
    let mut text = points_table(curves, &|c, i| Some(c.curve.points[i].auc), &|c| {
        c.curve.best()
    });
    if curves.iter().any(|c| c.complexity.is_some()) {
        text += "\nadgan-ic, the same points corrected for complexity (cross-fitted):\n\n";
        text += &points_table(curves, &|c, i| c.complexity.as_ref()?.point_aucs[i], &|c| {
            c.complexity.as_ref().map(|x| &x.point)
        });
    }
    text
}

/// A row per (class, iteration), a column per candidate search: `value(class, point index)`,
/// `best(class)` in bold.
fn points_table(
    curves: &[ClassCurve],
    value: &dyn Fn(&ClassCurve, usize) -> Option<f64>,
    best: &dyn Fn(&ClassCurve) -> Option<&CurvePoint>,
) -> String {
    let mut candidates: Vec<AdganConfig> = Vec::new();
    for c in curves {
        for p in &c.curve.points {
            if !candidates.contains(&p.search) {
                candidates.push(p.search);
            }
        }
    }
    let mut text = String::from("| class | iterations |");
    for c in &candidates {
        text += &format!(" {} |", candidate_label(c));
    }
    text += "\n| --- | ---: |";
    text += &" ---: |".repeat(candidates.len());
    text.push('\n');
    for c in curves {
        let best = best(c);
        let mut iterations: Vec<usize> = c.curve.points.iter().map(|p| p.iteration).collect();
        iterations.dedup();
        for iteration in iterations {
            text += &format!("| {} | {iteration} |", c.class);
            for candidate in &candidates {
                let found = (c.curve.points.iter().enumerate())
                    .find(|(_, p)| p.iteration == iteration && p.search == *candidate);
                text += &match found.map(|(i, p)| (value(c, i), p)) {
                    Some((Some(v), p)) if Some(p) == best => format!(" **{v:.4}** |"),
                    Some((Some(v), _)) => format!(" {v:.4} |"),
                    _ => " - |".to_string(),
                };
            }
            text.push('\n');
        }
    }
    text
}

/// A short name of a candidate search: its learning rates, and its loss, aggregation, steps
/// and start when they are not the paper's.
pub fn candidate_label(search: &AdganConfig) -> String {
    let mut label = match search.theta {
        ThetaMode::Fixed => format!("lr_z {}, theta fixed", search.lr_z),
        _ => format!("lr_z {}, lr_theta {}", search.lr_z, search.lr_theta),
    };
    let default = AdganConfig::default();
    if search.loss != default.loss {
        label += &format!(", {:?}", search.loss).to_lowercase();
    }
    if search.aggregate != default.aggregate {
        label += &format!(", {:?}", search.aggregate).to_lowercase();
    }
    if search.k != default.k {
        label += &format!(", k {}", search.k);
    }
    if search.start != default.start {
        label += &format!(", {:?} start, spread {}", search.start, search.spread).to_lowercase();
    }
    label
}

/// Writes `results.json` (configuration and every figure) and `table.md` into `out`.
pub fn write_summary(config: &ExperimentConfig, cells: &[Cell], out: &Path) -> Result<()> {
    #[derive(Serialize)]
    struct Figure<'a> {
        class: &'a str,
        method: Method,
        auc: f64,
        average_precision: f64,
        seconds: f64,
        n_test: usize,
    }
    #[derive(Serialize)]
    struct Results<'a> {
        experiment: &'a ExperimentConfig,
        cells: Vec<Figure<'a>>,
    }
    let figures = cells
        .iter()
        .map(|c| Figure {
            class: &c.class,
            method: c.method,
            auc: c.auc,
            average_precision: c.average_precision,
            seconds: c.seconds,
            n_test: c.scores.len(),
        })
        .collect();
    write_json(
        &out.join("results.json"),
        &Results {
            experiment: config,
            cells: figures,
        },
    )?;
    let table = auc_table(config, cells);
    io::write_atomic(&out.join("table.md"), |tmp| {
        Ok(std::fs::write(tmp, &table)?)
    })
}
