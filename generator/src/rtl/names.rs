//! Which names a generated module may take: plain Verilog identifiers that are no keyword of
//! Verilog-2005 or SystemVerilog, since the same file may be read by a SystemVerilog tool
//! (Verilator, Vivado) as well as by a Verilog-2005 one (Icarus, Yosys).

/// The most characters a top name may have (file systems and simulators stay happy below it).
pub const MAX_NAME_LEN: usize = 200;

/// Every reserved keyword of IEEE 1364-2005 (Verilog-2005, which includes 1364-1995 and -2001)
/// and IEEE 1800-2017 (SystemVerilog), sorted.
pub const KEYWORDS: &[&str] = &[
    "accept_on",
    "alias",
    "always",
    "always_comb",
    "always_ff",
    "always_latch",
    "and",
    "assert",
    "assign",
    "assume",
    "automatic",
    "before",
    "begin",
    "bind",
    "bins",
    "binsof",
    "bit",
    "break",
    "buf",
    "bufif0",
    "bufif1",
    "byte",
    "case",
    "casex",
    "casez",
    "cell",
    "chandle",
    "checker",
    "class",
    "clocking",
    "cmos",
    "config",
    "const",
    "constraint",
    "context",
    "continue",
    "cover",
    "covergroup",
    "coverpoint",
    "cross",
    "deassign",
    "default",
    "defparam",
    "design",
    "disable",
    "dist",
    "do",
    "edge",
    "else",
    "end",
    "endcase",
    "endchecker",
    "endclass",
    "endclocking",
    "endconfig",
    "endfunction",
    "endgenerate",
    "endgroup",
    "endinterface",
    "endmodule",
    "endpackage",
    "endprimitive",
    "endprogram",
    "endproperty",
    "endsequence",
    "endspecify",
    "endtable",
    "endtask",
    "enum",
    "event",
    "eventually",
    "expect",
    "export",
    "extends",
    "extern",
    "final",
    "first_match",
    "for",
    "force",
    "foreach",
    "forever",
    "fork",
    "forkjoin",
    "function",
    "generate",
    "genvar",
    "global",
    "highz0",
    "highz1",
    "if",
    "iff",
    "ifnone",
    "ignore_bins",
    "illegal_bins",
    "implements",
    "implies",
    "import",
    "incdir",
    "include",
    "initial",
    "inout",
    "input",
    "inside",
    "instance",
    "int",
    "integer",
    "interconnect",
    "interface",
    "intersect",
    "join",
    "join_any",
    "join_none",
    "large",
    "let",
    "liblist",
    "library",
    "local",
    "localparam",
    "logic",
    "longint",
    "macromodule",
    "matches",
    "medium",
    "modport",
    "module",
    "nand",
    "negedge",
    "nettype",
    "new",
    "nexttime",
    "nmos",
    "nor",
    "noshowcancelled",
    "not",
    "notif0",
    "notif1",
    "null",
    "or",
    "output",
    "package",
    "packed",
    "parameter",
    "pmos",
    "posedge",
    "primitive",
    "priority",
    "program",
    "property",
    "protected",
    "pull0",
    "pull1",
    "pulldown",
    "pullup",
    "pulsestyle_ondetect",
    "pulsestyle_onevent",
    "pure",
    "rand",
    "randc",
    "randcase",
    "randsequence",
    "rcmos",
    "real",
    "realtime",
    "ref",
    "reg",
    "reject_on",
    "release",
    "repeat",
    "restrict",
    "return",
    "rnmos",
    "rpmos",
    "rtran",
    "rtranif0",
    "rtranif1",
    "s_always",
    "s_eventually",
    "s_nexttime",
    "s_until",
    "s_until_with",
    "scalared",
    "sequence",
    "shortint",
    "shortreal",
    "showcancelled",
    "signed",
    "small",
    "soft",
    "solve",
    "specify",
    "specparam",
    "static",
    "string",
    "strong",
    "strong0",
    "strong1",
    "struct",
    "super",
    "supply0",
    "supply1",
    "sync_accept_on",
    "sync_reject_on",
    "table",
    "tagged",
    "task",
    "this",
    "throughout",
    "time",
    "timeprecision",
    "timeunit",
    "tran",
    "tranif0",
    "tranif1",
    "tri",
    "tri0",
    "tri1",
    "triand",
    "trior",
    "trireg",
    "type",
    "typedef",
    "union",
    "unique",
    "unique0",
    "unsigned",
    "until",
    "until_with",
    "untyped",
    "use",
    "uwire",
    "var",
    "vectored",
    "virtual",
    "void",
    "wait",
    "wait_order",
    "wand",
    "weak",
    "weak0",
    "weak1",
    "while",
    "wildcard",
    "wire",
    "with",
    "within",
    "wor",
    "xnor",
    "xor",
];

/// True when `name` is a Verilog-2005 or SystemVerilog keyword (keywords are case-sensitive:
/// `Module` is a valid name).
pub fn is_keyword(name: &str) -> bool {
    KEYWORDS.binary_search(&name).is_ok()
}

/// Checks that `name` can name a top module: a letter, then letters, digits or `_`, no `__`
/// (Verilator reserves it for its own names), at most [`MAX_NAME_LEN`] characters, and no
/// keyword. The error says what is wrong, for a message of the form "`name` is not valid: ...".
pub fn check_module_name(name: &str) -> Result<(), String> {
    let plain = name.chars().next().is_some_and(|c| c.is_ascii_alphabetic())
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
    if !plain {
        return Err("use a Verilog identifier: a letter, then letters, digits or `_`".into());
    }
    if name.contains("__") {
        return Err(
            "`__` is reserved by Verilator for its own names; use single underscores".into(),
        );
    }
    if name.len() > MAX_NAME_LEN {
        return Err(format!("use at most {MAX_NAME_LEN} characters"));
    }
    if is_keyword(name) {
        return Err(format!(
            "`{name}` is a Verilog/SystemVerilog keyword; choose another name, e.g. `{name}_top`"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keywords_are_sorted_and_unique() {
        assert!(KEYWORDS.windows(2).all(|w| w[0] < w[1]));
        // 124 keywords of 1364-2005 and the 124 that 1800-2017 adds (its Annex B lists 248).
        assert_eq!(KEYWORDS.len(), 248);
    }

    #[test]
    fn names_are_checked() {
        for good in ["stce_top", "Module", "a", "x1_y2", "logic_top"] {
            assert_eq!(check_module_name(good), Ok(()), "{good}");
        }
        for bad in [
            "module",
            "wire",
            "logic",
            "reg",
            "always_ff",
            "interface",
            "uwire",
        ] {
            let e = check_module_name(bad).unwrap_err();
            assert!(e.contains("keyword"), "{bad}: {e}");
        }
        for bad in ["", "9x", "_x", "a-b", "a b", "a__b", "é"] {
            assert!(check_module_name(bad).is_err(), "{bad}");
        }
        assert!(check_module_name(&"a".repeat(MAX_NAME_LEN + 1)).is_err());
        assert!(check_module_name(&"a".repeat(MAX_NAME_LEN)).is_ok());
    }
}
