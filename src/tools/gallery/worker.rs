//! The worker that keeps index.html up to date in a running server.

use super::*;

/// The worker that keeps index.html up to date in a running server: owned
/// by `app` (started and stopped there), told of changes through the
/// [`GalleryHandle`]s it hands out. Two servers in one process keep two.
pub struct Gallery {
    tx: Option<Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
    /// Set by [`Gallery::stop`]: no new thumbnail is begun.
    stopping: Arc<AtomicBool>,
}

/// Tells a [`Gallery`] that a file was stored or converted.
#[derive(Clone)]
pub struct GalleryHandle(Sender<()>);

impl Gallery {
    /// Starts the worker that rebuilds `root`'s gallery (at most every half
    /// second) when told a file was stored or converted, and builds it once
    /// now.
    pub fn start(root: &Path) -> Gallery {
        let (tx, rx) = mpsc::channel::<()>();
        let stopping = Arc::new(AtomicBool::new(false));
        let root = root.to_path_buf();
        let stop = stopping.clone();
        let thread = std::thread::Builder::new()
            .name("gallery".into())
            .spawn(move || {
                let how = How {
                    retry: false,
                    stopping: &stop,
                };
                let _ = build_how(&root, &how);
                // Ends when told to stop (handles may outlive the gallery:
                // the channel need not close) or when every sender is gone.
                while rx.recv().is_ok() {
                    if stop.load(Ordering::SeqCst) {
                        return;
                    }
                    std::thread::sleep(Duration::from_millis(500));
                    while rx.try_recv().is_ok() {}
                    if stop.load(Ordering::SeqCst) {
                        return;
                    }
                    if let Err(e) = build_how(&root, &how) {
                        log::warn!("gallery: {e:#}");
                    }
                }
            })
            .map_err(|e| log::warn!("gallery: cannot start its thread: {e}"))
            .ok();
        Gallery {
            tx: Some(tx),
            thread,
            stopping,
        }
    }

    pub fn handle(&self) -> Option<GalleryHandle> {
        self.tx.clone().map(GalleryHandle)
    }

    /// Stops the worker at a stop of the server: the thumbnail being made
    /// finishes (or its scratch file goes with it), none is begun, and the
    /// worker is waited for (at most `wait`), so no `.tmp` is left behind.
    pub fn stop(mut self, wait: Duration) {
        self.stopping.store(true, Ordering::SeqCst);
        // Wakes the worker if it waits (handles handed out may keep the
        // channel open).
        if let Some(tx) = self.tx.take() {
            let _ = tx.send(());
        }
        if let Some(t) = self.thread.take() {
            if !crate::join_by(t, std::time::Instant::now() + wait) {
                log::warn!("gallery: still building after {wait:?} at the stop");
            }
        }
    }
}

impl GalleryHandle {
    /// A file was stored or converted: rebuild soon.
    pub fn changed(&self) {
        let _ = self.0.send(());
    }
}
