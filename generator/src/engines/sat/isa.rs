//! The SAT system's instruction set: what the offline scheduler emits and the controller of
//! `sat_top` runs (semantics and timing: the parent module, `engines::sat`).
//!
//! # Word layout (fixed width, [`WORD_BITS`] = 192 bits, little-endian bit numbering)
//! ```text
//! bits [7:0]      opcode (see `Opcode`; 0 = END, so an all-zero word stops the program)
//! bits [23:8]     wait   token mask: bit i = wait for token i (> 0) and take one
//! bits [39:24]    signal token mask: bit i = give token i one when the instruction completes
//! bits [63:40]    zero
//! bits [64+16s +: 16]   operand slot s, s = 0..7 (unused slots are zero)
//! ```
//! Operand slots per opcode (all unsigned; buffer addresses and counts are line numbers):
//! | opcode | s0 | s1 | s2 | s3 | s4 | s5 | s6 | s7 |
//! |---|---|---|---|---|---|---|---|---|
//! | 1 LOAD   | buf | buf_addr | dram_addr[15:0] | dram_addr[31:16] | lines | | | |
//! | 2 STORE  | buf | buf_addr | dram_addr[15:0] | dram_addr[31:16] | lines | | | |
//! | 3 GEMM   | flags: bit0 dense, bit1 first, bit2 last | act_addr | wgt_addr | groups | out_addr | | | |
//! | 4 UPDATE | out_addr | master_addr | w16_addr | mask_addr | lines | | | |
//! | 5 PRUNE_F| w16_addr | lines | wgt_addr | mask_addr | | | | |
//! | 6 PRUNE_B| w16_addr | mask_addr | stride | blocks | k_block | wgt_addr | | |
//!
//! `buf` is a [`Buf`] code. `dram_addr` counts memory beats (`mem_bits` wide), not bytes.
//! [`decode`] rejects an unknown opcode or buffer code, nonzero reserved bits, nonzero unused
//! slots and undefined GEMM flag bits, so a corrupted word never runs as something else.

use serde::{Deserialize, Serialize};

/// Width of one instruction word (the instruction memory's width).
pub const WORD_BITS: u32 = 192;
/// 32-bit words per instruction (how the harness writes `imem_data`).
pub const WORD_U32S: usize = (WORD_BITS / 32) as usize;
/// Number of counting-semaphore tokens (bits of `wait` and `signal`).
pub const TOKENS: u32 = 16;
/// Operand slots of a word and their width.
pub const SLOTS: u32 = 8;
pub const SLOT_BITS: u32 = 16;
/// Bit offset of operand slot 0.
pub const SLOT0: u32 = 64;

/// One instruction word, little-endian 32-bit words (word 0 holds the opcode).
pub type Word = [u32; WORD_U32S];

/// An on-chip buffer (`engines::sat` section "Buffers" gives widths and contents).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Buf {
    Act,
    Wgt,
    Out,
    Master,
    W16,
    Mask,
}

impl Buf {
    pub const ALL: [Buf; 6] = [
        Buf::Act,
        Buf::Wgt,
        Buf::Out,
        Buf::Master,
        Buf::W16,
        Buf::Mask,
    ];
    /// The code in a LOAD/STORE word.
    pub fn code(self) -> u16 {
        match self {
            Buf::Act => 0,
            Buf::Wgt => 1,
            Buf::Out => 2,
            Buf::Master => 3,
            Buf::W16 => 4,
            Buf::Mask => 5,
        }
    }
    pub fn from_code(code: u16) -> Option<Buf> {
        Buf::ALL.into_iter().find(|b| b.code() == code)
    }
    pub fn name(self) -> &'static str {
        match self {
            Buf::Act => "act",
            Buf::Wgt => "wgt",
            Buf::Out => "out",
            Buf::Master => "master",
            Buf::W16 => "w16",
            Buf::Mask => "mask",
        }
    }
}

