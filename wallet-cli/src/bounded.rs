//! Reading the files the wallet is pointed at (`--wallet`, `--cookie`)
//! with a size cap: a path naming a device or a named pipe (`/dev/zero`, a
//! FIFO) would otherwise be read until memory runs out, or wait forever.

use std::io::Read;
use std::path::Path;

/// Why a bounded read failed.
#[derive(Debug, thiserror::Error)]
pub enum BoundedReadError {
    /// The file system's own error (`NotFound` among them).
    #[error("{0}")]
    Io(#[from] std::io::Error),
    /// A directory, device, socket or named pipe.
    #[error("not a regular file")]
    NotRegular,
    /// More bytes than any file of its kind holds.
    #[error("larger than {0} bytes")]
    TooLarge(u64),
}

/// The bytes of the regular file at `path`, refused past `cap` bytes.
pub fn read_regular(path: &Path, cap: u64) -> Result<Vec<u8>, BoundedReadError> {
    // Checked before opening: opening a named pipe waits for a writer.
    if !std::fs::metadata(path)?.is_file() {
        return Err(BoundedReadError::NotRegular);
    }
    let file = std::fs::File::open(path)?;
    let mut bytes = Vec::new();
    file.take(cap.saturating_add(1)).read_to_end(&mut bytes)?;
    if bytes.len() as u64 > cap {
        return Err(BoundedReadError::TooLarge(cap));
    }
    Ok(bytes)
}

/// The bytes at `path`, whatever kind of file it names, refused past
/// `cap` bytes: for a file the user names on the command line (`--chain
/// <(...)`), where a pipe is a choice, but `/dev/zero` must still not fill
/// memory.
pub fn read_capped(path: &Path, cap: u64) -> Result<Vec<u8>, BoundedReadError> {
    let mut bytes = Vec::new();
    std::fs::File::open(path)?.take(cap.saturating_add(1)).read_to_end(&mut bytes)?;
    if bytes.len() as u64 > cap {
        return Err(BoundedReadError::TooLarge(cap));
    }
    Ok(bytes)
}

/// A named pipe in `dir` with no writer: opening it for reading would
/// wait forever (made with coreutils' `mkfifo`, as a shell user would).
#[cfg(test)]
pub fn named_pipe(dir: &Path) -> std::path::PathBuf {
    let path = dir.join("pipe");
    let status = std::process::Command::new("mkfifo").arg(&path).status().expect("run mkfifo");
    assert!(status.success(), "mkfifo failed");
    path
}

/// Runs `f` on another thread: a call that never returns fails the test
/// at the deadline instead of hanging it.
#[cfg(test)]
pub fn within_deadline<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    let (done, result) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = done.send(f());
    });
    result.recv_timeout(std::time::Duration::from_secs(30)).expect("returned within 30 s")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_device_is_refused_and_a_file_past_the_cap_too() {
        assert!(matches!(read_regular(Path::new("/dev/zero"), 1 << 20), Err(BoundedReadError::NotRegular)));
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("f");
        std::fs::write(&path, [7u8; 10]).expect("write");
        assert_eq!(read_regular(&path, 10).expect("at the cap").len(), 10);
        assert!(matches!(read_regular(&path, 9), Err(BoundedReadError::TooLarge(9))));
        let missing = read_regular(&dir.path().join("none"), 10);
        assert!(matches!(missing, Err(BoundedReadError::Io(e)) if e.kind() == std::io::ErrorKind::NotFound));
    }

    #[test]
    fn an_endless_device_is_read_only_to_the_cap() {
        let endless = within_deadline(|| read_capped(Path::new("/dev/zero"), 1 << 20));
        assert!(matches!(endless, Err(BoundedReadError::TooLarge(_))), "{endless:?}");
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("f");
        std::fs::write(&path, [7u8; 10]).expect("write");
        assert_eq!(read_capped(&path, 10).expect("at the cap").len(), 10);
    }
}
