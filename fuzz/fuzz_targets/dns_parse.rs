//! The DNS codec and the OE key records (TXT X-IPsec-Server, KEY, IPSECKEY).
//! The harness is `rswan::fuzzing::dns_parse` (feature `fuzzing`), which the regression tests replay.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| rswan::fuzzing::dns_parse(data));
