//! The JSON reports the verbs write, as typed structs: every field is declared and documented
//! here, once. The field names are a public interface (the README lists them and scripts read
//! them): rename nothing without saying so there.
//!
//! - [`VerifyReport`]: `report.json` of `coforge verify`.
//! - [`TrainReport`]: `report.json` of `coforge train`.
//! - [`MlpSummary`]: `summary.json` of `coforge mlp`.

use std::collections::BTreeMap;

use coforge_driver::compare::{Comparison, Mismatch};
use coforge_driver::sat::network::PassCycles;
use coforge_trainer::schedule::StepSchedule;
use serde::{Serialize, Serializer};

use crate::engine::WaveWindow;

/// The version of coforge that wrote a report.
pub const COFORGE_VERSION: &str = env!("CARGO_PKG_VERSION");

/// `report.json` of `coforge verify`: one GEMM on the engine, compared bit for bit.
#[derive(Clone, Debug, Serialize)]
pub struct VerifyReport {
    /// Every element of the RTL result equals the reference's, bit for bit.
    pub bit_exact: bool,
    /// Elements that differ.
    pub mismatches: usize,
    /// Elements compared (M x N); never 0, since empty GEMMs are rejected.
    pub elements: usize,
    /// The first differing element in row-major order, with the cycle the engine showed it.
    pub first_mismatch: Option<Mismatch>,
    /// Measured: from the cycle the engine took the first group to the cycle it showed the last
    /// result row (`out_valid`), both counted.
    pub cycles: u64,
    /// The protocol's cycle model for the same job (`generator::engines::stce::estimated_cycles`).
    pub estimated_cycles: u64,
    pub tiles: u64,
    pub groups_per_tile: u64,
    /// Idle input cycles (`in_valid` low) the driver inserted between the first and the last
    /// group, so that each tile's last group keeps the engine's tile spacing.
    pub bubble_cycles: u64,
    /// Multiplier slots that worked on real output elements.
    pub effective_macs: u64,
    /// M x K x N.
    pub dense_equivalent_macs: u64,
    /// `effective_macs / (rows x cols x N x cycles)`.
    pub utilization: f64,
    /// `sparse` or `dense`.
    pub mode: String,
    /// `[M, K, N]`.
    pub shape: [usize; 3],
    /// The seed of random operands; `null` when A and B came from files.
    pub seed: Option<u64>,
    pub config_hash: String,
    /// `verilator` or `icarus`.
    pub simulator: String,
    pub simulator_version: String,
    /// Verilator's version when it is installed (also for Icarus runs); `null` otherwise.
    pub verilator_version: Option<String>,
    pub coforge_version: &'static str,
    /// The VCD's path, when one was written.
    pub waves: Option<String>,
    /// The `--waves` window asked for and the one recorded (clipped to the run); `null` without
    /// `--waves`.
    pub waves_window: Option<WaveWindow>,
    /// With `--axi`: the same GEMM through the engine's AXI wrapper; `null` without it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub axi: Option<AxiReport>,
    /// With `--axi` on a training config: a SORE and a WUVE job through their AXI wrappers.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub axi_lanes: Vec<LaneAxiReport>,
}

/// `coforge verify --axi` on a training config: one job on a lane engine (SORE, WUVE), bare and
/// through its AXI wrapper.
#[derive(Clone, Debug, Serialize)]
pub struct LaneAxiReport {
    /// The wrapper's module name.
    pub top: String,
    /// What ran, e.g. `prune 9 x 16 along axis 1 (18 groups)`.
    pub job: String,
    pub stall_rate: f64,
    pub stall_seed: u64,
    /// The wrapper's results equal the bare engine's, bit for bit.
    pub same_bits_as_bare: bool,
    /// Result elements (values, indices and mask; w32 and w16) whose bits differ.
    pub differ_from_bare: usize,
    /// Measured: from the cycle the first beat was taken to the cycle the last result beat was
    /// taken, both counted.
    pub cycles: u64,
    /// The engine's cycle model plus the wrapper's fixed latency, for a run without stalls.
    pub estimated_cycles: u64,
    /// Measured on the bare engine: first input taken to last `out_valid`.
    pub bare_cycles: u64,
    /// Cycles without an input beat taken between the first beat and the last.
    pub input_stall_cycles: u64,
    /// The wrapper's CYCLES register.
    pub wrapper_busy_cycles: u64,
    /// The wrapper's OUT_STALLS register.
    pub output_stall_cycles: u64,
}

