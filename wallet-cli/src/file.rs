//! The wallet file: JSON contents sealed with ChaCha20-Poly1305 under a key
//! stretched from the passphrase by scrypt.
//!
//! Layout (version 2): `"LODEWLT2"`, scrypt `log2(N)` (1 byte), `r`, `p` and
//! the length of the sealed contents (u32 little-endian each), a 16-byte
//! salt, a 12-byte nonce, then the ciphertext with its 16-byte tag. The header is the AEAD's associated data, so any
//! changed byte fails authentication. Version 1 files (`"LODEWLT1"`, fixed
//! scrypt 2^15/8/1, no associated data) are still read, and rewritten as
//! version 2 on the next save.
//!
//! Writes are atomic: a fresh temporary file in the same folder (mode 0600),
//! fsync, rename over the old file, fsync of the folder. A wrong passphrase
//! or a damaged file is an error and the file is left as it was. A lock file
//! next to the wallet (`<file>.lock`, flock) keeps two `lode-wallet`
//! processes from interleaving their read-modify-write cycles.

use crate::bounded::{read_regular, BoundedReadError};
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{ChaCha20Poly1305, Key, Nonce};
use lode_core::{Hash256, OutPoint};
use rand::RngCore;
use serde::{Deserialize, Serialize};
use std::io::Write;
use std::path::{Path, PathBuf};

const MAGIC_V1: &[u8; 8] = b"LODEWLT1";
const MAGIC_V2: &[u8; 8] = b"LODEWLT2";
const SALT: usize = 16;
const NONCE: usize = 12;
const TAG: usize = 16;
const HEADER_V2: usize = 8 + 1 + 4 + 4 + 4 + SALT + NONCE;

/// scrypt cost parameters.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Kdf {
    /// log2 of N.
    pub log_n: u8,
    /// Block size.
    pub r: u32,
    /// Parallelism.
    pub p: u32,
}

impl Kdf {
    /// What new files use: N=2^15, r=8, p=1 (32 MiB, about 0.1 s).
    pub const DEFAULT: Kdf = Kdf { log_n: 15, r: 8, p: 1 };

    /// Parameters a file may name: enough work to matter, and at most
    /// 1 GiB of memory so a doctored header cannot exhaust the machine.
    fn acceptable(self) -> bool {
        let mem = 128u128 * u128::from(self.r) * (1u128 << self.log_n.min(63));
        (10..=24).contains(&self.log_n) && (1..=32).contains(&self.r) && (1..=16).contains(&self.p) && mem <= 1 << 30
    }
}

/// What the wallet remembers.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct WalletData {
    /// Plaintext format version.
    #[serde(default = "one")]
    pub version: u32,
    /// Network name the wallet belongs to.
    pub chain: String,
    /// BIP-39 words.
    pub mnemonic: String,
    /// BIP-32 path of the account (branches 0 and 1 hang below it).
    #[serde(default = "default_account")]
    pub account_path: String,
    /// Receiving addresses handed out so far (indexes `0..receive_next`).
    #[serde(alias = "next_index")]
    pub receive_next: u32,
    /// Change addresses used so far (indexes `0..change_next`).
    #[serde(default)]
    pub change_next: u32,
    /// Transactions this wallet signed that are not known to be confirmed.
    #[serde(default)]
    pub pending: Vec<PendingTx>,
    /// BIP-39 passphrase (the "25th word") the keys derive with, if any;
    /// kept inside the encrypted file so every command derives the same keys.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bip39_passphrase: Option<String>,
    /// Payments this wallet replaced with `bumpfee` (for `history`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub replaced: Vec<ReplacedTx>,
}

/// A payment replaced by a higher-fee version.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct ReplacedTx {
    /// The replaced transaction.
    pub txid: String,
    /// The transaction that replaced it.
    pub replaced_by: String,
    /// What it paid to others (negative: sent), fee excluded.
    pub amount: i64,
    /// Its fee.
    pub fee: u64,
    /// When it was replaced (seconds since the Unix epoch).
    pub time: u64,
}

