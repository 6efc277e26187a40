//! coforge's RTL description layer: typed modules, ports, wires, registers, memories,
//! continuous assignments, clocked processes and instances, plus externally written leaf
//! modules used as black boxes.
//!
//! Everything is a run-time value (widths, counts, names), so one generator serves every
//! configuration. Widths are checked while a module is built; the emitter (`emit`) then prints
//! Verilog-2005 from the tree, never by pasting strings.
//!
//! # Memories
//! A memory is a simple dual-port RAM in the template that Vivado and Yosys both infer as
//! block RAM (or as distributed LUT RAM when it is small): one synchronous write port, and one or
//! two registered synchronous read ports, all on one clock, each in its own clocked process, with
//! no reset and no initial value on the array.
//! ```
//! use coforge_generator::rtl::{Expr, ModuleBuilder};
//! let mut b = ModuleBuilder::new("line_buffer");
//! let clk = b.input("clk", 1, "");
//! let we = b.input("we", 1, "write `wdata` at `waddr`");
//! let waddr = b.input("waddr", 10, "");
//! let wdata = b.input("wdata", 8, "");
//! let raddr = b.input("raddr", 10, "");
//! let rdata = b.output_reg("rdata", 8, "the word at last cycle's `raddr`");
//! let line = b.memory("line", 8, 1024); // reg [7:0] line [0:1023];
//! b.memory_write(&clk, &line, &we, &waddr, &wdata);
//! b.memory_read(&clk, &line, &rdata, &Expr::bit(true), &raddr);
//! let module = b.finish();
//! ```
//! - **Timing.** A write lands at the clock edge. A read presents `addr` in cycle t; the
//!   register given to `memory_read` shows the word in cycle t + 1 and holds it while the read's
//!   `enable` is low. Reading the address being written in the same cycle gives the *old* word
//!   (read-first), in Verilator, Icarus and on the block RAM alike.
//! - **Addresses** are `Memory::addr_bits()` = ceil(log2(depth)) wide; any depth >= 2 works,
//!   and an address at or past `depth` reads an undefined word (keep addresses in range).
//! - **Reset.** The array and the read register have no reset (a reset would stop block-RAM
//!   inference). Qualify read data with a valid bit that is reset, as the engines do.
//! - **Two read ports** cost a second copy of the RAM in Yosys (a 1024 x 16 memory is one
//!   RAMB18E1 with one read port, two with two).
//! - The builder checks it all: one write port, one or two read ports, matching widths, and the
//!   read target is a register. `testbenches/tests/rtl_quality.rs` checks the cells Yosys infers.

pub mod emit;
mod expr;
pub mod names;

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

    /// Declares a memory of `depth` words of `width` bits (`reg [w-1:0] name [0:depth-1];`).
    /// Give it exactly one write port (`memory_write`) and one or two registered read ports
    /// (`memory_read`); see "Memories" in the module documentation for the template this makes.
    pub fn memory(&mut self, name: &str, width: u32, depth: u32) -> Memory {
        assert!(
            depth >= 2,
            "memory `{name}` has {depth} words; a memory needs at least 2 (use a register)"
        );
        self.signal(name, SignalKind::Reg, width, Some(depth));
        Memory {
            name: name.to_string(),
            width,
            depth,
        }
    }

    fn check_memory_port(&self, mem: &Memory, addr: &Expr, data_width: u32) {
        let module = &self.module.name;
        let declared = self
            .module
            .signals
            .iter()
            .any(|s| s.name == mem.name && s.depth == Some(mem.depth) && s.width == mem.width);
        assert!(
            declared,
            "memory `{}` is not declared in `{module}`",
            mem.name
        );
        assert_eq!(
            addr.width(),
            mem.addr_bits(),
            "memory `{}` of {} words takes a {}-bit address, got {addr}",
            mem.name,
            mem.depth,
            mem.addr_bits()
        );
        assert_eq!(
            data_width, mem.width,
            "memory `{}` holds {}-bit words, got {data_width} bits",
            mem.name, mem.width
        );
    }

    /// The write port of `mem`: `always @(posedge clock) if (enable) mem[addr] <= data;`.
    /// One per memory; the word is written at the clock edge.
    pub fn memory_write(
        &mut self,
        clock: &Expr,
        mem: &Memory,
        enable: &Expr,
        addr: &Expr,
        data: &Expr,
    ) {
        self.check_memory_port(mem, addr, data.width());
        let write = set_word(mem, addr.clone(), data.clone());
        self.clocked(clock, vec![enabled(enable, write)]);
    }

    /// A registered read port of `mem`: `always @(posedge clock) if (enable) data <= mem[addr];`.
    /// `data` must be a register (`reg` or `output_reg`) of the word width; it shows the word
    /// one clock edge after `addr` is presented and holds it while `enable` is low. Reading
    /// the address being written in the same cycle gives the old word (read-first). At most
    /// two read ports per memory.
    pub fn memory_read(
        &mut self,
        clock: &Expr,
        mem: &Memory,
        data: &Expr,
        enable: &Expr,
        addr: &Expr,
    ) {
        let Expr::Ref { name, width } = data else {
            panic!("a read port loads a register, got {data}")
        };
        let is_reg = self
            .module
            .signals
            .iter()
            .any(|s| s.name == *name && s.kind == SignalKind::Reg && s.depth.is_none())
            || self
                .module
                .ports
                .iter()
                .any(|p| p.name == *name && p.is_reg);
        assert!(
            is_reg,
            "read port of memory `{}` loads `{name}`, which is not a register of `{}`",
            mem.name, self.module.name
        );
        self.check_memory_port(mem, addr, *width);
        let read = set(
            data,
            Expr::MemRead {
                mem: mem.name.clone(),
                index: Box::new(addr.clone()),
                width: mem.width,
            },
        );
        self.clocked(clock, vec![enabled(enable, read)]);
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

    /// The finished module.
    ///
    /// # Panics
    /// If a memory is not used as the block-RAM template (see `check_memories`): a generator bug.
    pub fn finish(self) -> ModuleDef {
        if let Err(e) = check_memories(&self.module) {
            panic!("{e}");
        }
        ModuleDef::Generated(self.module)
    }
}

