//! The offline step schedule: how a training step's engine work overlaps, modelled from the
//! cycles each engine measured in co-simulation (`OpRecord::cycles`, observed from the engines'
//! `out_valid`), and the same model over the engines' estimates (`OpRecord::estimated_cycles`)
//! beside it.
//!
//! The tensor engine (STCE) runs the GEMMs back to back in program order. The weight-update
//! engine (WUVE) and the pruning unit (SORE) run beside it:
//! - the update of layer l consumes dW_l as the STCE reads it out, row tile by row tile, so it
//!   ends one row tile's worth of WUVE time after the WU GEMM, or when the WUVE has done all of
//!   the layer's elements, whichever is later (and after the previous layer's update: one WUVE);
//! - pre-generation (the SORE's M_F and M_B passes) follows the update the same way;
//! - the next step's FF of layer l needs layer l's new compressed weights, so the step ends when
//!   the STCE is done and every layer's weights are ready for the next step's FF order.
//!
//! The figures are a model: the engines are co-simulated separately (the harness moves the
//! tensors), and the overlap is computed, not simulated. `sequential_cycles` reports the
//! no-overlap figure beside it.

use serde::Serialize;

use crate::backend::Pass;
use crate::rtl::{Engine, OpRecord};

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct StepSchedule {
    /// STCE cycles (FF + BP + WU of every layer).
    pub tensor_cycles: u64,
    pub update_cycles: u64,
    pub prune_cycles: u64,
    /// Modelled: the step with the update and pre-generation overlapped as described above,
    /// from the measured cycles of every operation.
    pub step_cycles: u64,
    /// The same model over the engines' estimated cycles of every operation.
    pub estimated_step_cycles: u64,
    /// Everything one after the other.
    pub sequential_cycles: u64,
    /// Update and pruning cycles that the tensor engine's work does not hide.
    pub exposed_cycles: u64,
    /// Share of update and pruning time hidden under tensor-engine time (1 when there is none).
    pub hidden_fraction: f64,
}

#[derive(Default, Clone)]
struct Layer {
    ff_offset: Option<u64>,
    wu: Option<(u64, u64)>,
    cout: usize,
    update: u64,
    prune: u64,
}

/// Schedules the operations of one step (as an `RtlBackend` recorded them). `array_rows` is the
/// STCE's row count: the height of a row tile of dW.
pub fn schedule_step(ops: &[OpRecord], array_rows: usize) -> StepSchedule {
    StepSchedule {
        estimated_step_cycles: model(ops, array_rows, |op| op.estimated_cycles).step_cycles,
        ..model(ops, array_rows, |op| op.cycles)
    }
}