impl LaneAxiReport {
    /// The summary line `coforge verify` prints for the job.
    pub fn summary_line(&self) -> String {
        format!(
            "{}: through {} ({}) at stall rate {}: {} cycles (estimated {} without stalls), bare engine {} cycles",
            if self.same_bits_as_bare { "SAME BITS" } else { "DIFFERENT BITS" },
            self.top,
            self.job,
            self.stall_rate,
            self.cycles,
            self.estimated_cycles,
            self.bare_cycles
        )
    }
}

/// `coforge verify --axi`: the GEMM through the AXI wrapper (`<top>_axi`) with AXI bus models.
#[derive(Clone, Debug, Serialize)]
pub struct AxiReport {
    /// The wrapper's module name.
    pub top: String,
    /// Probability per cycle of a TVALID stall at the source and a TREADY stall at the sink.
    pub stall_rate: f64,
    pub stall_seed: u64,
    /// The wrapper's result equals the reference's, bit for bit.
    pub bit_exact: bool,
    /// The wrapper's result equals the bare engine's, bit for bit.
    pub same_bits_as_bare: bool,
    /// Elements whose bits differ from the bare engine's.
    pub differ_from_bare: usize,
    /// Elements that differ from the reference.
    pub mismatches: usize,
    /// Measured: from the cycle the first input beat was taken to the cycle the last result row
    /// was taken, both counted.
    pub cycles: u64,
    /// The engine's cycle model plus the wrapper's fixed latency, for a run without stalls.
    pub estimated_cycles: u64,
    /// Cycles without an input beat taken between the first beat and the last (source stalls
    /// and back-pressure).
    pub input_stall_cycles: u64,
    /// The wrapper's CYCLES register: cycles it was busy.
    pub wrapper_busy_cycles: u64,
    /// The wrapper's OUT_STALLS register: cycles a result row waited for TREADY.
    pub output_stall_cycles: u64,
}

/// One step of `coforge train`.
#[derive(Clone, Debug, Serialize)]
pub struct TrainStepReport {
    /// Step number, from 0.
    pub step: usize,
    /// Every tensor of this step is bit-exact.
    pub bit_exact: bool,
    /// `y`, `dx`, `dw`, `w32`, `w16`, `mask_f`, `mask_b`, then the masks the step used.
    pub comparisons: Vec<Comparison>,
    /// Measured engine cycles of this step per pass (`ff`, `bp`, `wu`, `update`, `prune`): each
    /// operation from its engine taking the first input to showing the last result (`out_valid`).
    pub cycles: BTreeMap<String, u64>,
    /// The engines' estimated cycles of the same operations per pass (`estimated_cycles` of
    /// `engines::stce`, `sore`, `wuve`).
    pub estimated_cycles: BTreeMap<String, u64>,
    /// The offline schedule of the step (update and pruning overlapped with the tensor engine):
    /// modelled from the measured per-operation cycles, with the same model over the estimates.
    pub schedule: StepSchedule,
    /// With a `[system]` config: cycles the system top (`sat_top`) ran this step's passes in
    /// `system_passes`, counted by its cycle counter from `start` to `done`, memory traffic
    /// included (measured in simulation).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub step_cycles_measured: Option<u64>,
    /// The same program's serial estimate (`engines::sat::estimated_cycles` of every
    /// instruction, plus fetch and dispatch): an estimate, never measured.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub step_cycles_estimated: Option<u64>,
    /// The passes the system top ran: `ff`, `bp`, `wu`, `update`, and for sparse training
    /// `prune_f` (the next M_F and FF operand; M_B is pruned on the separate SORE until PRUNE_B
    /// joins the system top).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub system_passes: Option<Vec<&'static str>>,
    /// Busy cycles per engine of the system top (measured) and the memory beats it moved.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub system: Option<coforge_driver::sat::RunStats>,
}

