//! The TUN offloads: virtio_net_hdr + TCP super-packet split, GRO coalescing.
//! The harness is `rswan::fuzzing::tun_offload` (feature `fuzzing`), which the regression tests replay.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| rswan::fuzzing::tun_offload(data));
