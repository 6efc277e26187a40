//! Checks a finished module before any Verilog exists (Amaranth's `DriverConflict`): every bit
//! of every signal has at most one driver, and each driver suits its signal's kind.
//!
//! A *driver* is one of:
//! - a continuous assignment `assign x = ...` (`ModuleBuilder::drive`, `name`);
//! - a process: a clocked process (`clocked`) or a combinational block (`combinational`), which
//!   drives every register it assigns, however many statements do so;
//! - an instance output connected to the signal (or to slices of it).
//!
//! Wires and plain outputs take continuous assignments and instance outputs; registers,
//! `output_reg` ports and memories take processes; inputs take nothing. A memory is further held
//! to the block-RAM template (see "Memories" in the `rtl` documentation).

use super::{ExprNode, Item, Module, Signal, SignalKind, StmtNode, MAX_READ_PORTS};
use std::collections::BTreeMap;
use thiserror::Error;

/// A module that breaks the driver rules. These are generator bugs, reported by
/// `ModuleBuilder::try_build` (and as a panic by `build`) naming the module, the signal and
/// the drivers involved.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
pub enum RtlError {
    #[error(
        "module `{module}`: `{signal}` has two drivers: {first}; and {second}. Drive each signal \
         from one place (one assign, one process or one instance output)"
    )]
    DriverConflict {
        module: String,
        signal: String,
        first: String,
        second: String,
    },
    #[error("module `{module}`: `{signal}` is {kind}, but is driven by {driver}; {fix}")]
    WrongKind {
        module: String,
        signal: String,
        kind: &'static str,
        driver: String,
        fix: &'static str,
    },
    /// A reference to a signal the module never declares. Handles are branded (see "Typed
    /// signal handles" in the `rtl` documentation), so a signal of another module cannot
    /// reach this check; the one way here is a register reserved with
    /// `ModuleBuilder::reserve_reg` and never placed.
    #[error(
        "module `{module}`: {used_in} refers to `{signal}` ({width} bits), which this module \
         does not declare with that width; a register reserved with `reserve_reg` must be \
         declared with `place`"
    )]
    Undeclared {
        module: String,
        signal: String,
        width: u32,
        used_in: String,
    },
    #[error("module `{module}`: memory `{memory}` {problem}")]
    Memory {
        module: String,
        memory: String,
        problem: String,
    },
}

/// What a signal is, as far as driving it goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Input,
    /// A wire or a plain output: driven by `assign` or an instance output.
    Net,
    /// A register or an `output_reg`: driven by one process.
    Register,
    Memory,
}

