//! Closed-loop testbenches: agents (bus-functional models) that answer the
//! design's outputs every cycle, and generic valid/ready stream agents.
//!
//! A cycle of [`VerilatedModel::cycle_with`] is: every agent [`Agent::drive`]s
//! its inputs, the model runs one [`VerilatedModel::step`] (apply, settle,
//! sample, rising edge), then every agent [`Agent::observe`]s the sampled
//! outputs. Because outputs are sampled after the inputs of the same cycle
//! settle, an agent sees in `observe` whether a handshake it drove completed
//! at that cycle's rising edge: `valid && ready` as sampled means "transferred
//! at the edge ending this cycle".
//!
//! Agents decide their inputs from what they observed in earlier cycles
//! (registered, Moore-style behaviour). An input that must answer an output
//! combinationally within one cycle cannot be modelled this way; none of the
//! AXI-style protocols need it.
//!
//! Only the Verilator backend runs closed loop; [`crate::Icarus`] runs a
//! precomputed [`crate::Stimulus`] only.

use crate::frames::{InputPort, OutputPort, Pins, Stimulus, Trace};
use crate::{DesignSpec, PortDir, SimError, VerilatedModel};

/// A bus-functional model: drives some inputs and watches some outputs, every
/// cycle.
pub trait Agent {
    /// Sets this agent's inputs for cycle `cycle`, from what it observed in
    /// earlier cycles. Inputs it does not set keep their values.
    fn drive(&mut self, cycle: u64, pins: &mut Pins);
    /// Sees the outputs sampled in `cycle`, before that cycle's rising edge.
    fn observe(&mut self, cycle: u64, pins: &Pins);
    /// Whether this agent has finished its work; [`VerilatedModel::run_until_done`]
    /// stops once every agent is done. Passive agents (monitors) are always done.
    fn done(&self) -> bool {
        true
    }
}

impl VerilatedModel {
    /// One closed-loop cycle with `agents` (see the module docs). Returns the
    /// cycle's number.
    pub fn cycle_with(&mut self, agents: &mut [&mut dyn Agent]) -> Result<u64, SimError> {
        let cycle = self.cycle();
        for a in agents.iter_mut() {
            a.drive(cycle, self.pins_mut());
        }
        self.step()?;
        for a in agents.iter_mut() {
            a.observe(cycle, self.pins());
        }
        Ok(cycle)
    }

    /// Runs closed-loop cycles until every agent is [`Agent::done`] (checked
    /// before each cycle) and returns the number of cycles run. Fails after
    /// `max_cycles` cycles, naming the agents still busy: a stuck handshake
    /// is an error, not a hang.
    pub fn run_until_done(
        &mut self,
        agents: &mut [&mut dyn Agent],
        max_cycles: u64,
    ) -> Result<u64, SimError> {
        let first = self.cycle();
        for n in 0..=max_cycles {
            if agents.iter().all(|a| a.done()) {
                return Ok(n);
            }
            if n == max_cycles {
                break;
            }
            self.cycle_with(agents)?;
        }
        let busy: Vec<String> = agents
            .iter()
            .enumerate()
            .filter(|(_, a)| !a.done())
            .map(|(i, _)| format!("#{i}"))
            .collect();
        Err(SimError::Runtime {
            message: format!(
                "agents {} not done after {max_cycles} cycles (cycles {first}..{}); \
                 a handshake is stuck or the limit is too small",
                busy.join(", "),
                self.cycle()
            ),
        })
    }
}

/// SplitMix64: a tiny seeded generator, so that stall patterns are the same
/// on every machine and in every version (no dependency needed).
#[derive(Clone, Debug)]
pub(crate) struct Coin {
    state: u64,
    /// `true` with probability `threshold / 2^64`.
    threshold: u64,
}

impl Coin {
    pub(crate) fn new(rate: f64, seed: u64, what: &str) -> Result<Self, SimError> {
        if !(0.0..1.0).contains(&rate) {
            return Err(SimError::BadValue {
                port: what.to_string(),
                reason: format!("rate {rate} must be in 0 <= rate < 1"),
            });
        }
        Ok(Coin {
            state: seed,
            threshold: (rate * 18_446_744_073_709_551_616.0) as u64,
        })
    }
    pub(crate) fn flip(&mut self) -> bool {
        if self.threshold == 0 {
            return false;
        }
        self.state = self.state.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        (z ^ (z >> 31)) < self.threshold
    }
}

/// A valid/ready stream source (a design input stream): offers its beats in
/// order, holding `valid` and the data until the design accepts them (AXI4-
/// Stream rules), with optional random cycles without `valid` between beats.
#[derive(Clone, Debug)]
pub struct StreamSource {
    valid: InputPort,
    ready: OutputPort,
    data: InputPort,
    words: usize,
    beats: Vec<u32>,
    next: usize,
    offering: bool,
    gaps: Coin,
    accepted: Vec<u64>,
}