/// How the STCE consumes a GEMM's groups.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum GemmMode {
    /// A group is M reduction elements; the wgt lines hold N values + N indices per column.
    Sparse,
    /// A group is N reduction elements; the wgt lines hold N values (indices ignored).
    Dense,
}

/// The engine that runs an instruction (each has its own in-order FIFO in the controller).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Engine {
    Dma,
    Stce,
    Wuve,
    Sore,
}

impl Engine {
    pub const ALL: [Engine; 4] = [Engine::Dma, Engine::Stce, Engine::Wuve, Engine::Sore];
    pub fn name(self) -> &'static str {
        match self {
            Engine::Dma => "dma",
            Engine::Stce => "stce",
            Engine::Wuve => "wuve",
            Engine::Sore => "sore",
        }
    }
}

/// Opcodes (bits [7:0] of a word).
pub mod opcode {
    pub const END: u8 = 0;
    pub const LOAD: u8 = 1;
    pub const STORE: u8 = 2;
    pub const GEMM: u8 = 3;
    pub const UPDATE: u8 = 4;
    pub const PRUNE_F: u8 = 5;
    pub const PRUNE_B: u8 = 6;
}

/// GEMM flag bits (operand slot 0).
pub mod gemm_flags {
    pub const DENSE: u16 = 1;
    pub const FIRST: u16 = 2;
    pub const LAST: u16 = 4;
}

/// One instruction. Every variant carries its `wait` and `signal` token masks (bit i = token i).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum Instr {
    /// `lines` lines from DRAM beat `dram_addr` into `buf` from line `buf_addr`.
    Load {
        buf: Buf,
        buf_addr: u16,
        dram_addr: u32,
        lines: u16,
        wait: u16,
        signal: u16,
    },
    /// `lines` lines of `buf` from line `buf_addr` to DRAM beat `dram_addr`.
    Store {
        buf: Buf,
        buf_addr: u16,
        dram_addr: u32,
        lines: u16,
        wait: u16,
        signal: u16,
    },
    /// One `rows x cols` output tile over `groups` groups (act line `act_addr + g` and wgt line
    /// `wgt_addr + g` in group g). `first` starts new sums; `last` writes the `rows` result lines
    /// to `out_addr ..`.
    Gemm {
        mode: GemmMode,
        act_addr: u16,
        wgt_addr: u16,
        groups: u16,
        out_addr: u16,
        first: bool,
        last: bool,
        wait: u16,
        signal: u16,
    },
    /// W32/W16 of `lines` lines from dW^T lines in `out`.
    Update {
        out_addr: u16,
        master_addr: u16,
        w16_addr: u16,
        mask_addr: u16,
        lines: u16,
        wait: u16,
        signal: u16,
    },
    /// M_F along K for one cout block.
    PruneF {
        w16_addr: u16,
        lines: u16,
        wgt_addr: u16,
        mask_addr: u16,
        wait: u16,
        signal: u16,
    },
    /// M_B along Cout of W16 (x) M_F for one block of `cols` k's.
    PruneB {
        w16_addr: u16,
        mask_addr: u16,
        stride: u16,
        blocks: u16,
        k_block: u16,
        wgt_addr: u16,
        wait: u16,
        signal: u16,
    },
    /// Raise `done` once every engine is idle.
    End,
}

/// Why a word does not decode.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    #[error("unknown opcode {0}")]
    Opcode(u8),
    #[error("unknown buffer code {0}")]
    Buffer(u16),
    #[error("reserved bits are set (bits [63:40] or an unused operand slot or GEMM flag)")]
    Reserved,
}

fn get(w: &Word, lo: u32, bits: u32) -> u32 {
    let mut v = 0u64;
    for i in 0..bits {
        let b = lo + i;
        v |= u64::from((w[(b / 32) as usize] >> (b % 32)) & 1) << i;
    }
    v as u32
}