/// The model over one figure of each operation (`cycles_of`); `estimated_step_cycles` is left 0.
fn model(ops: &[OpRecord], array_rows: usize, cycles_of: fn(&OpRecord) -> u64) -> StepSchedule {
    let layers_n = ops.iter().map(|o| o.layer + 1).max().unwrap_or(0);
    let mut layers = vec![Layer::default(); layers_n];
    let mut t = 0u64;
    for op in ops {
        let l = &mut layers[op.layer];
        match op.engine {
            Engine::Stce => {
                if op.pass == Pass::Ff && l.ff_offset.is_none() {
                    l.ff_offset = Some(t);
                }
                if op.pass == Pass::Wu {
                    l.wu = Some((t, t + cycles_of(op)));
                    l.cout = op.shape.0;
                }
                t += cycles_of(op);
            }
            Engine::Wuve => l.update += cycles_of(op),
            Engine::Sore => l.prune += cycles_of(op),
        }
    }
    let tensor = t;
    let (update, prune): (u64, u64) = layers
        .iter()
        .fold((0, 0), |(u, p), l| (u + l.update, p + l.prune));

    // Layers in the order their WU GEMMs ran, so the WUVE and SORE serve them in that order.
    let mut order: Vec<usize> = (0..layers_n).filter(|&l| layers[l].wu.is_some()).collect();
    order.sort_by_key(|&l| layers[l].wu.map(|w| w.0));
    let tail = |cycles: u64, cout: usize| {
        if cout == 0 {
            cycles
        } else {
            (cycles * array_rows.min(cout) as u64).div_ceil(cout as u64)
        }
    };
    let (mut wuve_free, mut sore_free, mut step) = (0u64, 0u64, tensor);
    for &l in &order {
        let layer = &layers[l];
        let (wu_start, wu_end) = layer.wu.expect("filtered");
        let u_start = wu_start.max(wuve_free);
        let u_end = (wu_end + tail(layer.update, layer.cout)).max(u_start + layer.update);
        wuve_free = u_end;
        let ready = if layer.prune == 0 {
            u_end
        } else {
            let p_start = u_start.max(sore_free);
            let p_end = (u_end + tail(layer.prune, layer.cout)).max(p_start + layer.prune);
            sore_free = p_end;
            p_end
        };
        step = step.max(ready.saturating_sub(layer.ff_offset.unwrap_or(0)));
    }
    let exposed = step - tensor;
    StepSchedule {
        tensor_cycles: tensor,
        update_cycles: update,
        prune_cycles: prune,
        step_cycles: step,
        estimated_step_cycles: 0,
        sequential_cycles: tensor + update + prune,
        exposed_cycles: exposed,
        hidden_fraction: if update + prune == 0 {
            1.0
        } else {
            1.0 - exposed as f64 / (update + prune) as f64
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn op(
        layer: usize,
        pass: Pass,
        engine: Engine,
        cycles: u64,
        shape: (usize, usize),
    ) -> OpRecord {
        OpRecord {
            layer,
            pass,
            engine,
            cycles,
            estimated_cycles: cycles,
            work: 0,
            shape,
        }
    }

    #[test]
    fn one_layer_exposes_the_tail_of_its_update_and_pruning() {
        // 64 output rows, 4-row tiles: the last tile is 1/16 of the update and of the pruning.
        let ops = [
            op(0, Pass::Ff, Engine::Stce, 100, (8, 64)),
            op(0, Pass::Bp, Engine::Stce, 100, (8, 64)),
            op(0, Pass::Wu, Engine::Stce, 400, (64, 64)),
            op(0, Pass::Update, Engine::Wuve, 160, (64, 64)),
            op(0, Pass::Prune, Engine::Sore, 320, (64, 64)),
        ];
        let s = schedule_step(&ops, 4);
        assert_eq!(s.tensor_cycles, 600);
        // Update ends at 600 + 10, pruning at 610 + 20.
        assert_eq!(s.step_cycles, 630);
        assert_eq!(s.exposed_cycles, 30);
        assert_eq!(s.sequential_cycles, 1080);
    }

    #[test]
    fn slow_engines_are_exposed_in_full_and_later_layers_hide_earlier_work() {
        // A WUVE slower than the WU GEMM finishes U cycles after the GEMM starts.
        let ops = [
            op(0, Pass::Ff, Engine::Stce, 100, (8, 16)),
            op(0, Pass::Wu, Engine::Stce, 100, (16, 16)),
            op(0, Pass::Update, Engine::Wuve, 500, (16, 16)),
        ];
        let s = schedule_step(&ops, 4);
        assert_eq!(s.step_cycles, 100 + 500);
        // Two layers: layer 1's update hides under layer 0's BP/WU (program order 1 then 0).
        let ops = [
            op(0, Pass::Ff, Engine::Stce, 100, (8, 16)),
            op(1, Pass::Ff, Engine::Stce, 100, (8, 16)),
            op(1, Pass::Bp, Engine::Stce, 100, (8, 16)),
            op(1, Pass::Wu, Engine::Stce, 100, (16, 16)),
            op(0, Pass::Wu, Engine::Stce, 1000, (16, 16)),
            op(1, Pass::Update, Engine::Wuve, 200, (16, 16)),
            op(0, Pass::Update, Engine::Wuve, 40, (16, 16)),
        ];
        let s = schedule_step(&ops, 4);
        // Layer 1: update 300..500, needed at step + 100. Layer 0: 500..1400, +10 tail.
        assert_eq!(s.tensor_cycles, 1400);
        assert_eq!(s.step_cycles, 1410);
        assert!(s.hidden_fraction > 0.95);
    }
}
