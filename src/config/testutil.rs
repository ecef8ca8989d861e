//! Test helpers: a self-deleting temporary directory.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

static COUNTER: AtomicUsize = AtomicUsize::new(0);

/// A uniquely named directory under `std::env::temp_dir()`, removed (recursively) on drop.
pub(crate) struct TempDir {
    path: PathBuf,
}

impl TempDir {
    /// Create a fresh directory whose name contains `tag`, the pid, a counter and the time.
    pub(crate) fn new(tag: &str) -> TempDir {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0);
        let path = std::env::temp_dir().join(format!(
            "rswan-config-{tag}-{}-{}-{nanos}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&path).expect("create temp dir");
        TempDir { path }
    }

    /// The directory.
    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    /// Write `contents` to `rel` (relative to the directory) with mode 0600; returns the path.
    pub(crate) fn write(&self, rel: &str, contents: &str) -> PathBuf {
        self.write_mode(rel, contents, 0o600)
    }

    /// Write `contents` to `rel` with the given permission bits; returns the path.
    pub(crate) fn write_mode(&self, rel: &str, contents: &str, mode: u32) -> PathBuf {
        use std::os::unix::fs::PermissionsExt;
        let p = self.path.join(rel);
        std::fs::write(&p, contents).expect("write temp file");
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(mode)).expect("chmod");
        p
    }

    /// Create the subdirectory `rel`.
    pub(crate) fn mkdir(&self, rel: &str) -> PathBuf {
        let p = self.path.join(rel);
        std::fs::create_dir_all(&p).expect("mkdir");
        p
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.path);
    }
}

/// Deterministic pseudo-random texts built from configuration-ish fragments, for
/// "never panics" tests.
pub(crate) fn fuzz_texts(fragments: &[&str], count: usize) -> Vec<String> {
    let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    (0..count)
        .map(|_| {
            let n = (next() % 40) as usize;
            (0..n)
                .map(|_| fragments[(next() % fragments.len() as u64) as usize])
                .collect()
        })
        .collect()
}
