//! AXI bus-functional models as closed-loop [`Agent`]s: an AXI4-Stream source and sink with
//! seeded random `TVALID`/`TREADY` stalls, an AXI4-Lite master, and a protocol checker that
//! fails the run on an AXI rule violation.
//!
//! The issue that asked for these placed them in the generated C++ shim; coforge builds them
//! once, in Rust, on the closed-loop API ([`crate::VerilatedModel::step`], [`Agent`]), so one
//! model serves every wrapper and every test, and its failures are ordinary `SimError`s.
//!
//! Ports are found by prefix with Xilinx's names: `<prefix>_tdata`, `_tvalid`, `_tready`,
//! `_tlast`; `<prefix>_awaddr`, ... for AXI4-Lite.
//!
//! # What the checker checks, and how
//! [`AxisChecker`] watches one stream, whichever side drives it, and records the first
//! violation of:
//! - **stability**: once `TVALID` is high, `TVALID`, `TDATA` and `TLAST` keep their values
//!   until the cycle `TREADY` is high (AXI4-Stream, "once TVALID is asserted it must remain
//!   asserted until the handshake occurs");
//! - **reset**: no `TVALID` while the given reset is active (after its first `reset_grace`
//!   cycles, the time the design takes to see the reset).
//!
//! The third rule, `TVALID` must not depend combinationally on `TREADY`, cannot be observed in
//! a closed loop that evaluates each cycle once. Its documented equivalent is structural: the
//! generator's `engines::axi::ready_to_valid_paths` traces every combinational path of a
//! wrapper, and the tests require that none leads from a `*ready` input to a `*valid` output.
//! The bus models here are Moore machines (they decide a cycle's inputs from earlier cycles),
//! so they keep the rule by construction.

use crate::frames::{InputPort, OutputPort, Pins};
use crate::testbench::{Agent, StreamSink, StreamSource};
use crate::SimError;
use std::collections::VecDeque;

/// One end of a port: driven by the testbench (a design input) or by the design (an output).
#[derive(Clone, Copy, Debug)]
pub(crate) enum Pin {
    In(InputPort),
    Out(OutputPort),
}

impl Pin {
    pub(crate) fn find(pins: &Pins, name: &str) -> Result<Pin, SimError> {
        match pins.input(name) {
            Ok(p) => Ok(Pin::In(p)),
            Err(_) => pins.output(name).map(Pin::Out),
        }
    }
    pub(crate) fn words<'a>(&self, pins: &'a Pins) -> &'a [u32] {
        match *self {
            Pin::Out(p) => pins.get_words(p),
            Pin::In(p) => pins.driven_words(p),
        }
    }
    /// The value of a port of at most 64 bits.
    pub(crate) fn value(&self, pins: &Pins) -> u64 {
        match *self {
            Pin::Out(p) => pins.get(p),
            Pin::In(p) => pins.driven(p),
        }
    }
    fn bit(&self, pins: &Pins) -> bool {
        self.value(pins) & 1 == 1
    }
}

/// An AXI4-Stream source on the design's slave port `<prefix>_*`: a [`StreamSource`] on
/// `TVALID`/`TREADY`/`TDATA` (beats in order, each held until the handshake) that also drives
/// `TLAST` with the beat it offers. Before offering a beat it leaves `TVALID` low for a cycle
/// with probability `stall_rate`, repeatedly, so stalls of any length occur.
#[derive(Clone, Debug)]
pub struct AxisSource {
    stream: StreamSource,
    tlast: InputPort,
    lasts: Vec<bool>,
    /// `TKEEP`, when the port has one, and each beat's value (all ones unless given).
    tkeep: Option<InputPort>,
    keeps: Vec<Vec<u32>>,
}

impl AxisSource {
    pub fn new(pins: &Pins, prefix: &str) -> Result<Self, SimError> {
        Ok(AxisSource {
            stream: StreamSource::new(
                pins,
                &format!("{prefix}_tvalid"),
                &format!("{prefix}_tready"),
                &format!("{prefix}_tdata"),
            )?,
            tlast: pins.input(&format!("{prefix}_tlast"))?,
            lasts: Vec::new(),
            tkeep: pins.input(&format!("{prefix}_tkeep")).ok(),
            keeps: Vec::new(),
        })
    }

    /// `TVALID` stalls at `rate` (`0 <= rate < 1`), seeded by `seed`.
    pub fn with_stalls(mut self, rate: f64, seed: u64) -> Result<Self, SimError> {
        self.stream = self.stream.with_gaps(rate, seed)?;
        Ok(self)
    }

