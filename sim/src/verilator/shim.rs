//! The C++ shim compiled with each design: one Verilator context and model
//! per handle, a bulk `coforge_run` that loops over cycles in C++, and a
//! per-cycle `coforge_step` for closed loop.
//!
//! The C++ is `shim.cpp`, a template whose `@NAME@` placeholders are filled in
//! per design: `SHIM_ABI`, `TOP`, `CLK`, `SIGNATURE`, `WAVES` (0 or 1),
//! `IN_WORDS` and `OUT_WORDS` (frame sizes), `APPLY` and `SAMPLE` (statements
//! that copy the frames into and out of the model), `CYCLE_TIME` and `HALF`.

use std::fmt::Write as _;

use super::{CYCLE_TIME, SHIM_ABI};
use crate::frames::{Layout, Slot};
use crate::DesignSpec;

const TEMPLATE: &str = include_str!("shim.cpp");

/// The shim source for one design.
pub(super) fn source(spec: &DesignSpec, layout: &Layout, waves: bool) -> String {
    let mut apply = String::new();
    for s in &layout.inputs {
        let _ = writeln!(apply, "    {}", copy_in(s));
    }
    let mut sample = String::new();
    for s in &layout.outputs {
        let _ = writeln!(sample, "        {}", copy_out(s));
    }
    let values: [(&str, String); 11] = [
        ("SHIM_ABI", SHIM_ABI.to_string()),
        ("TOP", spec.top.clone()),
        ("CLK", spec.clock.clone()),
        ("SIGNATURE", spec.signature()),
        ("WAVES", (waves as u32).to_string()),
        ("IN_WORDS", layout.in_words.to_string()),
        ("OUT_WORDS", layout.out_words.to_string()),
        ("APPLY", apply),
        ("SAMPLE", sample),
        ("CYCLE_TIME", CYCLE_TIME.to_string()),
        ("HALF", (CYCLE_TIME / 2).to_string()),
    ];
    fill(TEMPLATE, &values)
}

/// Replaces every `@NAME@` of the template. Names and values are ours
/// (identifiers, numbers, generated statements), so no value holds an `@`.
fn fill(template: &str, values: &[(&str, String)]) -> String {
    let mut out = template.to_string();
    for (name, value) in values {
        out = out.replace(&format!("@{name}@"), value);
    }
    debug_assert!(!out.contains('@'), "unfilled placeholder in the shim");
    out
}

/// C++ that copies input `s` from frame `f` into the model (masking the top
/// word, since Verilator requires clean upper bits).
fn copy_in(s: &Slot) -> String {
    let (n, o, m) = (&s.name, s.offset, s.top_mask);
    match s.width {
        1..=8 => format!("top->{n} = (CData)(f[{o}] & {m}u);"),
        9..=16 => format!("top->{n} = (SData)(f[{o}] & {m}u);"),
        17..=32 => format!("top->{n} = (IData)(f[{o}] & {m}u);"),
        33..=64 => format!(
            "top->{n} = (QData)f[{o}] | ((QData)(f[{}] & {m}u) << 32);",
            o + 1
        ),
        _ => format!(
            "std::memcpy(top->{n}.data(), f + {o}, {} * 4); top->{n}[{}] &= {m}u;",
            s.words,
            s.words - 1
        ),
    }
}

/// C++ that copies output `s` from the model into the out frame `o`.
fn copy_out(s: &Slot) -> String {
    let (n, o, m) = (&s.name, s.offset, s.top_mask);
    match s.width {
        1..=32 => format!("o[{o}] = (uint32_t)top->{n} & {m}u;"),
        33..=64 => format!(
            "{{ const QData v = top->{n}; o[{o}] = (uint32_t)v; o[{}] = (uint32_t)(v >> 32) & {m}u; }}",
            o + 1
        ),
        _ => format!(
            "std::memcpy(o + {o}, top->{n}.data(), {} * 4); o[{}] &= {m}u;",
            s.words,
            o + s.words - 1
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::PortSpec;

    #[test]
    fn every_placeholder_is_filled() {
        let spec = DesignSpec {
            top: "t".into(),
            sources: vec![("t.v".into(), String::new())],
            ports: vec![PortSpec::input("a", 70), PortSpec::output("y", 3)],
            clock: "clk".into(),
        };
        let layout = Layout::new(&spec).unwrap();
        let s = source(&spec, &layout, true);
        assert!(!s.contains('@'), "{s}");
        assert!(s.contains("top->clk = 1;"));
        assert!(s.contains("#define COFORGE_WAVES 1"));
        assert!(s.contains(&spec.signature()));
    }
}