fn one() -> u32 {
    1
}

fn default_account() -> String {
    crate::keys::DEFAULT_ACCOUNT_PATH.to_string()
}

impl WalletData {
    /// A fresh wallet on `chain` with its first receiving address handed out.
    pub fn new(chain: &str, mnemonic: String) -> WalletData {
        WalletData {
            version: 2,
            chain: chain.to_string(),
            mnemonic,
            account_path: default_account(),
            receive_next: 1,
            change_next: 0,
            pending: Vec::new(),
            bip39_passphrase: None,
            replaced: Vec::new(),
        }
    }
}

/// Highest address counter a wallet file may hold: BIP-32 normal child
/// indexes stop below 2^31, and the scan looks a gap limit beyond it.
pub const MAX_ADDRESS_COUNTER: u32 = (1 << 31) - 1 - crate::view::GAP_LIMIT;

impl WalletData {
    /// Refuses counters the wallet never writes (a crafted or damaged file):
    /// no receiving address handed out yet, or past the derivable range.
    pub fn check_counters(&self) -> Result<(), &'static str> {
        if self.receive_next == 0 {
            return Err("its receiving-address counter is 0 (a wallet always has its first address)");
        }
        if self.receive_next > MAX_ADDRESS_COUNTER || self.change_next > MAX_ADDRESS_COUNTER {
            return Err("an address counter is beyond the derivable range");
        }
        Ok(())
    }
}

/// A transaction this wallet signed that may not be confirmed yet.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct PendingTx {
    /// Its id.
    pub txid: String,
    /// Outpoints it spends (`txid:vout`): the next send leaves them alone.
    pub spends: Vec<String>,
    /// The signed transaction (hex).
    #[serde(default)]
    pub hex: String,
    /// When it was signed (seconds since the Unix epoch).
    #[serde(default)]
    pub created: u64,
    /// Whether it was submitted to a node (false for `send --offline`).
    #[serde(default = "yes")]
    pub broadcast: bool,
}

fn yes() -> bool {
    true
}

/// `txid:vout` text of an outpoint.
pub fn outpoint_text(op: &OutPoint) -> String {
    format!("{}:{}", op.txid, op.vout)
}

/// Parses `txid:vout`.
pub fn parse_outpoint(s: &str) -> Option<OutPoint> {
    let (txid, vout) = s.split_once(':')?;
    Some(OutPoint { txid: Hash256::from_hex(txid).ok()?, vout: vout.parse().ok()? })
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
    /// No wallet at that path.
    #[error("no wallet file at {0} (create one with `lode-wallet new` or `restore`, or pass --wallet FILE)")]
    Missing(String),
    /// Not a wallet file, truncated, or an impossible header.
    #[error("wallet file {0} is damaged or not a Lode wallet ({1})")]
    Damaged(String, &'static str),
    /// Authentication failed: wrong passphrase, or the file was modified.
    #[error("wrong passphrase for wallet file {0} (or the file was modified)")]
    WrongPassphrase(String),
    /// The file exists already.
    #[error("wallet file {0} already exists; refusing to overwrite it")]
    Exists(String),
    /// Another process holds the wallet.
    #[error("wallet file {0} is in use by another lode-wallet process")]
    Busy(String),
}

fn stretch(passphrase: &str, salt: &[u8], kdf: Kdf) -> Result<[u8; 32], &'static str> {
    let params = scrypt::Params::new(kdf.log_n, kdf.r, kdf.p, 32).map_err(|_| "unusable scrypt parameters")?;
    let mut key = [0u8; 32];
    scrypt::scrypt(passphrase.as_bytes(), salt, &params, &mut key).map_err(|_| "scrypt failed")?;
    Ok(key)
}