    /// Appends a beat given as little-endian words (missing high words are 0), every byte kept.
    pub fn push(&mut self, words: &[u32], last: bool) -> Result<(), SimError> {
        let all = self.tkeep.map(|k| {
            let bits = k.width();
            (0..bits.div_ceil(32))
                .map(|i| match bits - 32 * i {
                    b if b >= 32 => u32::MAX,
                    b => (1u32 << b) - 1,
                })
                .collect::<Vec<u32>>()
        });
        self.push_kept(words, all.as_deref().unwrap_or(&[]), last)
    }

    /// Appends a beat with its `TKEEP` (little-endian words; ignored on a port without one).
    pub fn push_kept(&mut self, words: &[u32], keep: &[u32], last: bool) -> Result<(), SimError> {
        self.stream.push_words(words)?;
        self.lasts.push(last);
        self.keeps.push(keep.to_vec());
        Ok(())
    }

    pub fn len(&self) -> usize {
        self.lasts.len()
    }

    pub fn is_empty(&self) -> bool {
        self.lasts.is_empty()
    }

    /// Cycle numbers at whose rising edge each beat was taken, in order.
    pub fn accepted_cycles(&self) -> &[u64] {
        self.stream.accepted_cycles()
    }
}

impl Agent for AxisSource {
    fn drive(&mut self, cycle: u64, pins: &mut Pins) {
        self.stream.drive(cycle, pins);
        if let Some(beat) = self.stream.offered() {
            pins.set(self.tlast, self.lasts[beat] as u64);
            if let Some(k) = self.tkeep {
                pins.set_words(k, &self.keeps[beat]);
            }
        }
    }

    fn observe(&mut self, cycle: u64, pins: &Pins) {
        self.stream.observe(cycle, pins);
    }

    fn done(&self) -> bool {
        self.stream.done()
    }
}

/// An AXI4-Stream sink on the design's master port `<prefix>_*`: a [`StreamSink`] on
/// `TVALID`/`TREADY`/`TDATA` (`TREADY` low with probability `stall_rate` in each cycle) that
/// also records each beat's `TLAST`.
#[derive(Clone, Debug)]
pub struct AxisSink {
    stream: StreamSink,
    tlast: OutputPort,
    lasts: Vec<bool>,
    tkeep: Option<OutputPort>,
    keeps: Vec<Vec<u32>>,
}

impl AxisSink {
    pub fn new(pins: &Pins, prefix: &str) -> Result<Self, SimError> {
        Ok(AxisSink {
            stream: StreamSink::new(
                pins,
                &format!("{prefix}_tvalid"),
                &format!("{prefix}_tready"),
                &format!("{prefix}_tdata"),
            )?,
            tlast: pins.output(&format!("{prefix}_tlast"))?,
            lasts: Vec::new(),
            tkeep: pins.output(&format!("{prefix}_tkeep")).ok(),
            keeps: Vec::new(),
        })
    }

    /// `TREADY` stalls at `rate` (`0 <= rate < 1`), seeded by `seed`.
    pub fn with_stalls(mut self, rate: f64, seed: u64) -> Result<Self, SimError> {
        self.stream = self.stream.with_stalls(rate, seed)?;
        Ok(self)
    }

    /// Done once `n` beats have arrived.
    pub fn expect(mut self, n: usize) -> Self {
        self.stream = self.stream.expect(n);
        self.lasts.reserve(n);
        self
    }

    pub fn len(&self) -> usize {
        self.stream.len()
    }

    pub fn is_empty(&self) -> bool {
        self.stream.is_empty()
    }

    /// The words of beat `i`.
    pub fn beat(&self, i: usize) -> &[u32] {
        self.stream.beat(i)
    }

    /// `TLAST` of every beat.
    pub fn lasts(&self) -> &[bool] {
        &self.lasts
    }

    /// `TKEEP` of beat `i` (empty on a port without one).
    pub fn keep(&self, i: usize) -> &[u32] {
        &self.keeps[i]
    }

    /// Cycle numbers at whose rising edge each beat was taken.
    pub fn cycles(&self) -> &[u64] {
        self.stream.cycles()
    }
}

impl Agent for AxisSink {
    fn drive(&mut self, cycle: u64, pins: &mut Pins) {
        self.stream.drive(cycle, pins);
    }

    fn observe(&mut self, cycle: u64, pins: &Pins) {
        let before = self.stream.len();
        self.stream.observe(cycle, pins);
        if self.stream.len() > before {
            self.lasts.push(pins.get(self.tlast) & 1 == 1);
            self.keeps.push(
                self.tkeep
                    .map_or(Vec::new(), |k| pins.get_words(k).to_vec()),
            );
        }
    }

    fn done(&self) -> bool {
        self.stream.done()
    }
}

/// A reset input of the design, active low or high, for the checker.
#[derive(Clone, Copy, Debug)]
pub struct ResetPin {
    pub port: InputPort,
    pub active_low: bool,
}