impl StreamSource {
    /// A source on the design inputs `valid` and `data` and the design output
    /// `ready`, with no beats yet and no gaps.
    pub fn new(pins: &Pins, valid: &str, ready: &str, data: &str) -> Result<Self, SimError> {
        let data = pins.input(data)?;
        Ok(StreamSource {
            valid: pins.input(valid)?,
            ready: pins.output(ready)?,
            words: data.width().div_ceil(32) as usize,
            data,
            beats: Vec::new(),
            next: 0,
            offering: false,
            gaps: Coin::new(0.0, 0, "")?,
            accepted: Vec::new(),
        })
    }

    /// In each cycle without a pending beat, leaves `valid` low with
    /// probability `rate` (`0 <= rate < 1`), from a generator seeded by `seed`.
    pub fn with_gaps(mut self, rate: f64, seed: u64) -> Result<Self, SimError> {
        self.gaps = Coin::new(rate, seed, "StreamSource gap rate")?;
        Ok(self)
    }

    /// Appends a beat of at most 64 bits.
    pub fn push(&mut self, value: u64) -> Result<(), SimError> {
        self.push_words(&[value as u32, (value >> 32) as u32])
    }

    /// Appends a beat given as little-endian words (missing high words are 0).
    pub fn push_words(&mut self, words: &[u32]) -> Result<(), SimError> {
        if !self.data.fits(words) {
            return Err(SimError::BadValue {
                port: "StreamSource data".into(),
                reason: format!(
                    "beat {} does not fit in {} bits",
                    self.len(),
                    self.data.width()
                ),
            });
        }
        let start = self.beats.len();
        self.beats.resize(start + self.words, 0);
        let k = words.len().min(self.words);
        self.beats[start..start + k].copy_from_slice(&words[..k]);
        Ok(())
    }

    /// Number of beats pushed.
    pub fn len(&self) -> usize {
        self.beats.len() / self.words
    }

    pub fn is_empty(&self) -> bool {
        self.beats.is_empty()
    }

    /// Cycle numbers at whose rising edge each beat was accepted, in order.
    pub fn accepted_cycles(&self) -> &[u64] {
        &self.accepted
    }

    /// The index of the beat offered in this cycle, if any (valid once `drive` has run).
    pub(crate) fn offered(&self) -> Option<usize> {
        self.offering.then_some(self.next)
    }
}

impl Agent for StreamSource {
    fn drive(&mut self, _cycle: u64, pins: &mut Pins) {
        if !self.offering && self.next < self.len() {
            self.offering = !self.gaps.flip();
        }
        pins.set(self.valid, self.offering as u64);
        if self.offering {
            let b = self.next * self.words;
            pins.set_words(self.data, &self.beats[b..b + self.words]);
        }
    }

    fn observe(&mut self, cycle: u64, pins: &Pins) {
        if self.offering && pins.get(self.ready) & 1 == 1 {
            self.accepted.push(cycle);
            self.next += 1;
            self.offering = false;
        }
    }

    fn done(&self) -> bool {
        self.next == self.len()
    }
}

/// A valid/ready stream sink (a design output stream) with random
/// back-pressure: `ready` is low with a configurable probability each cycle.
/// Records every accepted beat and the cycle it was accepted in.
#[derive(Clone, Debug)]
pub struct StreamSink {
    valid: OutputPort,
    ready: InputPort,
    data: OutputPort,
    words: usize,
    stalls: Coin,
    ready_now: bool,
    expected: usize,
    beats: Vec<u32>,
    cycles: Vec<u64>,
}

impl StreamSink {
    /// A sink on the design outputs `valid` and `data` and the design input
    /// `ready`, always ready, expecting no beats.
    pub fn new(pins: &Pins, valid: &str, ready: &str, data: &str) -> Result<Self, SimError> {
        let data = pins.output(data)?;
        Ok(StreamSink {
            valid: pins.output(valid)?,
            ready: pins.input(ready)?,
            words: data.width().div_ceil(32) as usize,
            data,
            stalls: Coin::new(0.0, 0, "")?,
            ready_now: false,
            expected: 0,
            beats: Vec::new(),
            cycles: Vec::new(),
        })
    }

    /// Holds `ready` low with probability `rate` (`0 <= rate < 1`) in each
    /// cycle, from a generator seeded by `seed`.
    pub fn with_stalls(mut self, rate: f64, seed: u64) -> Result<Self, SimError> {
        self.stalls = Coin::new(rate, seed, "StreamSink stall rate")?;
        Ok(self)
    }