fn put(w: &mut Word, lo: u32, bits: u32, value: u32) {
    for i in 0..bits {
        let b = lo + i;
        let bit = (value >> i) & 1;
        w[(b / 32) as usize] |= bit << (b % 32);
    }
}

fn slot(w: &Word, s: u32) -> u16 {
    get(w, SLOT0 + s * SLOT_BITS, SLOT_BITS) as u16
}

impl Instr {
    /// The engine whose FIFO the controller puts this instruction in (`None` for END).
    pub fn engine(&self) -> Option<Engine> {
        match self {
            Instr::Load { .. } | Instr::Store { .. } => Some(Engine::Dma),
            Instr::Gemm { .. } => Some(Engine::Stce),
            Instr::Update { .. } => Some(Engine::Wuve),
            Instr::PruneF { .. } | Instr::PruneB { .. } => Some(Engine::Sore),
            Instr::End => None,
        }
    }

    pub fn opcode(&self) -> u8 {
        match self {
            Instr::End => opcode::END,
            Instr::Load { .. } => opcode::LOAD,
            Instr::Store { .. } => opcode::STORE,
            Instr::Gemm { .. } => opcode::GEMM,
            Instr::Update { .. } => opcode::UPDATE,
            Instr::PruneF { .. } => opcode::PRUNE_F,
            Instr::PruneB { .. } => opcode::PRUNE_B,
        }
    }

    /// `(wait, signal)` token masks (END has none).
    pub fn tokens(&self) -> (u16, u16) {
        match *self {
            Instr::Load { wait, signal, .. }
            | Instr::Store { wait, signal, .. }
            | Instr::Gemm { wait, signal, .. }
            | Instr::Update { wait, signal, .. }
            | Instr::PruneF { wait, signal, .. }
            | Instr::PruneB { wait, signal, .. } => (wait, signal),
            Instr::End => (0, 0),
        }
    }

    /// The operand slots of this instruction (layout in the module docs).
    fn slots(&self) -> [u16; SLOTS as usize] {
        let dram = |a: u32| [a as u16, (a >> 16) as u16];
        match *self {
            Instr::End => [0; 8],
            Instr::Load {
                buf,
                buf_addr,
                dram_addr,
                lines,
                ..
            }
            | Instr::Store {
                buf,
                buf_addr,
                dram_addr,
                lines,
                ..
            } => {
                let [lo, hi] = dram(dram_addr);
                [buf.code(), buf_addr, lo, hi, lines, 0, 0, 0]
            }
            Instr::Gemm {
                mode,
                act_addr,
                wgt_addr,
                groups,
                out_addr,
                first,
                last,
                ..
            } => {
                let flags = if mode == GemmMode::Dense {
                    gemm_flags::DENSE
                } else {
                    0
                } | if first { gemm_flags::FIRST } else { 0 }
                    | if last { gemm_flags::LAST } else { 0 };
                [flags, act_addr, wgt_addr, groups, out_addr, 0, 0, 0]
            }
            Instr::Update {
                out_addr,
                master_addr,
                w16_addr,
                mask_addr,
                lines,
                ..
            } => [out_addr, master_addr, w16_addr, mask_addr, lines, 0, 0, 0],
            Instr::PruneF {
                w16_addr,
                lines,
                wgt_addr,
                mask_addr,
                ..
            } => [w16_addr, lines, wgt_addr, mask_addr, 0, 0, 0, 0],
            Instr::PruneB {
                w16_addr,
                mask_addr,
                stride,
                blocks,
                k_block,
                wgt_addr,
                ..
            } => [w16_addr, mask_addr, stride, blocks, k_block, wgt_addr, 0, 0],
        }
    }

    /// Number of operand slots the opcode uses (the rest must be zero).
    fn used_slots(op: u8) -> u32 {
        match op {
            opcode::LOAD | opcode::STORE | opcode::GEMM | opcode::UPDATE => 5,
            opcode::PRUNE_F => 4,
            opcode::PRUNE_B => 6,
            _ => 0,
        }
    }