impl Kind {
    fn describe(self) -> &'static str {
        match self {
            Kind::Input => "an input port",
            Kind::Net => "a wire",
            Kind::Register => "a register",
            Kind::Memory => "a memory",
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum DriverKind {
    Assign,
    Process,
    InstanceOutput,
}

struct Driver {
    kind: DriverKind,
    /// Bits `lo..hi` of the signal (`0..u32::MAX`: all of it).
    lo: u32,
    hi: u32,
    /// What the error message calls it.
    what: String,
}

/// An expression's text, shortened for a message.
fn short(e: &impl std::fmt::Display) -> String {
    let text = e.to_string();
    if text.chars().count() > 60 {
        format!("{}...", text.chars().take(57).collect::<String>())
    } else {
        text
    }
}

/// Every register a process assigns (whole registers, or memory words), first assignment first.
fn process_targets<'a>(body: &'a [StmtNode], out: &mut Vec<(&'a str, String)>) {
    for stmt in body {
        match stmt {
            StmtNode::Assign { target, value } => {
                if !out.iter().any(|(n, _)| *n == target.name) {
                    let lhs = match &target.word {
                        Some(w) => format!("{}[{w}]", target.name),
                        None => target.name.clone(),
                    };
                    out.push((&target.name, format!("{lhs} <= {}", short(value))));
                }
            }
            StmtNode::If { then, els, .. } => {
                process_targets(then, out);
                process_targets(els, out);
            }
            StmtNode::Case { arms, default, .. } => {
                for (_, body) in arms {
                    process_targets(body, out);
                }
                process_targets(default, out);
            }
        }
    }
}

/// The named bit ranges an instance output drives: `(signal, lo, hi)`, or `None` when the
/// connection is not a signal, a slice of one, or a concatenation of those.
fn driven_bits(e: &ExprNode) -> Option<Vec<(&str, u32, u32)>> {
    match e {
        ExprNode::Ref { name, width } => Some(vec![(name, 0, *width)]),
        ExprNode::Slice { e, lo, width } => match e.as_ref() {
            ExprNode::Ref { name, .. } => Some(vec![(name, *lo, lo + width)]),
            _ => None,
        },
        ExprNode::Concat(parts) => {
            let mut out = Vec::new();
            for p in parts {
                out.extend(driven_bits(p)?);
            }
            Some(out)
        }
        _ => None,
    }
}

/// Checks `m`'s drivers and memories. `instance_outputs` lists, per instance name, the names of
/// the ports that are outputs of the instantiated module.
pub(super) fn check_module(
    m: &Module,
    instance_outputs: &BTreeMap<String, Vec<String>>,
) -> Result<(), RtlError> {
    let mut kinds = BTreeMap::<&str, Kind>::new();
    for p in &m.ports {
        let kind = match (p.dir, p.is_reg) {
            (super::Dir::Input, _) => Kind::Input,
            (super::Dir::Output, false) => Kind::Net,
            (super::Dir::Output, true) => Kind::Register,
        };
        kinds.insert(&p.name, kind);
    }
    for s in &m.signals {
        let kind = match (s.kind, s.depth) {
            (_, Some(_)) => Kind::Memory,
            (SignalKind::Wire, None) => Kind::Net,
            (SignalKind::Reg, None) => Kind::Register,
        };
        kinds.insert(&s.name, kind);
    }

    let module = || m.name.clone();
    check_references(m)?;
    let mut drivers = BTreeMap::<&str, Vec<Driver>>::new();
    let mut add = |signal: &str, driver: Driver| -> Result<(), RtlError> {
        let Some((name, &kind)) = kinds.get_key_value(signal) else {
            // Names are checked when the builder declares them; an unknown one is a bug there.
            panic!("module `{}`: `{signal}` is driven but not declared", m.name);
        };
        let fits = match kind {
            Kind::Input => Err("inputs are driven from outside the module"),
            Kind::Net if driver.kind == DriverKind::Process => Err(
                "a process assigns registers: declare it with `reg` (or `output_reg`), or drive \
                 the wire with `drive`",
            ),
            Kind::Register | Kind::Memory if driver.kind != DriverKind::Process => Err(
                "a register is assigned in one process with `set`: declare a `wire` (or \
                 `output`) to drive it with `drive` or from an instance",
            ),
            _ => Ok(()),
        };
        if let Err(fix) = fits {
            return Err(RtlError::WrongKind {
                module: module(),
                signal: signal.to_string(),
                kind: kind.describe(),
                driver: driver.what,
                fix,
            });
        }
        let list = drivers.entry(name).or_default();
        if let Some(first) = list.iter().find(|d| d.lo < driver.hi && driver.lo < d.hi) {
            return Err(RtlError::DriverConflict {
                module: module(),
                signal: signal.to_string(),
                first: first.what.clone(),
                second: driver.what,
            });
        }
        list.push(driver);
        Ok(())
    };

    for (index, item) in m.items.iter().enumerate() {
        match item {
            Item::Comment(_) => {}
            Item::Assign { name, value } => add(
                name,
                Driver {
                    kind: DriverKind::Assign,
                    lo: 0,
                    hi: u32::MAX,
                    what: format!("`assign {name} = {}`", short(value)),
                },
            )?,
            Item::Clocked { body, .. } | Item::Combinational { body } => {
                let process = match item {
                    Item::Clocked { clock, .. } => format!("always @(posedge {clock})"),
                    _ => "always @(*)".to_string(),
                };
                let mut targets = Vec::new();
                process_targets(body, &mut targets);
                for (signal, first) in targets {
                    add(
                        signal,
                        Driver {
                            kind: DriverKind::Process,
                            lo: 0,
                            hi: u32::MAX,
                            what: format!("the `{process}` block #{index} (`{first}`)"),
                        },
                    )?;
                }
            }
            Item::Instance {
                module: of,
                name,
                connections,
            } => {
                let outputs = instance_outputs.get(name.as_str());
                for (port, e) in connections {
                    if !outputs.is_some_and(|o| o.contains(port)) {
                        continue;
                    }
                    let what = format!("output `{port}` of instance `{name}` ({of})");
                    let Some(bits) = driven_bits(e) else {
                        return Err(RtlError::WrongKind {
                            module: module(),
                            signal: short(e),
                            kind: "an expression",
                            driver: what,
                            fix: "connect an instance output to a wire, a slice of one, or a \
                                  concatenation of those",
                        });
                    };
                    for (signal, lo, hi) in bits {
                        add(
                            signal,
                            Driver {
                                kind: DriverKind::InstanceOutput,
                                lo,
                                hi,
                                what: what.clone(),
                            },
                        )?;
                    }
                }
            }
        }
    }
    check_memories(m)
}

/// Checks that every memory of `m` is the block-RAM template, however its ports were written
/// (`memory_write` / `memory_read`, or `set_word` and `Memory::read` by hand): exactly one write
/// statement `mem[addr] <= data` in a clocked process, one or two registered reads
/// `reg <= mem[addr]` (the whole right-hand side), and no other use of the memory, since an
/// asynchronous read or a second write port does not map to block RAM.
fn check_memories(m: &Module) -> Result<(), RtlError> {
    let memories: Vec<&Signal> = m.signals.iter().filter(|s| s.depth.is_some()).collect();
    if memories.is_empty() {
        return Ok(());
    }
    let mut writes = BTreeMap::<&str, u32>::new();
    let mut reads = BTreeMap::<&str, u32>::new();
    let mut elsewhere = Vec::<String>::new();
    let mut other_uses = |e: &ExprNode, elsewhere: &mut Vec<String>| {
        e.visit(&mut |x| {
            if let ExprNode::MemRead { mem, .. } = x {
                elsewhere.push(mem.clone());
            }
        })
    };
    fn walk<'a>(
        stmts: &'a [StmtNode],
        writes: &mut BTreeMap<&'a str, u32>,
        reads: &mut BTreeMap<&'a str, u32>,
        elsewhere: &mut Vec<String>,
        other_uses: &mut impl FnMut(&ExprNode, &mut Vec<String>),
    ) {
        for stmt in stmts {
            match stmt {
                StmtNode::Assign { target, value } => {
                    if let Some(word) = &target.word {
                        *writes.entry(&target.name).or_default() += 1;
                        other_uses(word, elsewhere);
                        other_uses(value, elsewhere);
                    } else if let ExprNode::MemRead { mem, index, .. } = value {
                        *reads.entry(mem).or_default() += 1;
                        other_uses(index, elsewhere);
                    } else {
                        other_uses(value, elsewhere);
                    }
                }
                StmtNode::If { cond, then, els } => {
                    other_uses(cond, elsewhere);
                    walk(then, writes, reads, elsewhere, other_uses);
                    walk(els, writes, reads, elsewhere, other_uses);
                }
                StmtNode::Case { sel, arms, default } => {
                    other_uses(sel, elsewhere);
                    for (_, body) in arms {
                        walk(body, writes, reads, elsewhere, other_uses);
                    }
                    walk(default, writes, reads, elsewhere, other_uses);
                }
            }
        }
    }
    for item in &m.items {
        match item {
            Item::Comment(_) => {}
            Item::Assign { value, .. } => other_uses(value, &mut elsewhere),
            Item::Clocked { body, .. } => walk(
                body,
                &mut writes,
                &mut reads,
                &mut elsewhere,
                &mut other_uses,
            ),
            Item::Combinational { body } => {
                // A combinational block may not read a memory at all (an asynchronous read),
                // nor write one.
                let mut comb_reads = BTreeMap::new();
                let mut comb_writes = BTreeMap::new();
                walk(
                    body,
                    &mut comb_writes,
                    &mut comb_reads,
                    &mut elsewhere,
                    &mut other_uses,
                );
                elsewhere.extend(comb_reads.keys().map(|k| k.to_string()));
                elsewhere.extend(comb_writes.keys().map(|k| k.to_string()));
            }
            Item::Instance { connections, .. } => {
                for (_, e) in connections {
                    other_uses(e, &mut elsewhere);
                }
            }
        }
    }
    for mem in memories {
        let name = mem.name.as_str();
        let (w, r) = (
            writes.get(name).copied().unwrap_or(0),
            reads.get(name).copied().unwrap_or(0),
        );
        let problem = if elsewhere.iter().any(|e| e == name) {
            Some(
                "is used outside its ports (`mem[addr] <= data` and `reg <= mem[addr]` in \
                  clocked processes); an asynchronous read or a combinational write does not \
                  map to block RAM"
                    .to_string(),
            )
        } else if w != 1 || r == 0 || r > MAX_READ_PORTS {
            Some(format!(
                "has {w} write and {r} read ports; it needs one write port and one or two read \
                 ports"
            ))
        } else {
            None
        };
        if let Some(problem) = problem {
            return Err(RtlError::Memory {
                module: m.name.clone(),
                memory: name.to_string(),
                problem,
            });
        }
    }
    Ok(())
}

/// Where an expression is used, for a message.
enum Use<'a> {
    Clock,
    Assign(&'a str),
    Target(&'a str),
    Condition(&'a ExprNode),
    Selector(&'a ExprNode),
    Connection { instance: &'a str, port: &'a str },
}

impl Use<'_> {
    fn describe(&self) -> String {
        match self {
            Use::Clock => "the clock of an `always @(posedge ...)` block".to_string(),
            Use::Assign(name) => format!("`assign {name}`"),
            Use::Target(name) => format!("the assignment to `{name}`"),
            Use::Condition(e) => format!("the condition `{}`", short(e)),
            Use::Selector(e) => format!("the case selector `{}`", short(e)),
            Use::Connection { instance, port } => {
                format!("port `{port}` of instance `{instance}`")
            }
        }
    }
}

/// Every expression of a list of statements, with where it is used.
fn statement_expressions<'a>(body: &'a [StmtNode], out: &mut Vec<(&'a ExprNode, Use<'a>)>) {
    for stmt in body {
        match stmt {
            StmtNode::Assign { target, value } => {
                out.push((value, Use::Target(&target.name)));
                if let Some(word) = &target.word {
                    out.push((word, Use::Target(&target.name)));
                }
            }
            StmtNode::If { cond, then, els } => {
                out.push((cond, Use::Condition(cond)));
                statement_expressions(then, out);
                statement_expressions(els, out);
            }
            StmtNode::Case { sel, arms, default } => {
                out.push((sel, Use::Selector(sel)));
                for (_, body) in arms {
                    statement_expressions(body, out);
                }
                statement_expressions(default, out);
            }
        }
    }
}

/// Every expression of `m` refers only to signals that `m` declares, with their declared
/// widths (memories read as memories). Branded handles make this hold for every signal but a
/// reserved register that was never placed (`ModuleBuilder::reserve_reg`).
fn check_references(m: &Module) -> Result<(), RtlError> {
    let mut declared = BTreeMap::<&str, (u32, bool)>::new();
    for p in &m.ports {
        declared.insert(&p.name, (p.width, false));
    }
    for s in &m.signals {
        declared.insert(&s.name, (s.width, s.depth.is_some()));
    }
    let clocks: Vec<ExprNode> = m
        .items
        .iter()
        .filter_map(|item| match item {
            Item::Clocked { clock, .. } => Some(ExprNode::sig(clock.clone(), 1)),
            _ => None,
        })
        .collect();
    let mut uses: Vec<(&ExprNode, Use)> = clocks.iter().map(|c| (c, Use::Clock)).collect();
    for item in &m.items {
        match item {
            Item::Comment(_) => {}
            Item::Assign { name, value } => uses.push((value, Use::Assign(name))),
            Item::Clocked { body, .. } | Item::Combinational { body } => {
                statement_expressions(body, &mut uses)
            }
            Item::Instance {
                name, connections, ..
            } => {
                for (port, e) in connections {
                    uses.push((
                        e,
                        Use::Connection {
                            instance: name,
                            port,
                        },
                    ));
                }
            }
        }
    }
    for (e, used_in) in uses {
        let mut bad = None;
        e.visit(&mut |x| {
            let (name, width, memory) = match x {
                ExprNode::Ref { name, width } => (name, *width, false),
                ExprNode::MemRead { mem, width, .. } => (mem, *width, true),
                _ => return,
            };
            if bad.is_none() && declared.get(name.as_str()) != Some(&(width, memory)) {
                bad = Some((name.clone(), width));
            }
        });
        if let Some((signal, width)) = bad {
            return Err(RtlError::Undeclared {
                module: m.name.clone(),
                signal,
                width,
                used_in: used_in.describe(),
            });
        }
    }
    Ok(())
}
