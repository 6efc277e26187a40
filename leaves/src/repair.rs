//! The post-pass between rust-hdl's Verilog generator and a coforge design. rust-hdl 0.46 writes
//! Verilog with the problems measured in `../shared/design/ecosystem.md`; this pass repairs the
//! ones that have one safe repair, rejects the others with an error that names them, and checks
//! the leaf's ports against the ports the leaf declares:
//!
//! | rust-hdl writes | the pass |
//! |---|---|
//! | the top module named `top`, each sub-block a module `top$<field>` | renames them `<leaf>` and `<leaf>_<field>` |
//! | `$` inside identifiers (`valid_reg$d`) | replaces it by `_`; two names that then collide are an error |
//! | `initial begin q = ...; end` on every `DFF` | removes it: coforge designs reset with a synchronous reset, so a leaf resets its control registers in its own logic (as `cf_requant_relu` does with `reset`) and qualifies its data registers with them |
//! | no `` `default_nettype none `` | adds it before each module and restores `wire` after |
//! | every literal 32 bits wide (`clamped = 32'h80`), zero-extension as `x & 64'hff..ff` | waives Verilator's `WIDTH` warning around each module (the one waiver): Verilog's context widths make these exact, and the co-simulation against the reference checks the result |
//! | 2-D arrays (`reg [7:0] m [0:3]` as ports or unsized), one module copy per instance | not repaired: an array is an error; extra copies stay (a leaf is small) |
//! | an `initial` block that is not a flat `begin ... end` of assignments | an error |
//!
//! Each module becomes its own [`ModuleDef::External`], so that every file holds one module
//! whose name is the file's (Verilator's `DECLFILENAME`), sub-modules first.

use coforge_generator::rtl::{Dir, ExternalModule, ModuleDef, Port};
use std::collections::BTreeMap;

/// Why rust-hdl's Verilog cannot become a coforge leaf.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum LeafError {
    #[error("leaf `{leaf}`: rust-hdl wrote no module `top`; generate it with generate_verilog on the leaf's block")]
    NoTop { leaf: String },
    #[error(
        "leaf `{leaf}`: `{name}` is not a plain Verilog identifier; use letters, digits and `_`"
    )]
    BadName { leaf: String, name: String },
    #[error(
        "leaf `{leaf}`: `{a}` and `{b}` both become `{to}` once `$` is replaced; rename one of \
         the rust-hdl fields"
    )]
    Collision {
        leaf: String,
        a: String,
        b: String,
        to: String,
    },
    #[error(
        "leaf `{leaf}`, module `{module}`: {what}; coforge cannot repair it, describe the leaf \
         without it"
    )]
    Unrepairable {
        leaf: String,
        module: String,
        what: String,
    },
    #[error(
        "leaf `{leaf}`: its ports are not the declared ones: {what}; change the block or the \
         declaration so that they agree"
    )]
    Ports { leaf: String, what: String },
}

/// One module of rust-hdl's output: its name and text from `module` to `endmodule`.
struct RawModule {
    name: String,
    text: String,
}

fn split_modules(raw: &str) -> Vec<RawModule> {
    let mut out = Vec::new();
    let mut rest = raw;
    while let Some(start) = find_word(rest, "module") {
        let body = &rest[start..];
        let end = find_word(body, "endmodule").map_or(body.len(), |e| e + "endmodule".len());
        let text = &body[..end];
        let name: String = text["module".len()..]
            .trim_start()
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_' || *c == '$')
            .collect();
        out.push(RawModule {
            name,
            text: text.to_string(),
        });
        rest = &body[end..];
    }
    out
}

/// Byte offset of `word` standing alone (not inside a longer identifier).
fn find_word(text: &str, word: &str) -> Option<usize> {
    let is_ident = |c: char| c.is_ascii_alphanumeric() || c == '_' || c == '$';
    let mut from = 0;
    while let Some(i) = text[from..].find(word) {
        let at = from + i;
        let before = text[..at].chars().next_back();
        let after = text[at + word.len()..].chars().next();
        if !before.is_some_and(is_ident) && !after.is_some_and(is_ident) {
            return Some(at);
        }
        from = at + word.len();
    }
    None
}

