//! A ranking as a web page (`index.html` beside `scores.csv`): one row per image, most
//! anomalous first, with its thumbnail, its anomaly map where one was drawn, its name, score,
//! p-value and decision; flagged rows are marked, and a click on a column's head sorts by it.
//! The page works offline: the images are linked where they lie (file URLs), the maps from the
//! ranking's folder, and its few lines of script are inline.

use crate::io::write_atomic;
use crate::report::{escape_html as escape, significant};
use anyhow::Result;
use std::fmt::Write as _;
use std::path::Path;

/// One image's row.
pub struct PageRow<'a> {
    /// Its id (the path of its file).
    pub id: &'a str,
    /// Its anomaly score.
    pub score: f64,
    /// Its conformal p-value and whether it is flagged, on a calibrated run.
    pub decision: Option<(f64, bool)>,
    /// Its anomaly map, relative to the page, where one was drawn.
    pub map: Option<String>,
}

/// Sorts the table by the clicked column: numbers by value, text by name, again to reverse.
const SORT_SCRIPT: &str = "document.querySelectorAll('th[data-col]').forEach(th=>th.onclick=()=>{\
const t=th.closest('table'),b=t.tBodies[0],c=+th.dataset.col,d=th.dataset.dir==='a'?'d':'a';\
th.dataset.dir=d;const v=r=>{const x=r.cells[c].dataset.v;return x===undefined?r.cells[c].textContent:+x};\
const rows=[...b.rows].sort((p,q)=>{const a=v(p),z=v(q);return (a<z?-1:a>z?1:0)*(d==='a'?1:-1)});\
rows.forEach(r=>b.appendChild(r))});";

/// A `file://` URL of the image whose id is `id` (its path), or none when the id is no path
/// (a data set's image).
fn file_url(id: &str) -> Option<String> {
    let path = Path::new(id);
    if !path.is_file() {
        return None;
    }
    let absolute = std::path::absolute(path).ok()?;
    let mut url = String::from("file://");
    for byte in absolute.to_string_lossy().bytes() {
        match byte {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'/' | b'-' | b'_' | b'.' | b'~' => {
                url.push(byte as char)
            }
            _ => write!(url, "%{byte:02X}").expect("writing to a String"),
        }
    }
    Some(url)
}

/// Writes the page of `rows` (most anomalous first) to `path`, atomically, under `title`.
pub fn write_ranking_page(path: &Path, title: &str, rows: &[PageRow], alpha: f64) -> Result<()> {
    let calibrated = rows.iter().any(|r| r.decision.is_some());
    let mut html = String::new();
    write!(
        html,
        "<!doctype html><html><head><meta charset=\"utf-8\"><meta name=\"viewport\" \
         content=\"width=device-width, initial-scale=1\"><title>{}</title><style>\
         body{{font-family:sans-serif;margin:1em}}table{{border-collapse:collapse;display:block;\
         overflow-x:auto;max-width:100%}}td,th{{border:1px solid #ccc;padding:.2em .5em}}\
         td.n{{text-align:right}}th[data-col]{{cursor:pointer}}tr.flagged{{background:#fdd}}\
         td.name{{overflow-wrap:anywhere;max-width:30em}}img{{image-rendering:pixelated}}\
         img.thumb{{width:64px;height:64px;object-fit:contain}}img.map{{height:64px}}</style>\
         </head><body><h1>{}</h1><p>{} images, most anomalous first. ",
        escape(title),
        escape(title),
        rows.len()
    )?;
    if calibrated {
        let flagged = rows
            .iter()
            .filter(|r| r.decision.is_some_and(|d| d.1))
            .count();
        write!(
            html,
            "{flagged} are flagged as anomalous (p-value at most alpha {alpha}; on normal images \
             the expected rate of false alarms is at most alpha) and marked in red. "
        )?;
    } else {
        html += "The run is not calibrated, so there are no p-values or decisions. ";
    }
    html += "Click a column's head to sort by it. A map shows the image, its reconstruction, \
             the residual and the residual over the image.</p><table id=\"ranking\"><thead><tr>\
             <th data-col=\"0\">rank</th><th>image</th><th>map</th><th data-col=\"3\">name</th>\
             <th data-col=\"4\">score</th>";
    if calibrated {
        html += "<th data-col=\"5\">p-value</th><th data-col=\"6\">decision</th>";
    }
    html += "</tr></thead><tbody>";
    for (rank, row) in rows.iter().enumerate() {
        let flagged = row.decision.is_some_and(|d| d.1);
        let thumb = file_url(row.id).map_or_else(
            || "-".to_string(),
            |url| format!("<img class=\"thumb\" loading=\"lazy\" alt=\"\" src=\"{url}\">"),
        );
        let map = row.map.as_ref().map_or_else(
            || "-".to_string(),
            |m| {
                let m = escape(m);
                format!("<a href=\"{m}\"><img class=\"map\" loading=\"lazy\" alt=\"map\" src=\"{m}\"></a>")
            },
        );
        write!(
            html,
            "<tr{}><td class=\"n\" data-v=\"{}\">{}</td><td>{thumb}</td><td>{map}</td>\
             <td class=\"name\">{}</td><td class=\"n\" data-v=\"{}\">{}</td>",
            if flagged { " class=\"flagged\"" } else { "" },
            rank + 1,
            rank + 1,
            escape(row.id),
            row.score,
            significant(row.score, 4)
        )?;
        if let Some((p, flagged)) = row.decision {
            let decision = if flagged { "anomalous" } else { "normal" };
            write!(
                html,
                "<td class=\"n\" data-v=\"{p}\">{}</td><td>{decision}</td>",
                significant(p, 3)
            )?;
        } else if calibrated {
            html += "<td>-</td><td>-</td>";
        }
        html += "</tr>";
    }
    write!(
        html,
        "</tbody></table><script>{SORT_SCRIPT}</script></body></html>"
    )?;
    write_atomic(path, |tmp| Ok(std::fs::write(tmp, &html)?))
}