/// A passive protocol checker on one AXI4-Stream port `<prefix>_*` (see the module docs).
/// Never done-blocking; read [`AxisChecker::check`] after the run.
#[derive(Clone, Debug)]
pub struct AxisChecker {
    prefix: String,
    tdata: Pin,
    tvalid: Pin,
    tready: Pin,
    tlast: Pin,
    tkeep: Option<Pin>,
    reset: Option<ResetPin>,
    reset_grace: u64,
    reset_cycles: u64,
    /// The beat offered in the previous cycle and not taken: (data, keep, last).
    pending: Option<(Vec<u32>, Vec<u32>, bool)>,
    violation: Option<String>,
    beats: u64,
}

impl AxisChecker {
    pub fn new(pins: &Pins, prefix: &str) -> Result<Self, SimError> {
        Ok(AxisChecker {
            prefix: prefix.to_string(),
            tdata: Pin::find(pins, &format!("{prefix}_tdata"))?,
            tvalid: Pin::find(pins, &format!("{prefix}_tvalid"))?,
            tready: Pin::find(pins, &format!("{prefix}_tready"))?,
            tlast: Pin::find(pins, &format!("{prefix}_tlast"))?,
            tkeep: Pin::find(pins, &format!("{prefix}_tkeep")).ok(),
            reset: None,
            reset_grace: 0,
            reset_cycles: 0,
            pending: None,
            violation: None,
            beats: 0,
        })
    }

    /// Also require `TVALID` low while `reset` is active, from its `grace + 1`-th cycle on.
    pub fn with_reset(mut self, reset: ResetPin, grace: u64) -> Self {
        self.reset = Some(reset);
        self.reset_grace = grace;
        self
    }

    /// Beats that crossed the port.
    pub fn beats(&self) -> u64 {
        self.beats
    }

    /// The first violation, as an error naming the port, the cycle and the rule.
    pub fn check(&self) -> Result<(), SimError> {
        match &self.violation {
            None => Ok(()),
            Some(v) => Err(SimError::Runtime {
                message: format!("AXI4-Stream protocol violation on `{}`: {v}", self.prefix),
            }),
        }
    }

    fn fail(&mut self, message: String) {
        if self.violation.is_none() {
            self.violation = Some(message);
        }
    }
}

impl Agent for AxisChecker {
    fn drive(&mut self, _cycle: u64, _pins: &mut Pins) {}

    fn observe(&mut self, cycle: u64, pins: &Pins) {
        let valid = self.tvalid.bit(pins);
        let ready = self.tready.bit(pins);
        let last = self.tlast.bit(pins);
        if let Some(r) = self.reset {
            let active = (pins.driven(r.port) & 1 == 1) != r.active_low;
            if active {
                self.reset_cycles += 1;
                if valid && self.reset_cycles > self.reset_grace {
                    self.fail(format!("cycle {cycle}: TVALID is high during reset"));
                }
                self.pending = None;
                return;
            }
            self.reset_cycles = 0;
        }
        let data = self.tdata.words(pins).to_vec();
        let keep = self.tkeep.map_or(Vec::new(), |k| k.words(pins).to_vec());
        if let Some((old, old_keep, old_last)) = self.pending.take() {
            if !valid {
                self.fail(format!(
                    "cycle {cycle}: TVALID dropped before the handshake of the beat offered \
                     in cycle {}",
                    cycle - 1
                ));
            } else if old != data {
                self.fail(format!(
                    "cycle {cycle}: TDATA changed while TVALID was high and TREADY low \
                     (was {old:08x?}, now {data:08x?})"
                ));
            } else if old_keep != keep {
                self.fail(format!(
                    "cycle {cycle}: TKEEP changed while TVALID was high and TREADY low \
                     (was {old_keep:08x?}, now {keep:08x?})"
                ));
            } else if old_last != last {
                self.fail(format!(
                    "cycle {cycle}: TLAST changed while TVALID was high and TREADY low"
                ));
            }
        }
        if valid && ready {
            self.beats += 1;
        } else if valid {
            self.pending = Some((data, keep, last));
        }
    }
}

/// One AXI4-Lite transaction.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LiteOp {
    Write { addr: u64, data: u32 },
    Read { addr: u64 },
}

/// An AXI4-Lite master on the design's slave port `<prefix>_*` (ports `awaddr awvalid awready
/// wdata wstrb wvalid wready bresp bvalid bready araddr arvalid arready rdata rresp rvalid
/// rready`). Runs its queued operations one at a time, in order: a write offers address and
/// data together and waits for both handshakes and the response; a read waits for the data.
/// Non-OKAY responses are recorded as errors.
#[derive(Clone, Debug)]
pub struct AxiLiteMaster {
    awaddr: InputPort,
    awvalid: InputPort,
    awready: OutputPort,
    wdata: InputPort,
    wstrb: InputPort,
    wvalid: InputPort,
    wready: OutputPort,
    bresp: OutputPort,
    bvalid: OutputPort,
    bready: InputPort,
    araddr: InputPort,
    arvalid: InputPort,
    arready: OutputPort,
    rdata: OutputPort,
    rresp: OutputPort,
    rvalid: OutputPort,
    rready: InputPort,
    queue: VecDeque<LiteOp>,
    /// Progress of the operation at the queue's head: address and data phases done.
    aw_done: bool,
    w_done: bool,
    addr_done: bool,
    reads: Vec<(u64, u32)>,
    errors: Vec<String>,
}

