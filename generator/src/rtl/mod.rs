//! coforge's RTL description layer: typed modules, ports, wires, registers, memories,
//! continuous assignments, clocked processes and instances, plus externally written leaf
//! modules used as black boxes.
//!
//! Everything is a run-time value (widths, counts, names), so one generator serves every
//! configuration. Widths are checked while a module is built; the emitter (`emit`) then prints
//! Verilog-2005 from the tree, never by pasting strings.

pub mod emit;
mod expr;

pub use expr::{index_bits, BinaryOp, Expr, UnaryOp};

use serde::Serialize;
use std::collections::BTreeMap;
use thiserror::Error;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Dir {
    Input,
    Output,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize)]
pub struct Port {
    pub name: String,
    pub dir: Dir,
    pub width: u32,
    /// Outputs driven straight from a register are declared `output reg`.
    #[serde(skip)]
    pub is_reg: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub doc: Option<String>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum SignalKind {
    Wire,
    Reg,
}

/// A wire, a register, or a memory (a register with `depth` words).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Signal {
    pub name: String,
    pub kind: SignalKind,
    pub width: u32,
    pub depth: Option<u32>,
    pub doc: Option<String>,
}

/// Target of a procedural assignment: a whole register, or one word of a memory.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Target {
    pub name: String,
    pub word: Option<Expr>,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Stmt {
    /// Non-blocking assignment (`<=`): the only kind used in clocked processes.
    Assign { target: Target, value: Expr },
    If {
        cond: Expr,
        then: Vec<Stmt>,
        els: Vec<Stmt>,
    },
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Item {
    Comment(String),
    /// Continuous assignment `assign name = value;`.
    Assign {
        name: String,
        value: Expr,
    },
    /// `always @(posedge clock)`: every register assigned here is a flip-flop; a reset, when
    /// present, is an ordinary synchronous `if` written by the module's author.
    Clocked {
        clock: String,
        body: Vec<Stmt>,
    },
    Instance {
        module: String,
        name: String,
        connections: Vec<(String, Expr)>,
    },
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Module {
    pub name: String,
    pub doc: Vec<String>,
    pub ports: Vec<Port>,
    pub signals: Vec<Signal>,
    pub items: Vec<Item>,
}

/// A leaf module written outside coforge (by hand, or by another generator), instantiated as
/// a black box through its declared ports.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct ExternalModule {
    pub name: String,
    pub ports: Vec<Port>,
    /// The Verilog text defining the module; emitted verbatim as `<name>.v`.
    pub source: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum ModuleDef {
    Generated(Module),
    External(ExternalModule),
}

impl ModuleDef {
    pub fn name(&self) -> &str {
        match self {
            ModuleDef::Generated(m) => &m.name,
            ModuleDef::External(m) => &m.name,
        }
    }
    pub fn ports(&self) -> &[Port] {
        match self {
            ModuleDef::Generated(m) => &m.ports,
            ModuleDef::External(m) => &m.ports,
        }
    }
}

#[derive(Debug, Error)]
pub enum DesignError {
    #[error(
        "two different modules are both named `{0}`; module names must encode their parameters"
    )]
    NameClash(String),
    #[error("module `{0}` is not part of the design")]
    Unknown(String),
}

/// A set of module definitions, one per distinct parameter set, and the name of the top.
#[derive(Clone, Debug, Default)]
pub struct Design {
    modules: BTreeMap<String, ModuleDef>,
    /// Insertion order: every module is added after the modules it instantiates.
    order: Vec<String>,
}

impl Design {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn contains(&self, name: &str) -> bool {
        self.modules.contains_key(name)
    }

    pub fn get(&self, name: &str) -> Option<&ModuleDef> {
        self.modules.get(name)
    }

    /// Adds a module definition. Adding an identical definition again is a no-op, which is what
    /// makes "one definition per parameter set" hold however many instances ask for it.
    pub fn add(&mut self, def: ModuleDef) -> Result<(), DesignError> {
        let name = def.name().to_string();
        match self.modules.get(&name) {
            Some(existing) if *existing == def => Ok(()),
            Some(_) => Err(DesignError::NameClash(name)),
            None => {
                self.order.push(name.clone());
                self.modules.insert(name, def);
                Ok(())
            }
        }
    }

    /// Module definitions, leaves first (the order a filelist needs).
    pub fn modules(&self) -> impl Iterator<Item = &ModuleDef> {
        self.order.iter().map(|n| &self.modules[n])
    }
}

/// Builds one module, checking names, widths and connections as it goes.
pub struct ModuleBuilder {
    module: Module,
    names: BTreeMap<String, u32>,
}

impl ModuleBuilder {
    pub fn new(name: impl Into<String>) -> Self {
        Self {
            module: Module {
                name: name.into(),
                doc: Vec::new(),
                ports: Vec::new(),
                signals: Vec::new(),
                items: Vec::new(),
            },
            names: BTreeMap::new(),
        }
    }

    pub fn doc(&mut self, line: impl Into<String>) -> &mut Self {
        self.module.doc.push(line.into());
        self
    }

    fn claim(&mut self, name: &str, width: u32) {
        assert!(width > 0, "`{name}` has zero width");
        assert!(
            self.names.insert(name.to_string(), width).is_none(),
            "`{name}` is declared twice in module `{}`",
            self.module.name
        );
    }

