//! Input frames ([`Stimulus`]), output frames ([`Trace`]) and their layout.

use std::collections::HashMap;
use std::sync::Arc;

use crate::{DesignSpec, PortDir, SimError};

/// Where one port lives inside a frame.
#[derive(Debug, Clone)]
pub(crate) struct Slot {
    pub name: String,
    pub width: u32,
    /// First word of the port inside the frame.
    pub offset: usize,
    pub words: usize,
    /// Mask of the valid bits of the last word.
    pub top_mask: u32,
}

/// Frame layout of a design: inputs and outputs each packed port after port,
/// in spec order. Shared (`Arc`) by stimuli, traces and models of one design.
#[derive(Debug)]
pub(crate) struct Layout {
    pub signature: String,
    pub inputs: Vec<Slot>,
    pub outputs: Vec<Slot>,
    pub in_words: usize,
    pub out_words: usize,
    in_index: HashMap<String, usize>,
    out_index: HashMap<String, usize>,
}

impl Layout {
    pub fn new(spec: &DesignSpec) -> Result<Arc<Layout>, SimError> {
        spec.validate()?;
        let (mut inputs, mut outputs) = (Vec::new(), Vec::new());
        let (mut in_words, mut out_words) = (0, 0);
        for p in &spec.ports {
            let (list, words) = match p.dir {
                PortDir::Input => (&mut inputs, &mut in_words),
                PortDir::Output => (&mut outputs, &mut out_words),
            };
            let n = p.words();
            let rem = p.width % 32;
            list.push(Slot {
                name: p.name.clone(),
                width: p.width,
                offset: *words,
                words: n,
                top_mask: if rem == 0 {
                    u32::MAX
                } else {
                    (1u32 << rem) - 1
                },
            });
            *words += n;
        }
        let index = |v: &[Slot]| {
            v.iter()
                .enumerate()
                .map(|(i, s)| (s.name.clone(), i))
                .collect()
        };
        Ok(Arc::new(Layout {
            signature: spec.signature(),
            in_index: index(&inputs),
            out_index: index(&outputs),
            inputs,
            outputs,
            in_words,
            out_words,
        }))
    }

    pub fn same_design(&self, other: &Layout) -> bool {
        std::ptr::eq(self, other) || self.signature == other.signature
    }

