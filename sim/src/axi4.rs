//! An AXI4 (full) memory slave and an AXI4 protocol checker, as closed-loop [`Agent`]s on a
//! design's AXI4 master port `<prefix>_*` (Xilinx names: `araddr arlen arsize arburst arvalid
//! arready rdata rresp rlast rvalid rready awaddr awlen awsize awburst awvalid awready wdata
//! wstrb wlast wvalid wready bresp bvalid bready`).
//!
//! # The memory ([`Axi4Memory`])
//! A byte-addressed memory behind the five channels. Read bursts are served in order: the
//! first beat of a burst accepted in cycle c is offered from cycle `c + latency` on, then one
//! beat per cycle; `RLAST` on beat `ARLEN`. Write data is taken in order and applied with
//! `WSTRB` once its burst's address is known (W may run ahead of AW, as AXI4 allows); the
//! response follows `latency` cycles after the burst's last beat. A beat outside the memory
//! is not performed: it reads as zero with `RRESP` DECERR, and its write burst is answered
//! DECERR (as an interconnect's default slave does), and [`Axi4Memory::check`] reports it.
//! Every ready and every
//! valid the memory drives is decided from earlier cycles (a Moore machine), and with
//! `stall_rate > 0` each of `ARREADY`, `AWREADY`, `WREADY` is low, and each new `RVALID` and
//! `BVALID` is held back, with that probability per cycle, from seeded generators. Only INCR
//! bursts are served; anything else is recorded as an error ([`Axi4Memory::check`]).
//!
//! # The checker ([`Axi4Checker`])
//! Watches all five channels, whichever side drives them, and records the first violation of:
//! - **stability**, per channel: once `VALID` is high, `VALID` and every payload signal keep
//!   their values until the cycle `READY` is high;
//! - **reset**: no `ARVALID`, `AWVALID` or `WVALID` while the reset is active (after a grace);
//! - **bursts**: `AxBURST` is INCR, `AxSIZE` is at most the bus width, `AxLEN < 256`, and a burst
//!   does not cross a 4 KiB boundary;
//! - **last**: `WLAST` on exactly the `AWLEN + 1`-th beat of each write burst (in AW order,
//!   whether the data comes before or after its address), and `RLAST` on exactly the
//!   `ARLEN + 1`-th beat of each read burst.
//!
//! As for AXI4-Stream (`crate::axi`), that a `VALID` must not depend combinationally on its
//! `READY` cannot be seen in a closed loop that evaluates a cycle once; the generator's
//! `engines::axi::ready_to_valid_paths` checks it on the generated module.

use crate::axi::Pin;
use crate::frames::{InputPort, OutputPort, Pins};
use crate::testbench::{Agent, Coin};
use crate::SimError;
use std::collections::VecDeque;

/// The 4 KiB boundary no burst may cross.
pub const BOUNDARY: u64 = 4096;
/// The longest burst (AXI4 INCR).
pub const MAX_BURST: u64 = 256;
/// `AxBURST` of an incrementing burst.
pub const INCR: u64 = 1;
/// `xRESP` of a transfer that succeeded.
pub const OKAY: u64 = 0;
/// `xRESP` of a transfer to no slave (an address outside the memory).
pub const DECERR: u64 = 3;

/// Timing of [`Axi4Memory`].
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Axi4Timing {
    /// Cycles from an accepted read address to its first data beat, and from a write burst's
    /// last beat to its response (>= 1).
    pub latency: u32,
    /// Probability of a stall on each channel in each cycle, `0 <= stall_rate < 1`.
    pub stall_rate: f64,
    pub seed: u64,
}

#[derive(Clone, Copy, Debug)]
struct Burst {
    addr: u64,
    len: u64,
    /// The first cycle its first read beat (or its response) may be offered.
    ready_at: u64,
}

