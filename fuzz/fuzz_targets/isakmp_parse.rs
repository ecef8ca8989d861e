//! The ISAKMP codec: datagrams, decrypted payload chains, NAT-T framing (re-emit round trip).
//! The harness is `rswan::fuzzing::isakmp_parse` (feature `fuzzing`), which the regression tests replay.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| rswan::fuzzing::isakmp_parse(data));