    fn known(slots: &[Slot]) -> String {
        slots
            .iter()
            .map(|s| s.name.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// Whether a value given as little-endian words fits in a port of `n` words
/// whose last word has the valid bits `top_mask`. Values that do not fit are
/// rejected rather than truncated: the simulators require the bits above the
/// width to be zero (Verilator treats them as undefined).
fn fits(words: &[u32], n: usize, top_mask: u32) -> bool {
    words.iter().skip(n).all(|&w| w == 0) && words.get(n - 1).copied().unwrap_or(0) & !top_mask == 0
}

/// Per-cycle input frames.
///
/// The builder keeps the current value of every input port (initially 0);
/// values persist until changed. [`Stimulus::step`] closes a cycle. See the
/// crate docs for the exact cycle semantics.
#[derive(Clone, Debug)]
pub struct Stimulus {
    pub(crate) layout: Arc<Layout>,
    current: Vec<u32>,
    pub(crate) frames: Vec<u32>,
    pub(crate) capture: Vec<u8>,
    captures: usize,
}

impl Stimulus {
    /// Panics if the spec is invalid (a programmer error in the generator);
    /// use [`Stimulus::try_new`] to get the error instead.
    pub fn new(spec: &DesignSpec) -> Self {
        Self::try_new(spec).unwrap_or_else(|e| panic!("Stimulus::new: {e}"))
    }

    pub fn try_new(spec: &DesignSpec) -> Result<Self, SimError> {
        let layout = Layout::new(spec)?;
        Ok(Stimulus {
            current: vec![0; layout.in_words],
            layout,
            frames: Vec::new(),
            capture: Vec::new(),
            captures: 0,
        })
    }

    /// Index of an input port for [`Stimulus::set_id`].
    pub fn port_id(&self, name: &str) -> Option<usize> {
        self.layout.in_index.get(name).copied()
    }

    fn id_or_err(&self, port: &str) -> Result<usize, SimError> {
        self.port_id(port).ok_or_else(|| SimError::UnknownPort {
            port: port.to_string(),
            known: Layout::known(&self.layout.inputs),
        })
    }

    /// Sets an input port of at most 64 bits. Panics on an unknown port or a
    /// value that does not fit (programmer errors); see [`Stimulus::try_set`].
    pub fn set(&mut self, port: &str, value: u64) {
        self.try_set(port, value)
            .unwrap_or_else(|e| panic!("Stimulus::set: {e}"));
    }

    pub fn try_set(&mut self, port: &str, value: u64) -> Result<(), SimError> {
        let id = self.id_or_err(port)?;
        let width = self.layout.inputs[id].width;
        if width < 64 && value >> width != 0 {
            return Err(SimError::BadValue {
                port: port.to_string(),
                reason: format!("value {value:#x} does not fit in {width} bits"),
            });
        }
        self.try_set_id(id, &[value as u32, (value >> 32) as u32])
    }

    /// Sets a port of any width from little-endian words (`ceil(width/32)`
    /// of them, or fewer: missing high words are zero). Panics on an unknown
    /// port or a value that does not fit; see [`Stimulus::try_set_words`].
    pub fn set_words(&mut self, port: &str, words: &[u32]) {
        self.try_set_words(port, words)
            .unwrap_or_else(|e| panic!("Stimulus::set_words: {e}"));
    }

    pub fn try_set_words(&mut self, port: &str, words: &[u32]) -> Result<(), SimError> {
        let id = self.id_or_err(port)?;
        self.try_set_id(id, words)
    }

    /// Fast path: sets input `id` (from [`Stimulus::port_id`]). Panics on a
    /// bad id or a value that does not fit.
    #[inline]
    pub fn set_id(&mut self, id: usize, words: &[u32]) {
        if let Err(e) = self.try_set_id(id, words) {
            panic!("Stimulus::set_id: {e}");
        }
    }

    #[inline]
    pub fn try_set_id(&mut self, id: usize, words: &[u32]) -> Result<(), SimError> {
        let Some(slot) = self.layout.inputs.get(id) else {
            return Err(SimError::UnknownPort {
                port: format!("#{id}"),
                known: Layout::known(&self.layout.inputs),
            });
        };
        if !fits(words, slot.words, slot.top_mask) {
            return Err(SimError::BadValue {
                port: slot.name.clone(),
                reason: format!("value does not fit in {} bits", slot.width),
            });
        }
        let dst = &mut self.current[slot.offset..slot.offset + slot.words];
        let n = words.len().min(slot.words);
        dst[..n].copy_from_slice(&words[..n]);
        dst[n..].fill(0);
        Ok(())
    }

    /// Current value of an input port (what the next `step` will apply).
    pub fn current_words(&self, port: &str) -> Option<&[u32]> {
        let s = &self.layout.inputs[self.port_id(port)?];
        Some(&self.current[s.offset..s.offset + s.words])
    }

    /// Closes the current cycle: its inputs are applied, combinational logic
    /// settles, outputs are sampled if `capture`, then one rising clock edge.
    #[inline]
    pub fn step(&mut self, capture: bool) {
        self.frames.extend_from_slice(&self.current);
        self.capture.push(capture as u8);
        self.captures += capture as usize;
    }

    /// `n` cycles with unchanged inputs and no capture.
    pub fn idle(&mut self, n: u64) {
        for _ in 0..n {
            self.step(false);
        }
    }

    /// Number of closed cycles.
    pub fn cycles(&self) -> u64 {
        self.capture.len() as u64
    }

    /// Number of closed cycles that capture outputs.
    pub fn captures(&self) -> usize {
        self.captures
    }

    /// Forgets the closed cycles but keeps the current input values, so a long
    /// simulation can be run in chunks without growing memory.
    pub fn clear_cycles(&mut self) {
        self.frames.clear();
        self.capture.clear();
        self.captures = 0;
    }

    /// Reserves memory for `cycles` more cycles.
    pub fn reserve(&mut self, cycles: usize) {
        self.frames.reserve(cycles * self.layout.in_words);
        self.capture.reserve(cycles);
    }
}

/// Captured output frames, in capture order.
#[derive(Clone, Debug)]
pub struct Trace {
    pub(crate) layout: Arc<Layout>,
    pub(crate) data: Vec<u32>,
    /// Icarus only: set bits mark X/Z output bits (whose value bits are 0).
    pub(crate) unknown: Option<Vec<u32>>,
    pub(crate) len: usize,
    /// Cycles simulated by the run that produced this trace.
    pub cycles: u64,
    /// Cycle number (since the model was created) of the run's first cycle.
    pub first_cycle: u64,
}

/// The first difference between two traces, see [`Trace::first_mismatch`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TraceMismatch {
    pub capture: usize,
    pub port: String,
    pub left: Vec<u32>,
    pub right: Vec<u32>,
}

impl std::fmt::Display for TraceMismatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let hex = |w: &[u32]| {
            w.iter()
                .rev()
                .map(|x| format!("{x:08x}"))
                .collect::<Vec<_>>()
                .join("_")
        };
        write!(
            f,
            "capture {} port {}: {} != {}",
            self.capture,
            self.port,
            hex(&self.left),
            hex(&self.right)
        )
    }
}

