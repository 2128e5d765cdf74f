//! Inline SVG charts: drawn on the server, so they show with JavaScript
//! off and need no chart library or CDN. Presentation attributes only (no
//! inline `style`), which the pages' Content-Security-Policy allows.

use maud::{html, Markup};

const WIDTH: f64 = 600.0;
const HEIGHT: f64 = 180.0;
/// Room for the axis labels.
const LEFT: f64 = 64.0;
const BOTTOM: f64 = 22.0;
const TOP: f64 = 10.0;
const RIGHT: f64 = 10.0;

/// A line chart of `(x, y)` points (x ascending) with the first and last
/// x and the y range as labels; `fmt` writes a y value.
pub fn line(label: &str, points: &[(f64, f64)], fmt: fn(f64) -> String) -> Markup {
    let (Some(first), Some(last)) = (points.first(), points.last()) else {
        return html! { p.empty { "No data yet." } };
    };
    let (x0, x1) = (first.0, last.0.max(first.0 + 1.0));
    let ymax = points.iter().map(|p| p.1).fold(f64::MIN, f64::max);
    let ymin = points.iter().map(|p| p.1).fold(f64::MAX, f64::min);
    // A flat series sits in the middle instead of on an axis.
    let (lo, hi) = if (ymax - ymin).abs() <= f64::EPSILON * ymax.abs().max(1.0) {
        (ymin * 0.5, ymax * 1.5 + 1e-9)
    } else {
        (ymin, ymax)
    };
    let px = |x: f64| LEFT + (x - x0) / (x1 - x0) * (WIDTH - LEFT - RIGHT);
    let py = |y: f64| TOP + (1.0 - (y - lo) / (hi - lo)) * (HEIGHT - TOP - BOTTOM);
    let path: String = points.iter().map(|&(x, y)| format!("{:.1},{:.1}", px(x), py(y))).collect::<Vec<_>>().join(" ");
    let base = HEIGHT - BOTTOM;
    html! {
        svg.chart viewBox=(format!("0 0 {WIDTH} {HEIGHT}")) role="img" aria-label=(label) {
            title { (label) }
            line x1=(LEFT) y1=(TOP) x2=(LEFT) y2=(base) stroke="#9aa5b1" stroke-width="1" {}
            line x1=(LEFT) y1=(base) x2=(WIDTH - RIGHT) y2=(base) stroke="#9aa5b1" stroke-width="1" {}
            text x=(LEFT - 6.0) y=(TOP + 8.0) text-anchor="end" font-size="11" fill="#52606d" { (fmt(ymax)) }
            text x=(LEFT - 6.0) y=(base) text-anchor="end" font-size="11" fill="#52606d" { (fmt(ymin)) }
            text x=(LEFT) y=(HEIGHT - 6.0) font-size="11" fill="#52606d" { (format!("{x0:.0}")) }
            text x=(WIDTH - RIGHT) y=(HEIGHT - 6.0) text-anchor="end" font-size="11" fill="#52606d" { (format!("{:.0}", last.0)) }
            polyline points=(path) fill="none" stroke="#2f6fde" stroke-width="2" stroke-linejoin="round" {}
        }
    }
}

/// A bar chart: one bar per `(label, value)`, value written on hover
/// (`<title>`) and under the bar.
pub fn bars(label: &str, items: &[(String, f64)], fmt: fn(f64) -> String) -> Markup {
    if items.is_empty() {
        return html! { p.empty { "No data yet." } };
    }
    let max = items.iter().map(|i| i.1).fold(0.0, f64::max).max(1e-9);
    let slot = (WIDTH - LEFT - RIGHT) / items.len() as f64;
    let base = HEIGHT - BOTTOM;
    html! {
        svg.chart viewBox=(format!("0 0 {WIDTH} {HEIGHT}")) role="img" aria-label=(label) {
            title { (label) }
            line x1=(LEFT) y1=(base) x2=(WIDTH - RIGHT) y2=(base) stroke="#9aa5b1" stroke-width="1" {}
            text x=(LEFT - 6.0) y=(TOP + 8.0) text-anchor="end" font-size="11" fill="#52606d" { (fmt(max)) }
            @for (i, (name, value)) in items.iter().enumerate() {
                @let h = value / max * (base - TOP);
                @let x = LEFT + i as f64 * slot;
                g {
                    title { (name) ": " (fmt(*value)) }
                    rect x=(format!("{:.1}", x + slot * 0.15)) y=(format!("{:.1}", base - h)) width=(format!("{:.1}", slot * 0.7)) height=(format!("{:.1}", h)) fill="#2f6fde" {}
                    text x=(format!("{:.1}", x + slot / 2.0)) y=(HEIGHT - 6.0) text-anchor="middle" font-size="10" fill="#52606d" { (name) }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_are_escaped_and_points_drawn() {
        let svg = line("<b>", &[(1.0, 2.0), (2.0, 4.0)], |v| format!("{v}")).into_string();
        assert!(svg.contains("&lt;b&gt;") && !svg.contains("<b>"), "{svg}");
        assert!(svg.contains("polyline"));
        let bars = bars("fees", &[("<1".into(), 3.0)], |v| format!("{v}")).into_string();
        assert!(bars.contains("&lt;1") && bars.contains("<rect"), "{bars}");
        assert!(line("empty", &[], |v| format!("{v}")).into_string().contains("No data"));
    }
}
