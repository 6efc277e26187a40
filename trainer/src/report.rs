//! Training curves as CSV and as a hand-written SVG (two panels: training loss and test accuracy
//! against the step, one polyline per pattern in each panel).

use std::fmt::Write;

use crate::mlp::Record;

/// One pattern's curve.
#[derive(Clone, Debug, PartialEq)]
pub struct Curve {
    /// Legend and CSV label, e.g. `dense` or `2:4`.
    pub label: String,
    pub records: Vec<Record>,
}

/// The CSV header of [`curves_csv`].
pub const CSV_HEADER: &str = "pattern,step,loss,train_accuracy,test_accuracy";

/// `pattern,step,loss,train_accuracy,test_accuracy`, one row per record, curves in order.
pub fn curves_csv(curves: &[Curve]) -> String {
    let mut s = String::from(CSV_HEADER);
    s.push('\n');
    for c in curves {
        for r in &c.records {
            let _ = writeln!(
                s,
                "{},{},{:.6},{:.4},{:.4}",
                c.label, r.step, r.loss, r.train_acc, r.test_acc
            );
        }
    }
    s
}

const COLOURS: [&str; 8] = [
    "#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#17becf",
];

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// A "nice" tick spacing (1, 2, 2.5 or 5 × 10^k) giving about `target` intervals over `span`.
fn tick_step(span: f64, target: f64) -> f64 {
    let raw = (span / target).max(f64::MIN_POSITIVE);
    let mag = 10f64.powf(raw.log10().floor());
    let f = raw / mag;
    let nice = if f <= 1.0 {
        1.0
    } else if f <= 2.0 {
        2.0
    } else if f <= 2.5 {
        2.5
    } else if f <= 5.0 {
        5.0
    } else {
        10.0
    };
    nice * mag
}

fn fmt_tick(v: f64, step: f64) -> String {
    // Fewest decimals that show the tick spacing exactly (0.25 -> 2, 0.2 -> 1, 100 -> 0).
    let decimals = (0..6)
        .find(|&d| {
            let scaled = step * 10f64.powi(d as i32);
            (scaled - scaled.round()).abs() < 1e-6
        })
        .unwrap_or(6);
    format!("{v:.decimals$}")
}

struct Panel {
    x0: f64,
    y0: f64,
    w: f64,
    h: f64,
    xmax: f64,
    ymax: f64,
}

impl Panel {
    fn px(&self, x: f64) -> f64 {
        self.x0 + x / self.xmax * self.w
    }
    fn py(&self, y: f64) -> f64 {
        self.y0 + self.h - y.clamp(0.0, self.ymax) / self.ymax * self.h
    }

    fn axes(&self, s: &mut String, title: &str, ylabel: &str, ystep: f64) {
        let (x0, y0, w, h) = (self.x0, self.y0, self.w, self.h);
        let _ = writeln!(
            s,
            r#"<text x="{:.1}" y="{:.1}" text-anchor="middle" font-size="15" font-weight="bold">{}</text>"#,
            x0 + w / 2.0,
            y0 - 12.0,
            escape(title)
        );
        // Grid and y ticks.
        let mut v = 0.0;
        while v <= self.ymax + ystep * 1e-6 {
            let y = self.py(v);
            let _ = writeln!(
                s,
                r##"<line x1="{x0:.1}" y1="{y:.1}" x2="{:.1}" y2="{y:.1}" stroke="#e0e0e0"/>"##,
                x0 + w
            );
            let _ = writeln!(
                s,
                r#"<text x="{:.1}" y="{:.1}" text-anchor="end" font-size="11">{}</text>"#,
                x0 - 6.0,
                y + 4.0,
                fmt_tick(v, ystep)
            );
            v += ystep;
        }
        // x ticks.
        let xstep = tick_step(self.xmax, 5.0);
        let mut v = 0.0;
        while v <= self.xmax + xstep * 1e-6 {
            let x = self.px(v);
            let _ = writeln!(
                s,
                r##"<line x1="{x:.1}" y1="{:.1}" x2="{x:.1}" y2="{:.1}" stroke="#000"/>"##,
                y0 + h,
                y0 + h + 5.0
            );
            let _ = writeln!(
                s,
                r#"<text x="{x:.1}" y="{:.1}" text-anchor="middle" font-size="11">{}</text>"#,
                y0 + h + 18.0,
                fmt_tick(v, xstep)
            );
            v += xstep;
        }
        let _ = writeln!(
            s,
            r##"<rect x="{x0:.1}" y="{y0:.1}" width="{w:.1}" height="{h:.1}" fill="none" stroke="#000"/>"##
        );
        let _ = writeln!(
            s,
            r#"<text x="{:.1}" y="{:.1}" text-anchor="middle" font-size="12">step</text>"#,
            x0 + w / 2.0,
            y0 + h + 36.0
        );
        let _ = writeln!(
            s,
            r#"<text x="{:.1}" y="{:.1}" text-anchor="middle" font-size="12" transform="rotate(-90 {:.1} {:.1})">{}</text>"#,
            x0 - 44.0,
            y0 + h / 2.0,
            x0 - 44.0,
            y0 + h / 2.0,
            escape(ylabel)
        );
    }

