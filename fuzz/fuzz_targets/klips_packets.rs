//! The datapath core: raw/UDP inbound, outbound, and correctly keyed ESP/AH around fuzzed plaintext, with IPComp+ESP and IPComp+AH groups.
//! The harness is `rswan::fuzzing::klips_packets` (feature `fuzzing`), which the regression tests replay.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| rswan::fuzzing::klips_packets(data));