impl Trace {
    /// Number of captured frames.
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Index of an output port for [`Trace::get_id`].
    pub fn port_id(&self, name: &str) -> Option<usize> {
        self.layout.out_index.get(name).copied()
    }

    /// The whole output frame of one capture.
    pub fn frame(&self, capture: usize) -> &[u32] {
        let w = self.layout.out_words;
        &self.data[capture * w..(capture + 1) * w]
    }

    /// Words of output `id` at `capture`. Panics if either is out of range.
    #[inline]
    pub fn get_id(&self, capture: usize, id: usize) -> &[u32] {
        assert!(
            capture < self.len,
            "capture {capture} out of range (trace has {})",
            self.len
        );
        let s = &self.layout.outputs[id];
        let base = capture * self.layout.out_words + s.offset;
        &self.data[base..base + s.words]
    }

    /// Words of an output port. Panics on an unknown port or capture.
    pub fn words(&self, capture: usize, port: &str) -> &[u32] {
        match self.port_id(port) {
            Some(id) => self.get_id(capture, id),
            None => panic!(
                "Trace::words: unknown output port {port:?}; ports are: {}",
                Layout::known(&self.layout.outputs)
            ),
        }
    }

    /// Value of an output port of at most 64 bits. Panics on an unknown port,
    /// a capture out of range, or a wider port (use [`Trace::words`]).
    pub fn get(&self, capture: usize, port: &str) -> u64 {
        self.try_get(capture, port)
            .unwrap_or_else(|e| panic!("Trace::get: {e}"))
    }

    pub fn try_get(&self, capture: usize, port: &str) -> Result<u64, SimError> {
        let id = self.port_id(port).ok_or_else(|| SimError::UnknownPort {
            port: port.to_string(),
            known: Layout::known(&self.layout.outputs),
        })?;
        let s = &self.layout.outputs[id];
        if s.width > 64 {
            return Err(SimError::BadValue {
                port: port.to_string(),
                reason: format!("{} bits do not fit in u64; use Trace::words", s.width),
            });
        }
        if capture >= self.len {
            return Err(SimError::BadValue {
                port: port.to_string(),
                reason: format!("capture {capture} out of range (trace has {})", self.len),
            });
        }
        let w = self.get_id(capture, id);
        Ok(w[0] as u64 | w.get(1).map_or(0, |&h| (h as u64) << 32))
    }

