//! A closed-loop external memory (a DRAM behind a memory controller) for designs with a
//! ready/valid memory port: a read-request channel (address, length in beats), a read-data
//! channel and a write channel (address and data per beat). Built once for every bus-shaped
//! port: the SAT system top uses it, and AXI bus models can wrap it.
//!
//! # Timing
//! - A read request accepted in cycle c offers its first beat in cycle `c + latency (+ extra)`
//!   at the earliest, then one beat per cycle as bandwidth allows; requests are served in order.
//!   `extra` is drawn per request, uniformly in `0..=extra_latency` from the seeded generator.
//! - Bandwidth: a byte budget grows by `bytes_per_cycle` every cycle, capped at one beat's bytes
//!   (`beat_bits / 8`); a read beat offered or a write beat accepted costs one beat's bytes. So
//!   a port of `beat_bits` at `bytes_per_cycle < beat_bits / 8` moves a beat every
//!   `ceil(beat_bytes / bytes_per_cycle)` cycles at best.
//! - Back-pressure (tests): with probability `stall_rate` each cycle, `req_ready` is low, no
//!   read beat is offered, and `wr_ready` is low (independent draws).
//!
//! Every decision is made from what was observed in earlier cycles (the [`Agent`] contract), so
//! `ready` never depends combinationally on `valid`.
//!
//! Addresses count beats. An access past the end of the memory is not performed; it is recorded
//! and reported by [`Memory::error`] (the harness turns it into an error naming the address).

use std::collections::VecDeque;

use crate::frames::{InputPort, OutputPort, Pins};
use crate::testbench::{Agent, Coin};
use crate::SimError;

/// Port names of a memory port (design side).
#[derive(Clone, Debug)]
pub struct MemoryPortNames<'a> {
    pub rd_req_valid: &'a str,
    pub rd_req_ready: &'a str,
    pub rd_req_addr: &'a str,
    pub rd_req_len: &'a str,
    pub rd_valid: &'a str,
    pub rd_ready: &'a str,
    pub rd_data: &'a str,
    pub wr_valid: &'a str,
    pub wr_ready: &'a str,
    pub wr_addr: &'a str,
    pub wr_data: &'a str,
}

/// Latency and bandwidth, plus optional seeded randomness for tests.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct MemoryTiming {
    /// Cycles from a read request's acceptance to its first data beat (>= 1).
    pub latency: u32,
    /// Sustained bytes per cycle (read and write share it), 1 ..= beat bytes.
    pub bytes_per_cycle: u32,
    /// Largest random extra latency per read request (0: none).
    pub extra_latency: u32,
    /// Probability of a stall cycle on each channel, `0 <= stall_rate < 1`.
    pub stall_rate: f64,
    /// Seed of the random draws.
    pub seed: u64,
}

impl MemoryTiming {
    /// A memory with fixed latency and bandwidth and no randomness.
    pub fn fixed(latency: u32, bytes_per_cycle: u32) -> MemoryTiming {
        MemoryTiming {
            latency,
            bytes_per_cycle,
            extra_latency: 0,
            stall_rate: 0.0,
            seed: 0,
        }
    }
}

#[derive(Clone, Copy, Debug)]
struct ReadBurst {
    addr: u64,
    beats: u64,
    first_at: u64,
}

struct Ports {
    rd_req_valid: OutputPort,
    rd_req_ready: InputPort,
    rd_req_addr: OutputPort,
    rd_req_len: OutputPort,
    rd_valid: InputPort,
    rd_ready: OutputPort,
    rd_data: InputPort,
    wr_valid: OutputPort,
    wr_ready: InputPort,
    wr_addr: OutputPort,
    wr_data: OutputPort,
}

/// The memory: `beats` beats of `beat_bits` bits, answering one design's memory port.
pub struct Memory {
    ports: Ports,
    words_per_beat: usize,
    beat_bytes: i64,
    data: Vec<u32>,
    timing: MemoryTiming,
    budget: i64,
    bursts: VecDeque<ReadBurst>,
    // What this cycle drove (decided in `drive`, checked in `observe`).
    req_ready: bool,
    rd_offer: bool,
    wr_ready: bool,
    stall: Coin,
    rng: u64,
    error: Option<String>,
    read_beats: u64,
    written_beats: u64,
}

impl Memory {
    /// A zeroed memory of `beats` beats on the port `names` of the design whose pins are `pins`
    /// (the data ports' width is the beat width).
    pub fn new(
        pins: &Pins,
        names: &MemoryPortNames,
        beats: usize,
        timing: MemoryTiming,
    ) -> Result<Memory, SimError> {
        let rd_data = pins.input(names.rd_data)?;
        let beat_bits = rd_data.width();
        let bad = |what: &str, reason: String| SimError::BadValue {
            port: what.to_string(),
            reason,
        };
        if timing.latency == 0 {
            return Err(bad("memory latency", "must be at least 1 cycle".into()));
        }
        let beat_bytes = beat_bits.div_ceil(8);
        if timing.bytes_per_cycle == 0 || timing.bytes_per_cycle > beat_bytes {
            return Err(bad(
                "memory bytes per cycle",
                format!(
                    "{} must be 1 ..= {beat_bytes} (one beat)",
                    timing.bytes_per_cycle
                ),
            ));
        }
        let words_per_beat = beat_bits.div_ceil(32) as usize;
        Ok(Memory {
            ports: Ports {
                rd_req_valid: pins.output(names.rd_req_valid)?,
                rd_req_ready: pins.input(names.rd_req_ready)?,
                rd_req_addr: pins.output(names.rd_req_addr)?,
                rd_req_len: pins.output(names.rd_req_len)?,
                rd_valid: pins.input(names.rd_valid)?,
                rd_ready: pins.output(names.rd_ready)?,
                rd_data,
                wr_valid: pins.output(names.wr_valid)?,
                wr_ready: pins.input(names.wr_ready)?,
                wr_addr: pins.output(names.wr_addr)?,
                wr_data: pins.output(names.wr_data)?,
            },
            words_per_beat,
            beat_bytes: i64::from(beat_bytes),
            data: vec![0; beats * words_per_beat],
            stall: Coin::new(
                timing.stall_rate,
                timing.seed ^ 0x5eed_57a1,
                "memory stall rate",
            )?,
            rng: timing.seed,
            timing,
            budget: i64::from(beat_bytes),
            bursts: VecDeque::new(),
            req_ready: false,
            rd_offer: false,
            wr_ready: false,
            error: None,
            read_beats: 0,
            written_beats: 0,
        })
    }

