//! Files that hold key material (the at-rest key, sealed secrets, subject keys): created
//! owner-only, `0600` in a directory created `0700`, and refused when other users can read
//! or write them, naming the file and the `chmod` that fixes it, as `ssh` refuses such a
//! private key.

use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::Path;

use super::KeyError;

const OWNER_ONLY: u32 = 0o600;

fn file_error(path: &Path, reason: impl ToString) -> KeyError {
    KeyError::File {
        path: path.to_owned(),
        reason: reason.to_string(),
    }
}

/// Creates `path`'s directory, owner-only, when it does not exist yet.
fn create_directory(path: &Path) -> Result<(), KeyError> {
    match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() && !dir.exists() => std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(|error| file_error(dir, error)),
        _ => Ok(()),
    }
}

/// Creates `path` holding `bytes`, owner-only, unless it exists already (then nothing is
/// written), so two processes creating one key agree on the first.
pub(crate) fn create_new(path: &Path, bytes: &[u8]) -> Result<(), KeyError> {
    create_directory(path)?;
    let mut file = match std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(OWNER_ONLY)
        .open(path)
    {
        Ok(file) => file,
        Err(error) if error.kind() == std::io::ErrorKind::AlreadyExists => return Ok(()),
        Err(error) => return Err(file_error(path, error)),
    };
    file.write_all(bytes)
        .and_then(|()| file.sync_all())
        .map_err(|error| file_error(path, error))
}

/// Replaces `path` whole with `bytes`, owner-only, through a temporary file renamed over it.
pub(crate) fn replace(path: &Path, bytes: &[u8]) -> Result<(), KeyError> {
    create_directory(path)?;
    let temporary = path.with_extension("tmp");
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(OWNER_ONLY)
        .open(&temporary)
        .map_err(|error| file_error(&temporary, error))?;
    // `mode` applies only to a new file; one a crash left behind keeps its own.
    file.set_permissions(std::fs::Permissions::from_mode(OWNER_ONLY))
        .and_then(|()| file.write_all(bytes))
        .and_then(|()| file.sync_all())
        .map_err(|error| file_error(&temporary, error))?;
    std::fs::rename(&temporary, path).map_err(|error| file_error(path, error))
}

/// What `path` holds (`None` when there is no such file), refused when others can read it.
pub(crate) fn read(path: &Path) -> Result<Option<Vec<u8>>, KeyError> {
    if !path.exists() {
        return Ok(None);
    }
    check(path)?;
    std::fs::read(path)
        .map(Some)
        .map_err(|error| file_error(path, error))
}

/// Refuses `path` when users other than its owner may read or write it.
fn check(path: &Path) -> Result<(), KeyError> {
    let mode = std::fs::metadata(path)
        .map_err(|error| file_error(path, error))?
        .permissions()
        .mode()
        & 0o777;
    if mode & 0o077 == 0 {
        Ok(())
    } else {
        Err(KeyError::Exposed {
            path: path.to_owned(),
            mode,
        })
    }
}
