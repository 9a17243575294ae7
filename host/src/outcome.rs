//! How a verb ends, and the errors that decide the exit code: 0 done, 1 refused, unhealthy
//! or failed, 2 the operator's input was wrong. Every verb and service of the host speaks
//! this; `main` alone turns it into the exit code.

/// How a command ended, besides an error: done (exit 0), or it found something refused or
/// unhealthy and said so (exit 1).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Ended {
    Done,
    Refused,
}

impl From<bool> for Ended {
    fn from(healthy: bool) -> Self {
        if healthy { Ended::Done } else { Ended::Refused }
    }
}

/// Input the operator got wrong (a flag's value, a file, a name, a store that is not
/// there): exit 2, where something refused or failed is 1.
#[derive(Debug)]
pub(crate) struct BadInput(pub String);

impl std::fmt::Display for BadInput {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for BadInput {}

/// `.or_bad_input()`: this error is the operator's input, said in full.
pub(crate) trait OrBadInput<T> {
    fn or_bad_input(self) -> anyhow::Result<T>;
}

impl<T, E: Into<anyhow::Error>> OrBadInput<T> for Result<T, E> {
    fn or_bad_input(self) -> anyhow::Result<T> {
        self.map_err(|error| anyhow::Error::new(BadInput(format!("{:#}", error.into()))))
    }
}

/// Whether `error` is bad input rather than a refusal or a failure.
pub(crate) fn is_bad_input(error: &anyhow::Error) -> bool {
    use ops_core_runtime::db::DbError;
    error.chain().any(|cause| {
        cause.is::<BadInput>()
            || cause
                .downcast_ref::<DbError>()
                .is_some_and(DbError::is_bad_input)
            // A command that writes, pointed at a store that cannot be written.
            || ops_core_runtime::db::is_read_only(cause)
            // The reader of the output went away (`| head`): the invocation's fault.
            || cause
                .downcast_ref::<std::io::Error>()
                .is_some_and(|error| error.kind() == std::io::ErrorKind::BrokenPipe)
    })
}

/// What went wrong, each cause once: errors that state their source in their own text are
/// not followed by that source again.
pub(crate) fn message_of(error: &anyhow::Error) -> String {
    let mut message = String::new();
    for cause in error.chain() {
        let text = cause.to_string();
        if message.contains(&text) {
            continue;
        }
        if !message.is_empty() {
            message.push_str(": ");
        }
        message.push_str(&text);
    }
    message
}

/// Runs a verb's async work to its end on a runtime of its own.
pub(crate) fn block_on<T>(
    work: impl std::future::Future<Output = anyhow::Result<T>>,
) -> anyhow::Result<T> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?
        .block_on(work)
}
