//! A picture of a failed comparison: a heat map of the differing elements of one tensor, with the
//! first mismatch marked, so that a reader sees at a glance whether a whole row, a column, an
//! array tile or one element is wrong (`mismatch.svg` of `coforge verify` and `coforge train`).
//!
//! Large tensors are binned: each cell of the map covers at most `MAX_CELLS` rows and columns'
//! worth of elements, and its colour says which fraction of them differ. A cell with any
//! differing element is drawn at least half saturated, so one wrong element in a big tensor stays
//! visible.

use ndarray::ArrayView2;

use crate::compare::{Bits, Mismatch};

/// Where a tensor's golden and RTL values differ.
#[derive(Clone, Debug, PartialEq)]
pub struct DiffMap {
    pub tensor: String,
    pub rows: usize,
    pub cols: usize,
    /// Differing elements, row-major.
    pub differing: Vec<[usize; 2]>,
}

/// Cells per side of the drawn map, at most.
pub const MAX_CELLS: usize = 128;
/// Side of the drawn map in pixels, at most.
const PLOT_PX: usize = 640;
const MARGIN_LEFT: usize = 64;
const MARGIN_TOP: usize = 72;
const MARGIN_BOTTOM: usize = 48;
const MARGIN_RIGHT: usize = 24;

impl DiffMap {
    /// The differing elements of two tensors of the same shape, bit for bit (as `compare`).
    /// Shapes must match: callers compare first, which rejects a shape mismatch.
    pub fn of<T: Bits>(tensor: &str, golden: ArrayView2<T>, rtl: ArrayView2<T>) -> DiffMap {
        assert_eq!(
            golden.dim(),
            rtl.dim(),
            "compare() rejects shape mismatches"
        );
        let differing = golden
            .indexed_iter()
            .zip(rtl.iter())
            .filter(|((_, g), r)| g.bits() != r.bits())
            .map(|(((i, j), _), _)| [i, j])
            .collect();
        DiffMap {
            tensor: tensor.to_string(),
            rows: golden.nrows(),
            cols: golden.ncols(),
            differing,
        }
    }

