//! Verilog-2005 emitter: one file per module definition, `default_nettype none`, aligned
//! declarations, and nothing that depends on time or on hash-map order, so the same design
//! always gives byte-identical text.

use super::{Dir, Item, Module, ModuleDef, Port, SignalKind, Stmt};
use std::fmt::Write;

const INDENT: &str = "    ";

fn range(width: u32) -> String {
    if width == 1 {
        String::new()
    } else {
        format!("[{}:0]", width - 1)
    }
}

/// The text of `<module name>.v`.
pub fn module_file(def: &ModuleDef, header: &str) -> String {
    match def {
        ModuleDef::External(ext) => {
            let mut out = String::new();
            for line in header.lines() {
                let _ = writeln!(out, "// {line}");
            }
            let _ = writeln!(
                out,
                "// External leaf module `{}`, included verbatim.",
                ext.name
            );
            out.push_str(&ext.source);
            if !ext.source.ends_with('\n') {
                out.push('\n');
            }
            out
        }
        ModuleDef::Generated(m) => generated_module(m, header),
    }
}

fn port_line(p: &Port, range_width: usize) -> String {
    let dir = match p.dir {
        Dir::Input => "input ",
        Dir::Output => "output",
    };
    let kind = if p.is_reg { "reg " } else { "wire" };
    format!("{dir} {kind} {:<range_width$} {}", range(p.width), p.name)
}

fn generated_module(m: &Module, header: &str) -> String {
    let mut out = String::new();
    for line in header.lines() {
        let _ = writeln!(out, "// {line}");
    }
    out.push_str("//\n");
    for line in &m.doc {
        let _ = writeln!(out, "// {line}");
    }
    out.push_str("`default_nettype none\n\n");
    let _ = writeln!(out, "module {} (", m.name);
    let range_width = m
        .ports
        .iter()
        .map(|p| range(p.width).len())
        .max()
        .unwrap_or(0);
    for (i, p) in m.ports.iter().enumerate() {
        let sep = if i + 1 == m.ports.len() { "" } else { "," };
        let line = format!("{INDENT}{}{sep}", port_line(p, range_width));
        match &p.doc {
            Some(doc) => {
                let _ = writeln!(out, "{line:<56} // {doc}");
            }
            None => {
                let _ = writeln!(out, "{line}");
            }
        }
    }
    out.push_str(");\n");

    if !m.signals.is_empty() {
        out.push('\n');
        let range_width = m
            .signals
            .iter()
            .map(|s| range(s.width).len())
            .max()
            .unwrap_or(0);
        for s in &m.signals {
            let kind = match s.kind {
                SignalKind::Wire => "wire",
                SignalKind::Reg => "reg ",
            };
            let depth = s
                .depth
                .map(|d| format!(" [0:{}]", d - 1))
                .unwrap_or_default();
            let line = format!(
                "{INDENT}{kind} {:<range_width$} {}{depth};",
                range(s.width),
                s.name
            );
            match &s.doc {
                Some(doc) => {
                    let _ = writeln!(out, "{line:<56} // {doc}");
                }
                None => {
                    let _ = writeln!(out, "{line}");
                }
            }
        }
    }

    // Runs of assignments stay together; a comment stays with the item it introduces.
    let mut joined_to_previous = false;
    for item in &m.items {
        let is_assign = matches!(item, Item::Assign { .. });
        if !(joined_to_previous && (is_assign || previous_is_comment(&out))) {
            out.push('\n');
        }
        joined_to_previous = true;
        match item {
            Item::Comment(text) => {
                for line in text.lines() {
                    let _ = writeln!(out, "{INDENT}// {line}");
                }
            }
            Item::Assign { name, value } => {
                let _ = writeln!(out, "{INDENT}assign {name} = {value};");
            }
            Item::Clocked { clock, body } => {
                joined_to_previous = false;
                let _ = writeln!(out, "{INDENT}always @(posedge {clock}) begin");
                statements(&mut out, body, 2);
                let _ = writeln!(out, "{INDENT}end");
            }
            Item::Instance {
                module,
                name,
                connections,
            } => {
                joined_to_previous = false;
                let _ = writeln!(out, "{INDENT}{module} {name} (");
                let name_width = connections.iter().map(|(p, _)| p.len()).max().unwrap_or(0);
                for (i, (port, e)) in connections.iter().enumerate() {
                    let sep = if i + 1 == connections.len() { "" } else { "," };
                    let _ = writeln!(out, "{INDENT}{INDENT}.{port:<name_width$} ({e}){sep}");
                }
                let _ = writeln!(out, "{INDENT});");
            }
        }
    }
    let _ = writeln!(out, "\nendmodule\n\n`default_nettype wire");
    out
}

fn previous_is_comment(out: &str) -> bool {
    out.lines()
        .last()
        .is_some_and(|l| l.trim_start().starts_with("//"))
}

fn statements(out: &mut String, body: &[Stmt], depth: usize) {
    let pad = INDENT.repeat(depth);
    for stmt in body {
        match stmt {
            Stmt::Assign { target, value } => match &target.word {
                Some(word) => {
                    let _ = writeln!(out, "{pad}{}[{word}] <= {value};", target.name);
                }
                None => {
                    let _ = writeln!(out, "{pad}{} <= {value};", target.name);
                }
            },
            Stmt::If { cond, then, els } => {
                let _ = writeln!(out, "{pad}if ({cond}) begin");
                statements(out, then, depth + 1);
                if els.is_empty() {
                    let _ = writeln!(out, "{pad}end");
                } else {
                    let _ = writeln!(out, "{pad}end else begin");
                    statements(out, els, depth + 1);
                    let _ = writeln!(out, "{pad}end");
                }
            }
        }
    }
}