/// `shape` of a [`TrainReport`].
#[derive(Clone, Debug, Serialize)]
pub struct LayerShape {
    pub batch: u64,
    pub cin: u64,
    pub cout: u64,
}

/// `report.json` of `coforge train`: BDWP steps of one linear layer on the RTL engines.
#[derive(Clone, Debug, Serialize)]
pub struct TrainReport {
    /// Every tensor of every step is bit-exact.
    pub bit_exact: bool,
    pub steps: Vec<TrainStepReport>,
    /// `N:M` as given (`4:4` is dense).
    pub pattern: String,
    pub shape: LayerShape,
    /// `3 x B x Cin x Cout` per step (FF, BP, WU), over all steps.
    pub dense_equivalent_macs: u64,
    /// FF and BP at N/M of the dense work, WU dense, over all steps.
    pub effective_macs: u64,
    /// Measured engine cycles per pass, summed over all steps.
    pub cycles: BTreeMap<String, u64>,
    /// The engines' estimated cycles per pass, summed over all steps.
    pub estimated_cycles: BTreeMap<String, u64>,
    #[serde(serialize_with = "short_f32")]
    pub lr: f32,
    #[serde(serialize_with = "short_f32")]
    pub lambda: f32,
    pub config_hash: String,
    pub verilator_version: String,
    pub coforge_version: &'static str,
}

/// MACs of the training GEMMs of one pattern's run, per pass.
#[derive(Clone, Debug, Serialize)]
pub struct GemmMacs {
    pub ff: u64,
    pub bp: u64,
    pub wu: u64,
    pub total: u64,
}

/// The RTL check of one pattern in `coforge mlp --rtl-config`.
#[derive(Clone, Debug, Serialize)]
#[serde(untagged)]
pub enum RtlCheck {
    /// The first steps ran on the RTL engines and were compared.
    Ran {
        /// Steps run on RTL and compared (never 0).
        steps: usize,
        /// Every compared tensor of every step is bit-exact, and all `steps` steps ran.
        bit_exact: bool,
        /// The loss and every layer's `w32`, `w16`, `M_F`, `M_B`.
        tensors_compared_per_step: usize,
        first_mismatch: Option<Mismatch>,
    },
    /// The engine cannot run this pattern; nothing was compared.
    NotRun {
        /// Always `false`: a pattern that was not run is not reported as checked.
        ran: bool,
        /// Why, and which patterns the engine runs.
        reason: String,
    },
}

/// One pattern of `coforge mlp`.
#[derive(Clone, Debug, Serialize)]
pub struct MlpResult {
    /// `dense` or `N:M`.
    pub pattern: String,
    #[serde(serialize_with = "short_f32")]
    pub final_loss: f32,
    #[serde(serialize_with = "short_f32")]
    pub final_train_accuracy: f32,
    #[serde(serialize_with = "short_f32")]
    pub final_test_accuracy: f32,
    #[serde(serialize_with = "short_f32")]
    pub best_test_accuracy: f32,
    pub training_gemm_macs: GemmMacs,
    /// Present with `--rtl-config`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rtl: Option<RtlCheck>,
}

/// `summary.json` of `coforge mlp`.
#[derive(Clone, Debug, Serialize)]
pub struct MlpSummary {
    /// Where the training ran: `reference`.
    pub backend: &'static str,
    pub coforge_version: &'static str,
    pub dataset: String,
    pub seed: u64,
    pub classes: usize,
    pub train_samples: usize,
    pub test_samples: usize,
    #[serde(serialize_with = "short_f32")]
    pub chance_accuracy: f32,
    pub widths: [usize; 4],
    pub steps: usize,
    pub eval_every: usize,
    pub batch: usize,
    #[serde(serialize_with = "short_f32")]
    pub lr: f32,
    #[serde(serialize_with = "short_f32")]
    pub lambda: f32,
    #[serde(serialize_with = "short_f32")]
    pub loss_scale: f32,
    /// `ForwardMasked` or `Dense`.
    pub mask_b_source: String,
    pub results: Vec<MlpResult>,
}