    /// The heat map as a standalone SVG document. `first` is the comparison's first mismatch (its
    /// text, with the cycle when known, is the subtitle); `tile` draws the boundaries of
    /// `rows x cols` blocks, such as the engine's array tiles, when given.
    pub fn svg(&self, first: &Mismatch, tile: Option<(usize, usize)>) -> String {
        let (rows, cols) = (self.rows.max(1), self.cols.max(1));
        // Elements per cell along each axis, and the number of cells.
        let (bin_r, bin_c) = (rows.div_ceil(MAX_CELLS), cols.div_ceil(MAX_CELLS));
        let (cells_r, cells_c) = (rows.div_ceil(bin_r), cols.div_ceil(bin_c));
        let px = (PLOT_PX / cells_r.max(cells_c)).clamp(1, 24);
        let (w, h) = (cells_c * px, cells_r * px);
        let mut counts = vec![0usize; cells_r * cells_c];
        for [i, j] in &self.differing {
            counts[(i / bin_r) * cells_c + j / bin_c] += 1;
        }
        let (ox, oy) = (MARGIN_LEFT, MARGIN_TOP);
        let total_w = ox + w.max(360) + MARGIN_RIGHT;
        let total_h = oy + h + MARGIN_BOTTOM;
        let mut s = format!(
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n\
             <svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{total_w}\" height=\"{total_h}\" \
             viewBox=\"0 0 {total_w} {total_h}\" font-family=\"sans-serif\" font-size=\"12\">\n"
        );
        s += &format!(
            "<text x=\"{ox}\" y=\"20\" font-size=\"15\" font-weight=\"bold\">{}</text>\n",
            esc(&format!(
                "`{}`: {} of {} elements differ ({} x {})",
                self.tensor,
                self.differing.len(),
                self.rows * self.cols,
                self.rows,
                self.cols
            ))
        );
        s += &format!(
            "<text x=\"{ox}\" y=\"40\">{}</text>\n",
            esc(&first.to_string())
        );
        let scale = if bin_r * bin_c > 1 {
            format!("each cell is {bin_r} x {bin_c} elements; darker = more of them differ; ")
        } else {
            "one cell per element; ".to_string()
        };
        s += &format!(
            "<text x=\"{ox}\" y=\"58\" fill=\"#555\">{}</text>\n",
            esc(&format!("{scale}ring = first mismatch"))
        );
        s += &format!(
            "<rect x=\"{ox}\" y=\"{oy}\" width=\"{w}\" height=\"{h}\" fill=\"#eeeeee\" stroke=\"#999\"/>\n"
        );
        let per_cell = (bin_r * bin_c) as f64;
        for (k, &n) in counts.iter().enumerate().filter(|(_, &n)| n > 0) {
            let (ci, cj) = (k / cells_c, k % cells_c);
            let opacity = 0.5 + 0.5 * (n as f64 / per_cell).min(1.0);
            s += &format!(
                "<rect x=\"{}\" y=\"{}\" width=\"{px}\" height=\"{px}\" fill=\"#d62728\" fill-opacity=\"{opacity:.3}\"/>\n",
                ox + cj * px,
                oy + ci * px
            );
        }
        if let Some((tr, tc)) = tile.filter(|&(tr, tc)| tr > 0 && tc > 0) {
            let mut lines = String::new();
            for r in (tr..rows).step_by(tr) {
                let y = oy as f64 + (r as f64 / bin_r as f64) * px as f64;
                lines += &format!("M{ox} {y:.1}H{} ", ox + w);
            }
            for c in (tc..cols).step_by(tc) {
                let x = ox as f64 + (c as f64 / bin_c as f64) * px as f64;
                lines += &format!("M{x:.1} {oy}V{} ", oy + h);
            }
            if !lines.is_empty() {
                s += &format!(
                    "<path d=\"{}\" stroke=\"#4a6fa5\" stroke-width=\"1\" stroke-dasharray=\"3 2\" fill=\"none\"/>\n",
                    lines.trim_end()
                );
            }
        }
        let [fi, fj] = first.index;
        let (cx, cy) = (
            ox as f64 + ((fj / bin_c) as f64 + 0.5) * px as f64,
            oy as f64 + ((fi / bin_r) as f64 + 0.5) * px as f64,
        );
        s += &format!(
            "<circle cx=\"{cx:.1}\" cy=\"{cy:.1}\" r=\"{:.1}\" fill=\"none\" stroke=\"#000\" stroke-width=\"2\"/>\n",
            (px as f64 * 0.9).max(5.0)
        );
        // Axes: first and last index of each.
        s += &format!(
            "<text x=\"{ox}\" y=\"{}\">0</text><text x=\"{}\" y=\"{}\" text-anchor=\"end\">{}</text>\n",
            oy + h + 16,
            ox + w,
            oy + h + 16,
            self.cols.saturating_sub(1)
        );
        s += &format!(
            "<text x=\"{}\" y=\"{}\" text-anchor=\"middle\">column</text>\n",
            ox + w / 2,
            oy + h + 34
        );
        s += &format!(
            "<text x=\"{}\" y=\"{}\" text-anchor=\"end\">0</text><text x=\"{}\" y=\"{}\" text-anchor=\"end\">{}</text>\n",
            ox - 6,
            oy + 12,
            ox - 6,
            oy + h,
            self.rows.saturating_sub(1)
        );
        s += &format!(
            "<text x=\"16\" y=\"{}\" transform=\"rotate(-90 16 {})\" text-anchor=\"middle\">row</text>\n",
            oy + h / 2,
            oy + h / 2
        );
        s += "</svg>\n";
        s
    }
}

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::compare::compare;
    use ndarray::Array2;

    #[test]
    fn marks_the_differing_elements_and_the_first() {
        let g = Array2::<i32>::zeros((6, 5));
        let mut r = g.clone();
        r[[2, 1]] = 1;
        r[[2, 4]] = -1;
        r[[5, 0]] = 3;
        let c = compare("c", g.view(), r.view()).unwrap();
        let map = DiffMap::of("c", g.view(), r.view());
        assert_eq!(map.differing, vec![[2, 1], [2, 4], [5, 0]]);
        let svg = map.svg(c.first_mismatch.as_ref().unwrap(), Some((4, 4)));
        let doc = roxmltree::Document::parse(&svg).unwrap();
        let cells: Vec<_> = doc
            .descendants()
            .filter(|n| n.attribute("fill") == Some("#d62728"))
            .collect();
        assert_eq!(cells.len(), 3, "one cell per differing element");
        let ring = doc
            .descendants()
            .find(|n| n.has_tag_name("circle"))
            .unwrap();
        // Cells are 24 px; element [2, 1] is centred at (64 + 1.5*24, 72 + 2.5*24).
        assert_eq!(ring.attribute("cx"), Some("100.0"));
        assert_eq!(ring.attribute("cy"), Some("132.0"));
        assert!(svg.contains("3 of 30 elements differ"));
        assert!(svg.contains("first mismatch in `c` at [2, 1]"));
    }

    #[test]
    fn big_tensors_are_binned_and_one_element_stays_visible() {
        let g = Array2::<f32>::zeros((1000, 300));
        let mut r = g.clone();
        r[[999, 299]] = 1.0;
        let c = compare("dw", g.view(), r.view()).unwrap();
        let svg =
            DiffMap::of("dw", g.view(), r.view()).svg(c.first_mismatch.as_ref().unwrap(), None);
        let doc = roxmltree::Document::parse(&svg).unwrap();
        let cells: Vec<_> = doc
            .descendants()
            .filter(|n| n.attribute("fill") == Some("#d62728"))
            .collect();
        assert_eq!(cells.len(), 1);
        assert!(
            cells[0]
                .attribute("fill-opacity")
                .unwrap()
                .parse::<f64>()
                .unwrap()
                >= 0.5
        );
        assert!(svg.contains("each cell is 8 x 3 elements"));
    }
}
