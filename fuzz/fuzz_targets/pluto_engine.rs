//! The Pluto engine: two instances back to back, structured operations (datagrams in flight, re-encrypted and freshly encrypted plaintexts with valid HASH/SIG, time, whack, acquires, SA events).
//! The harness is `rswan::fuzzing::pluto_engine` (feature `fuzzing`), which the regression tests replay.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| rswan::fuzzing::pluto_engine(data));
