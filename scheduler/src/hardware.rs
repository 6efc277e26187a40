//! What the scheduler needs to know about a SAT system: the array and its N:M (`[stce]`), the
//! buffers and memory port (`[system]`), and whether the WUVE is pipelined (`[train]`). Line widths, beats and padding come from
//! `engines::sat::lines::Geometry`, the formats the harness packs the DRAM image with.

use coforge_generator::config::{Config, SystemConfig};
use coforge_generator::engines::sat::lines::Geometry;
use serde::{Deserialize, Serialize};

use crate::isa::{Buf, GemmMode};

/// The system parameters the scheduler tiles and estimates for.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Hardware {
    pub rows: usize,
    pub cols: usize,
    pub n: usize,
    pub m: usize,
    pub system: SystemConfig,
    /// The WUVE is pipelined (`[train] wuve_pipeline`): an UPDATE takes longer. Left out of the
    /// serialized form when `false`.
    #[serde(default, skip_serializing_if = "is_false")]
    pub wuve_pipeline: bool,
}

fn is_false(value: &bool) -> bool {
    !value
}

impl Hardware {
    /// The system of a config with `[stce]`, `[train]` and `[system]` (validated by the config).
    pub fn from_config(cfg: &Config) -> Result<Hardware, String> {
        let (Some(stce), Some(system)) = (&cfg.stce, &cfg.system) else {
            return Err(
                "the config has no [system] section; `coforge schedule` schedules a SAT \
                        system top (an fp16 [stce], [train] and [system], as in \
                        configs/sat-4x4-2of8.toml)"
                    .to_string(),
            );
        };
        Ok(Hardware {
            rows: stce.rows as usize,
            cols: stce.cols as usize,
            n: stce.n as usize,
            m: stce.m as usize,
            system: system.clone(),
            wuve_pipeline: cfg.train.as_ref().is_some_and(|t| t.wuve_pipeline),
        })
    }

    /// A `rows x cols` N:M system with `[system]`'s defaults, then `adjust` applied to them, and
    /// the unpipelined WUVE.
    pub fn with_defaults(
        rows: usize,
        cols: usize,
        n: usize,
        m: usize,
        adjust: impl FnOnce(&mut SystemConfig),
    ) -> Hardware {
        let mut system: SystemConfig =
            toml::from_str("").expect("every [system] key has a default");
        adjust(&mut system);
        Hardware {
            rows,
            cols,
            n,
            m,
            system,
            wuve_pipeline: false,
        }
    }

    /// The line-format geometry.
    pub fn geometry(&self) -> Geometry {
        Geometry {
            rows: self.rows as u32,
            cols: self.cols as u32,
            n: self.n as u32,
            m: self.m as u32,
            mem_bits: self.system.mem_bits,
            wuve_pipeline: self.wuve_pipeline,
        }
    }

    /// Reduction elements per group in `mode`: M sparse, N dense.
    pub fn group(&self, mode: GemmMode) -> usize {
        match mode {
            GemmMode::Sparse => self.m,
            GemmMode::Dense => self.n,
        }
    }

    /// Memory beats per line of `buf` in the DRAM image.
    pub fn beats_per_line(&self, buf: Buf) -> u64 {
        u64::from(self.geometry().beats_per_line(buf))
    }

    /// Depth of a buffer.
    pub fn lines(&self, buf: Buf) -> usize {
        let s = &self.system;
        (match buf {
            Buf::Act => s.act_lines,
            Buf::Wgt => s.wgt_lines,
            Buf::Out => s.out_lines,
            Buf::Master | Buf::W16 | Buf::Mask => s.weight_lines,
        }) as usize
    }

    /// Kp: `k` padded to a multiple of M and of `cols` (the lines of one output-channel block in
    /// the master, w16 and mask formats).
    pub fn padded(&self, k: usize) -> usize {
        self.geometry().k_padded(k)
    }
}