/// Every identifier of the text (system functions such as `$signed` excluded) with its span.
fn identifiers(text: &str) -> Vec<(usize, usize)> {
    let bytes = text.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        let c = bytes[i];
        // Skip comments and sized literals such as 32'h1f.
        if c == b'/' && bytes.get(i + 1) == Some(&b'/') {
            while i < bytes.len() && bytes[i] != b'\n' {
                i += 1;
            }
            continue;
        }
        if c == b'\'' {
            i += 1;
            while i < bytes.len() && (bytes[i].is_ascii_alphanumeric() || bytes[i] == b'_') {
                i += 1;
            }
            continue;
        }
        if c.is_ascii_digit() {
            while i < bytes.len() && (bytes[i].is_ascii_alphanumeric() || bytes[i] == b'_') {
                i += 1;
            }
            continue;
        }
        if c.is_ascii_alphabetic() || c == b'_' || c == b'$' {
            let start = i;
            i += 1;
            while i < bytes.len()
                && (bytes[i].is_ascii_alphanumeric() || bytes[i] == b'_' || bytes[i] == b'$')
            {
                i += 1;
            }
            if c != b'$' {
                out.push((start, i));
            }
            continue;
        }
        i += 1;
    }
    out
}

/// rust-hdl's Verilog of one block, repaired into coforge leaf modules named after `leaf`, the
/// top's ports checked against `ports`. Sub-modules come first, the top last.
pub fn repair(raw: &str, leaf: &str, ports: &[Port]) -> Result<Vec<ModuleDef>, LeafError> {
    let plain = |s: &str| {
        let mut c = s.chars();
        c.next()
            .is_some_and(|f| f.is_ascii_alphabetic() || f == '_')
            && c.all(|c| c.is_ascii_alphanumeric() || c == '_')
    };
    if !plain(leaf) {
        return Err(LeafError::BadName {
            leaf: leaf.into(),
            name: leaf.into(),
        });
    }
    let modules = split_modules(raw);
    if !modules.iter().any(|m| m.name == "top") {
        return Err(LeafError::NoTop { leaf: leaf.into() });
    }
    // One renaming for the whole output, checked for collisions.
    let rename = |name: &str| -> String {
        let base = if name == "top" {
            leaf.to_string()
        } else if let Some(rest) = name.strip_prefix("top$") {
            format!("{leaf}${rest}")
        } else {
            name.to_string()
        };
        base.replace('$', "_")
    };
    let mut renamed: BTreeMap<String, String> = BTreeMap::new();
    for m in &modules {
        for (a, b) in identifiers(&m.text) {
            let name = &m.text[a..b];
            let to = rename(name);
            if let Some((other, _)) = renamed
                .iter()
                .find(|(from, t)| **t == to && from.as_str() != name)
            {
                return Err(LeafError::Collision {
                    leaf: leaf.into(),
                    a: other.clone(),
                    b: name.into(),
                    to,
                });
            }
            renamed.insert(name.to_string(), to);
        }
    }
    let mut defs = Vec::new();
    let mut top = None;
    for m in &modules {
        let module = rename(&m.name);
        let unrepairable = |what: String| LeafError::Unrepairable {
            leaf: leaf.into(),
            module: module.clone(),
            what,
        };
        let mut text = String::with_capacity(m.text.len());
        let mut last = 0;
        for (a, b) in identifiers(&m.text) {
            text.push_str(&m.text[last..a]);
            text.push_str(&rename(&m.text[a..b]));
            last = b;
        }
        text.push_str(&m.text[last..]);
        let text = remove_initial_blocks(&text).map_err(unrepairable)?;
        if let Some(line) = text.lines().find(|l| is_array_declaration(l)) {
            return Err(unrepairable(format!(
                "`{}` declares an array (rust-hdl writes invalid 2-D arrays)",
                line.trim()
            )));
        }
        let source = format!(
            "// {module}: written by rust-hdl's Verilog generator for the coforge leaf `{leaf}`,\n\
             // repaired by coforge_leaves::repair (names, initial blocks, default_nettype).\n\
             // rust-hdl writes every literal 32 bits wide and extends by masking, relying on\n\
             // Verilog's context widths, which make each expression exact: WIDTH is waived.\n\
             `default_nettype none\n/* verilator lint_off WIDTH */\n\n{}\n\n\
             /* verilator lint_on WIDTH */\n`default_nettype wire\n",
            text.trim()
        );
        let declared = module_ports(&text);
        let def = ExternalModule {
            name: module.clone(),
            ports: declared,
            source,
        };
        if m.name == "top" {
            top = Some(def);
        } else {
            defs.push(ModuleDef::External(def));
        }
    }
    let top = top.expect("checked above");
    check_ports(leaf, &top.ports, ports)?;
    defs.push(ModuleDef::External(ExternalModule {
        ports: ports.to_vec(),
        ..top
    }));
    Ok(defs)
}

