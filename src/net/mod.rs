//! Cameras on the network: the listeners, admission (how many connections,
//! from where), PROXY protocol, TLS, and the connection driver, the one
//! place where a socket meets a `Session`.
//!
//! Owns: sockets, their deadlines, the admission counts. May use: the
//! protocol and storage crates, and `ops` (what a connection reports:
//! metrics, the live board, progress bars). Nothing here imports `tools`,
//! `delivery`, `web`, `cli` or `app`: what happens to a stored file is a
//! hook (`Server::on_stored`) the composition root sets.

pub(crate) mod admission;
pub mod deadline;
pub mod driver;
pub mod proxy;
pub mod server;
pub mod tls;
