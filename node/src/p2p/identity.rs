//! The node's persistent libp2p identity: an ed25519 key created on first
//! start and reused after, so the peer id (and peers' bootnode addresses
//! for this node) survive restarts.

use super::P2pError;
use libp2p::identity::Keypair;
use std::path::Path;

/// File name of the key inside the data directory.
pub const KEY_FILE: &str = "p2p_key";

/// Loads the key from `dir/p2p_key`, or creates and saves a new one.
pub fn load_or_create(dir: &Path) -> Result<Keypair, P2pError> {
    let path = dir.join(KEY_FILE);
    let identity = |why: String| P2pError::Identity { path: path.display().to_string(), why };
    match std::fs::read(&path) {
        Ok(bytes) => {
            // A damaged key file is an operator problem: refuse to start
            // rather than silently becoming a different peer.
            Keypair::from_protobuf_encoding(&bytes).map_err(|e| identity(format!("cannot decode key: {e}")))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            std::fs::create_dir_all(dir).map_err(|e| identity(e.to_string()))?;
            let key = Keypair::generate_ed25519();
            let bytes = key.to_protobuf_encoding().map_err(|e| identity(e.to_string()))?;
            write_private(&path, &bytes).map_err(|e| identity(e.to_string()))?;
            tracing::info!(peer_id = %key.public().to_peer_id(), path = %path.display(), "created a new p2p identity");
            Ok(key)
        }
        Err(e) => Err(identity(e.to_string())),
    }
}

/// Writes a secret readable by the owner only, via a temporary file so a
/// crash never leaves a half-written key.
fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let tmp = path.with_extension("tmp");
    {
        let mut opts = std::fs::OpenOptions::new();
        opts.write(true).create(true).truncate(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            opts.mode(0o600);
        }
        let mut f = opts.open(&tmp)?;
        std::io::Write::write_all(&mut f, bytes)?;
        f.sync_all()?;
    }
    std::fs::rename(&tmp, path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_is_created_once_and_reused() {
        let dir = tempfile::tempdir().unwrap();
        let a = load_or_create(dir.path()).unwrap();
        let b = load_or_create(dir.path()).unwrap();
        assert_eq!(a.public().to_peer_id(), b.public().to_peer_id());
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(dir.path().join(KEY_FILE)).unwrap().permissions().mode();
            assert_eq!(mode & 0o077, 0);
        }
    }

    #[test]
    fn damaged_key_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(KEY_FILE), b"not a key").unwrap();
        assert!(matches!(load_or_create(dir.path()), Err(P2pError::Identity { .. })));
    }
}