/// Removes `initial begin ... end` blocks whose body is flat (no nested `begin`).
fn remove_initial_blocks(text: &str) -> Result<String, String> {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = find_word(rest, "initial") {
        out.push_str(&rest[..at]);
        let block = &rest[at + "initial".len()..];
        let trimmed = block.trim_start();
        if find_word(trimmed, "begin") != Some(0) {
            return Err("an `initial` statement without `begin ... end`".into());
        }
        let body_start = block.len() - trimmed.len() + "begin".len();
        let end = find_word(&block[body_start..], "end")
            .ok_or_else(|| "an `initial begin` without its `end`".to_string())?;
        let body = &block[body_start..body_start + end];
        if find_word(body, "begin").is_some() {
            return Err("an `initial` block with nested `begin`".into());
        }
        rest = &block[body_start + end + "end".len()..];
    }
    out.push_str(rest);
    Ok(out)
}

/// `reg [7:0] mem [0:3];` and the like: a declaration with a range after the name.
fn is_array_declaration(line: &str) -> bool {
    let l = line.trim();
    let decl = ["reg ", "wire ", "input ", "output ", "logic "]
        .iter()
        .any(|k| l.starts_with(k));
    decl && l
        .split_once(';')
        .map(|(d, _)| d)
        .unwrap_or(l)
        .trim_end()
        .ends_with(']')
        && l.matches('[').count() >= 2
}

/// The `input wire [31:0] acc;` declarations of a module, in order.
fn module_ports(text: &str) -> Vec<Port> {
    text.lines()
        .filter_map(|l| {
            let l = l.trim().strip_suffix(';')?;
            let (dir, rest) = if let Some(r) = l.strip_prefix("input ") {
                (Dir::Input, r)
            } else if let Some(r) = l.strip_prefix("output ") {
                (Dir::Output, r)
            } else {
                return None;
            };
            let rest = rest
                .trim_start()
                .trim_start_matches("wire")
                .trim_start_matches("reg")
                .trim();
            let (width, name) = match rest.strip_prefix('[') {
                Some(r) => {
                    let (range, name) = r.split_once(']')?;
                    let (hi, lo) = range.split_once(':')?;
                    let w = hi.trim().parse::<u32>().ok()? - lo.trim().parse::<u32>().ok()? + 1;
                    (w, name.trim())
                }
                None => (1, rest),
            };
            Some(Port {
                name: name.to_string(),
                dir,
                width,
                is_reg: false,
                doc: None,
            })
        })
        .collect()
}

