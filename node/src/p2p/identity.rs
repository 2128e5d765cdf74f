//! The node's persistent libp2p identity: an ed25519 key created on first
//! start and reused after, so the peer id (and peers' bootnode addresses
//! for this node) survive restarts.

use super::P2pError;
use libp2p::identity::Keypair;
use std::path::Path;

/// File name of the key inside the data directory.
pub const KEY_FILE: &str = "p2p_key";

/// Largest key file read: an ed25519 key in libp2p's protobuf encoding is
/// 68 bytes; anything near this is not a key.
const MAX_KEY_FILE_BYTES: u64 = 64 * 1024;

/// Loads the key from `dir/p2p_key`, or creates and saves a new one.
pub fn load_or_create(dir: &Path) -> Result<Keypair, P2pError> {
    let path = dir.join(KEY_FILE);
    let identity = |why: String| P2pError::Identity { path: path.display().to_string(), why };
    match crate::files::read_capped(&path, MAX_KEY_FILE_BYTES) {
        Ok(bytes) => {
            // A damaged key file is an operator problem: refuse to start
            // rather than silently becoming a different peer.
            Keypair::from_protobuf_encoding(&bytes).map_err(|e| identity(format!("cannot decode key: {e}")))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            std::fs::create_dir_all(dir).map_err(|e| identity(e.to_string()))?;
            let key = Keypair::generate_ed25519();
            let bytes = key.to_protobuf_encoding().map_err(|e| identity(e.to_string()))?;
            crate::files::write_atomic(&path, &bytes, crate::files::Access::Private)
                .map_err(|e| identity(e.to_string()))?;
            tracing::info!(peer_id = %key.public().to_peer_id(), path = %path.display(), "created a new p2p identity");
            Ok(key)
        }
        Err(e) => Err(identity(e.to_string())),
    }
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
    fn a_key_file_larger_than_its_cap_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(KEY_FILE), vec![0u8; MAX_KEY_FILE_BYTES as usize + 1]).unwrap();
        match load_or_create(dir.path()) {
            Err(P2pError::Identity { why, .. }) => assert!(why.contains("larger than"), "{why}"),
            other => panic!("an oversized key file: {:?}", other.map(|k| k.public().to_peer_id())),
        }
    }

    #[test]
    fn damaged_key_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(KEY_FILE), b"not a key").unwrap();
        assert!(matches!(load_or_create(dir.path()), Err(P2pError::Identity { .. })));
    }
}
