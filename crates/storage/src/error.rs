//! Storage's errors are the protocol's [`StoreError`]: the session tells
//! "busy on another link" from "disk full" from "not the same file".

use std::fmt::Display;

pub use dashcam_protocol::StoreError;

pub type Result<T> = std::result::Result<T, StoreError>;

/// Names the step that failed, keeping the cause's kind (a full disk stays
/// [`StoreError::NoSpace`]).
pub trait Ctx<T> {
    fn ctx<D: Display>(self, what: impl FnOnce() -> D) -> Result<T>;
}

impl<T> Ctx<T> for std::io::Result<T> {
    fn ctx<D: Display>(self, what: impl FnOnce() -> D) -> Result<T> {
        self.map_err(|e| StoreError::io(what(), e))
    }
}

impl<T> Ctx<T> for serde_json::Result<T> {
    fn ctx<D: Display>(self, what: impl FnOnce() -> D) -> Result<T> {
        self.map_err(|e| StoreError::io(what(), std::io::Error::from(e)))
    }
}
