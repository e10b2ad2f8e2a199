//! The parts of the `ticketing` binary that its tests (and the gateway's tests and the
//! benchmarks) use too: the whole system in one process ([`system`]), a PostgreSQL server of its
//! own ([`postgres`]), how `up` keeps its servers ([`supervise`]) and the demo data ([`seed`]).

pub mod postgres;
pub mod seed;
pub mod supervise;
pub mod system;

/// Prints one progress line of `ticketing`.
pub fn say(line: &str) {
    eprintln!("ticketing: {line}");
}
