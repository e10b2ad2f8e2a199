//! The parts of the `ticketing` binary that its tests use too: a PostgreSQL server of its own
//! ([`postgres`]) and the demo data ([`seed`]).

pub mod postgres;
pub mod seed;

/// Prints one progress line of `ticketing`.
pub fn say(line: &str) {
    eprintln!("ticketing: {line}");
}
