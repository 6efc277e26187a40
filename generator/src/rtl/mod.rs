//! coforge's RTL description layer: typed modules, ports, wires, registers, memories,
//! continuous assignments, clocked processes, combinational blocks with `case`, and instances,
//! plus externally written leaf modules used as black boxes.
//!
//! Everything is a run-time value (widths, counts, names), so one generator serves every
//! configuration. Widths (and signedness, see `Expr`'s "Signed shapes") are checked while a
//! module is built; the emitter (`emit`) then prints Verilog-2005 from the tree, never by
//! pasting strings. `tests/rtl_emit.rs` holds the printed form of every construct.
//!
//! # Building a module
//! A module is described inside a closure: `ModuleBuilder::build(name, |b| ...)` hands the
//! closure a fresh builder, and returns the checked module. Helpers that describe part of a
//! module take the builder and handles with the same brand:
//! ```
//! use coforge_generator::rtl::{set, when_else, Expr, ModuleBuilder};
//!
//! /// A counter: +1 when `enable`, 0 on `reset`.
//! fn counter<'id>(
//!     b: &mut ModuleBuilder<'id>,
//!     clk: &Expr<'id>,
//!     reset: &Expr<'id>,
//!     enable: &Expr<'id>,
//! ) -> Expr<'id> {
//!     let count = b.reg("count", 8);
//!     let next = count.add(&Expr::lit(1, 8));
//!     b.clocked(
//!         clk,
//!         vec![when_else(
//!             reset.clone(),
//!             vec![set(&count, Expr::zero(8))],
//!             vec![set(&count, Expr::mux(enable, &next, &count))],
//!         )],
//!     );
//!     count
//! }
//!
//! let module = ModuleBuilder::build("ticker", |b| {
//!     let clk = b.input("clk", 1, "");
//!     let rst = b.input("rst", 1, "synchronous reset, active high");
//!     let en = b.input("en", 1, "");
//!     let count = counter(b, &clk, &rst, &en);
//!     let wrapped = b.output("wrapped", 1, "the count is 255");
//!     b.drive(&wrapped, count.all());
//! });
//! assert_eq!(module.name(), "ticker");
//! ```
//!
//! # Typed signal handles
//! Each builder is branded with an invariant lifetime `'id`, unique to its `build` call (the
//! technique of `GhostCell` and the `generativity` crate: the closure must work for every
//! `'id`, and `PhantomData<fn(&'id ()) -> &'id ()>` lets no `'id` stand for another). Every
//! handle the builder returns is an [`Expr<'id>`](Expr) (a [`Memory<'id>`](Memory) for a
//! memory), every operator combines only expressions of one `'id`, and every method that
//! takes a signal or statement (`set`, `drive`, `clocked`, `memory_*`, `instance`
//! connections, `when`, `case`) takes only `'id` values. So the compiler guarantees:
//! - **a signal of another module cannot be used here.** A handle of builder A given to
//!   builder B does not compile:
//!   ```compile_fail
//!   use coforge_generator::rtl::ModuleBuilder;
//!   ModuleBuilder::build("a", |a| {
//!       let x = a.input("x", 1, "");
//!       ModuleBuilder::build("b", |b| {
//!           let y = b.output("y", 1, "");
//!           b.drive(&y, x.clone()); // `x` belongs to module `a`
//!       });
//!   });
//!   ```
//! - **no handle leaves its closure**, neither through a captured variable nor as the
//!   closure's value (`build_with` returns only values that do not mention `'id`):
//!   ```compile_fail
//!   use coforge_generator::rtl::ModuleBuilder;
//!   let mut leaked = None;
//!   ModuleBuilder::build("a", |a| {
//!       leaked = Some(a.input("x", 1, ""));
//!   });
//!   ```
//!   ```compile_fail
//!   use coforge_generator::rtl::ModuleBuilder;
//!   let (_, x) = ModuleBuilder::build_with("a", |a| a.input("x", 1, ""));
//!   ```
//! - **nobody makes a handle from a name.** Only the builder creates references to named
//!   signals; names are the emitter's business. The finished module's tree ([`ExprNode`],
//!   [`StmtNode`], [`Item`]) stays public for analyses, but nothing turns it back into an
//!   `Expr<'id>`.
//!
//! Widths, signedness, kinds and drivers are still checked at run time, when the module is
//! built and when it is finished.
//!
//! # The check of a finished module
//! `ModuleBuilder::try_build` (and `build`, which panics with the same message) checks the
//! module before any Verilog exists and names the module, the signal and the drivers in an
//! [`RtlError`]:
//! - **one driver per signal bit** (`DriverConflict`): an `assign`, one process (clocked or
//!   combinational, however many statements assign the register inside it), or an instance
//!   output (slices of one wire may be driven by different instances);
//! - **the driver suits the signal** (`WrongKind`): `set` only on registers, `output_reg` ports
//!   and memories; `drive` and instance outputs only on wires and outputs; nothing on inputs;
//! - **every reference is declared** (`Undeclared`): with branded handles this can fail only
//!   for a register reserved with `ModuleBuilder::reserve_reg` (a handle needed before its
//!   declaration's place) and never declared with `place`;
//! - **memories are the block-RAM template** (`Memory`, below).
//!
//! # Memories
//! A memory is a simple dual-port RAM in the template that Vivado and Yosys both infer as
//! block RAM (or as distributed LUT RAM when it is small): one synchronous write port, and one or
//! two registered synchronous read ports, all on one clock, each in its own clocked process, with
//! no reset and no initial value on the array.
//! ```
//! use coforge_generator::rtl::{Expr, ModuleBuilder};
//! let module = ModuleBuilder::build("line_buffer", |b| {
//!     let clk = b.input("clk", 1, "");
//!     let we = b.input("we", 1, "write `wdata` at `waddr`");
//!     let waddr = b.input("waddr", 10, "");
//!     let wdata = b.input("wdata", 8, "");
//!     let raddr = b.input("raddr", 10, "");
//!     let rdata = b.output_reg("rdata", 8, "the word at last cycle's `raddr`");
//!     let line = b.memory("line", 8, 1024); // reg [7:0] line [0:1023];
//!     b.memory_write(&clk, &line, &we, &waddr, &wdata);
//!     b.memory_read(&clk, &line, &rdata, &Expr::bit(true), &raddr);
//! });
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
pub use expr::{index_bits, BinaryOp, Expr, ExprNode, UnaryOp};

