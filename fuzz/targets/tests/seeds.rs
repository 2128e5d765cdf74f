//! Writes the seed corpus from code (real encodings, real regtest blocks):
//! `LODE_FUZZ_WRITE_SEEDS=1 cargo test --release -p lode-fuzz --test seeds`.
//! Without the variable it only checks that every seed still runs.

use lode_core::codec::Encode;
use lode_core::ChainSpec;
use lode_fuzz::{decoders, validation, wallet_file};
use std::path::{Path, PathBuf};

fn corpus(target: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../corpus").join(target)
}

/// Deterministic pseudo-random bytes (xorshift), for the targets whose
/// input is a sequence of choices.
fn noise(seed: u64, len: usize) -> Vec<u8> {
    let mut s = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    (0..len)
        .map(|_| {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            (s >> 24) as u8
        })
        .collect()
}

fn seeds() -> Vec<(&'static str, String, Vec<u8>)> {
    let mut out: Vec<(&'static str, String, Vec<u8>)> = Vec::new();
    let tagged = |sel: usize, bytes: &[u8]| {
        let mut v = vec![sel as u8];
        v.extend_from_slice(bytes);
        v
    };
    // Real blocks and transactions: the validation target's base chain and
    // a candidate with spends.
    let base = validation::base();
    let mut u = arbitrary::Unstructured::new(&[3, 5, 0, 0, 1, 0, 0, 9, 1, 0, 0, 0, 0, 0, 0, 0]);
    let block = validation::build(&mut u).expect("a candidate builds");
    let genesis = ChainSpec::regtest().genesis_block();
    let sel = |name: &str| decoders::DECODERS.iter().position(|d| *d == name).expect("a decoder");
    for (i, tx) in block.transactions.iter().enumerate().take(3) {
        out.push(("decoders", format!("tx-{i}"), tagged(sel("transaction"), &tx.encode())));
    }
    out.push(("decoders", "header".into(), tagged(sel("header"), &genesis.header.encode())));
    out.push(("decoders", "block-genesis".into(), tagged(sel("block"), &genesis.encode())));
    out.push(("decoders", "block-spends".into(), tagged(sel("block"), &block.encode())));
    let addr = lode_core::Address([7; 20]).encode(&base.spec.address_prefix).expect("encodes");
    out.push(("decoders", "address".into(), tagged(sel("address"), addr.as_bytes())));
    for (i, a) in ["1.5", "0.00000001", "21000000", " 7 "].iter().enumerate() {
        out.push(("decoders", format!("amount-{i}"), tagged(sel("amount"), a.as_bytes())));
    }
    for name in ["regtest", "devnet", "testnet"] {
        let text = std::fs::read(Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("../../chain-spec/{name}.json")))
            .expect("a built-in spec");
        out.push(("decoders", format!("spec-{name}"), tagged(sel("chain_spec"), &text)));
    }
    let mut data = wallet_file::WalletData::new("regtest", "abandon ability able".into());
    data.pending.push(wallet_file::PendingTx {
        txid: "ab".repeat(32),
        spends: vec![format!("{}:1", "cd".repeat(32))],
        hex: "00".into(),
        created: 5,
        broadcast: false,
    });
    let dir = tempfile::tempdir().expect("a temporary folder");
    let path = dir.path().join("w");
    wallet_file::save_with(&path, decoders::FUZZ_PASSPHRASE, &data, true, decoders::FUZZ_KDF).expect("saves");
    out.push(("decoders", "wallet-file".into(), tagged(sel("wallet_file"), &std::fs::read(&path).expect("reads"))));
    let json = serde_json::to_vec(&data).expect("serialises");
    out.push(("decoders", "wallet-contents".into(), tagged(sel("wallet_contents"), &json)));
    // Choice sequences.
    for (target, lens) in [("difficulty", &[16usize, 64, 300][..]), ("validation", &[0, 24, 64, 160][..])] {
        for (i, len) in lens.iter().enumerate() {
            out.push((target, format!("noise-{i}"), noise(i as u64 + 1, *len)));
        }
    }
    out
}

#[test]
fn seeds_run_and_are_written_on_request() {
    let write = std::env::var_os("LODE_FUZZ_WRITE_SEEDS").is_some();
    let targets = lode_fuzz::targets();
    for (target, name, bytes) in seeds() {
        let (_, run) = targets.iter().find(|(t, _)| *t == target).expect("a known target");
        run(&bytes);
        if write {
            let dir = corpus(target);
            std::fs::create_dir_all(&dir).expect("the corpus folder");
            std::fs::write(dir.join(format!("seed-{name}")), &bytes).expect("the seed writes");
        }
    }
}
