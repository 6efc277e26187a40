//! One simulation instance: open-loop runs of a [`Stimulus`] and closed-loop
//! steps.

use std::ffi::{c_void, CStr, CString};
use std::ptr::NonNull;
use std::sync::Arc;

use super::ffi::LibInner;
use super::WaveOptions;
use crate::frames::{InputPort, OutputPort, Pins, Stimulus, Trace};
use crate::tools;
use crate::{SimError, Simulator};

/// One simulation instance. State persists between [`Simulator::run`] and
/// [`VerilatedModel::step`] calls, which may be mixed freely: both continue
/// the model's cycle counter.
pub struct VerilatedModel {
    lib: Arc<LibInner>,
    handle: NonNull<c_void>,
    waves: Option<WaveOptions>,
    /// Closed-loop inputs and outputs (see [`VerilatedModel::step`]).
    pins: Pins,
    /// Mirror of the shim's cycle counter: the number of the next cycle.
    next_cycle: u64,
}

// SAFETY: the C++ object is only touched through &mut self (or in Drop), so
// never from two threads at once, and it owns its VerilatedContext, which is
// passed explicitly to the model (no reliance on the creating thread's
// thread-local context). Not Sync: &self methods must not run concurrently
// with run() on another thread — and none touch the C++ object mutably.
unsafe impl Send for VerilatedModel {}

impl VerilatedModel {
    pub(super) fn new(lib: Arc<LibInner>, handle: NonNull<c_void>) -> Self {
        VerilatedModel {
            pins: Pins::new(lib.layout.clone()),
            lib,
            handle,
            waves: None,
            next_cycle: 0,
        }
    }

    /// Dumps VCD for the window in `w` during later runs (`None` stops and
    /// closes the file). Fails if the library was not built with
    /// [`BuildOptions::waves`]. The file is created when the window's first
    /// cycle is simulated and closed after its last one.
    pub fn set_waves(&mut self, w: Option<WaveOptions>) -> Result<(), SimError> {
        if !self.lib.traced {
            return Err(SimError::Runtime {
                message: "waves need a library built with BuildOptions { waves: true, .. }".into(),
            });
        }
        let path = match &w {
            Some(o) => {
                if o.first_cycle > o.last_cycle {
                    return Err(SimError::Runtime {
                        message: format!(
                            "wave window {}..={} is empty",
                            o.first_cycle, o.last_cycle
                        ),
                    });
                }
                if let Some(parent) = o.path.parent().filter(|p| !p.as_os_str().is_empty()) {
                    tools::create_dir(parent)?;
                }
                let s = o.path.to_str().ok_or_else(|| SimError::Runtime {
                    message: format!("wave path {} is not UTF-8", o.path.display()),
                })?;
                Some(CString::new(s).map_err(|_| SimError::Runtime {
                    message: "wave path contains NUL".into(),
                })?)
            }
            None => None,
        };
        let (first, last) = w.as_ref().map_or((0, 0), |o| (o.first_cycle, o.last_cycle));
        // SAFETY: valid handle; path is NUL-terminated or null.
        let rc = unsafe {
            (self.lib.waves)(
                self.handle.as_ptr(),
                path.as_ref().map_or(std::ptr::null(), |p| p.as_ptr()),
                first,
                last,
            )
        };
        if rc != 0 {
            return Err(SimError::Runtime {
                message: format!("setting waves failed: {}", self.last_error()),
            });
        }
        self.waves = w;
        Ok(())
    }

    /// Cycles simulated since the model was created, which is also the number
    /// of the next cycle.
    pub fn cycle(&self) -> u64 {
        self.next_cycle
    }

    /// The closed-loop ports: inputs for the next [`VerilatedModel::step`],
    /// outputs of the last one.
    pub fn pins(&self) -> &Pins {
        &self.pins
    }

    pub fn pins_mut(&mut self) -> &mut Pins {
        &mut self.pins
    }

    /// Resolves an input port by name; see [`Pins::input`].
    pub fn input(&self, name: &str) -> Result<InputPort, SimError> {
        self.pins.input(name)
    }

