//! Why a server could not start (BindError).

/// Why a server could not start: each a configuration error (exit status 2
/// at the command line), with the system's error as `source` where there is one.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BindError {
    /// The output folder cannot be used.
    #[error(transparent)]
    Storage(#[from] crate::storage::StoreError),
    /// Settings that cannot work together.
    #[error("{0}")]
    Settings(&'static str),
    /// The TLS certificate or key (which file, and why).
    #[error(transparent)]
    Tls(Box<dyn std::error::Error + Send + Sync + 'static>),
    #[error("--bind {bind} is not an address (use an IP of this machine, 0.0.0.0 for all, or a host name that resolves)")]
    NotAnAddress { bind: String },
    #[error("cannot listen on {addr}: port {port} is in use (another server?); pick another with --port")]
    PortInUse {
        addr: String,
        port: u16,
        source: std::io::Error,
    },
    #[error("cannot listen on {addr}: --bind {bind} is not an address of this machine")]
    NotHere {
        addr: String,
        bind: String,
        source: std::io::Error,
    },
    #[error(
        "cannot listen on {addr}: permission denied (ports below 1024 need administrator rights)"
    )]
    Denied {
        addr: String,
        source: std::io::Error,
    },
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        addr: String,
        source: std::io::Error,
    },
}