    fn polyline(&self, s: &mut String, pts: impl Iterator<Item = (f64, f64)>, colour: &str) {
        let points: Vec<String> = pts
            .filter(|(_, y)| y.is_finite())
            .map(|(x, y)| format!("{:.1},{:.1}", self.px(x), self.py(y)))
            .collect();
        let _ = writeln!(
            s,
            r#"<polyline fill="none" stroke="{colour}" stroke-width="2" points="{}"/>"#,
            points.join(" ")
        );
    }
}

/// The two-panel SVG: left, training-set loss; right, test accuracy (with a dashed line at
/// `chance`, when given). `title` goes on top. Exactly one `<polyline>` per curve per panel.
pub fn curves_svg(curves: &[Curve], title: &str, chance: Option<f32>) -> String {
    let (width, height) = (1000.0, 470.0);
    let all = || curves.iter().flat_map(|c| c.records.iter());
    let xmax = all().map(|r| r.step as f64).fold(1.0, f64::max);
    let lmax = all()
        .map(|r| r.loss as f64)
        .filter(|v| v.is_finite())
        .fold(0.0, f64::max)
        .max(1e-3);
    let lstep = tick_step(lmax, 5.0);
    let loss_panel = Panel {
        x0: 80.0,
        y0: 70.0,
        w: 380.0,
        h: 300.0,
        xmax,
        ymax: (lmax / lstep).ceil() * lstep,
    };
    let acc_panel = Panel {
        x0: 580.0,
        y0: 70.0,
        w: 380.0,
        h: 300.0,
        xmax,
        ymax: 1.0,
    };
    let mut s = String::new();
    let _ = writeln!(
        s,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" viewBox="0 0 {width} {height}" font-family="sans-serif">"#
    );
    let _ = writeln!(
        s,
        r#"<rect x="0" y="0" width="{width}" height="{height}" fill="white"/>"#
    );
    let _ = writeln!(
        s,
        r#"<text x="{:.1}" y="28" text-anchor="middle" font-size="16">{}</text>"#,
        width / 2.0,
        escape(title)
    );
    loss_panel.axes(&mut s, "training loss", "cross-entropy (train set)", lstep);
    acc_panel.axes(&mut s, "test accuracy", "accuracy", 0.2);
    if let Some(c) = chance {
        let y = acc_panel.py(c as f64);
        let _ = writeln!(
            s,
            r##"<line x1="{:.1}" y1="{y:.1}" x2="{:.1}" y2="{y:.1}" stroke="#888" stroke-dasharray="5,4"/>"##,
            acc_panel.x0,
            acc_panel.x0 + acc_panel.w
        );
        let _ = writeln!(
            s,
            r##"<text x="{:.1}" y="{:.1}" text-anchor="end" font-size="11" fill="#666">chance</text>"##,
            acc_panel.x0 + acc_panel.w - 4.0,
            y - 4.0
        );
    }
    for (i, c) in curves.iter().enumerate() {
        let colour = COLOURS[i % COLOURS.len()];
        let pts = || c.records.iter().map(|r| (r.step as f64, r.loss as f64));
        loss_panel.polyline(&mut s, pts(), colour);
        let pts = c.records.iter().map(|r| (r.step as f64, r.test_acc as f64));
        acc_panel.polyline(&mut s, pts, colour);
    }
    // Legend, centred under the panels.
    let item_w = 110.0;
    let left = width / 2.0 - item_w * curves.len() as f64 / 2.0;
    let ly = height - 28.0;
    for (i, c) in curves.iter().enumerate() {
        let colour = COLOURS[i % COLOURS.len()];
        let x = left + item_w * i as f64;
        let _ = writeln!(
            s,
            r#"<line x1="{x:.1}" y1="{ly:.1}" x2="{:.1}" y2="{ly:.1}" stroke="{colour}" stroke-width="3"/>"#,
            x + 28.0
        );
        let _ = writeln!(
            s,
            r#"<text x="{:.1}" y="{:.1}" font-size="13">{}</text>"#,
            x + 34.0,
            ly + 4.0,
            escape(&c.label)
        );
    }
    s.push_str("</svg>\n");
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ticks_are_nice() {
        assert_eq!(tick_step(300.0, 5.0), 100.0);
        assert_eq!(tick_step(1.1, 5.0), 0.25);
        assert_eq!(tick_step(2.2, 5.0), 0.5);
        assert_eq!(fmt_tick(0.75, 0.25), "0.75");
        assert_eq!(fmt_tick(0.4, 0.2), "0.4");
        assert_eq!(fmt_tick(200.0, 100.0), "200");
    }
}
