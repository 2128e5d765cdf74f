//! JSON-RPC requests and their parameters, through the real method table
//! of a node (temporary RocksDB, a short regtest chain, no networking).
//! The bytes are parsed as the server parses a request body (one call or
//! a batch); each call's envelope is checked as the server checks it and
//! dispatched. Never a panic; every reply is a result or a JSON-RPC error
//! with a known code; the parsed body holds a bounded multiple of its
//! bytes. The HTTP layer (authentication, body limits) is not fuzzed.

use crate::alloc::bounded;
use crate::validation::seal;
use lode_core::subsidy::block_subsidy;
use lode_core::tx::TxOut;
use lode_core::{Address, ChainSpec, Height, Transaction};
use lode_node::chain::{BlockSource, ChainConfig};
use lode_node::mempool::MempoolPolicy;
use lode_node::node::Node;
use lode_node::rpc::{Methods, MiningStatus};
use serde_json::Value;
use std::sync::{Arc, OnceLock};

/// Methods left out: they mine (each call minutes of state growth across
/// a long run) or stop the node.
const SKIPPED: [&str; 2] = ["generatetoaddress", "stop"];
/// JSON-RPC codes a reply may carry.
const CODES: [i64; 5] = [-32700, -32600, -32601, -32602, -32603];

struct Rpc {
    _dir: tempfile::TempDir,
    methods: Arc<Methods>,
    runtime: tokio::runtime::Runtime,
}

fn rpc() -> &'static Rpc {
    static RPC: OnceLock<Rpc> = OnceLock::new();
    RPC.get_or_init(|| {
        let spec = ChainSpec::regtest();
        let dir = tempfile::tempdir().expect("a temporary folder");
        let node = Node::open(dir.path(), spec.clone(), ChainConfig::default(), MempoolPolicy::default())
            .expect("the node opens");
        let key = lode_core::crypto::SecretKey::from_bytes(&[3; 32]).expect("a valid key");
        let address = Address::from_pubkey(&key.public_key());
        let mut tip = spec.genesis_hash();
        let mut time = spec.genesis.time;
        for h in 1..=5u32 {
            let value = block_subsidy(&spec, Height(h));
            let cb = Transaction::coinbase(Height(h), vec![], vec![TxOut { value, address }]);
            time += 1;
            let block = seal(&spec, tip, time, vec![cb]);
            tip = block.hash();
            node.process_block(block, BlockSource::Requested).expect("the seed chain connects");
        }
        let (shutdown, _) = tokio::sync::watch::channel(false);
        let methods = Arc::new(Methods::new(node, None, Arc::new(MiningStatus::default()), shutdown));
        let runtime =
            tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().expect("a runtime");
        Rpc { _dir: dir, methods, runtime }
    })
}

/// The fuzz entry point.
pub fn run(data: &[u8]) {
    let Ok(value) = bounded("rpc body", data.len(), 64, || serde_json::from_slice::<Value>(data)) else { return };
    let calls = match value {
        Value::Array(calls) if !calls.is_empty() && calls.len() <= 1000 => calls,
        Value::Array(_) => return,
        single => vec![single],
    };
    let rpc = rpc();
    for call in calls {
        let Value::Object(obj) = call else { continue };
        let Some(method) = obj.get("method").and_then(Value::as_str) else { continue };
        if SKIPPED.contains(&method) {
            continue;
        }
        let params = match obj.get("params") {
            None | Some(Value::Null) => Vec::new(),
            Some(Value::Array(a)) => a.clone(),
            Some(_) => continue,
        };
        match rpc.runtime.block_on(rpc.methods.dispatch(method, params)) {
            Ok(result) => {
                serde_json::to_string(&result).expect("a result serialises");
            }
            Err(e) => {
                assert!(CODES.contains(&e.code) || (-32099..=-1).contains(&e.code), "unknown error code {}", e.code);
            }
        }
    }
}