impl AxiLiteMaster {
    pub fn new(pins: &Pins, prefix: &str) -> Result<Self, SimError> {
        let i = |s: &str| pins.input(&format!("{prefix}_{s}"));
        let o = |s: &str| pins.output(&format!("{prefix}_{s}"));
        Ok(AxiLiteMaster {
            awaddr: i("awaddr")?,
            awvalid: i("awvalid")?,
            awready: o("awready")?,
            wdata: i("wdata")?,
            wstrb: i("wstrb")?,
            wvalid: i("wvalid")?,
            wready: o("wready")?,
            bresp: o("bresp")?,
            bvalid: o("bvalid")?,
            bready: i("bready")?,
            araddr: i("araddr")?,
            arvalid: i("arvalid")?,
            arready: o("arready")?,
            rdata: o("rdata")?,
            rresp: o("rresp")?,
            rvalid: o("rvalid")?,
            rready: i("rready")?,
            queue: VecDeque::new(),
            aw_done: false,
            w_done: false,
            addr_done: false,
            reads: Vec::new(),
            errors: Vec::new(),
        })
    }

    pub fn write(&mut self, addr: u64, data: u32) {
        self.queue.push_back(LiteOp::Write { addr, data });
    }

    pub fn read(&mut self, addr: u64) {
        self.queue.push_back(LiteOp::Read { addr });
    }

    /// `(address, data)` of every completed read, in order.
    pub fn reads(&self) -> &[(u64, u32)] {
        &self.reads
    }

    /// Takes the completed reads.
    pub fn take_reads(&mut self) -> Vec<(u64, u32)> {
        std::mem::take(&mut self.reads)
    }

    /// Non-OKAY responses, as messages.
    pub fn check(&self) -> Result<(), SimError> {
        match self.errors.first() {
            None => Ok(()),
            Some(e) => Err(SimError::Runtime {
                message: format!("AXI4-Lite: {e}"),
            }),
        }
    }

    fn next_op(&mut self) {
        self.queue.pop_front();
        self.aw_done = false;
        self.w_done = false;
        self.addr_done = false;
    }
}

impl Agent for AxiLiteMaster {
    fn drive(&mut self, _cycle: u64, pins: &mut Pins) {
        let (mut awvalid, mut wvalid, mut arvalid) = (false, false, false);
        match self.queue.front() {
            Some(&LiteOp::Write { addr, data }) => {
                awvalid = !self.aw_done;
                wvalid = !self.w_done;
                pins.set(self.awaddr, addr);
                pins.set(self.wdata, u64::from(data));
                pins.set(self.wstrb, 0xf);
            }
            Some(&LiteOp::Read { addr }) => {
                arvalid = !self.addr_done;
                pins.set(self.araddr, addr);
            }
            None => {}
        }
        pins.set(self.awvalid, awvalid as u64);
        pins.set(self.wvalid, wvalid as u64);
        pins.set(self.arvalid, arvalid as u64);
        pins.set(self.bready, 1);
        pins.set(self.rready, 1);
    }

    fn observe(&mut self, cycle: u64, pins: &Pins) {
        let hi = |p: OutputPort| pins.get(p) & 1 == 1;
        match self.queue.front().copied() {
            Some(LiteOp::Write { addr, .. }) => {
                if !self.aw_done && hi(self.awready) {
                    self.aw_done = true;
                }
                if !self.w_done && hi(self.wready) {
                    self.w_done = true;
                }
                if self.aw_done && self.w_done && hi(self.bvalid) {
                    let resp = pins.get(self.bresp);
                    if resp != 0 {
                        self.errors
                            .push(format!("cycle {cycle}: write to {addr:#x} answered {resp}"));
                    }
                    self.next_op();
                }
            }
            Some(LiteOp::Read { addr }) => {
                if !self.addr_done && hi(self.arready) {
                    self.addr_done = true;
                } else if self.addr_done && hi(self.rvalid) {
                    let resp = pins.get(self.rresp);
                    if resp != 0 {
                        self.errors
                            .push(format!("cycle {cycle}: read of {addr:#x} answered {resp}"));
                    }
                    self.reads.push((addr, pins.get(self.rdata) as u32));
                    self.next_op();
                }
            }
            None => {}
        }
    }

    fn done(&self) -> bool {
        self.queue.is_empty()
    }
}
