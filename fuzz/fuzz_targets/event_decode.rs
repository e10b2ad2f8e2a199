//! libFuzzer over event decoding: the property is [`domain::fuzzing::event_decode`].
#![no_main]

libfuzzer_sys::fuzz_target!(|bytes: &[u8]| domain::fuzzing::event_decode(bytes));
