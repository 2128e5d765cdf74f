//! The small files a node keeps beside its database (peer store, p2p key,
//! fee statistics, RPC cookie) and the chain-spec file: written whole or
//! not at all, read with a size cap. The data directory may have been
//! edited by someone else: a file replaced by a symlink to `/dev/zero` must
//! end in an error, not in an endless read, and a temporary file planted
//! beforehand must not receive a secret.

use std::fs::{File, OpenOptions};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

/// Reads `path` whole, refusing anything but a regular file (a named pipe
/// would block the open, a device never end) and a file larger than `max`
/// bytes (without reading more than one byte past the cap).
pub fn read_capped(path: &Path, max: u64) -> io::Result<Vec<u8>> {
    let mut opts = OpenOptions::new();
    opts.read(true);
    // Without O_NONBLOCK, opening a FIFO waits for a writer for ever.
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.custom_flags(libc::O_NONBLOCK);
    }
    let file = opts.open(path)?;
    if !file.metadata()?.is_file() {
        return Err(io::Error::new(io::ErrorKind::InvalidData, format!("{} is not a regular file", path.display())));
    }
    // Back to blocking reads: a network or FUSE file system may honour
    // the flag on a regular file and answer "would block".
    #[cfg(unix)]
    {
        use std::os::fd::AsRawFd;
        let fd = file.as_raw_fd();
        // SAFETY: fcntl on a descriptor this function owns, with flags
        // taken from the same descriptor.
        let flags = unsafe { libc::fcntl(fd, libc::F_GETFL) };
        if flags < 0 || unsafe { libc::fcntl(fd, libc::F_SETFL, flags & !libc::O_NONBLOCK) } < 0 {
            return Err(io::Error::last_os_error());
        }
    }
    take_capped(file, path, max)
}

/// Reads `path` whole up to `max` bytes like [`read_capped`], but accepts
/// a named pipe or device: for a file the operator names on the command
/// line (`--chain <(...)`), where a pipe is a choice, not an attack.
pub fn read_capped_any(path: &Path, max: u64) -> io::Result<Vec<u8>> {
    take_capped(File::open(path)?, path, max)
}

fn take_capped(file: File, path: &Path, max: u64) -> io::Result<Vec<u8>> {
    let mut bytes = Vec::new();
    file.take(max.saturating_add(1)).read_to_end(&mut bytes)?;
    if bytes.len() as u64 > max {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("{} is larger than {max} bytes, the most this file can hold", path.display()),
        ));
    }
    Ok(bytes)
}

/// Who may read a file written by [`write_atomic`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Access {
    /// The owner only (mode 0600 on unix): keys and secrets.
    Private,
    /// The process's umask decides.
    Default,
}