/// An f32 as the JSON number with the same shortest decimal form (`0.1`, not `0.10000000149`);
/// a non-finite value as its name in a string (`"NaN"`), since JSON has no such numbers.
pub fn short_f32<S: Serializer>(x: &f32, s: S) -> Result<S::Ok, S::Error> {
    match format!("{x}").parse::<f64>() {
        Ok(v) if v.is_finite() => s.serialize_f64(v),
        _ => s.serialize_str(&x.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Serialize)]
    struct F(#[serde(serialize_with = "short_f32")] f32);

    #[test]
    fn floats_keep_their_short_form() {
        assert_eq!(serde_json::to_string(&F(0.1)).unwrap(), "0.1");
        assert_eq!(serde_json::to_string(&F(f32::NAN)).unwrap(), "\"NaN\"");
        assert_eq!(serde_json::to_string(&F(1e-3)).unwrap(), "0.001");
    }

    #[test]
    fn a_pattern_not_run_says_so() {
        let r = RtlCheck::NotRun {
            ran: false,
            reason: "x".into(),
        };
        assert_eq!(
            serde_json::to_value(&r).unwrap(),
            serde_json::json!({"ran": false, "reason": "x"})
        );
    }
}

/// `report.json` of `coforge train --net`: whole-network training steps on the system top.
#[derive(Clone, Debug, Serialize)]
pub struct NetTrainReport {
    /// Every tensor of every layer and step equals the reference's, bit for bit.
    pub bit_exact: bool,
    pub network: String,
    pub batch: usize,
    /// The engine's N:M (dense layers run in its dense mode).
    pub pattern: String,
    /// Per layer, `[R, K, Cout]` as lowered (im2col for a conv).
    pub layers: BTreeMap<String, [usize; 3]>,
    /// Whether the step computes dX of the first layer (the network file's `input_gradient`,
    /// default false).
    pub input_gradient: bool,
    /// The reference's tensors that the system's step does not produce, as
    /// `<layer>.<tensor>`: without `input_gradient`, the first layer's `dx` (and, for a sparse
    /// first layer, its next W_B, `w_b.values` and `w_b.indices`). They are neither compared
    /// nor written.
    pub not_computed: Vec<String>,
    pub seed: u64,
    pub lr: f32,
    pub lambda: f32,
    /// The memory model: cycles to the first read beat, and bytes per cycle.
    pub mem_latency: u32,
    pub mem_bytes_per_cycle: u32,
    /// Instructions of the step's program.
    pub instructions: usize,
    pub steps: Vec<NetStepReport>,
    pub config_hash: String,
    pub coforge_version: &'static str,
}

/// One step of `coforge train --net`.
#[derive(Clone, Debug, Serialize)]
pub struct NetStepReport {
    pub step: usize,
    pub bit_exact: bool,
    /// Measured: the top's cycle counter from `start` to `done`, memory traffic included.
    pub step_cycles_measured: u64,
    /// The scheduler's estimate of the same span (its cost model, `schedule.json`).
    pub step_cycles_estimated: u64,
    /// Measured: the top's busy counter of each engine (`dma`, `stce`, `wuve`, `sore`).
    pub busy_measured: BTreeMap<String, u64>,
    /// Beats the memory model served and took (through the AXI wrapper: the AXI4 memory's
    /// beats, the program fetch included).
    pub read_beats: u64,
    pub written_beats: u64,
    /// With --axi: the wrapper's own cycle counter (START to DONE, program fetch and last
    /// write response included), the memory's stall rate and latency. Per-pass spans are not
    /// measured through the wrapper (its counters are read once, at the end), so `passes` is
    /// empty then.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub axi: Option<coforge_driver::sat::AxiRunStats>,
    /// Per layer and pass (`ff`, `bp`, `wu`, `update`, `prune_f`, `prune_b`): the measured span
    /// and busy cycles beside the scheduler's estimates (fields documented at
    /// `coforge_driver::sat::network::PassCycles`).
    pub passes: Vec<PassCycles>,
    /// Every tensor of every layer: `<layer>.<tensor>` (y, dx, dw, w32, w16, and for sparse
    /// layers mask_f and the new compressed operands' values and indices).
    pub comparisons: Vec<Comparison>,
}
