//! JSON-RPC methods (see docs/rpc.md for the contract).

use super::params::Params;
use super::RpcError;
use crate::chain::Chain;
use crate::mempool::MempoolError;
use crate::node::Node;
use crate::p2p::P2pHandle;
use crate::store::Store;
use lode_core::codec::{Decode, Encode};
use lode_core::pow::difficulty;
use lode_core::tx::{OutPoint, TxOut};
use lode_core::validation::Coin;
use lode_core::{Address, Block, Hash256, Height, Transaction};
use serde_json::{json, Value};
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;

mod send;

/// Most blocks one `generatetoaddress` call may mine.
const MAX_GENERATE: u64 = 10_000;

/// Most transactions one `sendrawtransactions` call may carry (the 4 MiB
/// body limit allows about this many small ones).
pub const MAX_SEND_BATCH: usize = 10_000;

/// Mining state the RPC reports.
#[derive(Default)]
pub struct MiningStatus {
    /// Whether `--mine` is on.
    pub mining: AtomicBool,
    /// Miner threads.
    pub threads: AtomicUsize,
}

/// The method table and what it needs.
pub struct Methods {
    node: Arc<Node>,
    p2p: Option<P2pHandle>,
    /// Mining state.
    pub mining: Arc<MiningStatus>,
    shutdown: tokio::sync::watch::Sender<bool>,
}

impl Methods {
    /// Builds the table.
    pub fn new(
        node: Arc<Node>,
        p2p: Option<P2pHandle>,
        mining: Arc<MiningStatus>,
        shutdown: tokio::sync::watch::Sender<bool>,
    ) -> Self {
        Methods { node, p2p, mining, shutdown }
    }

    fn p2p(&self) -> Result<&P2pHandle, RpcError> {
        self.p2p.as_ref().ok_or_else(|| RpcError::p2p("networking is disabled"))
    }

    /// Runs one method.
    pub async fn dispatch(self: &Arc<Self>, method: &str, params: Vec<Value>) -> Result<Value, RpcError> {
        match method {
            "getpeerinfo" => {
                Params::new(params, 0)?;
                let peers = self.p2p()?.peers().await;
                serde_json::to_value(peers).map_err(|e| RpcError::internal(e.to_string()))
            }
            "getnetworkinfo" => {
                Params::new(params, 0)?;
                let p2p = self.p2p()?;
                let (inbound, outbound) = p2p.connection_counts();
                Ok(json!({
                    "peer_id": p2p.local_peer_id(),
                    "listen_addresses": p2p.listen_addresses().await,
                    "connections": inbound + outbound,
                    "inbound": inbound,
                    "outbound": outbound,
                    "archive_peers": p2p.archive_peers(),
                }))
            }
            "addpeer" => {
                let p = Params::new(params, 1)?;
                self.p2p()?.add_peer(p.str(0, "multiaddr")?).await.map_err(|e| RpcError::p2p(e.to_string()))?;
                Ok(Value::Null)
            }
            "disconnectpeer" => {
                let p = Params::new(params, 1)?;
                self.p2p()?.disconnect(p.str(0, "peer_id")?).await.map_err(|e| RpcError::p2p(e.to_string()))?;
                Ok(Value::Null)
            }
            "banpeer" => {
                let p = Params::new(params, 2)?;
                let peer = p.str(0, "peer_id")?.to_owned();
                let secs = p.u64(1, "seconds")?;
                self.p2p()?.ban(&peer, secs).await.map_err(|e| RpcError::p2p(e.to_string()))?;
                Ok(Value::Null)
            }
            "unbanpeer" => {
                let p = Params::new(params, 1)?;
                self.p2p()?.unban(p.str(0, "peer_id")?).await.map_err(|e| RpcError::p2p(e.to_string()))?;
                Ok(Value::Null)
            }
            "listbanned" => {
                Params::new(params, 0)?;
                serde_json::to_value(self.p2p()?.banned().await).map_err(|e| RpcError::internal(e.to_string()))
            }
            "sendrawtransaction" => self.send_raw_transaction(params).await,
            "stop" => {
                Params::new(params, 0)?;
                let _ = self.shutdown.send(true);
                Ok(json!("stopping"))
            }
            _ => {
                // Everything else touches the chain or mempool locks, which a
                // block connection can hold for a while: keep it off the
                // async workers.
                let this = self.clone();
                let method = method.to_owned();
                let initial_sync = self.p2p.as_ref().is_some_and(|p| p.initial_sync());
                tokio::task::spawn_blocking(move || this.blocking(&method, params, initial_sync))
                    .await
                    .map_err(|e| RpcError::internal(e.to_string()))?
            }
        }
    }