use expr::Brand;
use std::marker::PhantomData;

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
    pub word: Option<ExprNode>,
}

/// A statement of a finished module's tree (what [`Stmt`] wraps).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum StmtNode {
    /// Non-blocking assignment (`<=`): the only kind used in clocked processes.
    Assign { target: Target, value: ExprNode },
    If {
        cond: ExprNode,
        then: Vec<StmtNode>,
        els: Vec<StmtNode>,
    },
    /// `case (sel)`: the first arm whose value equals `sel` runs, else `default` (always
    /// printed, so a combinational case never infers a latch). Build it with [`case`].
    Case {
        sel: ExprNode,
        arms: Vec<(u64, Vec<StmtNode>)>,
        default: Vec<StmtNode>,
    },
}

/// A statement of the module whose builder has the brand `'id` (see [`Expr`]): built with
/// [`set`], [`set_word`], [`when`], [`when_else`] and [`case`], and given to
/// `ModuleBuilder::clocked` or `combinational`.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Stmt<'id> {
    node: StmtNode,
    brand: Brand<'id>,
}

impl<'id> Stmt<'id> {
    fn wrap(node: StmtNode) -> Stmt<'id> {
        Stmt {
            node,
            brand: PhantomData,
        }
    }
    /// The statement's tree, as the emitter will print it.
    pub fn node(&self) -> &StmtNode {
        &self.node
    }
}

