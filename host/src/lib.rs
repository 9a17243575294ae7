//! What the host contributes besides its CLI: the I/O that packs may never do themselves.
//! [`webhook`] delivers external effects to HTTP endpoints for the egress gateway.

pub mod webhook;
