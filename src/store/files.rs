//! The SQLite store's files are private to the gateway's user, whatever the
//! umask it was started with: the database holds password hashes, API-key
//! hashes and encrypted secrets.
//!
//! - A missing parent directory is created 0700.
//! - A missing database file is created 0600 before SQLite opens it (an
//!   empty file is an empty database); SQLite creates `-wal` and `-shm`
//!   with the permissions of the database file, so they are 0600 too.
//! - An existing database, `-wal` or `-shm` file that the group or others
//!   may read or write is tightened to 0600, with a warning.
//!
//! An existing directory keeps its mode: it may be shared (the working
//! directory, `/var/lib`); only what the gateway creates is its own.

use std::fs::{DirBuilder, OpenOptions, Permissions};
use std::io::ErrorKind;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use super::StoreError;

/// Mode of a directory the gateway creates for its files.
pub const PRIVATE_DIR_MODE: u32 = 0o700;
/// Mode of the database files.
pub const PRIVATE_FILE_MODE: u32 = 0o600;

/// Create `dir` (and missing parents) 0700 when it does not exist.
pub fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    if dir.as_os_str().is_empty() || dir.is_dir() {
        return Ok(());
    }
    DirBuilder::new().recursive(true).mode(PRIVATE_DIR_MODE).create(dir)
}

/// Prepare the files of the SQLite database at `path` (URL parameters
/// `params`): see the module comment. Nothing is created when the URL asks
/// for a mode other than read-write-create.
pub(super) fn prepare_sqlite_files(path: &Path, params: &str) -> Result<(), StoreError> {
    let mode = params
        .split('&')
        .filter_map(|p| p.strip_prefix("mode="))
        .next_back()
        .unwrap_or("rwc");
    if mode == "rwc" {
        if let Some(parent) = path.parent() {
            create_private_dir(parent)
                .map_err(|e| StoreError::Unavailable(format!("cannot create the store directory: {e}")))?;
        }
        match OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(PRIVATE_FILE_MODE)
            .open(path)
        {
            Ok(_) => {}
            Err(e) if e.kind() == ErrorKind::AlreadyExists => {}
            Err(e) => {
                return Err(StoreError::Unavailable(format!(
                    "cannot create the store file {}: {e}",
                    path.display()
                )))
            }
        }
    }
    for file in [path.to_path_buf(), suffixed(path, "-wal"), suffixed(path, "-shm")] {
        tighten(&file);
    }
    Ok(())
}

fn suffixed(path: &Path, suffix: &str) -> PathBuf {
    let mut s = path.as_os_str().to_owned();
    s.push(suffix);
    PathBuf::from(s)
}

/// Make an existing regular file that the group or others may access 0600.
fn tighten(file: &Path) {
    let Ok(meta) = std::fs::metadata(file) else { return };
    let mode = meta.permissions().mode() & 0o7777;
    if !meta.is_file() || mode & 0o077 == 0 {
        return;
    }
    match std::fs::set_permissions(file, Permissions::from_mode(PRIVATE_FILE_MODE)) {
        Ok(()) => tracing::warn!(
            path = %file.display(),
            was = format!("{mode:04o}"),
            now = format!("{PRIVATE_FILE_MODE:04o}"),
            "the store file was readable by other users; tightened"
        ),
        Err(e) => tracing::warn!(
            path = %file.display(),
            mode = format!("{mode:04o}"),
            error = %e,
            "the store file is readable by other users and cannot be tightened"
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mode(p: &Path) -> u32 {
        std::fs::metadata(p).unwrap().permissions().mode() & 0o777
    }

    #[test]
    fn creates_a_private_dir_and_file_and_tightens_existing_ones() {
        let tmp = tempfile::tempdir().unwrap();
        let db = tmp.path().join("a/b/tilegate.db");
        prepare_sqlite_files(&db, "").unwrap();
        assert_eq!(mode(&tmp.path().join("a")), 0o700);
        assert_eq!(mode(&tmp.path().join("a/b")), 0o700);
        assert_eq!(mode(&db), 0o600);

        let wal = suffixed(&db, "-wal");
        std::fs::write(&wal, b"").unwrap();
        std::fs::set_permissions(&wal, Permissions::from_mode(0o644)).unwrap();
        std::fs::set_permissions(&db, Permissions::from_mode(0o660)).unwrap();
        prepare_sqlite_files(&db, "mode=rwc").unwrap();
        assert_eq!(mode(&db), 0o600);
        assert_eq!(mode(&wal), 0o600);
    }

    #[test]
    fn read_only_urls_create_nothing() {
        let tmp = tempfile::tempdir().unwrap();
        let db = tmp.path().join("ro/tilegate.db");
        prepare_sqlite_files(&db, "mode=ro").unwrap();
        assert!(!tmp.path().join("ro").exists());
    }
}
