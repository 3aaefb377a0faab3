//! Memory across time: every run rolled up by check and hour, and every
//! status change, kept in a crash-safe store under `state.dir`
//! ([`store`]), written in batches off the probe path ([`recorder`]).

pub mod rollup;
pub mod store;
