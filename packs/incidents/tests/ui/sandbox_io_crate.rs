// Naming the core runtime or an I/O crate is refused by the pack's own build, before
// deps-check sees the dependency: the executor, the database pool, an async socket.
#![no_std]
#![forbid(unsafe_code)]
use ops_core::prelude::*;
use ops_core_runtime::egress::Executor;

#[ops_core::event(domain = "paging")]
pub(crate) struct Paged {
    pub(crate) incident_id: String,
}

pub async fn page(paged: &Paged) {
    let _ = tokio::net::TcpStream::connect(paged.incident_id.as_str()).await;
    let _ = sqlx::SqlitePool::connect("sqlite://ops-data/events.db").await;
}

fn main() {}
