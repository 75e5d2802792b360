//! The HTTP endpoint (`--http-bind`): `httpd` is a small bounded HTTP/1.1
//! server (request line, headers and waits all capped; no async runtime),
//! `endpoint` its routes: `/healthz`, `/readyz`, `/metrics`, `/cameras`
//! and `/api/cameras`, the gallery and its media (with `Range`).
//!
//! Owns: the HTTP sockets and what they serve. May use: `net` (the
//! server's stop handle: board, metrics, allow-list), `delivery` (queue
//! figures), `tools::convert` (conversion figures), `ops`, storage. Nothing
//! below imports it.

pub mod endpoint;
pub mod httpd;