    /// The fixed-width word.
    pub fn encode(&self) -> Word {
        let mut w = [0u32; WORD_U32S];
        let (wait, signal) = self.tokens();
        put(&mut w, 0, 8, u32::from(self.opcode()));
        put(&mut w, 8, 16, u32::from(wait));
        put(&mut w, 24, 16, u32::from(signal));
        for (s, v) in self.slots().into_iter().enumerate() {
            put(
                &mut w,
                SLOT0 + s as u32 * SLOT_BITS,
                SLOT_BITS,
                u32::from(v),
            );
        }
        w
    }
}

/// The instruction a word holds; `decode(&i.encode()) == Ok(i)` for every instruction.
pub fn decode(w: &Word) -> Result<Instr, DecodeError> {
    let op = get(w, 0, 8) as u8;
    if op > opcode::PRUNE_B {
        return Err(DecodeError::Opcode(op));
    }
    let used = Instr::used_slots(op);
    let reserved_clear = get(w, 40, 24) == 0 && (used..SLOTS).all(|s| slot(w, s) == 0);
    let (wait, signal) = (get(w, 8, 16) as u16, get(w, 24, 16) as u16);
    if !reserved_clear || (op == opcode::END && (wait != 0 || signal != 0)) {
        return Err(DecodeError::Reserved);
    }
    let s = |i| slot(w, i);
    let dram = || u32::from(s(2)) | (u32::from(s(3)) << 16);
    let buf = || Buf::from_code(s(0)).ok_or(DecodeError::Buffer(s(0)));
    Ok(match op {
        opcode::END => Instr::End,
        opcode::LOAD => Instr::Load {
            buf: buf()?,
            buf_addr: s(1),
            dram_addr: dram(),
            lines: s(4),
            wait,
            signal,
        },
        opcode::STORE => Instr::Store {
            buf: buf()?,
            buf_addr: s(1),
            dram_addr: dram(),
            lines: s(4),
            wait,
            signal,
        },
        opcode::GEMM => {
            let flags = s(0);
            if flags & !(gemm_flags::DENSE | gemm_flags::FIRST | gemm_flags::LAST) != 0 {
                return Err(DecodeError::Reserved);
            }
            Instr::Gemm {
                mode: if flags & gemm_flags::DENSE != 0 {
                    GemmMode::Dense
                } else {
                    GemmMode::Sparse
                },
                act_addr: s(1),
                wgt_addr: s(2),
                groups: s(3),
                out_addr: s(4),
                first: flags & gemm_flags::FIRST != 0,
                last: flags & gemm_flags::LAST != 0,
                wait,
                signal,
            }
        }
        opcode::UPDATE => Instr::Update {
            out_addr: s(0),
            master_addr: s(1),
            w16_addr: s(2),
            mask_addr: s(3),
            lines: s(4),
            wait,
            signal,
        },
        opcode::PRUNE_F => Instr::PruneF {
            w16_addr: s(0),
            lines: s(1),
            wgt_addr: s(2),
            mask_addr: s(3),
            wait,
            signal,
        },
        _ => Instr::PruneB {
            w16_addr: s(0),
            mask_addr: s(1),
            stride: s(2),
            blocks: s(3),
            k_block: s(4),
            wgt_addr: s(5),
            wait,
            signal,
        },
    })
}

