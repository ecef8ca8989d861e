//! The IKEv2 exchanges of two Pluto engines back to back, with fuzzed datagrams and fuzzed
//! plaintexts sealed with the receiver's IKE SA keys.
//! The harness is `rswan::fuzzing::ikev2_engine` (feature `fuzzing`), which the regression tests replay.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| rswan::fuzzing::ikev2_engine(data));