/// An AXI4 memory slave on the design's master port `<prefix>_*` (see the module docs).
#[derive(Clone, Debug)]
pub struct Axi4Memory {
    arvalid: OutputPort,
    arready: InputPort,
    araddr: OutputPort,
    arlen: OutputPort,
    arburst: OutputPort,
    rdata: InputPort,
    rresp: InputPort,
    rlast: InputPort,
    rvalid: InputPort,
    rready: OutputPort,
    awvalid: OutputPort,
    awready: InputPort,
    awaddr: OutputPort,
    awlen: OutputPort,
    awburst: OutputPort,
    wdata: OutputPort,
    wstrb: OutputPort,
    wvalid: OutputPort,
    wready: InputPort,
    bresp: InputPort,
    bvalid: InputPort,
    bready: OutputPort,
    bytes: Vec<u8>,
    beat_bytes: usize,
    latency: u64,
    coins: [Coin; 5],
    reads: VecDeque<Burst>,
    /// Beats of the head read burst already taken.
    read_beat: u64,
    read_offered: bool,
    /// This cycle's ARREADY, AWREADY and WREADY.
    take_ar: bool,
    take_aw: bool,
    take_w: bool,
    /// Write bursts whose address is known, and the data beats taken (data, strobes) not yet
    /// written because their address is not known yet.
    writes: VecDeque<Burst>,
    write_beat: u64,
    early_data: VecDeque<(Vec<u32>, Vec<u32>, bool)>,
    /// A beat of the current write burst fell outside the memory.
    write_outside: bool,
    /// Write responses: the cycle each may be offered, and its `BRESP`.
    responses: VecDeque<(u64, u64)>,
    b_offered: bool,
    errors: Vec<String>,
    read_beats: u64,
    write_beats: u64,
}

impl Axi4Memory {
    /// A memory of `size` bytes (all zero) on `<prefix>_*`.
    pub fn new(
        pins: &Pins,
        prefix: &str,
        size: usize,
        timing: Axi4Timing,
    ) -> Result<Self, SimError> {
        let i = |s: &str| pins.input(&format!("{prefix}_{s}"));
        let o = |s: &str| pins.output(&format!("{prefix}_{s}"));
        if timing.latency == 0 {
            return Err(SimError::BadValue {
                port: prefix.to_string(),
                reason: "an AXI4 memory needs a latency of at least 1 cycle".into(),
            });
        }
        let rdata = i("rdata")?;
        let coin = |k: u64| Coin::new(timing.stall_rate, timing.seed ^ k, "Axi4Memory stall rate");
        Ok(Axi4Memory {
            arvalid: o("arvalid")?,
            arready: i("arready")?,
            araddr: o("araddr")?,
            arlen: o("arlen")?,
            arburst: o("arburst")?,
            beat_bytes: (rdata.width() / 8) as usize,
            rdata,
            rresp: i("rresp")?,
            rlast: i("rlast")?,
            rvalid: i("rvalid")?,
            rready: o("rready")?,
            awvalid: o("awvalid")?,
            awready: i("awready")?,
            awaddr: o("awaddr")?,
            awlen: o("awlen")?,
            awburst: o("awburst")?,
            wdata: o("wdata")?,
            wstrb: o("wstrb")?,
            wvalid: o("wvalid")?,
            wready: i("wready")?,
            bresp: i("bresp")?,
            bvalid: i("bvalid")?,
            bready: o("bready")?,
            bytes: vec![0; size],
            latency: u64::from(timing.latency),
            coins: [
                coin(0xa1)?,
                coin(0xb2)?,
                coin(0xc3)?,
                coin(0xd4)?,
                coin(0xe5)?,
            ],
            reads: VecDeque::new(),
            read_beat: 0,
            read_offered: false,
            take_ar: false,
            take_aw: false,
            take_w: false,
            writes: VecDeque::new(),
            write_beat: 0,
            early_data: VecDeque::new(),
            write_outside: false,
            responses: VecDeque::new(),
            b_offered: false,
            errors: Vec::new(),
            read_beats: 0,
            write_beats: 0,
        })
    }

    /// The memory's bytes.
    pub fn bytes(&self) -> &[u8] {
        &self.bytes
    }

    pub fn bytes_mut(&mut self) -> &mut [u8] {
        &mut self.bytes
    }

    /// Read and write beats transferred.
    pub fn traffic(&self) -> (u64, u64) {
        (self.read_beats, self.write_beats)
    }

    /// The first access the memory could not serve (outside the memory, not INCR).
    pub fn check(&self) -> Result<(), SimError> {
        match self.errors.first() {
            None => Ok(()),
            Some(e) => Err(SimError::Runtime {
                message: format!("AXI4 memory: {e}"),
            }),
        }
    }

    fn beat_range(&mut self, addr: u64, beat: u64) -> Option<std::ops::Range<usize>> {
        let bb = self.beat_bytes as u64;
        let start = (addr / bb + beat) * bb;
        let end = start + bb;
        if end as usize > self.bytes.len() {
            self.errors.push(format!(
                "beat at byte address {start:#x} is outside the memory"
            ));
            return None;
        }
        Some(start as usize..end as usize)
    }

    fn write_beat(&mut self, burst: Burst, beat: u64, data: &[u32], strb: &[u32]) {
        match self.beat_range(burst.addr, beat) {
            Some(range) => {
                for (k, at) in range.enumerate() {
                    if strb[k / 32] >> (k % 32) & 1 == 1 {
                        self.bytes[at] = (data[k / 4] >> (8 * (k % 4))) as u8;
                    }
                }
            }
            None => self.write_outside = true,
        }
    }