    /// Icarus only: mask of X/Z bits of a port (`None` for Verilator, which
    /// has no X). Value bits under the mask read as 0.
    pub fn unknown_words(&self, capture: usize, port: &str) -> Option<&[u32]> {
        let unknown = self.unknown.as_ref()?;
        let s = &self.layout.outputs[self.port_id(port)?];
        let base = capture * self.layout.out_words + s.offset;
        unknown.get(base..base + s.words)
    }

    /// True if any captured output bit was X or Z (Icarus only).
    pub fn has_unknown(&self) -> bool {
        self.unknown
            .as_ref()
            .is_some_and(|u| u.iter().any(|&w| w != 0))
    }

    /// The first capture/port where the two traces differ (including X/Z
    /// masks), or where one trace is shorter. `None` if identical.
    pub fn first_mismatch(&self, other: &Trace) -> Option<TraceMismatch> {
        if !self.layout.same_design(&other.layout) {
            return Some(TraceMismatch {
                capture: 0,
                port: format!(
                    "<different designs: {} vs {}>",
                    self.layout.signature, other.layout.signature
                ),
                left: vec![],
                right: vec![],
            });
        }
        let unknown = |t: &Trace, c: usize, s: &Slot| -> Vec<u32> {
            let base = c * t.layout.out_words + s.offset;
            t.unknown
                .as_ref()
                .map_or(vec![0; s.words], |u| u[base..base + s.words].to_vec())
        };
        for c in 0..self.len.min(other.len) {
            for (id, s) in self.layout.outputs.iter().enumerate() {
                let (a, b) = (self.get_id(c, id), other.get_id(c, id));
                if a != b || unknown(self, c, s) != unknown(other, c, s) {
                    return Some(TraceMismatch {
                        capture: c,
                        port: s.name.clone(),
                        left: a.to_vec(),
                        right: b.to_vec(),
                    });
                }
            }
        }
        (self.len != other.len).then(|| TraceMismatch {
            capture: self.len.min(other.len),
            port: format!("<trace length {} vs {}>", self.len, other.len),
            left: vec![],
            right: vec![],
        })
    }
}

/// A handle to one input port of a design, resolved once by name with
/// [`Pins::input`]; setting a value through it costs no lookup.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct InputPort(PortHandle);

/// A handle to one output port, resolved once by name with [`Pins::output`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OutputPort(PortHandle);

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct PortHandle {
    /// Identifies the design, so a handle of another design is refused.
    design: u64,
    offset: u32,
    words: u32,
    width: u32,
    top_mask: u32,
}

impl PortHandle {
    fn of(design: u64, s: &Slot) -> Self {
        PortHandle {
            design,
            offset: s.offset as u32,
            words: s.words as u32,
            width: s.width,
            top_mask: s.top_mask,
        }
    }
    fn range(&self) -> std::ops::Range<usize> {
        self.offset as usize..(self.offset + self.words) as usize
    }
}

impl InputPort {
    /// Width in bits.
    pub fn width(&self) -> u32 {
        self.0.width
    }

    /// Whether little-endian `words` hold a value of this port's width.
    pub(crate) fn fits(&self, words: &[u32]) -> bool {
        fits(words, self.0.words as usize, self.0.top_mask)
    }
}

impl OutputPort {
    /// Width in bits.
    pub fn width(&self) -> u32 {
        self.0.width
    }
}

/// The ports of a model in closed-loop simulation: the input values applied
/// by the next [`crate::VerilatedModel::step`] (they persist until changed,
/// initially 0) and the outputs sampled by the last one.
#[derive(Debug)]
pub struct Pins {
    layout: Arc<Layout>,
    design: u64,
    pub(crate) inputs: Vec<u32>,
    pub(crate) outputs: Vec<u32>,
}

impl Pins {
    pub(crate) fn new(layout: Arc<Layout>) -> Self {
        use std::hash::{Hash, Hasher};
        let mut h = std::collections::hash_map::DefaultHasher::new();
        layout.signature.hash(&mut h);
        Pins {
            design: h.finish(),
            inputs: vec![0; layout.in_words],
            outputs: vec![0; layout.out_words],
            layout,
        }
    }

