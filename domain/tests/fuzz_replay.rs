//! The fuzz targets' properties on stable: every input of the committed seed corpus
//! (`fuzz/corpus/<target>/`), then deterministic mutations of them (bytes flipped, inserted,
//! removed, spliced from another seed), through [`domain::fuzzing`]. libFuzzer explores further
//! on nightly (`scripts/fuzz`); this keeps the properties checked in every test run, where no
//! nightly toolchain exists. `FUZZ_REPLAY_MUTATIONS` sets the mutations per seed (default 2000).

use std::path::PathBuf;

/// A small deterministic generator (xorshift64*): the same mutations in every run.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: usize) -> usize {
        usize::try_from(self.next() % u64::try_from(n.max(1)).unwrap_or(1)).unwrap_or(0)
    }
}

fn seeds(target: &str) -> Vec<Vec<u8>> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../fuzz/corpus").join(target);
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|entry| entry.unwrap_or_else(|e| panic!("{e}")).path())
        .collect();
    files.sort();
    let seeds: Vec<Vec<u8>> = files.iter().map(|f| std::fs::read(f).unwrap_or_else(|e| panic!("{e}"))).collect();
    assert!(!seeds.is_empty(), "no seed corpus in {}", dir.display());
    seeds
}

fn mutate(rng: &mut Rng, input: &[u8], others: &[Vec<u8>]) -> Vec<u8> {
    let mut out = input.to_vec();
    for _ in 0..=rng.below(4) {
        match rng.below(5) {
            0 if !out.is_empty() => {
                let at = rng.below(out.len());
                out[at] ^= 1 << rng.below(8);
            }
            1 => {
                let at = rng.below(out.len() + 1);
                out.insert(at, u8::try_from(rng.below(256)).unwrap_or(0));
            }
            2 if !out.is_empty() => {
                let at = rng.below(out.len());
                out.remove(at);
            }
            3 if !out.is_empty() => {
                let at = rng.below(out.len());
                out[at] = [b'"', b'{', b'}', b':', b',', b'0', b'9', 0, 0xff][rng.below(9)];
            }
            _ => {
                let other = &others[rng.below(others.len())];
                let cut = rng.below(out.len() + 1);
                let from = rng.below(other.len() + 1);
                out.truncate(cut);
                out.extend_from_slice(&other[from..]);
            }
        }
    }
    out
}

fn replay(target: &str, property: fn(&[u8])) -> usize {
    let mutations: usize = std::env::var("FUZZ_REPLAY_MUTATIONS").ok().and_then(|n| n.parse().ok()).unwrap_or(2000);
    let seeds = seeds(target);
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15 ^ u64::try_from(target.len()).unwrap_or(0));
    let mut ran = 0;
    for seed in &seeds {
        property(seed);
        ran += 1;
        for _ in 0..mutations {
            property(&mutate(&mut rng, seed, &seeds));
            ran += 1;
        }
    }
    ran
}

#[test]
fn event_decode_seeds_are_every_event_type_and_they_round_trip() {
    let seeds = seeds("event_decode");
    for seed in &seeds {
        assert!(domain::EventEnvelope::decode(seed).is_ok(), "{}", String::from_utf8_lossy(seed));
    }
    assert_eq!(seeds.len(), 21, "one seed per event type");
    assert!(replay("event_decode", domain::fuzzing::event_decode) > 21);
}

#[test]
fn listing_decide_keeps_its_rules_over_the_corpus_and_mutations() {
    assert!(replay("listing_decide", domain::fuzzing::listing_decide) > 5);
}

#[test]
fn account_decide_keeps_its_rules_over_the_corpus_and_mutations() {
    assert!(replay("account_decide", domain::fuzzing::account_decide) > 3);
}

#[test]
fn show_decide_keeps_capacity_and_seats_over_the_corpus_and_mutations() {
    assert!(replay("show_decide", domain::fuzzing::show_decide) > 3);
}
