//! libFuzzer over the listing's decide/evolve: the property is [`domain::fuzzing::listing_decide`].
#![no_main]

libfuzzer_sys::fuzz_target!(|bytes: &[u8]| domain::fuzzing::listing_decide(bytes));
