//! Writes that other modules make in the transaction of an append: a command's record and
//! its outbox row, a connector's cursor, an artifact body, an outbox row's approval or
//! close. Each owner module keeps its SQL and implements [`AtomicWrite`]; the event store
//! only runs them after the events, so a new atomic side effect never edits the store.

use sqlx::query::Query;

/// A value for a statement's next `$n` placeholder.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) enum Bind<'a> {
    Text(&'a str),
    MaybeText(Option<&'a str>),
    Int(i64),
    MaybeInt(Option<i64>),
    /// The time of the append's transaction, in microseconds since the epoch.
    Now,
}

/// A write another table's owner makes atomically with an append.
pub(crate) trait AtomicWrite: Sync {
    /// The statement, with `$1`, `$2`, … placeholders (both backends read them).
    fn statement(&self) -> &str;

    /// What the placeholders take, in order.
    fn binds(&self) -> Vec<Bind<'_>>;

    /// Whether the rows it touched mean it held; a fenced write that touched none refuses
    /// the whole append.
    fn check(&self, _rows_affected: u64) -> Result<(), Fenced> {
        Ok(())
    }

    /// Whether its `Bind::Now` must be the database's clock (see `Db::now_us`): a lease's
    /// expiry is, so hosts whose clocks disagree agree on when it ends.
    fn on_the_database_clock(&self) -> bool {
        false
    }
}

/// A fenced write found its precondition gone (a claim lost to another worker): the append
/// it belongs to writes nothing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Fenced {
    pub what: String,
}

/// `sql` with `binds` bound in order for the backend `DB`, `Bind::Now` as `now_us`: a
/// write's statement is `bound(write.statement(), &write.binds(), now_us)`.
pub(crate) fn bound<'q, DB>(
    sql: &'q str,
    binds: &[Bind<'q>],
    now_us: i64,
) -> Query<'q, DB, <DB as sqlx::Database>::Arguments<'q>>
where
    DB: sqlx::Database,
    &'q str: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
    Option<&'q str>: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
    Option<i64>: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
    i64: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
{
    binds
        .iter()
        .fold(sqlx::query(sql), |query, bind| match *bind {
            Bind::Text(text) => query.bind(text),
            Bind::MaybeText(text) => query.bind(text),
            Bind::Int(value) => query.bind(value),
            Bind::MaybeInt(value) => query.bind(value),
            Bind::Now => query.bind(now_us),
        })
}
