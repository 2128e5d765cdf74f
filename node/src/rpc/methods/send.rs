//! `sendrawtransaction` and `sendrawtransactions`.

use super::{tx_error, Methods, Params, MAX_SEND_BATCH};
use crate::node::InlineSubmit;
use crate::rpc::RpcError;
use lode_core::codec::Decode;
use lode_core::{ChainSpec, Transaction};
use serde_json::{json, Value};
use std::sync::Arc;

/// Longest hex string `sendrawtransaction` decodes on an async worker
/// (16 KiB of transaction); longer ones are decoded and admitted on a
/// blocking thread.
const INLINE_MAX_HEX: usize = 32 * 1024;

fn decode_tx(hex: &str, spec: &ChainSpec) -> Result<Transaction, RpcError> {
    let bytes = hex::decode(hex).map_err(|e| RpcError::invalid_params(format!("hex: {e}")))?;
    Transaction::decode_all(&bytes, spec.max_block_size)
        .map_err(|e| RpcError::invalid_params(format!("transaction does not decode: {e}")))
}

impl Methods {
    /// `sendrawtransaction`: a small transaction is admitted on the async
    /// worker that parsed the request unless a lock is busy (see
    /// `node::admission`); the rest go to a blocking thread.
    pub(super) async fn send_raw_transaction(self: &Arc<Self>, params: Vec<Value>) -> Result<Value, RpcError> {
        let p = Params::new(params, 1)?;
        let hex = p.str(0, "hex")?;
        let tx = if hex.len() <= INLINE_MAX_HEX {
            match self.node.try_submit_inline(decode_tx(hex, self.node.spec())?) {
                InlineSubmit::Decided(result) => return result.map(|txid| json!(txid)).map_err(tx_error),
                InlineSubmit::Blocking(tx) => Ok(tx),
            }
        } else {
            Err(hex.to_owned())
        };
        let node = self.node.clone();
        tokio::task::spawn_blocking(move || {
            let tx = match tx {
                Ok(tx) => tx,
                Err(hex) => decode_tx(&hex, node.spec())?,
            };
            node.submit_transaction(tx).map(|txid| json!(txid)).map_err(tx_error)
        })
        .await
        .map_err(|e| RpcError::internal(e.to_string()))?
    }

    /// `sendrawtransactions`: one result per transaction, in order; one
    /// that does not decode is answered in its place and the others still
    /// go in.
    pub(super) fn send_raw_transactions(&self, params: Vec<Value>) -> Result<Value, RpcError> {
        let spec = self.node.spec();
        let p = Params::new(params, 1)?;
        let list = p.array(0, "hexes")?;
        if list.len() > MAX_SEND_BATCH {
            return Err(RpcError::invalid_params(format!("at most {MAX_SEND_BATCH} transactions per call")));
        }
        let mut decoded: Vec<Result<Transaction, RpcError>> = Vec::with_capacity(list.len());
        for (i, v) in list.iter().enumerate() {
            let parsed = v
                .as_str()
                .ok_or_else(|| RpcError::invalid_params(format!("hexes[{i}] must be a string")))
                .and_then(|h| hex::decode(h).map_err(|e| RpcError::invalid_params(format!("hexes[{i}]: hex: {e}"))))
                .and_then(|b| {
                    Transaction::decode_all(&b, spec.max_block_size)
                        .map_err(|e| RpcError::invalid_params(format!("hexes[{i}]: transaction does not decode: {e}")))
                });
            decoded.push(parsed);
        }
        let txs: Vec<Transaction> = decoded.iter().filter_map(|d| d.as_ref().ok().cloned()).collect();
        let mut submitted = self.node.submit_transactions(txs).into_iter();
        let out: Vec<Value> = decoded
            .into_iter()
            .map(|d| {
                let result = d.and_then(|_| match submitted.next() {
                    Some(r) => r.map_err(tx_error),
                    None => Err(RpcError::internal("missing result")),
                });
                match result {
                    Ok(txid) => json!({"txid": txid}),
                    Err(e) => json!({"error": {"code": e.code, "message": e.message}}),
                }
            })
            .collect();
        Ok(json!(out))
    }
}
