//! A JSON-RPC batch shares its runtime worker with the rest of the node,
//! and its answers are held to a byte budget.

use super::*;
use crate::chain::{BlockSource, ChainConfig};
use crate::mempool::MempoolPolicy;
use crate::node::Node;
use crate::rpc::MiningStatus;
use crate::testkit::ChainBuilder;
use lode_core::codec::Encode;
use lode_core::tx::{OutPoint, TxIn, TxOut, Unlock};
use lode_core::{Amount, ChainSpec, Transaction};

// A small `sendrawtransaction` completes without waiting, so a batch of
// them never returned control to the runtime: one client's batch held a
// worker (and the network task waiting on it) from first call to last.
#[test]
fn a_batch_of_calls_that_never_wait_lets_other_tasks_run_between_them() {
    let spec = ChainSpec::regtest();
    let dir = tempfile::tempdir().expect("tempdir");
    let node = Node::open(dir.path(), spec.clone(), ChainConfig::default(), MempoolPolicy::default()).expect("open");
    // More calls than the batch runs at once, each spending a mature coinbase.
    let calls = batch_parallelism() + 2;
    let mut builder = ChainBuilder::new(spec.clone());
    let blocks = builder.blocks(calls + spec.coinbase_maturity as usize, 0);
    for b in &blocks {
        node.process_block(b.clone(), BlockSource::Requested).expect("import");
    }
    let key = builder.key().clone();
    let batch: Vec<Value> = blocks[..calls]
        .iter()
        .enumerate()
        .map(|(i, b)| {
            let coinbase = &b.transactions[0];
            let value = coinbase.outputs[0].value;
            let mut tx = Transaction {
                version: 1,
                inputs: vec![TxIn {
                    prevout: OutPoint { txid: coinbase.txid(), vout: 0 },
                    unlock: Unlock::Signature { pubkey: key.public_key(), sig: Default::default() },
                }],
                outputs: vec![TxOut { value: Amount::from_units(value.units() - 10_000), address: builder.address() }],
                lock_time: 0,
            };
            tx.sign_inputs(&spec.genesis_hash(), &[&key], &[value]);
            json!({"jsonrpc": "2.0", "id": i, "method": "sendrawtransaction", "params": [hex::encode(tx.encode())]})
        })
        .collect();
    let (shutdown, _) = tokio::sync::watch::channel(false);
    let methods = Arc::new(Methods::new(node.clone(), None, Arc::new(MiningStatus::default()), shutdown));
    let runtime = tokio::runtime::Builder::new_current_thread().build().expect("runtime");
    let (answers, pooled_when_the_other_task_ran) = runtime.block_on(async {
        // One worker: this task runs only when the batch lets go of it.
        let other = tokio::spawn({
            let node = node.clone();
            async move { node.mempool().len() }
        });
        let answers = call_batch(batch, &methods, MAX_BATCH_ANSWER_BYTES).await;
        (answers, other.await.expect("the other task"))
    });
    let answers = answers.as_array().expect("an array").clone();
    assert_eq!(answers.len(), calls);
    assert!(answers.iter().all(|a| a.get("result").is_some()), "every transaction admitted: {answers:?}");
    assert!(
        pooled_when_the_other_task_ran < calls,
        "the other task ran only after all {calls} calls: {pooled_when_the_other_task_ran} pooled"
    );
}