fn nodes(body: Vec<Stmt<'_>>) -> Vec<StmtNode> {
    body.into_iter().map(|s| s.node).collect()
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Item {
    Comment(String),
    /// Continuous assignment `assign name = value;`.
    Assign {
        name: String,
        value: ExprNode,
    },
    /// `always @(posedge clock)`: every register assigned here is a flip-flop; a reset, when
    /// present, is an ordinary synchronous `if` written by the module's author.
    Clocked {
        clock: String,
        body: Vec<StmtNode>,
    },
    /// `always @(*)` with blocking assignments: combinational logic written as statements (a
    /// `case`, say). Every register it assigns must be assigned on every path; start the body
    /// with a default assignment (see `ModuleBuilder::combinational`).
    Combinational {
        body: Vec<StmtNode>,
    },
    Instance {
        module: String,
        name: String,
        connections: Vec<(String, ExprNode)>,
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

/// Builds one module, checking names, widths and connections as it goes. The builder exists
/// only inside [`ModuleBuilder::build`]'s closure, branded with that closure's `'id`: every
/// handle it returns is an [`Expr<'id>`](Expr), and every method takes only `'id` values.
pub struct ModuleBuilder<'id> {
    module: Module,
    names: BTreeMap<String, u32>,
    /// Per instance, its output ports: instance outputs are drivers (see `check`).
    instance_outputs: BTreeMap<String, Vec<String>>,
    brand: Brand<'id>,
}

impl ModuleBuilder<'_> {
    /// Builds the module `name`: runs `body` on a fresh builder whose brand `'id` is unique to
    /// this call, then checks the module (see "The check of a finished module").
    ///
    /// # Panics
    /// With the [`RtlError`]'s message when the check fails (a generator bug); use
    /// [`try_build`](Self::try_build) to get the error.
    pub fn build(
        name: impl Into<String>,
        body: impl for<'id> FnOnce(&mut ModuleBuilder<'id>),
    ) -> ModuleDef {
        Self::try_build(name, body).unwrap_or_else(|e| panic!("{e}"))
    }

    /// [`build`](Self::build), returning the check's error instead of panicking.
    pub fn try_build(
        name: impl Into<String>,
        body: impl for<'id> FnOnce(&mut ModuleBuilder<'id>),
    ) -> Result<ModuleDef, RtlError> {
        Self::try_build_with(name, body).map(|(def, ())| def)
    }

    /// [`build`](Self::build) for a body that also returns a value (which cannot mention
    /// `'id`: no handle leaves the closure).
    pub fn build_with<R>(
        name: impl Into<String>,
        body: impl for<'id> FnOnce(&mut ModuleBuilder<'id>) -> R,
    ) -> (ModuleDef, R) {
        Self::try_build_with(name, body).unwrap_or_else(|e| panic!("{e}"))
    }

    fn try_build_with<R>(
        name: impl Into<String>,
        body: impl for<'id> FnOnce(&mut ModuleBuilder<'id>) -> R,
    ) -> Result<(ModuleDef, R), RtlError> {
        let mut b = ModuleBuilder {
            module: Module {
                name: name.into(),
                doc: Vec::new(),
                ports: Vec::new(),
                signals: Vec::new(),
                items: Vec::new(),
            },
            names: BTreeMap::new(),
            instance_outputs: BTreeMap::new(),
            brand: PhantomData,
        };
        let value = body(&mut b);
        check::check_module(&b.module, &b.instance_outputs)?;
        Ok((ModuleDef::Generated(b.module), value))
    }
}

impl<'id> ModuleBuilder<'id> {
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