/// Largest wallet file read: keys and settings are a few KiB, and the
/// signed-but-unconfirmed transactions it keeps rarely reach a MiB.
pub const MAX_WALLET_FILE_BYTES: u64 = 64 << 20;

/// Reads and decrypts a wallet file. Never writes.
pub fn load(path: &Path, passphrase: &str) -> Result<WalletData, FileError> {
    let name = path.display().to_string();
    let bytes = match read_regular(path, MAX_WALLET_FILE_BYTES) {
        Ok(b) => b,
        Err(BoundedReadError::Io(e)) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(FileError::Missing(name))
        }
        Err(BoundedReadError::Io(source)) => return Err(FileError::Io { path: name, source }),
        Err(BoundedReadError::NotRegular) => return Err(FileError::Damaged(name, "not a regular file")),
        Err(BoundedReadError::TooLarge(_)) => {
            return Err(FileError::Damaged(name, "larger than any wallet file (64 MiB)"))
        }
    };
    let damaged = |why| FileError::Damaged(name.clone(), why);
    let (kdf, header_len, aad) = match bytes.get(..8) {
        Some(m) if m == MAGIC_V2 => {
            if bytes.len() < HEADER_V2 + TAG {
                return Err(damaged("truncated"));
            }
            let u32_at = |i: usize| u32::from_le_bytes([bytes[i], bytes[i + 1], bytes[i + 2], bytes[i + 3]]);
            let kdf = Kdf { log_n: bytes[8], r: u32_at(9), p: u32_at(13) };
            if usize::try_from(u32_at(17)).ok().and_then(|n| n.checked_add(HEADER_V2)) != Some(bytes.len()) {
                return Err(damaged("truncated or extended: its length does not match its header"));
            }
            (kdf, HEADER_V2, &bytes[..HEADER_V2])
        }
        Some(m) if m == MAGIC_V1 => {
            if bytes.len() < 8 + SALT + NONCE + TAG {
                return Err(damaged("truncated"));
            }
            (Kdf::DEFAULT, 8 + SALT + NONCE, &[][..])
        }
        _ if bytes.len() < 8 => return Err(damaged("truncated")),
        _ => return Err(damaged("unknown header")),
    };
    if !kdf.acceptable() {
        return Err(damaged("unacceptable scrypt parameters in the header"));
    }
    let salt = &bytes[header_len - NONCE - SALT..header_len - NONCE];
    let nonce = &bytes[header_len - NONCE..header_len];
    let key = stretch(passphrase, salt, kdf).map_err(damaged)?;
    let cipher = ChaCha20Poly1305::new(Key::from_slice(&key));
    let plain = cipher
        .decrypt(Nonce::from_slice(nonce), Payload { msg: &bytes[header_len..], aad })
        .map_err(|_| FileError::WrongPassphrase(name.clone()))?;
    let data: WalletData = serde_json::from_slice(&plain).map_err(|_| damaged("contents are not a wallet"))?;
    data.check_counters().map_err(damaged)?;
    Ok(data)
}

/// Encrypts and writes atomically; `create` refuses to replace a file.
pub fn save(path: &Path, passphrase: &str, data: &WalletData, create: bool) -> Result<(), FileError> {
    save_with(path, passphrase, data, create, Kdf::DEFAULT)
}

