//! `report.html` (self-contained: figures embedded as PNG data URIs, every
//! text escaped) and `summary.md`.

use super::run::RunData;
use super::summary::{Summary, VariantConditions, VariantSummary};
use crate::statistics::MeanCi;
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

fn ci(m: &MeanCi, scale: f64, digits: usize) -> String {
    if m.n == 0 {
        "n/a".into()
    } else if m.ci95.is_finite() {
        format!(
            "{} ± {}",
            f(scale * m.mean, digits),
            f(scale * m.ci95, digits)
        )
    } else {
        format!("{} (n = 1)", f(scale * m.mean, digits))
    }
}

fn geo(v: &VariantSummary, key: &str, digits: usize) -> String {
    v.geometry
        .get(key)
        .map(|m| ci(m, 1.0, digits))
        .unwrap_or_else(|| "n/a".into())
}

/// The main table's columns.
pub const MAIN_COLUMNS: [&str; 8] = [
    "variant",
    "head / features",
    "weight conditions",
    "final acc %",
    "∠(w_c, mean) °",
    "converged",
    "tail std (pts)",
    "epochs",
];

fn main_row(v: &VariantSummary, groups: usize) -> Vec<String> {
    vec![
        if groups > 1 {
            format!("{}: {}", v.group, v.name)
        } else {
            v.name.clone()
        },
        format!("{} / {}", v.head, v.feature_act),
        v.conditions
            .as_ref()
            .map(|c| c.words())
            .unwrap_or_else(|| "n/a".into()),
        ci(&v.final_acc, 100.0, 2),
        ci(&v.angle_w_mean_deg, 1.0, 1),
        format!(
            "{}/{}{}",
            v.converged_runs,
            v.runs,
            match (v.diverged, v.failed) {
                (0, 0) => String::new(),
                (d, 0) => format!(" ({d} diverged)"),
                (0, f) => format!(" ({f} failed)"),
                (d, f) => format!(" ({d} diverged, {f} failed)"),
            }
        ),
        ci(&v.tail_std, 100.0, 2),
        ci(&v.epochs, 1.0, 1),
    ]
}

const DETAIL_COLUMNS: [&str; 10] = [
    "variant",
    "best acc %",
    "drops",
    "loss spikes",
    "∠(w, softmax c.) °",
    "NC1",
    "NC3",
    "|w|-1 max",
    "|mean w|",
    "coplanarity",
];

fn detail_row(v: &VariantSummary) -> Vec<String> {
    let cond = |f: fn(&VariantConditions) -> &MeanCi| {
        v.conditions
            .as_ref()
            .map(|c| ci(f(c), 1.0, 3))
            .unwrap_or_else(|| "n/a".into())
    };
    vec![
        v.name.clone(),
        ci(&v.best_acc, 100.0, 2),
        f(v.drops, 1),
        f(v.loss_spikes, 1),
        geo(v, "angle_w_softmax_center", 1),
        geo(v, "nc1", 3),
        geo(v, "nc3", 3),
        cond(|c| &c.unit_norm_dev),
        cond(|c| &c.mean_weight_norm),
        cond(|c| &c.coplanarity),
    ]
}

fn groups(s: &Summary) -> usize {
    let g: std::collections::BTreeSet<&str> = s.variants.iter().map(|v| v.group.as_str()).collect();
    g.len()
}

fn decision_lines(s: &Summary) -> Vec<String> {
    let mut out = vec![];
    for (what, list) in [
        (
            "(a) weights are the class centers",
            &s.claims.weights_are_centers,
        ),
        (
            "(b) more stable than the popular heads",
            &s.claims.more_stable,
        ),
    ] {
        if list.is_empty() {
            out.push(format!(
                "{what}: inconclusive: no symmetrical-layer variant in the study"
            ));
        }
        for c in list {
            out.push(format!(
                "{what}, {}: **{}**: {}",
                c.variant,
                c.decision.words(),
                c.evidence
            ));
        }
    }
    out
}

fn md_table(o: &mut String, cols: &[&str], rows: Vec<Vec<String>>) {
    o.push('|');
    for c in cols {
        let _ = write!(o, " {c} |");
    }
    o.push_str("\n|");
    for _ in cols {
        o.push_str("---|");
    }
    o.push('\n');
    for r in rows {
        let _ = writeln!(o, "| {} |", r.join(" | "));
    }
}

const COMPARISON_COLUMNS: [&str; 7] = [
    "variant",
    "against",
    "tail-std difference (pts)",
    "interval (pts)",
    "p",
    "pairs",
    "outcome",
];

fn comparison_rows(s: &Summary) -> Vec<Vec<String>> {
    let mut rows = vec![];
    for c in &s.claims.more_stable {
        for x in &c.comparisons {
            rows.push(vec![
                c.variant.clone(),
                x.against.clone(),
                f(100.0 * x.diff.mean_diff, 2),
                format!(
                    "[{}, {}] ({:.1} %)",
                    f(100.0 * x.diff.lo, 2),
                    f(100.0 * x.diff.hi, 2),
                    100.0 * x.diff.level
                ),
                f(x.diff.p_value, 3),
                x.diff.n.to_string(),
                x.outcome.clone(),
            ]);
        }
    }
    rows
}

