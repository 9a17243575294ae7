//! A source for connector tests: the filesync pack's sample export, with a step of the
//! test's own before each read (a source that is away, another worker taking the lease).

use std::sync::atomic::{AtomicUsize, Ordering};

use ops_core_runtime::connector::{JsonLinesDirectory, RawRecord, SourceError, SourceReader};

/// Reads the sample export; before read `n` (from 0), `before(n)` runs, and an error it
/// returns is what that read answers.
pub struct SampleWith<F> {
    inner: JsonLinesDirectory,
    reads: AtomicUsize,
    before: F,
}

impl<F> SampleWith<F>
where
    F: Fn(usize) -> Result<(), SourceError> + Send + Sync,
{
    pub fn new(before: F) -> Self {
        SampleWith {
            inner: JsonLinesDirectory::new(pack_filesync::SAMPLE_EXPORT),
            reads: AtomicUsize::new(0),
            before,
        }
    }
}

impl<F> SourceReader for SampleWith<F>
where
    F: Fn(usize) -> Result<(), SourceError> + Send + Sync,
{
    fn read_after(
        &self,
        stream: &str,
        cursor: Option<&str>,
        limit: usize,
    ) -> Result<Vec<RawRecord>, SourceError> {
        (self.before)(self.reads.fetch_add(1, Ordering::SeqCst))?;
        self.inner.read_after(stream, cursor, limit)
    }
}