    fn blocking(&self, method: &str, params: Vec<Value>, initial_sync: bool) -> Result<Value, RpcError> {
        let spec = self.node.spec();
        let prefix = spec.address_prefix.as_str();
        match method {
            "getblockchaininfo" => {
                Params::new(params, 0)?;
                let chain = self.node.chain();
                let tip = chain.tip_entry();
                let best = chain.best_header();
                Ok(json!({
                    "chain": spec.name,
                    "height": chain.state().height.0,
                    "best_hash": chain.state().tip,
                    "chainwork": tip.work.to_hex(),
                    "difficulty": difficulty(tip.header.bits, spec.pow_limit),
                    "initial_sync": initial_sync,
                    "median_time": chain.median_time_past(),
                    "headers": best.height.0,
                    "best_header_hash": best.header.hash(),
                    "pruned": chain.prune_height().is_some(),
                    "prune_height": chain.prune_height().map(|h| h.0),
                    "history_unavailable": self.p2p.as_ref().is_some_and(|p| p.history_unavailable()),
                }))
            }
            "getblockhash" => {
                let p = Params::new(params, 1)?;
                let h = p.u64(0, "height")?;
                let height = u32::try_from(h).map_err(|_| RpcError::invalid_params("height out of range"))?;
                self.node
                    .chain()
                    .hash_at(Height(height))
                    .map(|h| json!(h))
                    .ok_or_else(|| RpcError::not_found(format!("no block at height {height}")))
            }
            "getblock" => {
                let p = Params::new(params, 2)?;
                let hash = p.hash(0, "hash")?;
                let verbose = p.bool_or(1, "verbose", true)?;
                // Body and undo record are read off the chain lock (see
                // `BlockPlace`); the lock is taken for the header index only.
                let store = self.node.chain().shared_store();
                let block = self.load_block(&store, &hash)?;
                if !verbose {
                    return Ok(json!(hex::encode(block.encode())));
                }
                // One map for the whole block: per transaction, the undo
                // data was read again, and each output spent inside the
                // block cost a block read: quadratic.
                let prevouts = block_prevouts(&store, &hash, &block);
                let (mut v, place) = {
                    let chain = self.node.chain();
                    (header_json(&chain, &hash, prefix)?, BlockPlace::of(&chain, Some(&hash)))
                };
                let txs: Vec<Value> = block
                    .transactions
                    .iter()
                    .map(|t| {
                        let spent = t.inputs.iter().map(|i| prevouts.get(&i.prevout).copied()).collect();
                        self.tx_json(&place, t, Some(&hash), spent)
                    })
                    .collect();
                v["size"] = json!(block.encoded_size());
                v["tx"] = json!(txs);
                Ok(v)
            }
            "getblockheader" => {
                let p = Params::new(params, 1)?;
                let hash = p.hash(0, "hash")?;
                header_json(&self.node.chain(), &hash, prefix)
            }
            "getrawtransaction" => {
                let p = Params::new(params, 2)?;
                let txid = p.hash(0, "txid")?;
                let verbose = p.bool_or(1, "verbose", false)?;
                let store = self.node.chain().shared_store();
                let (tx, block) = self
                    .find_tx(&store, &txid)?
                    .ok_or_else(|| RpcError::not_found(format!("transaction {txid} not found")))?;
                if verbose {
                    let spent = self.spent_outputs(&store, &tx, block.as_ref());
                    let place = BlockPlace::of(&self.node.chain(), block.as_ref());
                    Ok(self.tx_json(&place, &tx, block.as_ref(), spent))
                } else {
                    Ok(json!(hex::encode(tx.encode())))
                }
            }
            "sendrawtransactions" => self.send_raw_transactions(params),
            "submitblock" => {
                let p = Params::new(params, 1)?;
                let bytes = hex::decode(p.str(0, "hex")?).map_err(|e| RpcError::invalid_params(format!("hex: {e}")))?;
                let block = Block::decode_all(&bytes, spec.max_block_size + 1024)
                    .map_err(|e| RpcError::invalid_params(format!("block does not decode: {e}")))?;
                // As Bitcoin Core (BIP22): null when the block is now part of
                // the chain we follow, "duplicate" when known, "inconclusive"
                // when stored on a side branch, an error naming the rule
                // when invalid.
                use crate::chain::BlockAccepted;
                match self.node.process_own_block(block) {
                    Ok(BlockAccepted::Connected | BlockAccepted::Stored) => Ok(Value::Null),
                    Ok(BlockAccepted::AlreadyHave) => Ok(json!("duplicate")),
                    Ok(BlockAccepted::SideBranch | BlockAccepted::LowWork) => Ok(json!("inconclusive")),
                    Ok(BlockAccepted::Orphan { missing }) => {
                        Err(RpcError::not_found(format!("parent unknown; missing {missing}")))
                    }
                    Err(crate::chain::ChainError::KnownInvalid(h)) => {
                        Err(RpcError::tx_invalid(format!("duplicate-invalid: block {h} is known to be invalid")))
                    }
                    Err(e @ crate::chain::ChainError::Store(_)) => Err(RpcError::internal(e.to_string())),
                    Err(e) => Err(RpcError::tx_invalid(e.to_string())),
                }
            }
            "getchaintips" => {
                Params::new(params, 0)?;
                let tips: Vec<Value> = self
                    .node
                    .chain()
                    .chain_tips()
                    .into_iter()
                    .map(|t| {
                        json!({"height": t.height.0, "hash": t.hash, "branchlen": t.branch_len, "status": t.status.name()})
                    })
                    .collect();
                Ok(json!(tips))
            }
            "getmempoolinfo" => {
                Params::new(params, 0)?;
                let pool = self.node.mempool();
                Ok(json!({
                    "size": pool.len(),
                    "bytes": pool.bytes(),
                    "min_fee_rate": pool.policy().min_fee_rate,
                    "incremental_relay_fee": pool.policy().incremental_relay_fee,
                }))
            }
            "getrawmempool" => {
                Params::new(params, 0)?;
                Ok(json!(self.node.mempool().txids()))
            }
            "getmempoolentry" => {
                let p = Params::new(params, 1)?;
                let txid = p.hash(0, "txid")?;
                let pool = self.node.mempool();
                let e = pool
                    .entry(&txid)
                    .ok_or_else(|| RpcError::not_found(format!("transaction {txid} is not in the mempool")))?;
                let (ancestors, descendants) = pool.package_counts(&txid).unwrap_or((1, 1));
                Ok(json!({
                    "fee": e.fee.units(),
                    "size": e.size,
                    "fee_rate": e.fee_rate().per_byte(),
                    "time": e.time,
                    "ancestors": ancestors,
                    "descendants": descendants,
                }))
            }
            "estimatesmartfee" => {
                let p = Params::new(params, 2)?;
                let target = p.u64(0, "conf_target")?;
                if target == 0 {
                    return Err(RpcError::invalid_params("conf_target must be at least 1"));
                }
                let e = self.node.estimate_fee(u32::try_from(target).unwrap_or(u32::MAX));
                let mut v = json!({"feerate": e.feerate, "blocks": e.blocks});
                if !e.errors.is_empty() {
                    v["errors"] = json!(e.errors);
                }
                Ok(v)
            }
            "listunspent" => {
                let p = Params::new(params, 1)?;
                let address = p.address(0, prefix)?;
                let coins = self.address_coins(&address)?;
                let tip = self.node.chain().state().height.0;
                let list: Vec<Value> = coins
                    .iter()
                    .map(|(op, c)| json!({"txid": op.txid, "vout": op.vout, "amount": c.output.value.units(), "height": c.height.0, "coinbase": c.coinbase, "confirmations": (tip + 1).saturating_sub(c.height.0)}))
                    .collect();
                Ok(json!(list))
            }
            "getbalance" => {
                let p = Params::new(params, 1)?;
                let address = p.address(0, prefix)?;
                self.balance(&address)
            }
            "getaddresshistory" => {
                let p = Params::new(params, 1)?;
                let address = p.address(0, prefix)?;
                // Off the chain lock, as for the coins below.
                let store = self.node.chain().shared_store();
                let mut out: Vec<Value> = store
                    .address_history(&address)
                    .map_err(|e| RpcError::internal(e.to_string()))?
                    .into_iter()
                    .map(|(h, txid)| json!({"txid": txid, "height": h.0}))
                    .collect();
                // The mempool's address index: what it returns, no scan.
                for e in self.node.mempool().touching(&address) {
                    out.push(json!({"txid": e.txid, "height": null}));
                }
                Ok(json!(out))
            }
            "gettxoutsetinfo" => {
                Params::new(params, 0)?;
                let chain = self.node.chain();
                let s = chain.state();
                Ok(
                    json!({"height": s.height.0, "best_hash": s.tip, "utxos": s.utxo_count, "total_amount": s.total_amount, "commitment": chain.commitment()}),
                )
            }
            "verifychain" => {
                Params::new(params, 0)?;
                let report = self.node.chain().verify_integrity().map_err(|e| RpcError::internal(e.to_string()))?;
                serde_json::to_value(report).map_err(|e| RpcError::internal(e.to_string()))
            }
            "getmininginfo" => {
                Params::new(params, 0)?;
                let chain = self.node.chain();
                let tip = chain.tip_entry();
                Ok(json!({
                    "height": chain.state().height.0,
                    "difficulty": difficulty(tip.header.bits, spec.pow_limit),
                    "hashrate": self.node.metrics.hashrate.get(),
                    "mining": self.mining.mining.load(Ordering::Relaxed),
                    "threads": self.mining.threads.load(Ordering::Relaxed),
                }))
            }
            "generatetoaddress" => {
                let p = Params::new(params, 2)?;
                if spec.name != "regtest" {
                    return Err(RpcError::not_allowed("generatetoaddress is only available on regtest"));
                }
                let n = p.u64(0, "nblocks")?;
                if n > MAX_GENERATE {
                    return Err(RpcError::invalid_params(format!("at most {MAX_GENERATE} blocks per call")));
                }
                let address = p.address(1, prefix)?;
                let stop = AtomicBool::new(false);
                let mut hashes = Vec::with_capacity(n as usize);
                for _ in 0..n {
                    let mut block = self.node.block_template(address);
                    if !crate::miner::mine_block(&mut block, &stop) {
                        return Err(RpcError::internal("nonce space exhausted"));
                    }
                    let hash = block.hash();
                    // Only a block that became the tip counts: a hash that
                    // did not connect is an error, not a result.
                    match self.node.process_own_block(block) {
                        Ok(crate::chain::BlockAccepted::Connected) => hashes.push(hash),
                        Ok(other) => {
                            return Err(RpcError::internal(format!(
                                "mined block {hash} did not become the tip ({other:?}) after {} blocks",
                                hashes.len()
                            )))
                        }
                        Err(e) => {
                            return Err(RpcError::internal(format!(
                                "mined block {hash} was refused after {} blocks: {e}",
                                hashes.len()
                            )))
                        }
                    }
                }
                Ok(json!(hashes))
            }
            other => Err(RpcError::method_not_found(other)),
        }
    }