    fn port(&mut self, name: &str, dir: Dir, width: u32, is_reg: bool, doc: &str) -> Expr<'id> {
        self.claim(name, width);
        self.module.ports.push(Port {
            name: name.to_string(),
            dir,
            width,
            is_reg,
            doc: (!doc.is_empty()).then(|| doc.to_string()),
        });
        Expr::wrap(ExprNode::sig(name, width))
    }

    pub fn input(&mut self, name: &str, width: u32, doc: &str) -> Expr<'id> {
        self.port(name, Dir::Input, width, false, doc)
    }

    /// An output driven by `assign` (see `drive`).
    pub fn output(&mut self, name: &str, width: u32, doc: &str) -> Expr<'id> {
        self.port(name, Dir::Output, width, false, doc)
    }

    /// An output declared `output reg`: a register assigned in a clocked process, or the
    /// target of a combinational block (`combinational`).
    pub fn output_reg(&mut self, name: &str, width: u32, doc: &str) -> Expr<'id> {
        self.port(name, Dir::Output, width, true, doc)
    }

    fn signal(&mut self, name: &str, kind: SignalKind, width: u32, depth: Option<u32>) -> ExprNode {
        self.claim(name, width);
        self.module.signals.push(Signal {
            name: name.to_string(),
            kind,
            width,
            depth,
            doc: None,
        });
        ExprNode::sig(name, width)
    }

    /// A register whose handle is needed before the place its declaration belongs: returns
    /// the handle now, and a [`Reserved`] that [`place`](Self::place) declares later (the
    /// declaration is printed there). An AXI wrapper, say, connects its engine to parameter
    /// registers that its register file declares further down. A reservation never placed
    /// fails the module's check ([`RtlError::Undeclared`]).
    pub fn reserve_reg(&mut self, name: &str, width: u32) -> (Expr<'id>, Reserved<'id>) {
        self.claim(name, width);
        let reserved = Reserved {
            name: name.to_string(),
            width,
            brand: PhantomData,
        };
        (Expr::wrap(ExprNode::sig(name, width)), reserved)
    }

    /// Declares a register reserved with [`reserve_reg`](Self::reserve_reg), here.
    pub fn place(&mut self, reserved: Reserved<'id>) -> Expr<'id> {
        let Reserved { name, width, .. } = reserved;
        self.module.signals.push(Signal {
            name: name.clone(),
            kind: SignalKind::Reg,
            width,
            depth: None,
            doc: None,
        });
        Expr::wrap(ExprNode::sig(name, width))
    }

    /// A wire declared now and driven later with `drive` (for example by an instance output).
    pub fn wire(&mut self, name: &str, width: u32) -> Expr<'id> {
        Expr::wrap(self.signal(name, SignalKind::Wire, width, None))
    }

    /// Names an expression: declares a wire and assigns it. Returns the wire.
    /// The wire keeps the value's signedness.
    pub fn name(&mut self, name: &str, value: Expr<'id>) -> Expr<'id> {
        let w = self.wire(name, value.width());
        let signed = value.is_signed();
        self.drive(&w, value);
        if signed {
            w.as_signed()
        } else {
            w
        }
    }

    pub fn reg(&mut self, name: &str, width: u32) -> Expr<'id> {
        Expr::wrap(self.signal(name, SignalKind::Reg, width, None))
    }

    /// Declares a memory of `depth` words of `width` bits (`reg [w-1:0] name [0:depth-1];`).
    /// Give it exactly one write port (`memory_write`) and one or two registered read ports
    /// (`memory_read`); see "Memories" in the module documentation for the template this makes.
    pub fn memory(&mut self, name: &str, width: u32, depth: u32) -> Memory<'id> {
        assert!(
            depth >= 2,
            "memory `{name}` has {depth} words; a memory needs at least 2 (use a register)"
        );
        self.signal(name, SignalKind::Reg, width, Some(depth));
        Memory {
            name: name.to_string(),
            width,
            depth,
            brand: PhantomData,
        }
    }

    /// The write port of `mem`: `always @(posedge clock) if (enable) mem[addr] <= data;`.
    /// One per memory; the word is written at the clock edge.
    pub fn memory_write(
        &mut self,
        clock: &Expr<'id>,
        mem: &Memory<'id>,
        enable: &Expr<'id>,
        addr: &Expr<'id>,
        data: &Expr<'id>,
    ) {
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
        clock: &Expr<'id>,
        mem: &Memory<'id>,
        data: &Expr<'id>,
        enable: &Expr<'id>,
        addr: &Expr<'id>,
    ) {
        let ExprNode::Ref { name, .. } = data.as_unsigned().into_node() else {
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
        let read = set(data, mem.read(addr));
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

    /// `assign target = value;` for a wire or output of this module.
    pub fn drive(&mut self, target: &Expr<'id>, value: Expr<'id>) {
        let ExprNode::Ref { name, width } = target.as_unsigned().into_node() else {
            panic!("`drive` assigns a wire or an output, got {target}")
        };
        assert_eq!(
            width,
            value.width(),
            "`{name}` is {width} bits but is driven by {} bits: {value}",
            value.width()
        );
        self.module.items.push(Item::Assign {
            name,
            value: value.into_node(),
        });
    }

    pub fn clocked(&mut self, clock: &Expr<'id>, body: Vec<Stmt<'id>>) {
        let ExprNode::Ref { name, .. } = clock.node() else {
            panic!("a clock must be a named signal")
        };
        self.module.items.push(Item::Clocked {
            clock: name.clone(),
            body: nodes(body),
        });
    }

    /// `always @(*)`: combinational statements, printed with blocking assignments. Assign
    /// every target first (a default), then refine it (`when`, [`case`]), so that no path
    /// leaves a target unassigned and no latch can be inferred. Targets are registers in the
    /// Verilog sense (`reg` or `output_reg`) but hold no state.
    pub fn combinational(&mut self, body: Vec<Stmt<'id>>) {
        self.module
            .items
            .push(Item::Combinational { body: nodes(body) });
    }

    /// Instantiates `def`; every port must be connected, with matching widths.
    pub fn instance(&mut self, def: &ModuleDef, name: &str, connections: Vec<(&str, Expr<'id>)>) {
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
            ordered.push((port.name.clone(), e.node().clone()));
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
}

/// A register reserved by [`ModuleBuilder::reserve_reg`]: its name is taken, and
/// [`ModuleBuilder::place`] declares it.
#[derive(Debug)]
#[must_use = "declare the register with `ModuleBuilder::place`"]
pub struct Reserved<'id> {
    name: String,
    width: u32,
    brand: Brand<'id>,
}

/// The most read ports a memory may have: two still infer block RAM (Yosys duplicates the
/// RAM for the second port; a true dual-port mapping is Vivado's choice).
pub const MAX_READ_PORTS: u32 = 2;

/// A memory declared with `ModuleBuilder::memory`: the handle its ports are built from,
/// branded like an [`Expr`].
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Memory<'id> {
    name: String,
    /// Bits per word.
    pub width: u32,
    /// Words.
    pub depth: u32,
    brand: Brand<'id>,
}

impl<'id> Memory<'id> {
    /// Width of an address: `ceil(log2(depth))`.
    pub fn addr_bits(&self) -> u32 {
        index_bits(self.depth)
    }

    /// `mem[addr]`, for a read port written by hand (`set(&reg, mem.read(&addr))` in a clocked
    /// process); prefer `ModuleBuilder::memory_read`. Width-checked.
    pub fn read(&self, addr: &Expr<'id>) -> Expr<'id> {
        self.check_addr(addr);
        Expr::wrap(ExprNode::MemRead {
            mem: self.name.clone(),
            index: Box::new(addr.node().clone()),
            width: self.width,
        })
    }

    fn check_addr(&self, addr: &Expr<'id>) {
        assert_eq!(
            addr.width(),
            self.addr_bits(),
            "memory `{}` of {} words takes a {}-bit address, got {addr}",
            self.name,
            self.depth,
            self.addr_bits()
        );
    }
}

/// `if (enable) stmt`, or just `stmt` when `enable` is the constant 1.
fn enabled<'id>(enable: &Expr<'id>, stmt: Stmt<'id>) -> Stmt<'id> {
    if *enable == Expr::bit(true) {
        stmt
    } else {
        when(enable.clone(), vec![stmt])
    }
}

/// `target <= value;`, width-checked against a register expression.
pub fn set<'id>(target: &Expr<'id>, value: Expr<'id>) -> Stmt<'id> {
    let ExprNode::Ref { name, width } = target.as_unsigned().into_node() else {
        panic!("assignment target must be a register name, got {target}")
    };
    assert_eq!(
        width,
        value.width(),
        "`{name}` is {width} bits, assigned {} bits: {value}",
        value.width()
    );
    Stmt::wrap(StmtNode::Assign {
        target: Target { name, word: None },
        value: value.into_node(),
    })
}

/// `mem[word] <= value;`, width-checked. Prefer `ModuleBuilder::memory_write`, which also
/// keeps the block-RAM template (one write port, in its own clocked process).
pub fn set_word<'id>(mem: &Memory<'id>, word: Expr<'id>, value: Expr<'id>) -> Stmt<'id> {
    mem.check_addr(&word);
    assert_eq!(
        value.width(),
        mem.width,
        "memory `{}` holds {}-bit words, assigned {value}",
        mem.name,
        mem.width
    );
    Stmt::wrap(StmtNode::Assign {
        target: Target {
            name: mem.name.clone(),
            word: Some(word.into_node()),
        },
        value: value.into_node(),
    })
}

/// `case (sel) value: arm; ... default: default_arm; endcase`. Arm values must fit `sel` and
/// differ from each other.
pub fn case<'id>(
    sel: Expr<'id>,
    arms: Vec<(u64, Vec<Stmt<'id>>)>,
    default: Vec<Stmt<'id>>,
) -> Stmt<'id> {
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
    Stmt::wrap(StmtNode::Case {
        sel: sel.into_node(),
        arms: arms.into_iter().map(|(v, body)| (v, nodes(body))).collect(),
        default: nodes(default),
    })
}

pub fn when<'id>(cond: Expr<'id>, then: Vec<Stmt<'id>>) -> Stmt<'id> {
    when_else(cond, then, Vec::new())
}

pub fn when_else<'id>(cond: Expr<'id>, then: Vec<Stmt<'id>>, els: Vec<Stmt<'id>>) -> Stmt<'id> {
    assert_eq!(cond.width(), 1, "condition must be one bit: {cond}");
    Stmt::wrap(StmtNode::If {
        cond: cond.into_node(),
        then: nodes(then),
        els: nodes(els),
    })
}
