//! Pluto's unauthenticated input: a few raw datagrams (Main Mode first messages and anything else) to a fresh responder.
//! The harness is `rswan::fuzzing::pluto_first` (feature `fuzzing`), which the regression tests replay.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| rswan::fuzzing::pluto_first(data));