    /// The confirmed coins of `address`, read without holding the chain:
    /// anyone can pay an address thousands of dust outputs, and reading
    /// them all under the lock stalled every block and transaction behind
    /// one query. The index iterator sees whole blocks (each is one atomic
    /// batch), so the coins are those of one tip, the one the caller reads
    /// after this returns unless a block arrived or left in between.
    fn address_coins(&self, address: &Address) -> Result<Vec<(OutPoint, Coin)>, RpcError> {
        let store = self.node.chain().shared_store();
        store.address_coins(address).map_err(|e| RpcError::internal(e.to_string()))
    }

    fn balance(&self, address: &Address) -> Result<Value, RpcError> {
        let coins = self.address_coins(address)?;
        let next = self.node.chain().state().height.0 + 1;
        let maturity = self.node.spec().coinbase_maturity;
        // Saturating: each stored coin is within the money supply, but an
        // edited index can hold more of them than the supply allows.
        let (mut confirmed, mut immature) = (0u64, 0u64);
        for (_, c) in &coins {
            if c.coinbase && next.saturating_sub(c.height.0) < maturity {
                immature = immature.saturating_add(c.output.value.units());
            } else {
                confirmed = confirmed.saturating_add(c.output.value.units());
            }
        }
        let mut unconfirmed: i128 = 0;
        // The mempool's address index, and the spent outputs each entry
        // recorded at admission: no block is read.
        for e in self.node.mempool().touching(address) {
            for o in e.tx.outputs.iter().filter(|o| o.address == *address) {
                unconfirmed += i128::from(o.value.units());
            }
            for o in e.spent.iter().filter(|o| o.address == *address) {
                unconfirmed -= i128::from(o.value.units());
            }
        }
        Ok(json!({"confirmed": confirmed, "unconfirmed": unconfirmed as i64, "immature": immature}))
    }

