//! The IKEv2 codec: datagrams, protected-message location, decrypted chains, reassembly,
//! RFC 7427 identifiers (parse/re-emit round trips).
//! The harness is `rswan::fuzzing::ikev2_parse` (feature `fuzzing`), which the regression tests replay.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| rswan::fuzzing::ikev2_parse(data));
