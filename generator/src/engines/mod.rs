//! Engine generators: each turns a validated config into a `Design`.

pub mod arith;
pub mod axi;
pub mod deform;
pub mod fp;
pub mod sat;
pub mod sore;
pub mod stce;
pub mod wuve;
