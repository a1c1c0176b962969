//! `report.html` (self-contained: figures embedded as PNG data URIs, every
//! text escaped) and `summary.md`.

use super::build::{HeadSummary, RunData, Summary};
use anyhow::{Context, Result};
use base64::Engine;
use std::fmt::Write as _;
use std::path::Path;

/// Escape text for HTML.
pub fn esc(s: &str) -> String {
    let mut o = String::with_capacity(s.len());
    for ch in s.chars() {
        match ch {
            '&' => o.push_str("&amp;"),
            '<' => o.push_str("&lt;"),
            '>' => o.push_str("&gt;"),
            '"' => o.push_str("&quot;"),
            '\'' => o.push_str("&#39;"),
            c => o.push(c),
        }
    }
    o
}

fn f(v: f64, digits: usize) -> String {
    if v.is_finite() {
        format!("{v:.digits$}")
    } else {
        "n/a".into()
    }
}

fn geo(h: &HeadSummary, key: &str, digits: usize) -> String {
    h.geometry
        .get(key)
        .map(|m| format!("{} ± {}", f(m.mean, digits), f(m.std, digits)))
        .unwrap_or_else(|| "n/a".into())
}

const HEAD_COLUMNS: [&str; 13] = [
    "group",
    "head",
    "runs",
    "final acc",
    "best acc",
    "tail std (pts)",
    "drops",
    "max drop (pts)",
    "loss spikes",
    "epochs to 95%",
    "∠(w, mean) °",
    "∠(w, softmax c.) °",
    "NC3",
];

fn head_row(h: &HeadSummary) -> Vec<String> {
    vec![
        h.group.clone(),
        h.head.clone(),
        format!(
            "{}{}",
            h.runs,
            if h.diverged > 0 {
                format!(" ({} diverged)", h.diverged)
            } else {
                String::new()
            }
        ),
        format!(
            "{}% ± {}",
            f(100.0 * h.final_acc.mean, 2),
            f(100.0 * h.final_acc.std, 2)
        ),
        format!("{}%", f(100.0 * h.best_acc.mean, 2)),
        f(100.0 * h.last_k_std, 2),
        f(h.drops, 1),
        f(100.0 * h.max_drop, 2),
        f(h.loss_spikes, 1),
        f(h.epochs_to_95, 1),
        geo(h, "angle_w_mean", 1),
        geo(h, "angle_w_softmax_center", 1),
        geo(h, "nc3", 3),
    ]
}

/// `summary.md`: settings, verdict and the per-head table.
pub fn markdown(s: &Summary) -> String {
    let mut o = String::from("# symfeat study summary\n\n");
    if !s.description.is_empty() {
        let _ = writeln!(o, "{}\n", s.description);
    }
    for (k, v) in &s.settings {
        let _ = writeln!(o, "- {k}: {v}");
    }
    o.push_str("\n## Verdict\n\n");
    for v in &s.verdict {
        let _ = writeln!(o, "- {v}");
    }
    o.push_str("\n## Per head (mean ± std over seeds)\n\n|");
    for c in HEAD_COLUMNS {
        let _ = write!(o, " {c} |");
    }
    o.push_str("\n|");
    for _ in HEAD_COLUMNS {
        o.push_str("---|");
    }
    o.push('\n');
    for h in &s.heads {
        let _ = writeln!(o, "| {} |", head_row(h).join(" | "));
    }
    o
}

fn img(figdir: &Path, stem: &str) -> Result<String> {
    let p = figdir.join(format!("{stem}.png"));
    let bytes = std::fs::read(&p).with_context(|| format!("cannot read figure {}", p.display()))?;
    Ok(format!(
        "<figure><img alt=\"{a}\" src=\"data:image/png;base64,{b}\"><figcaption>{a} (<a href=\"figures/{a}.svg\">SVG</a>, <a href=\"figures/{a}.png\">PNG</a>)</figcaption></figure>",
        a = esc(stem),
        b = base64::engine::general_purpose::STANDARD.encode(bytes)
    ))
}

/// The whole page.
pub fn page(s: &Summary, runs: &[RunData], figdir: &Path) -> Result<String> {
    let mut o = String::from(
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>symfeat study report</title>\n<style>\
         body{font-family:sans-serif;max-width:1200px;margin:auto;padding:1em;color:#222}\
         table{border-collapse:collapse;font-size:13px;margin:1em 0}td,th{border:1px solid #ccc;padding:3px 6px;text-align:right}\
         td:first-child,td:nth-child(2),th{text-align:left}figure{display:inline-block;margin:.5em}\
         img{max-width:100%;border:1px solid #eee}li{margin:.4em 0}</style></head><body>\n<h1>symfeat study report</h1>\n",
    );
    if !s.description.is_empty() {
        let _ = writeln!(o, "<p>{}</p>", esc(&s.description));
    }
    o.push_str("<h2>Settings</h2><ul>");
    for (k, v) in &s.settings {
        let _ = write!(o, "<li><b>{}</b>: {}</li>", esc(k), esc(v));
    }
    o.push_str("</ul>\n<h2>Verdict</h2><ul>");
    for v in &s.verdict {
        let _ = write!(o, "<li>{}</li>", esc(v));
    }
    o.push_str("</ul>\n<h2>Per head (mean ± std over seeds)</h2><table><tr>");
    for c in HEAD_COLUMNS {
        let _ = write!(o, "<th>{}</th>", esc(c));
    }
    o.push_str("</tr>");
    for h in &s.heads {
        o.push_str("<tr>");
        for c in head_row(h) {
            let _ = write!(o, "<td>{}</td>", esc(&c));
        }
        o.push_str("</tr>");
    }
    o.push_str("</table>\n<p>Tail std: standard deviation of the test accuracy over the last 3 epochs; drops: epoch-to-epoch decreases of the test accuracy; angles and NC3 from the probe on the test set after the last epoch.</p>\n<h2>Figures</h2>\n");
    for stem in &s.figures {
        o.push_str(&img(figdir, stem)?);
        o.push('\n');
    }
    o.push_str("<h2>Runs</h2><table><tr><th>run</th><th>head</th><th>seed</th><th>epochs</th><th>final acc</th><th>status</th></tr>");
    for r in runs {
        let _ = write!(
            o,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            esc(&r.name),
            esc(&r.config.head),
            r.config.seed,
            r.history.len(),
            r.history
                .last()
                .map(|m| format!("{:.2}%", 100.0 * m.test_acc))
                .unwrap_or_else(|| "n/a".into()),
            esc(r.diverged.as_deref().unwrap_or("ok"))
        );
    }
    o.push_str("</table>\n");
    if !s.unfinished.is_empty() {
        let _ = writeln!(
            o,
            "<p>Not finished yet: {}</p>",
            esc(&s.unfinished.join(", "))
        );
    }
    // Lets a headless browser check that every figure decoded.
    o.push_str(
        "<p id=\"imgcheck\"></p><script>window.addEventListener('load',function(){var i=document.images,n=0;\
         for(var k=0;k<i.length;k++){if(i[k].complete&&i[k].naturalWidth>0)n++;}\
         document.getElementById('imgcheck').textContent='images loaded: '+n+'/'+i.length;});</script>\n</body></html>\n",
    );
    Ok(o)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_markup() {
        assert_eq!(
            esc("<a href='x'>&\"</a>"),
            "&lt;a href=&#39;x&#39;&gt;&amp;&quot;&lt;/a&gt;"
        );
    }
}
