//! Any bytes given to the event decoder: it never panics, and whatever it accepts encodes and
//! decodes back to the same event (what the store holds is what the aggregates replay).
#![no_main]

use domain::EventEnvelope;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|bytes: &[u8]| {
    if let Ok(event) = EventEnvelope::decode(bytes) {
        match EventEnvelope::decode(&EventEnvelope::encode(&event)) {
            Ok(again) => assert_eq!(again, event, "an accepted event does not survive a round trip"),
            Err(error) => panic!("an accepted event cannot be read back once written: {error}"),
        }
    }
});