/// [`save`] with explicit scrypt parameters.
pub fn save_with(path: &Path, passphrase: &str, data: &WalletData, create: bool, kdf: Kdf) -> Result<(), FileError> {
    let name = path.display().to_string();
    if create && path.exists() {
        return Err(FileError::Exists(name));
    }
    let io = |source| FileError::Io { path: name.clone(), source };
    let mut salt = [0u8; SALT];
    let mut nonce = [0u8; NONCE];
    rand::rngs::OsRng.fill_bytes(&mut salt);
    rand::rngs::OsRng.fill_bytes(&mut nonce);
    let mut header = Vec::with_capacity(HEADER_V2);
    header.extend_from_slice(MAGIC_V2);
    header.push(kdf.log_n);
    header.extend_from_slice(&kdf.r.to_le_bytes());
    header.extend_from_slice(&kdf.p.to_le_bytes());
    let plain = serde_json::to_vec(data).map_err(|e| io(std::io::Error::other(e)))?;
    let sealed_len = u32::try_from(plain.len() + TAG).map_err(|_| io(std::io::Error::other("wallet too large")))?;
    header.extend_from_slice(&sealed_len.to_le_bytes());
    header.extend_from_slice(&salt);
    header.extend_from_slice(&nonce);
    let key = stretch(passphrase, &salt, kdf).map_err(|why| io(std::io::Error::other(why)))?;
    let cipher = ChaCha20Poly1305::new(Key::from_slice(&key));
    let sealed = cipher
        .encrypt(Nonce::from_slice(&nonce), Payload { msg: &plain, aad: &header })
        .map_err(|_| io(std::io::Error::other("encryption failed")))?;
    header.extend_from_slice(&sealed);
    write_atomic(path, &header).map_err(io)
}

fn parent_of(path: &Path) -> PathBuf {
    match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    }
}

/// Creates the folder of `path` (mode 0700 for folders it makes).
fn ensure_parent(path: &Path) -> std::io::Result<()> {
    let dir = parent_of(path);
    if dir.exists() {
        return Ok(());
    }
    let mut b = std::fs::DirBuilder::new();
    b.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        b.mode(0o700);
    }
    b.create(dir)
}