    /// The sink is [`Agent::done`] once it has received `n` beats (memory for
    /// them is reserved now, so recording does not allocate per cycle).
    pub fn expect(mut self, n: usize) -> Self {
        self.expected = n;
        self.beats.reserve(n * self.words);
        self.cycles.reserve(n);
        self
    }

    /// Number of beats received.
    pub fn len(&self) -> usize {
        self.cycles.len()
    }

    pub fn is_empty(&self) -> bool {
        self.cycles.is_empty()
    }

    /// The words of beat `i`.
    pub fn beat(&self, i: usize) -> &[u32] {
        &self.beats[i * self.words..(i + 1) * self.words]
    }

    /// Every beat's low 64 bits, in order.
    pub fn values(&self) -> Vec<u64> {
        (0..self.len())
            .map(|i| {
                let b = self.beat(i);
                b[0] as u64 | b.get(1).map_or(0, |&h| (h as u64) << 32)
            })
            .collect()
    }

    /// Cycle numbers at whose rising edge each beat was accepted, in order.
    pub fn cycles(&self) -> &[u64] {
        &self.cycles
    }
}

impl Agent for StreamSink {
    fn drive(&mut self, _cycle: u64, pins: &mut Pins) {
        self.ready_now = !self.stalls.flip();
        pins.set(self.ready, self.ready_now as u64);
    }

    fn observe(&mut self, cycle: u64, pins: &Pins) {
        if self.ready_now && pins.get(self.valid) & 1 == 1 {
            self.beats.extend_from_slice(pins.get_words(self.data));
            self.cycles.push(cycle);
        }
    }

    fn done(&self) -> bool {
        self.len() >= self.expected
    }
}

/// A passive agent that records a closed-loop run: every cycle's inputs as a [`Stimulus`] (so
/// another simulator, such as [`crate::Icarus`], can replay exactly the same cycles) and every
/// cycle's outputs. Put it last among the agents, so it sees the inputs the others drove.
pub struct Recorder {
    inputs: Vec<(usize, InputPort)>,
    outputs: Vec<(String, OutputPort)>,
    stimulus: Stimulus,
    sampled: Vec<Vec<u32>>,
}

impl Recorder {
    /// A recorder for the design `spec` whose model exposes `pins`.
    pub fn new(spec: &DesignSpec, pins: &Pins) -> Result<Self, SimError> {
        let stimulus = Stimulus::try_new(spec)?;
        let mut inputs = Vec::new();
        let mut outputs = Vec::new();
        for p in &spec.ports {
            match p.dir {
                PortDir::Input => {
                    let id = stimulus
                        .port_id(&p.name)
                        .expect("the stimulus has the spec's ports");
                    inputs.push((id, pins.input(&p.name)?));
                }
                PortDir::Output => outputs.push((p.name.clone(), pins.output(&p.name)?)),
            }
        }
        Ok(Recorder {
            inputs,
            outputs,
            stimulus,
            sampled: Vec::new(),
        })
    }

    /// The recorded inputs, one captured cycle per closed-loop cycle.
    pub fn stimulus(&self) -> &Stimulus {
        &self.stimulus
    }

    /// The first cycle (counted from the recording's start) and output where `trace`, a replay
    /// of [`Recorder::stimulus`], differs from the recorded outputs in a bit the replay knows;
    /// `None` if it never does.
    pub fn first_difference(&self, trace: &Trace) -> Option<(usize, String)> {
        for (cycle, frame) in self.sampled.iter().enumerate() {
            let mut at = 0;
            for (name, port) in &self.outputs {
                let n = port.width().div_ceil(32) as usize;
                let replayed = trace.words(cycle, name);
                let unknown = trace.unknown_words(cycle, name);
                // Bits the replaying simulator leaves unknown (X: registers without a reset
                // before their first load) are not compared.
                let differs = (0..n).any(|w| {
                    let mask = !unknown.map_or(0, |u| u[w]);
                    replayed[w] & mask != frame[at + w] & mask
                });
                if differs {
                    return Some((cycle, name.clone()));
                }
                at += n;
            }
        }
        (trace.len() != self.sampled.len()).then(|| (trace.len(), "(cycle count)".to_string()))
    }
}

impl Agent for Recorder {
    fn drive(&mut self, _cycle: u64, pins: &mut Pins) {
        for (id, port) in &self.inputs {
            self.stimulus.set_id(*id, pins.driven_words(*port));
        }
        self.stimulus.step(true);
    }

    fn observe(&mut self, _cycle: u64, pins: &Pins) {
        let mut frame = Vec::new();
        for (_, port) in &self.outputs {
            frame.extend_from_slice(pins.get_words(*port));
        }
        self.sampled.push(frame);
    }
}