    /// A stored block body, read off the chain lock; the lock is taken only
    /// to say why a body is missing.
    fn load_block(&self, store: &Store, hash: &Hash256) -> Result<Block, RpcError> {
        if let Some(block) = store.block(hash).map_err(|e| RpcError::internal(e.to_string()))? {
            return Ok(block);
        }
        let chain = self.node.chain();
        Err(match chain.entry(hash) {
            Some(e) if chain.is_pruned(hash) => RpcError::pruned(format!(
                "block {hash} at height {} was pruned: this node stores bodies from height {} up",
                e.height.0,
                chain.prune_height().unwrap_or_default().0
            )),
            Some(_) => RpcError::not_found(format!("block {hash}: header known, body not stored")),
            None => RpcError::not_found(format!("block {hash} not found")),
        })
    }

    /// A confirmed or mempool transaction and its block hash if confirmed.
    fn find_tx(&self, store: &Store, txid: &Hash256) -> Result<Option<(Transaction, Option<Hash256>)>, RpcError> {
        if let Some(tx) = self.node.mempool().get(txid) {
            return Ok(Some((tx, None)));
        }
        let Some(loc) = store.tx_location(txid).map_err(|e| RpcError::internal(e.to_string()))? else {
            // Read without the chain lock, a reorganisation may have moved
            // it from a block back to the pool between the two look-ups.
            return Ok(self.node.mempool().get(txid).map(|tx| (tx, None)));
        };
        let block = self.load_block(store, &loc.block)?;
        Ok(block.transactions.get(loc.index as usize).cloned().map(|t| (t, Some(loc.block))))
    }