    /// Applies the data beats that arrived before their burst's address.
    fn drain_early_data(&mut self, cycle: u64) {
        while let (Some(&burst), Some(_)) = (self.writes.front(), self.early_data.front()) {
            let (data, strb, _) = self.early_data.pop_front().expect("checked");
            self.write_beat(burst, self.write_beat, &data, &strb);
            self.end_write_beat(cycle);
        }
    }

    fn end_write_beat(&mut self, cycle: u64) {
        let burst = *self.writes.front().expect("a burst");
        self.write_beat += 1;
        if self.write_beat == burst.len + 1 {
            self.writes.pop_front();
            self.write_beat = 0;
            let resp = if self.write_outside { DECERR } else { OKAY };
            self.responses.push_back((cycle + self.latency, resp));
            self.write_outside = false;
        }
    }
}

impl Agent for Axi4Memory {
    fn drive(&mut self, cycle: u64, pins: &mut Pins) {
        self.take_ar = !self.coins[0].flip();
        self.take_aw = !self.coins[1].flip();
        self.take_w = !self.coins[2].flip();
        pins.set(self.arready, self.take_ar as u64);
        pins.set(self.awready, self.take_aw as u64);
        pins.set(self.wready, self.take_w as u64);
        // A beat once offered stays offered until taken.
        if !self.read_offered {
            self.read_offered =
                self.reads.front().is_some_and(|b| b.ready_at <= cycle) && !self.coins[3].flip();
        }
        pins.set(self.rvalid, self.read_offered as u64);
        if self.read_offered {
            let burst = *self.reads.front().expect("offered");
            let words = self.beat_bytes.div_ceil(4);
            let mut data = vec![0u32; words];
            let mut resp = DECERR;
            if let Some(range) = self.beat_range(burst.addr, self.read_beat) {
                for (k, at) in range.enumerate() {
                    data[k / 4] |= u32::from(self.bytes[at]) << (8 * (k % 4));
                }
                resp = OKAY;
            }
            pins.set_words(self.rdata, &data);
            pins.set(self.rlast, (self.read_beat == burst.len) as u64);
            pins.set(self.rresp, resp);
        } else {
            pins.set(self.rresp, OKAY);
        }
        if !self.b_offered {
            self.b_offered =
                self.responses.front().is_some_and(|&(t, _)| t <= cycle) && !self.coins[4].flip();
        }
        pins.set(self.bvalid, self.b_offered as u64);
        let bresp = self.responses.front().map_or(OKAY, |&(_, r)| r);
        pins.set(self.bresp, if self.b_offered { bresp } else { OKAY });
    }

    fn observe(&mut self, cycle: u64, pins: &Pins) {
        let hi = |p: OutputPort| pins.get(p) & 1 == 1;
        if self.take_ar && hi(self.arvalid) {
            let burst = pins.get(self.arburst);
            if burst != INCR {
                self.errors.push(format!(
                    "cycle {cycle}: read burst type {burst}, only INCR is served"
                ));
            }
            self.reads.push_back(Burst {
                addr: pins.get(self.araddr),
                len: pins.get(self.arlen),
                ready_at: cycle + self.latency,
            });
        }
        if self.read_offered && hi(self.rready) {
            self.read_offered = false;
            self.read_beats += 1;
            self.read_beat += 1;
            if self.read_beat == self.reads.front().expect("offered").len + 1 {
                self.reads.pop_front();
                self.read_beat = 0;
            }
        }
        if self.take_aw && hi(self.awvalid) {
            let burst = pins.get(self.awburst);
            if burst != INCR {
                self.errors.push(format!(
                    "cycle {cycle}: write burst type {burst}, only INCR is served"
                ));
            }
            self.writes.push_back(Burst {
                addr: pins.get(self.awaddr),
                len: pins.get(self.awlen),
                ready_at: cycle,
            });
            self.drain_early_data(cycle);
        }
        if self.take_w && hi(self.wvalid) {
            self.write_beats += 1;
            let data = pins.get_words(self.wdata).to_vec();
            let strb = pins.get_words(self.wstrb).to_vec();
            match self.writes.front().copied() {
                Some(burst) if self.early_data.is_empty() => {
                    self.write_beat(burst, self.write_beat, &data, &strb);
                    self.end_write_beat(cycle);
                }
                _ => self.early_data.push_back((data, strb, false)),
            }
        }
        if self.b_offered && hi(self.bready) {
            self.b_offered = false;
            self.responses.pop_front();
        }
    }