fn check_ports(leaf: &str, found: &[Port], declared: &[Port]) -> Result<(), LeafError> {
    let show = |p: &Port| {
        format!(
            "{} `{}` [{}]",
            match p.dir {
                Dir::Input => "input",
                Dir::Output => "output",
            },
            p.name,
            p.width
        )
    };
    let problem = |what: String| LeafError::Ports {
        leaf: leaf.into(),
        what,
    };
    for d in declared {
        match found.iter().find(|f| f.name == d.name) {
            None => return Err(problem(format!("{} is missing", show(d)))),
            Some(f) if (f.dir, f.width) != (d.dir, d.width) => {
                return Err(problem(format!(
                    "declared {} but rust-hdl wrote {}",
                    show(d),
                    show(f)
                )))
            }
            Some(_) => {}
        }
    }
    if let Some(extra) = found
        .iter()
        .find(|f| !declared.iter().any(|d| d.name == f.name))
    {
        return Err(problem(format!("{} is not declared", show(extra))));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn port(name: &str, dir: Dir, width: u32) -> Port {
        Port {
            name: name.into(),
            dir,
            width,
            is_reg: false,
            doc: None,
        }
    }

    /// The shape of rust-hdl's output: a top with a `DFF` sub-block.
    const RAW: &str =
        "\n\nmodule top(clock,d,q);\n    input wire  clock;\n    input wire  [7:0] d;\n    \
        output reg  [7:0] q;\n    reg  [7:0] r$d;\n    wire  [7:0] r$q;\n    reg  r$clock;\n    \
        top$r r(\n        .d(r$d),\n        .q(r$q),\n        .clock(r$clock)\n    );\n    \
        always @(*) begin\n        r$clock = clock;\n        r$d = d + 32'h1;\n        \
        q = $signed(r$q);\n    end\nendmodule // top\n\n\nmodule top$r(d,q,clock);\n    \
        input wire  [7:0] d;\n    output reg  [7:0] q;\n    input wire  clock;\n    \
        initial begin\n       q = 8'h0;\n    end\n\n    always @(posedge clock) begin\n       \
        q <= d;\n    end\nendmodule // top$r\n";

    fn ports() -> Vec<Port> {
        vec![
            port("clock", Dir::Input, 1),
            port("d", Dir::Input, 8),
            port("q", Dir::Output, 8),
        ]
    }

    #[test]
    fn names_initial_blocks_and_nettype_are_repaired() {
        let defs = repair(RAW, "cf_inc", &ports()).unwrap();
        let names: Vec<&str> = defs.iter().map(|d| d.name()).collect();
        assert_eq!(names, ["cf_inc_r", "cf_inc"]);
        for d in &defs {
            let ModuleDef::External(e) = d else { panic!() };
            let code: String = e
                .source
                .lines()
                .filter(|l| !l.starts_with("//"))
                .collect::<Vec<_>>()
                .join("\n");
            assert!(
                !code.contains("$d") && !code.contains("$q") && !code.contains("top"),
                "{code}"
            );
            assert!(!code.contains("initial"), "{code}");
            assert!(code.starts_with("`default_nettype none"), "{code}");
        }
        let ModuleDef::External(top) = &defs[1] else {
            panic!()
        };
        assert!(top.source.contains("cf_inc_r r("), "{}", top.source);
        assert!(
            top.source.contains("q = $signed(r_q);"),
            "system functions stay: {}",
            top.source
        );
        assert!(top.source.contains("r_d = d + 32'h1;"), "{}", top.source);
        assert_eq!(top.ports, ports());
    }

    #[test]
    fn what_cannot_be_repaired_is_refused_by_name() {
        let e = repair(RAW, "cf_inc", &ports()[..2]).unwrap_err();
        assert!(
            e.to_string().contains("output `q` [8] is not declared"),
            "{e}"
        );
        let mut wide = ports();
        wide[1].width = 9;
        let e = repair(RAW, "cf_inc", &wide).unwrap_err();
        assert!(
            e.to_string()
                .contains("declared input `d` [9] but rust-hdl wrote input `d` [8]"),
            "{e}"
        );
        // `r$d` and a field `r_d` would both become `r_d`.
        let clash = RAW.replace("reg  r$clock;", "reg  r_d;");
        let e = repair(&clash, "cf_inc", &ports()).unwrap_err();
        assert!(matches!(e, LeafError::Collision { .. }), "{e}");
        let array = RAW.replace("reg  r$clock;", "reg  [7:0] mem [0:3];");
        let e = repair(&array, "cf_inc", &ports()).unwrap_err();
        assert!(e.to_string().contains("declares an array"), "{e}");
        let nested = RAW.replace("q = 8'h0;", "begin q = 8'h0; end");
        let e = repair(&nested, "cf_inc", &ports()).unwrap_err();
        assert!(e.to_string().contains("nested `begin`"), "{e}");
        assert_eq!(
            repair("module other(); endmodule", "cf_inc", &[]),
            Err(LeafError::NoTop {
                leaf: "cf_inc".into()
            })
        );
        assert!(matches!(
            repair(RAW, "cf-inc", &ports()),
            Err(LeafError::BadName { .. })
        ));
    }
}
