//! The partials in a camera's `.partial` folder, as the sweep, the size cap
//! and a resume find them on disk.

use super::*;

/// A partial found on disk.
pub(crate) struct Listed {
    pub part: PathBuf,
    pub state: PathBuf,
    pub size: u64,
    pub started_ms: i64,
    /// The file its state names (None: no state, or one that does not read).
    pub identity: Option<Identity>,
}

impl Listed {
    pub fn stale(&self, max_age: std::time::Duration) -> bool {
        let age_ms = Utc::now().timestamp_millis() - self.started_ms;
        age_ms < 0 || age_ms as u128 >= max_age.as_millis()
    }

    /// Removes the partial and its state; returns how many files went.
    pub fn remove(&self) -> usize {
        fs::remove_file(&self.part).is_ok() as usize + fs::remove_file(&self.state).is_ok() as usize
    }
}

pub(super) fn read_state(path: &Path) -> Option<State> {
    fsx::read_json(path, 64 * 1024)
}

/// Every partial in a `.partial` folder, from one read of the folder. A
/// `.part` without a state is listed with start time 0, so it is the first
/// to go; so is a state without its `.part` (a crash between two removals).
pub(crate) fn list(pdir: &Path) -> Vec<Listed> {
    let Ok(entries) = fs::read_dir(pdir) else {
        return Vec::new();
    };
    let paths: Vec<PathBuf> = entries.flatten().map(|e| e.path()).collect();
    let has = |p: &Path, ext: &str| p.extension().is_some_and(|x| x == ext);
    let mut out = Vec::new();
    for p in paths.iter().filter(|p| has(p, "part")) {
        let state = p.with_extension("state");
        let size = fs::symlink_metadata(p).map(|m| m.len()).unwrap_or(0);
        let read = read_state(&state);
        out.push(Listed {
            part: p.clone(),
            state,
            size,
            started_ms: read.as_ref().map_or(0, |s| s.started_at.timestamp_millis()),
            identity: read.map(|s| s.identity),
        });
    }
    for p in paths.iter().filter(|p| has(p, "state")) {
        if !fsx::exists(&p.with_extension("part")) && !fsx::exists(&p.with_extension("publish")) {
            out.push(Listed {
                part: p.with_extension("part"),
                state: p.clone(),
                size: 0,
                started_ms: 0,
                identity: None,
            });
        }
    }
    out
}