    fn done(&self) -> bool {
        true
    }
}

/// One channel's `VALID`, `READY` and payload signals, for the checker.
#[derive(Clone, Debug)]
struct Channel {
    name: &'static str,
    valid: Pin,
    ready: Pin,
    payload: Vec<(String, Pin)>,
    /// The payload offered in the previous cycle and not taken.
    pending: Option<Vec<Vec<u32>>>,
}

/// A passive AXI4 protocol checker on `<prefix>_*` (see the module docs). Read
/// [`Axi4Checker::check`] after the run.
#[derive(Clone, Debug)]
pub struct Axi4Checker {
    prefix: String,
    channels: Vec<Channel>,
    reset: Option<crate::axi::ResetPin>,
    reset_grace: u64,
    reset_cycles: u64,
    data_bytes: u64,
    /// Lengths of the write bursts whose address was taken, in order, and W beats taken of the
    /// current write burst; lengths of the read bursts in flight and R beats of the current one.
    aw_lens: VecDeque<u64>,
    w_beats: u64,
    /// Write bursts whose data ended (WLAST) before their address came, with their beat counts.
    w_done_early: VecDeque<u64>,
    ar_lens: VecDeque<u64>,
    r_beats: u64,
    violation: Option<String>,
}

const AR: usize = 0;
const R: usize = 1;
const AW: usize = 2;
const W: usize = 3;
const B: usize = 4;

impl Axi4Checker {
    pub fn new(pins: &Pins, prefix: &str) -> Result<Self, SimError> {
        let p = |s: &str| Pin::find(pins, &format!("{prefix}_{s}"));
        let channel = |name: &'static str, payload: &[&str]| -> Result<Channel, SimError> {
            Ok(Channel {
                name,
                valid: p(&format!("{name}valid"))?,
                ready: p(&format!("{name}ready"))?,
                payload: payload
                    .iter()
                    .map(|s| Ok((s.to_string(), p(s)?)))
                    .collect::<Result<_, SimError>>()?,
                pending: None,
            })
        };
        let data_bytes = u64::from(pins.output(&format!("{prefix}_wdata"))?.width() / 8);
        Ok(Axi4Checker {
            prefix: prefix.to_string(),
            channels: vec![
                channel("ar", &["araddr", "arlen", "arsize", "arburst"])?,
                channel("r", &["rdata", "rresp", "rlast"])?,
                channel("aw", &["awaddr", "awlen", "awsize", "awburst"])?,
                channel("w", &["wdata", "wstrb", "wlast"])?,
                channel("b", &["bresp"])?,
            ],
            reset: None,
            reset_grace: 0,
            reset_cycles: 0,
            data_bytes,
            aw_lens: VecDeque::new(),
            w_beats: 0,
            w_done_early: VecDeque::new(),
            ar_lens: VecDeque::new(),
            r_beats: 0,
            violation: None,
        })
    }

    /// Also require the master's `VALID`s low while `reset` is active, from its `grace + 1`-th
    /// cycle on.
    pub fn with_reset(mut self, reset: crate::axi::ResetPin, grace: u64) -> Self {
        self.reset = Some(reset);
        self.reset_grace = grace;
        self
    }

    /// The first violation, as an error naming the port, the cycle and the rule.
    pub fn check(&self) -> Result<(), SimError> {
        match &self.violation {
            None => Ok(()),
            Some(v) => Err(SimError::Runtime {
                message: format!("AXI4 protocol violation on `{}`: {v}", self.prefix),
            }),
        }
    }

    fn fail(&mut self, message: String) {
        if self.violation.is_none() {
            self.violation = Some(message);
        }
    }

    /// The burst rules of an address handshake.
    fn check_burst(&mut self, cycle: u64, dir: &str, addr: u64, len: u64, size: u64, kind: u64) {
        if kind != INCR {
            self.fail(format!(
                "cycle {cycle}: {dir} burst type {kind}, expected INCR (1)"
            ));
        }
        if (1 << size) > self.data_bytes {
            self.fail(format!(
                "cycle {cycle}: {dir} AxSIZE {size} ({} bytes) is wider than the {}-byte bus",
                1u64 << size,
                self.data_bytes
            ));
        }
        let bytes = (len + 1) << size;
        if addr % BOUNDARY + bytes > BOUNDARY {
            self.fail(format!(
                "cycle {cycle}: {dir} burst of {} beats at {addr:#x} crosses a 4 KiB boundary",
                len + 1
            ));
        }
    }
}