/// Writes `bytes` to `path` through a temporary file, fsync and rename, so
/// `path` holds the old or the new contents, never a mix, and survives a
/// power cut once this returns. The temporary file is always a new one: a
/// leftover (or a symlink planted there) is removed first and the file is
/// created exclusively, which follows no symlink.
pub fn write_atomic(path: &Path, bytes: &[u8], access: Access) -> io::Result<()> {
    // Two writers of one path in this process (the fee statistics are
    // saved from whichever thread connected the block, and at shutdown)
    // would otherwise remove each other's temporary file and rename a
    // half-written one into place.
    static WRITING: Mutex<()> = Mutex::new(());
    let _one_at_a_time = WRITING.lock().unwrap_or_else(|e| e.into_inner());
    let mut tmp_name = path.as_os_str().to_owned();
    tmp_name.push(".tmp");
    let tmp = PathBuf::from(tmp_name);
    match std::fs::remove_file(&tmp) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    let result = (|| {
        let mut opts = OpenOptions::new();
        opts.write(true).create_new(true);
        #[cfg(unix)]
        if access == Access::Private {
            use std::os::unix::fs::OpenOptionsExt;
            opts.mode(0o600);
        }
        let mut f = opts.open(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        drop(f);
        std::fs::rename(&tmp, path)?;
        // The rename itself is durable once the directory is synced (a
        // directory cannot be opened this way on Windows).
        #[cfg(unix)]
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            File::open(dir)?.sync_all()?;
        }
        Ok(())
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    #[cfg(unix)]
    #[test]
    fn a_device_or_a_named_pipe_is_refused_without_blocking() {
        let dir = tempfile::tempdir().expect("tempdir");
        let endless = dir.path().join("peers.json");
        std::os::unix::fs::symlink("/dev/zero", &endless).expect("symlink");
        let pipe = dir.path().join("p2p_key");
        let c_path = std::ffi::CString::new(pipe.as_os_str().as_encoded_bytes()).expect("path");
        // SAFETY: a NUL-terminated path that outlives the call.
        assert_eq!(unsafe { libc::mkfifo(c_path.as_ptr(), 0o600) }, 0, "mkfifo failed");
        for path in [endless, pipe] {
            // On another thread: an open that blocks fails at the deadline.
            let (done, result) = std::sync::mpsc::channel();
            let p = path.clone();
            std::thread::spawn(move || {
                let _ = done.send(read_capped(&p, 1 << 20).map(|b| b.len()));
            });
            let err = result
                .recv_timeout(std::time::Duration::from_secs(10))
                .expect("read_capped returned within 10 s")
                .expect_err("a special file was read");
            assert!(err.to_string().contains("not a regular file"), "{}: {err}", path.display());
        }
    }

    #[cfg(unix)]
    #[test]
    fn a_pipe_the_operator_names_is_read_up_to_the_cap() {
        let dir = tempfile::tempdir().expect("tempdir");
        let pipe = dir.path().join("spec.json");
        let c_path = std::ffi::CString::new(pipe.as_os_str().as_encoded_bytes()).expect("path");
        // SAFETY: a NUL-terminated path that outlives the call.
        assert_eq!(unsafe { libc::mkfifo(c_path.as_ptr(), 0o600) }, 0, "mkfifo failed");
        let writer = {
            let pipe = pipe.clone();
            std::thread::spawn(move || std::fs::write(pipe, b"{\"name\": \"x\"}"))
        };
        assert_eq!(read_capped_any(&pipe, 1024).expect("read"), b"{\"name\": \"x\"}");
        writer.join().expect("writer").expect("write");
        let endless = dir.path().join("zero");
        std::os::unix::fs::symlink("/dev/zero", &endless).expect("symlink");
        assert!(read_capped_any(&endless, 1024).is_err(), "an endless device read past the cap");
    }

    #[test]
    fn a_file_at_the_cap_is_read_whole() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("f");
        std::fs::write(&path, [1u8; 100]).expect("write");
        assert_eq!(read_capped(&path, 100).expect("read").len(), 100);
        assert!(read_capped(&path, 99).is_err());
    }

    #[test]
    fn two_writers_of_one_file_in_a_process_never_fail_nor_mix() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("fee_estimates.dat");
        let payloads = [vec![b'a'; 64 * 1024], vec![b'b'; 64 * 1024]];
        std::thread::scope(|s| {
            for payload in &payloads {
                let path = &path;
                s.spawn(move || {
                    for _ in 0..200 {
                        write_atomic(path, payload, Access::Default).expect("a concurrent write failed");
                    }
                });
            }
        });
        let written = std::fs::read(&path).expect("read");
        assert!(payloads.contains(&written), "the file mixes two writes");
    }

    #[cfg(unix)]
    #[test]
    fn a_planted_temporary_symlink_is_replaced_not_followed() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join(".cookie");
        let elsewhere = dir.path().join("attacker-readable");
        std::fs::write(&elsewhere, b"").expect("write");
        std::os::unix::fs::symlink(&elsewhere, dir.path().join(".cookie.tmp")).expect("symlink");
        write_atomic(&path, b"secret", Access::Private).expect("write");
        assert_eq!(std::fs::read(&elsewhere).expect("read"), b"", "the secret went through the symlink");
        assert_eq!(std::fs::read(&path).expect("read"), b"secret");
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&path).expect("metadata").permissions().mode();
        assert_eq!(mode & 0o077, 0, "a private file is readable by others: {mode:o}");
    }
}
