//! BDWP training of linear layers and small MLPs, generic over a compute [`Backend`].
//!
//! The same training code runs on the bit-exact Rust reference ([`Reference`], `sparse-kernels`)
//! or on the generated RTL engines in co-simulation (a backend implementing the same trait). Every
//! backend operation is specified bit for bit, and everything else (ReLU, loss, loss scaling,
//! masking `W16⊙M_F`) is shared host code, so a run gives identical numbers on every correct
//! backend.
//!
//! | module | contents |
//! |---|---|
//! | [`backend`] | [`Backend`] trait, [`Pass`], [`Reference`], [`Counting`] (MACs per pass) |
//! | [`linear`] | one layer: [`pregenerate`], [`forward`], [`backward`], [`apply_update`], [`train_step`] (equal to `bdwp::train_step`) |
//! | [`mlp`] | [`Mlp`], [`train_mlp`], loss scaling, [`Record`] |
//! | [`data`] | seeded synthetic datasets (spirals, blobs) |
//! | [`report`] | `curves.csv` and `curves.svg` |

pub mod backend;
pub mod data;
pub mod linear;
pub mod mlp;
pub mod report;
pub mod rtl;
pub mod schedule;

pub use backend::{Backend, Counting, Pass, PassWork, Reference};
pub use data::{Dataset, DatasetKind};
pub use linear::{
    apply_update, backward, backward_data, forward, pregenerate, pregenerate_from, train_step,
    train_step_state, weight_gradient, LinearState,
};
pub use mlp::{lockstep_mlp, train_mlp, Mlp, MlpConfig, Record, DEFAULT_LOSS_SCALE};
pub use report::{curves_csv, curves_svg, Curve};

use sparse_kernels::nm::NmPattern;

/// The pattern used for `dense`: 1:1 (N = M, nothing pruned, no grouping constraint on widths).
pub fn dense_pattern() -> NmPattern {
    NmPattern::new(1, 1).expect("1:1 is a valid pattern")
}

/// Parses `dense` or `N:M` (e.g. `2:4`; `N = M` also means dense). Errors explain the rule.
pub fn parse_pattern(s: &str) -> anyhow::Result<NmPattern> {
    let t = s.trim();
    if t.eq_ignore_ascii_case("dense") {
        return Ok(dense_pattern());
    }
    let (n, m) = t.split_once(':').ok_or_else(|| {
        anyhow::anyhow!("pattern '{s}' is not 'dense' or N:M (e.g. 2:4, 2:8, 1:16)")
    })?;
    let parse = |v: &str, what: &str| -> anyhow::Result<usize> {
        v.trim().parse().map_err(|_| {
            anyhow::anyhow!("pattern '{s}': {what} '{v}' is not a non-negative integer")
        })
    };
    let (n, m) = (parse(n, "N")?, parse(m, "M")?);
    NmPattern::new(n, m).map_err(|e| anyhow::anyhow!("pattern '{s}': {e}"))
}

/// `dense` for N = M, otherwise `N:M`.
pub fn pattern_label(p: NmPattern) -> String {
    if p.is_dense() {
        "dense".into()
    } else {
        p.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patterns_parse_with_clear_errors() {
        assert_eq!(parse_pattern("dense").unwrap(), dense_pattern());
        assert_eq!(
            parse_pattern(" 2:8 ").unwrap(),
            NmPattern::new(2, 8).unwrap()
        );
        assert_eq!(pattern_label(parse_pattern("4:4").unwrap()), "dense");
        assert_eq!(pattern_label(parse_pattern("1:16").unwrap()), "1:16");
        for bad in ["2-4", "a:4", "2:", "0:4", "5:4", "1:32", ""] {
            let e = parse_pattern(bad).unwrap_err().to_string();
            assert!(e.contains(&format!("'{bad}'")), "{bad}: {e}");
        }
    }
}