/// The most read ports a memory may have: two still infer block RAM (Yosys duplicates the
/// RAM for the second port; a true dual-port mapping is Vivado's choice).
pub const MAX_READ_PORTS: u32 = 2;

/// A memory declared with `ModuleBuilder::memory`: the handle its ports are built from.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Memory {
    pub name: String,
    /// Bits per word.
    pub width: u32,
    /// Words.
    pub depth: u32,
}

impl Memory {
    /// Width of an address: `ceil(log2(depth))`.
    pub fn addr_bits(&self) -> u32 {
        index_bits(self.depth)
    }
}

/// Checks that every memory of `m` is the block-RAM template, however its ports were written
/// (`memory_write` / `memory_read`, or `set_word` and `Expr::MemRead` by hand): exactly one write
/// statement `mem[addr] <= data` in a clocked process, one or two registered reads
/// `reg <= mem[addr]` (the whole right-hand side), and no other use of the memory, since an
/// asynchronous read or a second write port does not map to block RAM.
fn check_memories(m: &Module) -> Result<(), String> {
    let memories: Vec<&Signal> = m.signals.iter().filter(|s| s.depth.is_some()).collect();
    if memories.is_empty() {
        return Ok(());
    }
    let mut writes = BTreeMap::<&str, u32>::new();
    let mut reads = BTreeMap::<&str, u32>::new();
    let mut elsewhere = Vec::<String>::new();
    let mut other_uses = |e: &Expr, elsewhere: &mut Vec<String>| {
        e.visit(&mut |x| {
            if let Expr::MemRead { mem, .. } = x {
                elsewhere.push(mem.clone());
            }
        })
    };
    fn walk<'a>(
        stmts: &'a [Stmt],
        writes: &mut BTreeMap<&'a str, u32>,
        reads: &mut BTreeMap<&'a str, u32>,
        elsewhere: &mut Vec<String>,
        other_uses: &mut impl FnMut(&Expr, &mut Vec<String>),
    ) {
        for stmt in stmts {
            match stmt {
                Stmt::Assign { target, value } => {
                    if let Some(word) = &target.word {
                        *writes.entry(&target.name).or_default() += 1;
                        other_uses(word, elsewhere);
                        other_uses(value, elsewhere);
                    } else if let Expr::MemRead { mem, index, .. } = value {
                        *reads.entry(mem).or_default() += 1;
                        other_uses(index, elsewhere);
                    } else {
                        other_uses(value, elsewhere);
                    }
                }
                Stmt::If { cond, then, els } => {
                    other_uses(cond, elsewhere);
                    walk(then, writes, reads, elsewhere, other_uses);
                    walk(els, writes, reads, elsewhere, other_uses);
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
                "is read outside a registered read `reg <= mem[addr]` (an asynchronous read \
                  does not map to block RAM)"
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
            return Err(format!("memory `{name}` of `{}` {problem}", m.name));
        }
    }
    Ok(())
}

/// `if (enable) stmt`, or just `stmt` when `enable` is the constant 1.
fn enabled(enable: &Expr, stmt: Stmt) -> Stmt {
    if *enable == Expr::bit(true) {
        stmt
    } else {
        when(enable.clone(), vec![stmt])
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

/// `mem[word] <= value;`, width-checked. Prefer `ModuleBuilder::memory_write`, which also
/// keeps the block-RAM template (one write port, in its own clocked process).
pub fn set_word(mem: &Memory, word: Expr, value: Expr) -> Stmt {
    assert_eq!(
        word.width(),
        mem.addr_bits(),
        "memory `{}` takes a {}-bit address, got {word}",
        mem.name,
        mem.addr_bits()
    );
    assert_eq!(
        value.width(),
        mem.width,
        "memory `{}` holds {}-bit words, assigned {value}",
        mem.name,
        mem.width
    );
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