    /// Resolves an output port by name; see [`Pins::output`].
    pub fn output(&self, name: &str) -> Result<OutputPort, SimError> {
        self.pins.output(name)
    }

    /// Sets an input for the next step; see [`Pins::set`].
    #[inline]
    pub fn set(&mut self, port: InputPort, value: u64) {
        self.pins.set(port, value);
    }

    /// An output sampled by the last step; see [`Pins::get`].
    #[inline]
    pub fn get(&self, port: OutputPort) -> u64 {
        self.pins.get(port)
    }

    /// Runs one cycle in closed loop and returns its number: the current
    /// inputs of [`VerilatedModel::pins`] are applied (every input, also the
    /// ones not changed since the last step), combinational logic settles,
    /// every output is sampled into the pins, then one rising edge. Outputs
    /// read after `step` therefore reflect the inputs of the same cycle, as in
    /// a [`Stimulus`] cycle closed with `step(true)`. No allocation; one call
    /// into the library.
    #[inline]
    pub fn step(&mut self) -> Result<u64, SimError> {
        let cycle = self.next_cycle;
        // SAFETY: inputs holds in_words words and outputs out_words words, the
        // sizes the shim of this layout reads and writes.
        let rc = unsafe {
            (self.lib.step)(
                self.handle.as_ptr(),
                self.pins.inputs.as_ptr(),
                self.pins.outputs.as_mut_ptr(),
            )
        };
        match rc {
            0 => {
                self.next_cycle += 1;
                Ok(cycle)
            }
            1 => {
                self.next_cycle += 1;
                Err(SimError::Runtime {
                    message: format!("the design executed $finish at cycle {cycle}"),
                })
            }
            _ => Err(SimError::Runtime {
                message: format!("at cycle {cycle}: {}", self.last_error()),
            }),
        }
    }

    fn last_error(&self) -> String {
        // SAFETY: valid handle; the string lives until the next call into the model.
        unsafe { CStr::from_ptr((self.lib.error)(self.handle.as_ptr())) }
            .to_string_lossy()
            .into_owned()
    }
}

impl Simulator for VerilatedModel {
    fn run(&mut self, stim: &Stimulus) -> Result<Trace, SimError> {
        let layout = &self.lib.layout;
        if !layout.same_design(&stim.layout) {
            return Err(SimError::PortMismatch {
                detail: format!(
                    "stimulus is for `{}`, model is `{}`",
                    stim.layout.signature, layout.signature
                ),
            });
        }
        let n = stim.cycles();
        let first_cycle = self.cycle();
        // The only allocation of a run: all output frames at once.
        let mut data = vec![0u32; stim.captures() * layout.out_words];
        // SAFETY: frames holds n * in_words words, capture n flags, and data
        // room for every capture; the shim writes nothing else.
        let done = unsafe {
            (self.lib.run)(
                self.handle.as_ptr(),
                n,
                stim.frames.as_ptr(),
                stim.capture.as_ptr(),
                data.as_mut_ptr(),
            )
        };
        // SAFETY: valid handle; reads a plain integer.
        self.next_cycle = unsafe { (self.lib.cycle)(self.handle.as_ptr()) };
        if done < 0 {
            return Err(SimError::Runtime {
                message: format!("at cycle {}: {}", self.cycle(), self.last_error()),
            });
        }
        if (done as u64) < n {
            return Err(SimError::Runtime {
                message: format!(
                    "the design executed $finish at cycle {}",
                    first_cycle + done as u64 - 1
                ),
            });
        }
        Ok(Trace {
            layout: layout.clone(),
            len: stim.captures(),
            data,
            unknown: None,
            cycles: n,
            first_cycle,
        })
    }

    fn name(&self) -> &str {
        "verilator"
    }
}

impl Drop for VerilatedModel {
    fn drop(&mut self) {
        // SAFETY: handle came from coforge_new and is deleted exactly once;
        // `lib` (an Arc field) keeps the code loaded until after this runs.
        unsafe { (self.lib.delete)(self.handle.as_ptr()) }
    }
}

impl std::fmt::Debug for VerilatedModel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VerilatedModel")
            .field("lib", &self.lib.path)
            .field("waves", &self.waves)
            .finish()
    }
}
