//! Replays every kept regression input (`fuzz/regressions/<target>/*`) through its target's
//! harness, so that a fixed finding stays fixed in the normal test run.

use std::path::{Path, PathBuf};

use super::TARGETS;

fn regressions() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/regressions")
}

fn replay(target: &str) -> usize {
    let (_, harness) = TARGETS
        .iter()
        .find(|(name, _)| *name == target)
        .expect("known target");
    let Ok(dir) = std::fs::read_dir(regressions().join(target)) else {
        return 0;
    };
    let mut files: Vec<PathBuf> = dir.map(|e| e.expect("readable dir").path()).collect();
    files.sort();
    for f in &files {
        let data = std::fs::read(f).expect("readable regression input");
        eprintln!("replaying {}", f.display());
        harness(&data);
    }
    files.len()
}

macro_rules! replays {
    ($($name:ident),* $(,)?) => {
        $(
            #[test]
            fn $name() {
                replay(stringify!($name));
            }
        )*

        /// Every regression directory belongs to a target replayed here, and every target
        /// has a fuzz target file.
        #[test]
        fn every_target_is_replayed() {
            let replayed = [$(stringify!($name)),*];
            let mut names: Vec<&str> = TARGETS.iter().map(|(n, _)| *n).collect();
            names.sort();
            assert_eq!(names, replayed, "TARGETS and the replays differ");
            for n in &names {
                let file = Path::new(env!("CARGO_MANIFEST_DIR"))
                    .join("fuzz/fuzz_targets")
                    .join(format!("{n}.rs"));
                assert!(file.exists(), "{} is missing", file.display());
            }
            if let Ok(dir) = std::fs::read_dir(regressions()) {
                for e in dir {
                    let name = e.expect("readable dir").file_name();
                    let name = name.to_string_lossy();
                    assert!(names.contains(&name.as_ref()), "no target named {name}");
                }
            }
        }
    };
}

replays!(
    config_files,
    control_request,
    dns_parse,
    ikev2_engine,
    ikev2_parse,
    isakmp_parse,
    klips_packets,
    pluto_engine,
    pluto_first,
    tun_offload,
);

/// Writes the generated seed inputs (`fuzz/seeds/<target>/`); run by hand after a protocol
/// change: `cargo test --lib fuzzing::tests::write_seeds -- --ignored`.
#[test]
#[ignore]
fn write_seeds() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/seeds/pluto_first");
    std::fs::create_dir_all(&dir).expect("seed dir");
    for (name, bytes) in super::pluto::first_seeds() {
        std::fs::write(dir.join(name), bytes).expect("seed written");
    }
}