/// Every word of a program, in order (what the harness writes into the instruction memory).
pub fn encode_program(program: &[Instr]) -> Vec<Word> {
    program.iter().map(Instr::encode).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn any_buf() -> impl Strategy<Value = Buf> {
        (0usize..6).prop_map(|i| Buf::ALL[i])
    }

    fn any_instr() -> impl Strategy<Value = Instr> {
        let t = (any::<u16>(), any::<u16>());
        prop_oneof![
            Just(Instr::End),
            (any_buf(), any::<u16>(), any::<u32>(), any::<u16>(), t).prop_map(
                |(buf, buf_addr, dram_addr, lines, (wait, signal))| {
                    Instr::Load {
                        buf,
                        buf_addr,
                        dram_addr,
                        lines,
                        wait,
                        signal,
                    }
                }
            ),
            (any_buf(), any::<u16>(), any::<u32>(), any::<u16>(), t).prop_map(
                |(buf, buf_addr, dram_addr, lines, (wait, signal))| {
                    Instr::Store {
                        buf,
                        buf_addr,
                        dram_addr,
                        lines,
                        wait,
                        signal,
                    }
                }
            ),
            (
                any::<bool>(),
                any::<[u16; 4]>(),
                any::<bool>(),
                any::<bool>(),
                t
            )
                .prop_map(|(dense, a, first, last, (wait, signal))| Instr::Gemm {
                    mode: if dense {
                        GemmMode::Dense
                    } else {
                        GemmMode::Sparse
                    },
                    act_addr: a[0],
                    wgt_addr: a[1],
                    groups: a[2],
                    out_addr: a[3],
                    first,
                    last,
                    wait,
                    signal
                }),
            (any::<[u16; 5]>(), t).prop_map(|(a, (wait, signal))| Instr::Update {
                out_addr: a[0],
                master_addr: a[1],
                w16_addr: a[2],
                mask_addr: a[3],
                lines: a[4],
                wait,
                signal
            }),
            (any::<[u16; 4]>(), t).prop_map(|(a, (wait, signal))| Instr::PruneF {
                w16_addr: a[0],
                lines: a[1],
                wgt_addr: a[2],
                mask_addr: a[3],
                wait,
                signal
            }),
            (any::<[u16; 6]>(), t).prop_map(|(a, (wait, signal))| Instr::PruneB {
                w16_addr: a[0],
                mask_addr: a[1],
                stride: a[2],
                blocks: a[3],
                k_block: a[4],
                wgt_addr: a[5],
                wait,
                signal
            }),
        ]
    }

    proptest! {
        #[test]
        fn encode_decode_round_trip(i in any_instr()) {
            prop_assert_eq!(decode(&i.encode()), Ok(i));
            let json = serde_json::to_string(&i).unwrap();
            prop_assert_eq!(serde_json::from_str::<Instr>(&json).unwrap(), i);
        }
    }

    #[test]
    fn layout_is_as_documented() {
        let i = Instr::Load {
            buf: Buf::Wgt,
            buf_addr: 0x1234,
            dram_addr: 0xABCD_0042,
            lines: 7,
            wait: 0x8001,
            signal: 0x0102,
        };
        let w = i.encode();
        assert_eq!(w[0], 0x01 | (0x8001 << 8) | (0x02 << 24));
        assert_eq!(w[1], 0x01);
        assert_eq!(w[2], 1 | (0x1234 << 16));
        assert_eq!(w[3], 0x0042 | (0xABCD << 16));
        assert_eq!(w[4], 7);
        assert_eq!(w[5], 0);
        assert_eq!(Instr::End.encode(), [0; WORD_U32S]);
    }

    #[test]
    fn corrupt_words_are_rejected() {
        let mut w = Instr::End.encode();
        w[0] = 9;
        assert_eq!(decode(&w), Err(DecodeError::Opcode(9)));
        let mut w = Instr::Load {
            buf: Buf::Act,
            buf_addr: 0,
            dram_addr: 0,
            lines: 1,
            wait: 0,
            signal: 0,
        }
        .encode();
        w[2] = 6;
        assert_eq!(decode(&w), Err(DecodeError::Buffer(6)));
        w[2] = 0;
        w[5] = 1;
        assert_eq!(decode(&w), Err(DecodeError::Reserved));
        let mut w = Instr::End.encode();
        w[1] = 1 << 20;
        assert_eq!(decode(&w), Err(DecodeError::Reserved));
    }
}