/// Writes `bytes` to `path` through a temporary file and a rename, so
/// `path` holds either the old or the new contents, never a mix.
fn write_atomic(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    ensure_parent(path)?;
    let file_name = path.file_name().ok_or_else(|| std::io::Error::other("not a file path"))?;
    let mut tmp_name = std::ffi::OsString::from(".");
    tmp_name.push(file_name);
    tmp_name.push(format!(".tmp-{}", std::process::id()));
    let tmp = parent_of(path).join(tmp_name);
    let _ = std::fs::remove_file(&tmp);
    let result = (|| {
        let mut opts = std::fs::OpenOptions::new();
        opts.write(true).create_new(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            opts.mode(0o600);
        }
        let mut f = opts.open(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        drop(f);
        std::fs::rename(&tmp, path)?;
        // Make the rename itself durable.
        #[cfg(unix)]
        std::fs::File::open(parent_of(path))?.sync_all()?;
        Ok(())
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

/// An exclusive hold on a wallet file, released when dropped.
pub struct WalletLock {
    _file: std::fs::File,
}

/// Takes the wallet's lock (`<file>.lock`), waiting up to `wait` for
/// another process to finish.
pub fn lock(path: &Path, wait: std::time::Duration) -> Result<WalletLock, FileError> {
    let name = path.display().to_string();
    let io = |source| FileError::Io { path: name.clone(), source };
    ensure_parent(path).map_err(io)?;
    let mut lock_name = path.as_os_str().to_owned();
    lock_name.push(".lock");
    let mut opts = std::fs::OpenOptions::new();
    opts.read(true).write(true).create(true).truncate(false);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    let file = opts.open(PathBuf::from(lock_name)).map_err(io)?;
    let deadline = std::time::Instant::now() + wait;
    loop {
        if try_lock(&file) {
            return Ok(WalletLock { _file: file });
        }
        if std::time::Instant::now() >= deadline {
            return Err(FileError::Busy(name));
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}

#[cfg(unix)]
fn try_lock(file: &std::fs::File) -> bool {
    use std::os::unix::io::AsRawFd;
    // SAFETY: flock on a descriptor this function borrows; no memory involved.
    unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) == 0 }
}

#[cfg(not(unix))]
fn try_lock(_file: &std::fs::File) -> bool {
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    const FAST: Kdf = Kdf { log_n: 10, r: 8, p: 1 };

    // `--wallet` naming a named pipe (or a device) was opened and read as
    // is: a pipe with no writer hung the command, /dev/zero filled memory.
    #[test]
    fn a_wallet_path_naming_a_pipe_or_a_device_is_refused_not_read() {
        let dir = tempfile::tempdir().unwrap();
        let pipe = crate::bounded::named_pipe(dir.path());
        for path in [pipe, PathBuf::from("/dev/zero")] {
            let p = path.clone();
            match crate::bounded::within_deadline(move || load(&p, "x").map(|_| ())) {
                Err(FileError::Damaged(_, why)) => assert_eq!(why, "not a regular file", "{}", path.display()),
                other => panic!("{}: {other:?}", path.display()),
            }
        }
    }

    fn data() -> WalletData {
        let mut d = WalletData::new("regtest", "a b c".into());
        d.receive_next = 3;
        d.pending.push(PendingTx {
            txid: "ab".repeat(32),
            spends: vec![format!("{}:1", "cd".repeat(32))],
            hex: "00".into(),
            created: 5,
            broadcast: false,
        });
        d
    }

    #[cfg(unix)]
    fn mode(p: &Path) -> u32 {
        use std::os::unix::fs::PermissionsExt;
        std::fs::metadata(p).unwrap().permissions().mode() & 0o777
    }

    #[test]
    fn round_trip_with_mode_0600_and_no_leftovers() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("sub").join("w.wallet");
        save_with(&p, "pw", &data(), true, FAST).unwrap();
        assert_eq!(load(&p, "pw").unwrap(), data());
        #[cfg(unix)]
        {
            assert_eq!(mode(&p), 0o600);
            assert_eq!(mode(p.parent().unwrap()), 0o700);
            // A rewrite over a file someone loosened is 0600 again.
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o644)).unwrap();
            save_with(&p, "pw", &data(), false, FAST).unwrap();
            assert_eq!(mode(&p), 0o600);
        }
        let names: Vec<_> = std::fs::read_dir(p.parent().unwrap()).unwrap().map(|e| e.unwrap().file_name()).collect();
        assert_eq!(names, vec![std::ffi::OsString::from("w.wallet")], "no temporary file left behind");
        // The default parameters round-trip too.
        save(&p, "pw", &data(), false).unwrap();
        assert_eq!(load(&p, "pw").unwrap(), data());
        assert!(matches!(save(&p, "pw", &data(), true), Err(FileError::Exists(_))));
    }

    #[test]
    fn wrong_passphrase_truncated_and_tampered_files_are_refused_untouched() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("w.wallet");
        save_with(&p, "pw", &data(), true, FAST).unwrap();
        let good = std::fs::read(&p).unwrap();
        assert!(matches!(load(&p, "nope"), Err(FileError::WrongPassphrase(_))));
        assert_eq!(std::fs::read(&p).unwrap(), good);
        let cases: Vec<(Vec<u8>, &str)> = vec![
            (good[..good.len() - 1].to_vec(), "truncated"),
            ([good.clone(), vec![0]].concat(), "extended"),
            (good[..HEADER_V2 + 3].to_vec(), "truncated"),
            (good[..5].to_vec(), "damaged"),
            (Vec::new(), "damaged"),
            (b"{\"chain\":\"regtest\"}".to_vec(), "damaged"),
            (
                {
                    let mut t = good.clone();
                    let n = t.len();
                    t[n - 5] ^= 1;
                    t
                },
                "wrong",
            ),
            (
                {
                    let mut t = good.clone();
                    t[30] ^= 1;
                    t
                },
                "wrong",
            ), // salt
            (
                {
                    let mut t = good.clone();
                    t[17] ^= 1;
                    t
                },
                "damaged",
            ), // length
            (
                {
                    let mut t = good.clone();
                    t[8] = 11;
                    t
                },
                "wrong",
            ), // cost in the header
            (
                {
                    let mut t = good.clone();
                    t[8] = 40;
                    t
                },
                "damaged",
            ), // absurd cost
        ];
        for (bytes, want) in cases {
            std::fs::write(&p, &bytes).unwrap();
            let err = load(&p, "pw").unwrap_err();
            let text = err.to_string();
            assert!(text.contains(want), "{text}");
            assert_eq!(std::fs::read(&p).unwrap(), bytes, "loading never rewrites");
        }
        assert!(matches!(load(&dir.path().join("none"), "pw"), Err(FileError::Missing(_))));
    }

    #[test]
    fn version_one_files_are_still_read() {
        // A file in the first format: fixed scrypt, no associated data,
        // `next_index` and string outpoints.
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("old.wallet");
        let plain =
            br#"{"chain":"regtest","mnemonic":"a b c","next_index":4,"pending":[{"txid":"t","spends":["x:0"]}]}"#;
        let salt = [7u8; SALT];
        let nonce = [9u8; NONCE];
        let key = stretch("pw", &salt, Kdf::DEFAULT).unwrap();
        let sealed =
            ChaCha20Poly1305::new(Key::from_slice(&key)).encrypt(Nonce::from_slice(&nonce), &plain[..]).unwrap();
        let mut bytes = MAGIC_V1.to_vec();
        bytes.extend_from_slice(&salt);
        bytes.extend_from_slice(&nonce);
        bytes.extend_from_slice(&sealed);
        std::fs::write(&p, &bytes).unwrap();
        let d = load(&p, "pw").unwrap();
        assert_eq!((d.version, d.receive_next, d.change_next), (1, 4, 0));
        assert_eq!(d.account_path, crate::keys::DEFAULT_ACCOUNT_PATH);
        assert!(d.pending[0].broadcast);
    }

    #[test]
    fn outpoints_round_trip_as_text() {
        let op = OutPoint { txid: Hash256([3; 32]), vout: 7 };
        assert_eq!(parse_outpoint(&outpoint_text(&op)), Some(op));
        assert_eq!(parse_outpoint("zz:1"), None);
        assert_eq!(parse_outpoint(&format!("{}:x", "00".repeat(32))), None);
    }

    #[cfg(unix)]
    #[test]
    fn counters_the_wallet_never_writes_are_refused_on_open() {
        let dir = tempfile::tempdir().unwrap();
        for (receive, change) in [(0, 0), (u32::MAX, 0), (1 << 31, 0), (1, u32::MAX), (MAX_ADDRESS_COUNTER + 1, 0)] {
            let path = dir.path().join(format!("w-{receive}-{change}.json"));
            let mut d = data();
            d.receive_next = receive;
            d.change_next = change;
            save_with(&path, "pw", &d, true, FAST).unwrap();
            let before = std::fs::read(&path).unwrap();
            match load(&path, "pw") {
                Err(FileError::Damaged(_, why)) => assert!(why.contains("counter"), "{why}"),
                other => panic!("counters ({receive}, {change}) accepted: {other:?}"),
            }
            assert_eq!(std::fs::read(&path).unwrap(), before, "the file is left as it was");
        }
        let path = dir.path().join("edge.json");
        let mut d = data();
        d.receive_next = MAX_ADDRESS_COUNTER;
        d.change_next = MAX_ADDRESS_COUNTER;
        save_with(&path, "pw", &d, true, FAST).unwrap();
        assert_eq!(load(&path, "pw").unwrap(), d);
    }

    #[test]
    fn the_lock_is_exclusive() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("w.wallet");
        let held = lock(&p, std::time::Duration::ZERO).unwrap();
        assert!(matches!(lock(&p, std::time::Duration::from_millis(100)), Err(FileError::Busy(_))));
        drop(held);
        lock(&p, std::time::Duration::ZERO).unwrap();
    }
}
