//! Engine generators: each turns a validated config into a `Design`.

pub mod arith;
pub mod stce;
