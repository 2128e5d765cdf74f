//! The wallet file: JSON contents sealed with ChaCha20-Poly1305 under a key
//! stretched from the passphrase by scrypt, written atomically (temp file,
//! fsync, rename) with mode 0600. A wrong passphrase or a damaged file is an
//! error and the file is left as it was.

use chacha20poly1305::aead::{Aead, KeyInit};
use chacha20poly1305::{ChaCha20Poly1305, Key, Nonce};
use rand::RngCore;
use serde::{Deserialize, Serialize};
use std::io::Write;
use std::path::Path;

const MAGIC: &[u8; 8] = b"LODEWLT1";
const SALT: usize = 16;
const NONCE: usize = 12;

/// What the wallet remembers.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct WalletData {
    /// Network name the wallet belongs to.
    pub chain: String,
    /// BIP-39 words.
    pub mnemonic: String,
    /// Receiving/change addresses handed out so far (indexes 0..next_index).
    pub next_index: u32,
    /// Our transactions not yet seen confirmed: txid → hex.
    #[serde(default)]
    pub pending: Vec<PendingTx>,
}

/// A transaction this wallet sent that may not be confirmed yet.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct PendingTx {
    /// Its id.
    pub txid: String,
    /// Outpoints it spends (`txid:vout`), so the next send avoids them.
    pub spends: Vec<String>,
}

/// Wallet file errors.
#[derive(Debug, thiserror::Error)]
pub enum FileError {
    /// Cannot read or write.
    #[error("wallet file {path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// Why.
        source: std::io::Error,
    },
    /// Not a wallet file, truncated, or tampered with.
    #[error("wallet file {0} is damaged or not a Lode wallet (bad header or length)")]
    Damaged(String),
    /// Authentication failed: wrong passphrase (or a modified file).
    #[error("wrong passphrase for {0} (or the file was modified)")]
    WrongPassphrase(String),
    /// The file exists already.
    #[error("wallet file {0} already exists; refusing to overwrite it")]
    Exists(String),
}

fn stretch(passphrase: &str, salt: &[u8]) -> Result<[u8; 32], FileError> {
    // scrypt N=2^15, r=8, p=1: ~100 ms and 32 MiB per attempt.
    let params = scrypt::Params::new(15, 8, 1, 32).map_err(|_| FileError::Damaged("scrypt parameters".into()))?;
    let mut key = [0u8; 32];
    scrypt::scrypt(passphrase.as_bytes(), salt, &params, &mut key).map_err(|_| FileError::Damaged("scrypt".into()))?;
    Ok(key)
}

/// Reads and decrypts a wallet file.
pub fn load(path: &Path, passphrase: &str) -> Result<WalletData, FileError> {
    let name = path.display().to_string();
    let bytes = std::fs::read(path).map_err(|source| FileError::Io { path: name.clone(), source })?;
    if bytes.len() < MAGIC.len() + SALT + NONCE + 16 || &bytes[..MAGIC.len()] != MAGIC {
        return Err(FileError::Damaged(name));
    }
    let salt = &bytes[MAGIC.len()..MAGIC.len() + SALT];
    let nonce = &bytes[MAGIC.len() + SALT..MAGIC.len() + SALT + NONCE];
    let sealed = &bytes[MAGIC.len() + SALT + NONCE..];
    let key = stretch(passphrase, salt)?;
    let cipher = ChaCha20Poly1305::new(Key::from_slice(&key));
    let plain =
        cipher.decrypt(Nonce::from_slice(nonce), sealed).map_err(|_| FileError::WrongPassphrase(name.clone()))?;
    serde_json::from_slice(&plain).map_err(|_| FileError::Damaged(name))
}

/// Encrypts and writes atomically; `create` refuses to replace a file.
pub fn save(path: &Path, passphrase: &str, data: &WalletData, create: bool) -> Result<(), FileError> {
    let name = path.display().to_string();
    if create && path.exists() {
        return Err(FileError::Exists(name));
    }
    let io = |source| FileError::Io { path: name.clone(), source };
    let mut salt = [0u8; SALT];
    let mut nonce = [0u8; NONCE];
    rand::rngs::OsRng.fill_bytes(&mut salt);
    rand::rngs::OsRng.fill_bytes(&mut nonce);
    let key = stretch(passphrase, &salt)?;
    let cipher = ChaCha20Poly1305::new(Key::from_slice(&key));
    let plain = serde_json::to_vec(data).map_err(|e| io(std::io::Error::other(e)))?;
    let sealed =
        cipher.encrypt(Nonce::from_slice(&nonce), plain.as_slice()).map_err(|_| FileError::Damaged(name.clone()))?;
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(io)?;
    }
    let tmp = path.with_extension("tmp");
    {
        let mut opts = std::fs::OpenOptions::new();
        opts.write(true).create(true).truncate(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            opts.mode(0o600);
        }
        let mut f = opts.open(&tmp).map_err(io)?;
        f.write_all(MAGIC).map_err(io)?;
        f.write_all(&salt).map_err(io)?;
        f.write_all(&nonce).map_err(io)?;
        f.write_all(&sealed).map_err(io)?;
        f.sync_all().map_err(io)?;
    }
    std::fs::rename(&tmp, path).map_err(io)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn data() -> WalletData {
        WalletData { chain: "regtest".into(), mnemonic: "a b c".into(), next_index: 3, pending: vec![] }
    }

    #[test]
    fn round_trip_mode_and_refusals_leave_the_file_untouched() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("w.json");
        save(&p, "pw", &data(), true).unwrap();
        assert_eq!(load(&p, "pw").unwrap(), data());
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            assert_eq!(std::fs::metadata(&p).unwrap().permissions().mode() & 0o777, 0o600);
        }
        assert!(matches!(save(&p, "pw", &data(), true), Err(FileError::Exists(_))));
        let before = std::fs::read(&p).unwrap();
        assert!(matches!(load(&p, "nope"), Err(FileError::WrongPassphrase(_))));
        // Tampered byte.
        let mut t = before.clone();
        let n = t.len();
        t[n - 5] ^= 1;
        std::fs::write(&p, &t).unwrap();
        assert!(matches!(load(&p, "pw"), Err(FileError::WrongPassphrase(_))));
        // Truncated.
        std::fs::write(&p, &before[..20]).unwrap();
        assert!(matches!(load(&p, "pw"), Err(FileError::Damaged(_))));
        std::fs::write(&p, &before).unwrap();
        assert_eq!(load(&p, "pw").unwrap(), data());
        assert_eq!(std::fs::read(&p).unwrap(), before, "loading never rewrites");
    }
}
