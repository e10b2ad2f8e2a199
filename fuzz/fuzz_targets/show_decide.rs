//! libFuzzer over the show's decide/evolve: the property is [`domain::fuzzing::show_decide`].
#![no_main]

libfuzzer_sys::fuzz_target!(|bytes: &[u8]| domain::fuzzing::show_decide(bytes));
