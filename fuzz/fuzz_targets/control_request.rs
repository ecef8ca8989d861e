//! The control socket's request parser (parse_request).
//! The harness is `rswan::fuzzing::control_request` (feature `fuzzing`), which the regression tests replay.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| rswan::fuzzing::control_request(data));
