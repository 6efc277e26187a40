//! coforge's RTL description layer: typed modules, ports, wires, registers, memories,
//! continuous assignments, clocked processes, combinational blocks with `case`, and instances,
//! plus externally written leaf modules used as black boxes.
//!
//! Everything is a run-time value (widths, counts, names), so one generator serves every
//! configuration. Widths (and signedness, see `Expr`'s "Signed shapes") are checked while a
//! module is built; the emitter (`emit`) then prints Verilog-2005 from the tree, never by
//! pasting strings. `tests/rtl_emit.rs` holds the printed form of every construct.
//!
//! # The check of a finished module
//! `ModuleBuilder::try_finish` (and `finish`, which panics with the same message) checks the
//! module before any Verilog exists and names the module, the signal and the drivers in an
//! [`RtlError`]:
//! - **one driver per signal bit** (`DriverConflict`): an `assign`, one process (clocked or
//!   combinational, however many statements assign the register inside it), or an instance
//!   output (slices of one wire may be driven by different instances);
//! - **the driver suits the signal** (`WrongKind`): `set` only on registers, `output_reg` ports
//!   and memories; `drive` and instance outputs only on wires and outputs; nothing on inputs;
//! - **only this module's signals** (`Undeclared`): every name an expression refers to is
//!   declared here with that width, so a handle from another module's builder is caught;
//! - **memories are the block-RAM template** (`Memory`, below).
//!
//! # Typed signal handles (planned, not done)
//! Handles are still `Expr::Ref { name, width }` values, so using another module's signal is
//! caught when the module is finished (`Undeclared`), not when the generator compiles. The
//! compile-time version brands each builder with an invariant lifetime, the way `GhostCell`
//! and the `generativity` crate do: `ModuleBuilder::build(name, |b: &mut ModuleBuilder<'id>|
//! ...)` runs the body in a closure whose `'id` is unique, every handle it returns is a
//! `Sig<'id>` and every expression an `Expr<'id>`, and `set`, `drive`, `instance` and the
//! operators take only `'id` values; a `Sig<'a>` can neither leave the closure nor meet a
//! `Sig<'b>`. Names then become an emitter detail. The change touches the signature of every
//! module function of every engine (`Expr` gains a lifetime), so it is one mechanical commit
//! over all engines, to be made when no engine branch is in flight (the deformable engines were
//! being written against today's API when this was planned).
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

mod check;
pub mod emit;
mod expr;
pub mod names;

pub use check::RtlError;
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
    /// `case (sel)`: the first arm whose value equals `sel` runs, else `default` (always
    /// printed, so a combinational case never infers a latch). Build it with [`case`].
    Case {
        sel: Expr,
        arms: Vec<(u64, Vec<Stmt>)>,
        default: Vec<Stmt>,
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
    /// `always @(*)` with blocking assignments: combinational logic written as statements (a
    /// `case`, say). Every register it assigns must be assigned on every path; start the body
    /// with a default assignment (see `ModuleBuilder::combinational`).
    Combinational {
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
    /// Per instance, its output ports: instance outputs are drivers (see `check`).
    instance_outputs: BTreeMap<String, Vec<String>>,
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
            instance_outputs: BTreeMap::new(),
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

    /// An output declared `output reg`: a register assigned in a clocked process, or the
    /// target of a combinational block (`combinational`).
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
    /// The wire keeps the value's signedness.
    pub fn name(&mut self, name: &str, value: Expr) -> Expr {
        let w = self.wire(name, value.width());
        let signed = value.is_signed();
        self.drive(name, value);
        if signed {
            w.as_signed()
        } else {
            w
        }
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
        let Expr::Ref { name, width } = data.as_unsigned() else {
            panic!("a read port loads a register, got {data}")
        };
        let is_reg = self
            .module
            .signals
            .iter()
            .any(|s| s.name == name && s.kind == SignalKind::Reg && s.depth.is_none())
            || self.module.ports.iter().any(|p| p.name == name && p.is_reg);
        assert!(
            is_reg,
            "read port of memory `{}` loads `{name}`, which is not a register of `{}`",
            mem.name, self.module.name
        );
        self.check_memory_port(mem, addr, width);
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

    /// `always @(*)`: combinational statements, printed with blocking assignments. Assign
    /// every target first (a default), then refine it (`when`, [`case`]), so that no path
    /// leaves a target unassigned and no latch can be inferred. Targets are registers in the
    /// Verilog sense (`reg` or `output_reg`) but hold no state.
    pub fn combinational(&mut self, body: Vec<Stmt>) {
        self.module.items.push(Item::Combinational { body });
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
        self.instance_outputs.insert(
            name.to_string(),
            ports
                .iter()
                .filter(|p| p.dir == Dir::Output)
                .map(|p| p.name.clone())
                .collect(),
        );
        self.module.items.push(Item::Instance {
            module: def.name().to_string(),
            name: name.to_string(),
            connections: ordered,
        });
    }

    /// The finished module, checked: one driver per signal bit, each suited to its signal's
    /// kind, and memories in the block-RAM template (see the `check` module).
    pub fn try_finish(self) -> Result<ModuleDef, RtlError> {
        check::check_module(&self.module, &self.instance_outputs)?;
        Ok(ModuleDef::Generated(self.module))
    }

    /// [`try_finish`](Self::try_finish) for generators, whose modules are correct by
    /// construction.
    ///
    /// # Panics
    /// With the [`RtlError`]'s message when the check fails (a generator bug).
    pub fn finish(self) -> ModuleDef {
        self.try_finish().unwrap_or_else(|e| panic!("{e}"))
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
    let Expr::Ref { name, width } = target.as_unsigned() else {
        panic!("assignment target must be a register name, got {target}")
    };
    assert_eq!(
        width,
        value.width(),
        "`{name}` is {width} bits, assigned {} bits: {value}",
        value.width()
    );
    Stmt::Assign {
        target: Target { name, word: None },
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

/// `case (sel) value: arm; ... default: default_arm; endcase`. Arm values must fit `sel` and
/// differ from each other.
pub fn case(sel: Expr, arms: Vec<(u64, Vec<Stmt>)>, default: Vec<Stmt>) -> Stmt {
    let width = sel.width();
    for (i, (value, _)) in arms.iter().enumerate() {
        assert!(
            width >= 64 || value >> width == 0,
            "case arm {value} does not fit the {width}-bit selector {sel}"
        );
        assert!(
            arms[..i].iter().all(|(v, _)| v != value),
            "case arm {value} appears twice for {sel}"
        );
    }
    Stmt::Case { sel, arms, default }
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
