//! The configuration readers (ipsec.conf, ipsec.secrets, conns to Pluto connections and manual plans).
//! The harness is `rswan::fuzzing::config_files` (feature `fuzzing`), which the regression tests replay.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| rswan::fuzzing::config_files(data));