    /// The output an outpoint refers to, wherever its transaction lives.
    fn prevout_output(&self, store: &Store, op: &OutPoint) -> Option<TxOut> {
        let vout = op.vout as usize;
        if let Some(tx) = self.node.mempool().get(&op.txid) {
            return tx.outputs.get(vout).copied();
        }
        // Store reads only: a missing body needs no explanation here (and
        // `load_block` would take the chain lock to give one).
        let loc = store.tx_location(&op.txid).ok()??;
        let block = store.block(&loc.block).ok()??;
        block.transactions.get(loc.index as usize)?.outputs.get(vout).copied()
    }

    /// The outputs `tx`'s inputs spend, in input order: from the mempool
    /// entry, or from its block's undo data and own outputs (one read of
    /// each), falling back to the transaction index only when the block is
    /// not connected (its undo data is gone).
    fn spent_outputs(&self, store: &Store, tx: &Transaction, block: Option<&Hash256>) -> Vec<Option<TxOut>> {
        if tx.is_coinbase() {
            return vec![None; tx.inputs.len()];
        }
        let known: HashMap<OutPoint, TxOut> = match block {
            None => {
                let pool = self.node.mempool();
                let spent = pool.entry(&tx.txid()).map(|e| e.spent.clone()).unwrap_or_default();
                tx.inputs.iter().map(|i| i.prevout).zip(spent).collect()
            }
            Some(b) => {
                let mut known = store.undo_outputs(b).unwrap_or_default();
                // Outputs made earlier in the same block are not in its undo
                // data: the block is read (once) only when one is spent.
                if tx.inputs.iter().any(|i| !known.contains_key(&i.prevout)) {
                    if let Ok(Some(body)) = store.block(b) {
                        crate::store::add_own_outputs(&mut known, &body);
                    }
                }
                known
            }
        };
        tx.inputs
            .iter()
            .map(|i| known.get(&i.prevout).copied().or_else(|| self.prevout_output(store, &i.prevout)))
            .collect()
    }