    /// Resolves an input port by name (once, before the cycle loop).
    pub fn input(&self, name: &str) -> Result<InputPort, SimError> {
        match self.layout.in_index.get(name) {
            Some(&i) => Ok(InputPort(PortHandle::of(
                self.design,
                &self.layout.inputs[i],
            ))),
            None => Err(SimError::UnknownPort {
                port: name.to_string(),
                known: Layout::known(&self.layout.inputs),
            }),
        }
    }

    /// Resolves an output port by name (once, before the cycle loop).
    pub fn output(&self, name: &str) -> Result<OutputPort, SimError> {
        match self.layout.out_index.get(name) {
            Some(&i) => Ok(OutputPort(PortHandle::of(
                self.design,
                &self.layout.outputs[i],
            ))),
            None => Err(SimError::UnknownPort {
                port: name.to_string(),
                known: Layout::known(&self.layout.outputs),
            }),
        }
    }

    fn check(&self, p: &PortHandle) {
        assert_eq!(
            p.design, self.design,
            "a port handle of another design was used on `{}`",
            self.layout.signature
        );
    }

    /// Sets an input of at most 64 bits. Panics if the value does not fit
    /// (a programmer error); see [`Pins::try_set`].
    #[inline]
    pub fn set(&mut self, port: InputPort, value: u64) {
        if let Err(e) = self.try_set(port, value) {
            panic!("Pins::set: {e}");
        }
    }

    #[inline]
    pub fn try_set(&mut self, port: InputPort, value: u64) -> Result<(), SimError> {
        self.try_set_words(port, &[value as u32, (value >> 32) as u32])
    }

    /// Sets an input of any width from little-endian words (missing high
    /// words are zero). Panics if the value does not fit.
    #[inline]
    pub fn set_words(&mut self, port: InputPort, words: &[u32]) {
        if let Err(e) = self.try_set_words(port, words) {
            panic!("Pins::set_words: {e}");
        }
    }

    #[inline]
    pub fn try_set_words(&mut self, port: InputPort, words: &[u32]) -> Result<(), SimError> {
        let p = port.0;
        self.check(&p);
        if !port.fits(words) {
            return Err(SimError::BadValue {
                port: self.input_name(p.offset),
                reason: format!("value does not fit in {} bits", p.width),
            });
        }
        let n = p.words as usize;
        let dst = &mut self.inputs[p.range()];
        let k = words.len().min(n);
        dst[..k].copy_from_slice(&words[..k]);
        dst[k..].fill(0);
        Ok(())
    }

    /// The value an input will have in the next step (at most 64 bits).
    #[inline]
    pub fn driven(&self, port: InputPort) -> u64 {
        self.check(&port.0);
        low_u64(&self.inputs[port.0.range()])
    }

    /// The words an input will have in the next step (any width).
    #[inline]
    pub fn driven_words(&self, port: InputPort) -> &[u32] {
        self.check(&port.0);
        &self.inputs[port.0.range()]
    }

    /// An output sampled by the last step, if it is at most 64 bits wide
    /// (panics otherwise: use [`Pins::get_words`]).
    #[inline]
    pub fn get(&self, port: OutputPort) -> u64 {
        assert!(
            port.0.width <= 64,
            "Pins::get: a {}-bit port does not fit in u64; use Pins::get_words",
            port.0.width
        );
        low_u64(self.get_words(port))
    }

    /// The words of an output sampled by the last step.
    #[inline]
    pub fn get_words(&self, port: OutputPort) -> &[u32] {
        self.check(&port.0);
        &self.outputs[port.0.range()]
    }

    fn input_name(&self, offset: u32) -> String {
        self.layout
            .inputs
            .iter()
            .find(|s| s.offset == offset as usize)
            .map_or_else(|| format!("#{offset}"), |s| s.name.clone())
    }
}

fn low_u64(w: &[u32]) -> u64 {
    w[0] as u64 | w.get(1).map_or(0, |&h| (h as u64) << 32)
}
