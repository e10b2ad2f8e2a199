//! libFuzzer over the account's decide/evolve: the property is [`domain::fuzzing::account_decide`].
#![no_main]

libfuzzer_sys::fuzz_target!(|bytes: &[u8]| domain::fuzzing::account_decide(bytes));