impl Agent for Axi4Checker {
    fn drive(&mut self, _cycle: u64, _pins: &mut Pins) {}

    fn observe(&mut self, cycle: u64, pins: &Pins) {
        if let Some(r) = self.reset {
            if (pins.driven(r.port) & 1 == 1) != r.active_low {
                self.reset_cycles += 1;
                for ch in [AR, AW, W] {
                    if self.channels[ch].valid.value(pins) & 1 == 1
                        && self.reset_cycles > self.reset_grace
                    {
                        let name = self.channels[ch].name.to_uppercase();
                        self.fail(format!("cycle {cycle}: {name}VALID is high during reset"));
                    }
                }
                for ch in &mut self.channels {
                    ch.pending = None;
                }
                return;
            }
            self.reset_cycles = 0;
        }
        let mut handshakes = [false; 5];
        let mut failures = Vec::new();
        for (k, ch) in self.channels.iter_mut().enumerate() {
            let valid = ch.valid.value(pins) & 1 == 1;
            let ready = ch.ready.value(pins) & 1 == 1;
            let payload: Vec<Vec<u32>> = ch
                .payload
                .iter()
                .map(|(_, p)| p.words(pins).to_vec())
                .collect();
            let upper = ch.name.to_uppercase();
            if let Some(old) = ch.pending.take() {
                if !valid {
                    failures.push(format!(
                        "cycle {cycle}: {upper}VALID dropped before the handshake"
                    ));
                } else if let Some(i) = (0..old.len()).find(|&i| old[i] != payload[i]) {
                    failures.push(format!(
                        "cycle {cycle}: {} changed while {upper}VALID was high and \
                         {upper}READY low (was {:x?}, now {:x?})",
                        ch.payload[i].0.to_uppercase(),
                        old[i],
                        payload[i]
                    ));
                }
            }
            if valid && ready {
                handshakes[k] = true;
            } else if valid {
                ch.pending = Some(payload);
            }
        }
        for f in failures {
            self.fail(f);
        }
        // Only the narrow signals (addresses, lengths, LAST) are read as numbers.
        let payload: Vec<Vec<Pin>> = self
            .channels
            .iter()
            .map(|ch| ch.payload.iter().map(|(_, p)| *p).collect())
            .collect();
        let get = |ch: usize, i: usize| payload[ch][i].value(pins);
        if handshakes[AR] {
            let (addr, len, size, kind) = (get(AR, 0), get(AR, 1), get(AR, 2), get(AR, 3));
            self.check_burst(cycle, "read", addr, len, size, kind);
            self.ar_lens.push_back(len);
        }
        if handshakes[AW] {
            let (addr, len, size, kind) = (get(AW, 0), get(AW, 1), get(AW, 2), get(AW, 3));
            self.check_burst(cycle, "write", addr, len, size, kind);
            match self.w_done_early.pop_front() {
                Some(beats) if beats != len + 1 => self.fail(format!(
                    "cycle {cycle}: WLAST came on beat {beats} of a write burst whose AWLEN \
                     is {len} ({} beats)",
                    len + 1
                )),
                Some(_) => {}
                None => self.aw_lens.push_back(len),
            }
        }
        if handshakes[W] {
            self.w_beats += 1;
            let last = get(W, 2) & 1 == 1;
            match self.aw_lens.front().copied() {
                Some(len) if last != (self.w_beats == len + 1) => {
                    self.fail(format!(
                        "cycle {cycle}: WLAST is {} on beat {} of a write burst whose AWLEN is \
                         {len} ({} beats)",
                        last as u8,
                        self.w_beats,
                        len + 1
                    ));
                }
                Some(_) => {}
                None if last => self.w_done_early.push_back(self.w_beats),
                None => {}
            }
            if last {
                if self.aw_lens.front().is_some() {
                    self.aw_lens.pop_front();
                }
                self.w_beats = 0;
            }
        }
        if handshakes[R] {
            self.r_beats += 1;
            let last = get(R, 2) & 1 == 1;
            match self.ar_lens.front().copied() {
                None => self.fail(format!("cycle {cycle}: a read beat with no read burst")),
                Some(len) => {
                    if last != (self.r_beats == len + 1) {
                        self.fail(format!(
                            "cycle {cycle}: RLAST is {} on beat {} of a read burst whose ARLEN \
                             is {len} ({} beats)",
                            last as u8,
                            self.r_beats,
                            len + 1
                        ));
                    }
                    if last || self.r_beats == len + 1 {
                        self.ar_lens.pop_front();
                        self.r_beats = 0;
                    }
                }
            }
        }
        let _ = handshakes[B];
    }
}
