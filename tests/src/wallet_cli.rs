//! Running `lode-wallet` from the black-box tests and reading what it
//! prints: success with `--json` output, failure with a message on stderr.
//! Each helper panics with the wallet's own output when the outcome is not
//! the expected one, so a failing test shows why.

use crate::{wallet, TestNode};
use serde_json::Value;
use std::path::Path;

/// Runs `lode-wallet --json ARGS` on `file` against `node`, expects it to
/// succeed and returns the JSON it printed.
pub fn wallet_json(node: &TestNode, file: &Path, args: &[&str]) -> Value {
    let mut full = vec!["--json"];
    full.extend_from_slice(args);
    let out = wallet(node, file, &full);
    assert!(
        out.status.success(),
        "lode-wallet {args:?} failed: {}\n{}",
        String::from_utf8_lossy(&out.stderr),
        String::from_utf8_lossy(&out.stdout)
    );
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!("lode-wallet {args:?} printed no JSON ({e}): {}", String::from_utf8_lossy(&out.stdout))
    })
}

/// Runs `lode-wallet ARGS` on `file` against `node`, expects it to fail
/// and returns what it printed on stderr.
pub fn wallet_err(node: &TestNode, file: &Path, args: &[&str]) -> String {
    let out = wallet(node, file, args);
    assert!(!out.status.success(), "lode-wallet {args:?} should have failed: {}", String::from_utf8_lossy(&out.stdout));
    String::from_utf8_lossy(&out.stderr).to_string()
}

/// The wallet's receiving address (`address --json`).
pub fn wallet_address(node: &TestNode, file: &Path) -> String {
    wallet_json(node, file, &["address"])["address"].as_str().expect("address --json reports the address").to_string()
}