    /// `tx` as JSON; `spent` is the output each input spends, if known.
    fn tx_json(
        &self,
        place: &BlockPlace,
        tx: &Transaction,
        block: Option<&Hash256>,
        spent: Vec<Option<TxOut>>,
    ) -> Value {
        let prefix = &self.node.spec().address_prefix;
        let enc = |a: &Address| a.encode(prefix).unwrap_or_default();
        let coinbase = tx.is_coinbase();
        let mut in_total: u64 = 0;
        let inputs: Vec<Value> = tx
            .inputs
            .iter()
            .zip(spent)
            .map(|(i, spent)| {
                if coinbase {
                    return json!({"coinbase": true});
                }
                match spent {
                    Some(o) => {
                        in_total = in_total.saturating_add(o.value.units());
                        json!({"txid": i.prevout.txid, "vout": i.prevout.vout, "address": enc(&o.address), "amount": o.value.units()})
                    }
                    None => json!({"txid": i.prevout.txid, "vout": i.prevout.vout}),
                }
            })
            .collect();
        let outputs: Vec<Value> = tx
            .outputs
            .iter()
            .enumerate()
            .map(|(vout, o)| json!({"vout": vout, "address": enc(&o.address), "amount": o.value.units()}))
            .collect();
        let out_total = crate::explorer::query::saturating_total(tx.outputs.iter());
        let fee = if coinbase { 0 } else { in_total.saturating_sub(out_total) };
        let (height, confirmations) = match place.active_height {
            Some(h) => (json!(h), place.confirmations),
            None => (Value::Null, 0),
        };
        json!({
            "txid": tx.txid(),
            "hex": hex::encode(tx.encode()),
            "size": tx.encoded_size(),
            "height": height,
            "block_hash": block,
            "confirmations": confirmations,
            "in_mempool": block.is_none(),
            "coinbase": coinbase,
            "inputs": inputs,
            "outputs": outputs,
            "fee": fee,
        })
    }
}

/// The JSON-RPC error for a refused transaction (as Bitcoin Core's codes).
fn tx_error(e: MempoolError) -> RpcError {
    match e {
        e @ MempoolError::AlreadyKnown(_) => RpcError::tx_known(e.to_string()),
        e if e.is_consensus_invalid() => RpcError::tx_invalid(e.to_string()),
        e => RpcError::tx_rejected(e.to_string()),
    }
}

/// The outputs spent in block `hash` (`block` is its body): its undo data
/// (one read) and the outputs of its own transactions, which a later
/// transaction of the block may spend and the undo data leaves out.
fn block_prevouts(store: &Store, hash: &Hash256, block: &Block) -> HashMap<OutPoint, TxOut> {
    let mut map = store.undo_outputs(hash).unwrap_or_default();
    crate::store::add_own_outputs(&mut map, block);
    map
}

/// Where a transaction's block is on the active chain, read under the
/// chain lock once: bodies, undo records and coins are read without it
/// (block processing waits for that lock, and a large block's body takes a
/// while to read), so the lock is held for index look-ups only.
struct BlockPlace {
    /// The block's height when it is on the active chain.
    active_height: Option<u32>,
    confirmations: u32,
}

impl BlockPlace {
    fn of(chain: &Chain, block: Option<&Hash256>) -> BlockPlace {
        match block.and_then(|h| chain.entry(h).filter(|_| chain.is_active(h))) {
            Some(e) => BlockPlace {
                active_height: Some(e.height.0),
                confirmations: (chain.state().height.0 + 1).saturating_sub(e.height.0),
            },
            None => BlockPlace { active_height: None, confirmations: 0 },
        }
    }
}

fn header_json(chain: &Chain, hash: &Hash256, _prefix: &str) -> Result<Value, RpcError> {
    let e = chain.entry(hash).ok_or_else(|| RpcError::not_found(format!("block {hash} not found")))?;
    let active = chain.is_active(hash);
    let confirmations = if active { i64::from(chain.state().height.0 - e.height.0 + 1) } else { -1 };
    let h = &e.header;
    Ok(json!({
        "hash": hash,
        "height": e.height.0,
        "confirmations": confirmations,
        "version": h.version,
        "prev_hash": h.prev_hash,
        "merkle_root": h.merkle_root,
        "time": h.time,
        "bits": h.bits,
        "nonce": h.nonce,
        "chainwork": e.work.to_hex(),
        "in_best_chain": active,
        "status": format!("{:?}", e.status),
    }))
}

#[cfg(test)]
#[path = "methods_tests.rs"]
mod tests;