// 1,000 `getblock <hash> false` in one batch held every answer at once:
// gigabytes of hex for big blocks. Past the budget the calls not yet
// started are refused.
#[test]
fn a_batch_whose_answers_pass_the_budget_refuses_the_calls_after_it() {
    let spec = ChainSpec::regtest();
    let dir = tempfile::tempdir().expect("tempdir");
    let node = Node::open(dir.path(), spec.clone(), ChainConfig::default(), MempoolPolicy::default()).expect("open");
    let block = ChainBuilder::new(spec).blocks(1, 0).remove(0);
    node.process_block(block.clone(), BlockSource::Requested).expect("import");
    let calls = batch_parallelism() + 2;
    let batch: Vec<Value> = (0..calls)
        .map(|i| json!({"jsonrpc": "2.0", "id": i, "method": "getblock", "params": [block.hash(), false]}))
        .collect();
    let (shutdown, _) = tokio::sync::watch::channel(false);
    let methods = Arc::new(Methods::new(node, None, Arc::new(MiningStatus::default()), shutdown));
    let runtime = tokio::runtime::Builder::new_current_thread().build().expect("runtime");
    // A budget smaller than one answer: the calls started at once run, the
    // rest are refused.
    let answers = runtime.block_on(call_batch(batch, &methods, 10));
    let answers = answers.as_array().expect("an array");
    assert_eq!(answers.len(), calls, "one answer per call");
    assert!(answers[0]["result"].is_string(), "{}", answers[0]);
    let last = &answers[calls - 1];
    assert_eq!(last["id"], json!(calls - 1));
    assert!(last["error"]["message"].as_str().is_some_and(|m| m.contains("passed 10 bytes")), "{last}");
}

#[cfg(unix)]
#[test]
fn the_cookie_secret_never_goes_through_a_planted_temporary_file() {
    let dir = tempfile::tempdir().expect("tempdir");
    let readable_by_others = dir.path().join("planted");
    std::fs::write(&readable_by_others, b"").expect("write");
    std::os::unix::fs::symlink(&readable_by_others, dir.path().join(".cookie.tmp")).expect("symlink");
    Cookie::create(dir.path()).expect("cookie");
    assert_eq!(std::fs::read(&readable_by_others).expect("read"), b"", "the secret was written through the symlink");
    let secret = std::fs::read_to_string(dir.path().join(".cookie")).expect("cookie file");
    assert_eq!(secret.len(), 64, "{secret}");
}

// Every connection was served, cookie or not: thousands of idle ones took
// the file descriptors RocksDB, the peers and the explorer need.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_beyond_the_cap_wait_in_the_backlog_until_one_closes() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpStream;
    let dir = tempfile::tempdir().expect("tempdir");
    let mut builder = ChainBuilder::new(ChainSpec::regtest());
    let (node, _) = crate::testkit::regtest_node(dir.path(), &mut builder, 1);
    let (stop, shutdown) = tokio::sync::watch::channel(false);
    let methods = Arc::new(Methods::new(node, None, Arc::new(MiningStatus::default()), stop));
    let cookie = Arc::new(Cookie::create(dir.path()).expect("cookie"));
    let listener = bind("127.0.0.1:0".parse().expect("address")).await.expect("bind");
    let addr = listener.local_addr().expect("address");
    tokio::spawn(serve_within(listener, cookie, methods, shutdown, 2));
    let mut idle = Vec::new();
    for _ in 0..2 {
        idle.push(TcpStream::connect(addr).await.expect("connect"));
    }
    let mut third = TcpStream::connect(addr).await.expect("connect");
    third.write_all(b"POST / HTTP/1.1\r\nHost: lode\r\nContent-Length: 2\r\n\r\n{}").await.expect("send");
    let mut answer = [0u8; 64];
    let early = tokio::time::timeout(Duration::from_millis(500), third.read(&mut answer)).await;
    assert!(early.is_err(), "a third connection was served beside two open ones");
    drop(idle.pop());
    let n = tokio::time::timeout(Duration::from_secs(5), third.read(&mut answer))
        .await
        .expect("served once a connection closed")
        .expect("read");
    assert!(answer[..n].starts_with(b"HTTP/1.1 401"), "{:?}", String::from_utf8_lossy(&answer[..n]));
    // No cookie, no connection kept: the server closes it after the 401.
    let mut rest = Vec::new();
    let closed = tokio::time::timeout(Duration::from_secs(5), third.read_to_end(&mut rest)).await;
    assert!(matches!(closed, Ok(Ok(_))), "the connection was closed after the 401: {closed:?}");
}