/// `summary.md`: question, decisions, main table, then settings and details.
pub fn markdown(s: &Summary) -> String {
    let mut o = String::from("# symfeat study summary\n\n");
    let _ = writeln!(o, "**Question.** {}\n", s.question);
    o.push_str("## Decisions\n\n");
    for l in decision_lines(s) {
        let _ = writeln!(o, "- {l}");
    }
    o.push_str("\n## Main table (mean ± 95 % t-interval over seeds)\n\n");
    let g = groups(s);
    md_table(
        &mut o,
        &MAIN_COLUMNS,
        s.variants.iter().map(|v| main_row(v, g)).collect(),
    );
    o.push_str("\n## Claim (b), per head\n\n");
    md_table(&mut o, &COMPARISON_COLUMNS, comparison_rows(s));
    o.push_str("\n## Rules\n\n");
    for r in &s.rules {
        let _ = writeln!(o, "- {r}");
    }
    o.push_str("\n## Settings\n\n");
    if !s.description.is_empty() {
        let _ = writeln!(o, "{}\n", s.description);
    }
    for (k, v) in &s.settings {
        let _ = writeln!(o, "- {k}: {v}");
    }
    o.push_str("\n## Findings\n\n");
    for v in &s.verdict {
        let _ = writeln!(o, "- {v}");
    }
    o.push_str("\n## Details\n\n");
    md_table(
        &mut o,
        &DETAIL_COLUMNS,
        s.variants.iter().map(detail_row).collect(),
    );
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

fn html_table(o: &mut String, cols: &[&str], rows: Vec<Vec<String>>) {
    o.push_str("<table><tr>");
    for c in cols {
        let _ = write!(o, "<th>{}</th>", esc(c));
    }
    o.push_str("</tr>");
    for r in rows {
        o.push_str("<tr>");
        for c in r {
            let _ = write!(o, "<td>{}</td>", esc(&c));
        }
        o.push_str("</tr>");
    }
    o.push_str("</table>\n");
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
    let _ = writeln!(o, "<p><b>Question.</b> {}</p>", esc(&s.question));
    o.push_str("<h2>Decisions</h2><ul>");
    for l in decision_lines(s) {
        // `**word**` of the Markdown line becomes bold.
        let e = esc(&l);
        let e = e.replacen("**", "<b>", 1).replacen("**", "</b>", 1);
        let _ = write!(o, "<li>{e}</li>");
    }
    o.push_str("</ul>\n<h2>Main table (mean ± 95 % t-interval over seeds)</h2>");
    let g = groups(s);
    html_table(
        &mut o,
        &MAIN_COLUMNS,
        s.variants.iter().map(|v| main_row(v, g)).collect(),
    );
    o.push_str("<p>Weight conditions: measured on the final class weights (row-normalised for cosine heads), holding when below 0.01; tail std: residual std of the test accuracy around a line over the last epochs of converged runs; angle from the probe on the test set after the last epoch.</p>\n<h2>Claim (b), per head</h2>");
    html_table(&mut o, &COMPARISON_COLUMNS, comparison_rows(s));
    o.push_str("<h2>Rules</h2><ul>");
    for r in &s.rules {
        let _ = write!(o, "<li>{}</li>", esc(r));
    }
    o.push_str("</ul>\n<h2>Figures</h2>\n");
    for stem in &s.figures {
        o.push_str(&img(figdir, stem)?);
        o.push('\n');
    }
    o.push_str("<h2>Settings</h2>");
    if !s.description.is_empty() {
        let _ = writeln!(o, "<p>{}</p>", esc(&s.description));
    }
    o.push_str("<ul>");
    for (k, v) in &s.settings {
        let _ = write!(o, "<li><b>{}</b>: {}</li>", esc(k), esc(v));
    }
    o.push_str("</ul>\n<h2>Findings</h2><ul>");
    for v in &s.verdict {
        let _ = write!(o, "<li>{}</li>", esc(v));
    }
    o.push_str("</ul>\n<h2>Details</h2>");
    html_table(
        &mut o,
        &DETAIL_COLUMNS,
        s.variants.iter().map(detail_row).collect(),
    );
    o.push_str("<h2>Runs</h2><table><tr><th>run</th><th>variant</th><th>seed</th><th>epochs</th><th>final acc</th><th>convergence</th><th>status</th></tr>");
    for r in runs {
        let _ = write!(
            o,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            esc(&r.name),
            esc(&r.variant),
            r.config.seed,
            r.history.len(),
            r.history
                .last()
                .map(|m| format!("{:.2}%", 100.0 * m.test_acc))
                .unwrap_or_else(|| "n/a".into()),
            esc(&r.convergence_words()),
            esc(&match (&r.diverged, &r.failed) {
                (Some(d), _) => d.clone(),
                (None, Some(f)) => format!("failed: {f}"),
                (None, None) => "ok".into(),
            })
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