    fn port(&mut self, name: &str, dir: Dir, width: u32, is_reg: bool, doc: &str) -> Expr {
        self.claim(name, width);
        self.module.ports.push(Port {
            name: name.to_string(),
            dir,
            width,
            is_reg,
            doc: (!doc.is_empty()).then(|| doc.to_string()),
        });
        Expr::sig(name, width)
    }

    pub fn input(&mut self, name: &str, width: u32, doc: &str) -> Expr {
        self.port(name, Dir::Input, width, false, doc)
    }

    /// An output driven by `assign` (see `drive`).
    pub fn output(&mut self, name: &str, width: u32, doc: &str) -> Expr {
        self.port(name, Dir::Output, width, false, doc)
    }

    /// An output that is itself a register, assigned in a clocked process.
    pub fn output_reg(&mut self, name: &str, width: u32, doc: &str) -> Expr {
        self.port(name, Dir::Output, width, true, doc)
    }

    fn signal(&mut self, name: &str, kind: SignalKind, width: u32, depth: Option<u32>) -> Expr {
        self.claim(name, width);
        self.module.signals.push(Signal {
            name: name.to_string(),
            kind,
            width,
            depth,
            doc: None,
        });
        Expr::sig(name, width)
    }

    /// A wire declared now and driven later with `drive` (for example by an instance output).
    pub fn wire(&mut self, name: &str, width: u32) -> Expr {
        self.signal(name, SignalKind::Wire, width, None)
    }

    /// Names an expression: declares a wire and assigns it. Returns the wire.
    pub fn name(&mut self, name: &str, value: Expr) -> Expr {
        let w = self.wire(name, value.width());
        self.drive(name, value);
        w
    }

    pub fn reg(&mut self, name: &str, width: u32) -> Expr {
        self.signal(name, SignalKind::Reg, width, None)
    }

    pub fn memory(&mut self, name: &str, width: u32, depth: u32) -> Target {
        self.signal(name, SignalKind::Reg, width, Some(depth));
        Target {
            name: name.to_string(),
            word: None,
        }
    }

    /// Attaches a comment to the most recently declared signal.
    pub fn describe(&mut self, doc: &str) {
        if let Some(s) = self.module.signals.last_mut() {
            s.doc = Some(doc.to_string());
        }
    }

    pub fn comment(&mut self, text: impl Into<String>) {
        self.module.items.push(Item::Comment(text.into()));
    }

    /// `assign name = value;` for a declared wire or output.
    pub fn drive(&mut self, name: &str, value: Expr) {
        let width = *self
            .names
            .get(name)
            .unwrap_or_else(|| panic!("`{name}` is not declared in `{}`", self.module.name));
        assert_eq!(
            width,
            value.width(),
            "`{name}` is {width} bits but is driven by {} bits: {value}",
            value.width()
        );
        self.module.items.push(Item::Assign {
            name: name.to_string(),
            value,
        });
    }

    pub fn clocked(&mut self, clock: &Expr, body: Vec<Stmt>) {
        let Expr::Ref { name, .. } = clock else {
            panic!("a clock must be a named signal")
        };
        self.module.items.push(Item::Clocked {
            clock: name.clone(),
            body,
        });
    }

    /// Instantiates `def`; every port must be connected, with matching widths.
    pub fn instance(&mut self, def: &ModuleDef, name: &str, connections: Vec<(&str, Expr)>) {
        self.claim(name, 1);
        let ports = def.ports();
        assert_eq!(
            ports.len(),
            connections.len(),
            "instance `{name}` of `{}` connects {} of {} ports",
            def.name(),
            connections.len(),
            ports.len()
        );
        let mut ordered = Vec::with_capacity(ports.len());
        for port in ports {
            let (_, e) = connections
                .iter()
                .find(|(p, _)| *p == port.name)
                .unwrap_or_else(|| panic!("instance `{name}` leaves port `{}` open", port.name));
            assert_eq!(
                e.width(),
                port.width,
                "instance `{name}` port `{}` is {} bits, connected to {} bits",
                port.name,
                port.width,
                e.width()
            );
            ordered.push((port.name.clone(), e.clone()));
        }
        self.module.items.push(Item::Instance {
            module: def.name().to_string(),
            name: name.to_string(),
            connections: ordered,
        });
    }

    pub fn finish(self) -> ModuleDef {
        ModuleDef::Generated(self.module)
    }
}

/// `target <= value;`, width-checked against a register expression.
pub fn set(target: &Expr, value: Expr) -> Stmt {
    let Expr::Ref { name, width } = target else {
        panic!("assignment target must be a register name, got {target}")
    };
    assert_eq!(
        *width,
        value.width(),
        "`{name}` is {width} bits, assigned {} bits: {value}",
        value.width()
    );
    Stmt::Assign {
        target: Target {
            name: name.clone(),
            word: None,
        },
        value,
    }
}

/// `mem[word] <= value;`.
pub fn set_word(mem: &Target, word: Expr, value: Expr) -> Stmt {
    Stmt::Assign {
        target: Target {
            name: mem.name.clone(),
            word: Some(word),
        },
        value,
    }
}

pub fn when(cond: Expr, then: Vec<Stmt>) -> Stmt {
    assert_eq!(cond.width(), 1, "condition must be one bit: {cond}");
    Stmt::If {
        cond,
        then,
        els: Vec::new(),
    }
}

pub fn when_else(cond: Expr, then: Vec<Stmt>, els: Vec<Stmt>) -> Stmt {
    assert_eq!(cond.width(), 1, "condition must be one bit: {cond}");
    Stmt::If { cond, then, els }
}