    /// Words per beat (little-endian u32 words).
    pub fn words_per_beat(&self) -> usize {
        self.words_per_beat
    }

    /// Beats the memory holds.
    pub fn beats(&self) -> usize {
        self.data.len() / self.words_per_beat
    }

    /// Writes `words` (whole beats) from beat `addr` on, before or between runs.
    pub fn load(&mut self, addr: usize, words: &[u32]) -> Result<(), SimError> {
        let start = addr * self.words_per_beat;
        if !words.len().is_multiple_of(self.words_per_beat) || start + words.len() > self.data.len()
        {
            return Err(SimError::BadValue {
                port: "memory image".into(),
                reason: format!(
                    "{} words at beat {addr} do not fit whole beats of a {}-beat memory",
                    words.len(),
                    self.beats()
                ),
            });
        }
        self.data[start..start + words.len()].copy_from_slice(words);
        Ok(())
    }

    /// The words of `count` beats from beat `addr`.
    pub fn read(&self, addr: usize, count: usize) -> &[u32] {
        &self.data[addr * self.words_per_beat..(addr + count) * self.words_per_beat]
    }

    /// The first out-of-range access, if any.
    pub fn error(&self) -> Option<&str> {
        self.error.as_deref()
    }

    /// Beats read and written so far.
    pub fn traffic(&self) -> (u64, u64) {
        (self.read_beats, self.written_beats)
    }

    fn draw_extra(&mut self) -> u64 {
        if self.timing.extra_latency == 0 {
            return 0;
        }
        // SplitMix64, like the stall coin: the same draws on every machine.
        self.rng = self.rng.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.rng;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        (z ^ (z >> 31)) % (u64::from(self.timing.extra_latency) + 1)
    }

    fn fail(&mut self, what: String) {
        if self.error.is_none() {
            self.error = Some(what);
        }
    }
}

impl Agent for Memory {
    fn drive(&mut self, cycle: u64, pins: &mut Pins) {
        self.budget = (self.budget + i64::from(self.timing.bytes_per_cycle)).min(self.beat_bytes);
        self.req_ready = !self.stall.flip();
        let rd_stall = self.stall.flip();
        self.wr_ready = !self.stall.flip() && self.budget >= self.beat_bytes;
        self.rd_offer = !rd_stall
            && self.budget >= self.beat_bytes
            && self.bursts.front().is_some_and(|b| cycle >= b.first_at);
        pins.set(self.ports.rd_req_ready, self.req_ready as u64);
        pins.set(self.ports.wr_ready, self.wr_ready as u64);
        pins.set(self.ports.rd_valid, self.rd_offer as u64);
        if self.rd_offer {
            let addr = self.bursts.front().map_or(0, |b| b.addr) as usize;
            let w = self.words_per_beat;
            if addr < self.beats() {
                let words = self.data[addr * w..(addr + 1) * w].to_vec();
                pins.set_words(self.ports.rd_data, &words);
            } else {
                pins.set_words(self.ports.rd_data, &vec![0; w]);
            }
        }
    }

    fn observe(&mut self, cycle: u64, pins: &Pins) {
        let p = &self.ports;
        let req = self.req_ready && pins.get(p.rd_req_valid) & 1 == 1;
        let req_addr = pins.get(p.rd_req_addr);
        let req_len = pins.get(p.rd_req_len);
        let rd = self.rd_offer && pins.get(p.rd_ready) & 1 == 1;
        let wr = self.wr_ready && pins.get(p.wr_valid) & 1 == 1;
        let wr_addr = pins.get(p.wr_addr);
        let wr_words = if wr {
            pins.get_words(p.wr_data).to_vec()
        } else {
            Vec::new()
        };
        if rd {
            self.budget -= self.beat_bytes;
            self.read_beats += 1;
            let beats = self.beats() as u64;
            let head = self.bursts.front_mut().expect("a beat was offered");
            let a = head.addr;
            head.addr += 1;
            head.beats -= 1;
            if head.beats == 0 {
                self.bursts.pop_front();
            }
            if a >= beats {
                self.fail(format!("read of beat {a} past the end of the memory"));
            }
        }
        if wr {
            self.budget -= self.beat_bytes;
            self.written_beats += 1;
            let w = self.words_per_beat;
            let a = wr_addr as usize;
            if a < self.beats() {
                self.data[a * w..(a + 1) * w].copy_from_slice(&wr_words[..w]);
            } else {
                self.fail(format!("write of beat {a} past the end of the memory"));
            }
        }
        if req {
            if req_len == 0 {
                self.fail(format!("read request of 0 beats at beat {req_addr}"));
            } else {
                let first_at = cycle + u64::from(self.timing.latency) + self.draw_extra();
                self.bursts.push_back(ReadBurst {
                    addr: req_addr,
                    beats: req_len,
                    first_at,
                });
            }
        }
    }
}
