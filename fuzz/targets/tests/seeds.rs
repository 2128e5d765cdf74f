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
    #[cfg(feature = "node")]
    node_seeds(&mut out, &block, &genesis);
    out
}

#[cfg(feature = "node")]
fn node_seeds(out: &mut Vec<(&'static str, String, Vec<u8>)>, block: &lode_core::Block, genesis: &lode_core::Block) {
    use lode_core::pow::Work;
    use lode_core::Hash256;
    use lode_fuzz::p2p_decoders::KINDS;
    use lode_node::p2p::wire::{SyncRequest, SyncResponse, SyncStatus};
    let sel = |name: &str| KINDS.iter().position(|d| *d == name).expect("a kind") as u8;
    let mut push = |kind: &str, name: &str, bytes: Vec<u8>| {
        let mut v = vec![sel(kind)];
        v.extend(bytes);
        out.push(("p2p_decoders", format!("{kind}-{name}"), v));
    };
    let status = SyncStatus {
        genesis: genesis.hash(),
        best_hash: block.hash(),
        height: 17,
        chainwork: Work::from_be_bytes([1; 32]),
        utxo_commitment: Hash256([2; 32]),
    };
    push("sync_request", "status", SyncRequest::Status(status.clone()).encode());
    push("sync_request", "headers", SyncRequest::GetHeaders { locator: vec![genesis.hash(), block.hash()] }.encode());
    push("sync_request", "blocks", SyncRequest::GetBlocks { hashes: vec![block.hash()] }.encode());
    push("sync_response", "status", SyncResponse::Status(status).encode());
    push("sync_response", "headers", SyncResponse::Headers(vec![genesis.header, block.header]).encode());
    push("sync_response", "blocks", SyncResponse::Blocks(vec![genesis.clone(), block.clone()]).encode());
    push("gossip_block", "spends", block.encode());
    push("gossip_tx", "spend", block.transactions.last().expect("a tx").encode());
    use lode_node::p2p::wire::{CmpctRequest, CmpctResponse, CompactBlock};
    push("compact_block", "spends", CompactBlock::from_block(block, 7).encode());
    push(
        "compact_request",
        "getblocktxn",
        CmpctRequest::GetBlockTxn { hash: block.hash(), indexes: vec![1, 2] }.encode(),
    );
    push("compact_request", "vouch", CmpctRequest::Vouch { hashes: vec![block.hash()] }.encode());
    let txs = block.transactions[1..].to_vec();
    push("compact_response", "blocktxn", CmpctResponse::BlockTxn { hash: block.hash(), txs }.encode());
    push("compact_response", "ack", CmpctResponse::Ack.encode());
    // JSON-RPC calls, one per method family, and a batch.
    let h = genesis.hash().to_hex();
    let tx = hex::encode(block.transactions.last().expect("a tx").encode());
    let addr = lode_core::Address([7; 20]).encode("lrt").expect("encodes");
    let calls = [
        ("info", r#"{"jsonrpc":"2.0","id":1,"method":"getblockchaininfo"}"#.to_string()),
        ("blockhash", r#"{"id":2,"method":"getblockhash","params":[1]}"#.to_string()),
        ("block", format!(r#"{{"id":3,"method":"getblock","params":["{h}",true]}}"#)),
        ("header", format!(r#"{{"id":4,"method":"getblockheader","params":["{h}"]}}"#)),
        ("rawtx", format!(r#"{{"id":5,"method":"getrawtransaction","params":["{h}",true]}}"#)),
        ("sendraw", format!(r#"{{"id":6,"method":"sendrawtransaction","params":["{tx}"]}}"#)),
        ("submitblock", format!(r#"{{"id":7,"method":"submitblock","params":["{}"]}}"#, hex::encode(block.encode()))),
        ("unspent", format!(r#"{{"id":8,"method":"listunspent","params":["{addr}"]}}"#)),
        ("history", format!(r#"{{"id":9,"method":"getaddresshistory","params":["{addr}"]}}"#)),
        ("fee", r#"{"id":10,"method":"estimatesmartfee","params":[6]}"#.to_string()),
        (
            "batch",
            r#"[{"id":1,"method":"getmempoolinfo"},{"id":2,"method":"getrawmempool"},{"id":3,"method":"getchaintips"},{"id":4,"method":"gettxoutsetinfo"},{"id":5,"method":"getmininginfo"}]"#
                .to_string(),
        ),
    ];
    for (name, body) in calls {
        out.push(("rpc", name.to_string(), body.into_bytes()));
    }
    for (i, len) in [48usize, 200, 600].iter().enumerate() {
        out.push(("chain_model", format!("noise-{i}"), noise(100 + i as u64, *len)));
    }
    for (i, len) in [32usize, 128, 400].iter().enumerate() {
        out.push(("p2p_service", format!("noise-{i}"), noise(200 + i as u64, *len)));
    }
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
