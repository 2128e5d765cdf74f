//! `bumpfee TXID`: replace the wallet's own unconfirmed payment with a
//! higher-fee version (full replace-by-fee). The payments stay as they
//! were; the same inputs are spent, plus confirmed coins when the change
//! cannot cover the new fee; the change shrinks (or goes, when it would be
//! worth less than it costs). Everything that can be refused is refused
//! before signing, with the wallet file unchanged.

use super::send::{
    check_conf_target, check_fee_rate, coins_text, fee_source_text, node_fee_policy, resolve_fee_rate, sign, submit,
};
use super::send::{FeeArgs, MAX_FEE_RATE};
use super::{msg, now, Ctx, Error, Output};
use crate::file::{outpoint_text, PendingTx, ReplacedTx};
use crate::keys::Branch;
use crate::rpc::{Client, MempoolEntry};
use crate::select::{min_change, money_sum, tx_size, Coin, TooMuchMoney, MAX_TX_SIZE};
use crate::view;
use lode_core::codec::{Decode, Encode};
use lode_core::{Address, Amount, Hash256, Transaction, TxOut};
use serde_json::json;

/// The smallest whole fee rate a replacement of `fee` over `size` bytes
/// may use: strictly above the original's rate, and at least the node's
/// minimum.
pub fn min_bump_rate(fee: u64, size: u64, node_min: u64) -> u64 {
    (fee / size.max(1) + 1).max(node_min)
}

/// Whether a replacement paying `new_fee` for `new_size` bytes satisfies
/// the node's rules against an original paying `old_fee` for `old_size`:
/// a strictly higher rate, and the old fee plus `incremental` per new byte.
pub fn pays_enough(new_fee: u64, new_size: u64, old_fee: u64, old_size: u64, incremental: u64) -> bool {
    u128::from(new_fee) * u128::from(old_size) > u128::from(old_fee) * u128::from(new_size)
        && new_fee >= old_fee.saturating_add(incremental.saturating_mul(new_size))
}

/// Runs `bumpfee`.
pub fn bumpfee(ctx: &Ctx, fees: &FeeArgs, txid_text: &str) -> Result<Output, Error> {
    let txid = Hash256::from_hex(txid_text.trim())
        .map_err(|_| msg(format!("{txid_text:?} is not a transaction id (64 hex characters)")))?;
    if let Some(r) = fees.fee_rate {
        check_fee_rate(Some(r), 1)?;
    }
    let target = check_conf_target(fees.conf_target)?;
    let mut w = ctx.open()?;
    let client = ctx.client()?;
    let original = match client.transaction(&txid)? {
        None => return Err(msg(format!("unknown transaction {txid}: the node has no such transaction"))),
        Some(t) if t.confirmations >= 1 => {
            return Err(msg(format!(
                "transaction {txid} is already confirmed (height {}); there is nothing to bump",
                t.height.map_or("?".to_string(), |h| h.to_string())
            )))
        }
        Some(t) if !t.in_mempool => {
            return Err(msg(format!(
                "transaction {txid} is not in the node's mempool (only in a block off the best chain)"
            )))
        }
        Some(t) => t,
    };
    // The original itself, decoded here: the replacement's payments and
    // inputs come from these bytes, never from the node's description of
    // them, which a lying node (or anyone rewriting the plain-HTTP answer)
    // could fill with its own addresses for the wallet to sign.
    let raw = original_bytes(&client, &w.data.pending, &txid)?;
    let view = view::scan(&client, &w.keys, &mut w.data, ctx.prefix())?;
    // Only the wallet's own payments: every input is one of its keys. The
    // amounts are the node's, but each signature commits to every spent
    // amount: a wrong one makes a replacement nobody accepts, not a loss.
    let mut inputs: Vec<Coin> = Vec::with_capacity(raw.inputs.len());
    for (i, input) in raw.inputs.iter().enumerate() {
        let described =
            original.inputs.get(i).filter(|d| d.txid == Some(input.prevout.txid) && d.vout == Some(input.prevout.vout));
        let owner = described.and_then(|d| d.address.as_ref()).and_then(|a| view.ours.get(a));
        match (owner, described.and_then(|d| d.amount)) {
            (Some(&(branch, index)), Some(amount)) => {
                inputs.push(Coin { outpoint: input.prevout, amount, branch, index, confirmed: true })
            }
            _ => {
                return Err(msg(format!(
                    "transaction {txid} is not a payment of this wallet (input {i} is not one of its keys)"
                )))
            }
        }
    }
    // Its fee and size, from the bytes and the committed amounts.
    let in_total = money_sum("input amounts", inputs.iter().map(|c| c.amount))?;
    let out_total = raw.outputs.iter().try_fold(0u64, |t, o| t.checked_add(o.value.units()));
    let (old_fee, old_size) = match out_total {
        Some(o) if in_total >= o => (in_total - o, raw.encoded_size() as u64),
        _ => return Err(msg(format!("the node's amounts for the inputs of {txid} do not cover its outputs"))),
    };
    let entry: MempoolEntry = client.typed("getmempoolentry", json!([txid]))?;
    if entry.descendants > 1 {
        return Err(msg(format!(
            "transaction {txid} has {} unconfirmed descendants spending its outputs; replacing it would \
             evict them too (wait for a block, or bump the newest)",
            entry.descendants - 1
        )));
    }
    let pool = node_fee_policy(&client)?;
    let floor = min_bump_rate(old_fee, old_size, pool.min_fee_rate);
    let (fee_rate, estimate) = match fees.fee_rate {
        Some(r) if r < floor => {
            return Err(msg(format!(
                "fee rate {r} is not higher than the original's {:.2}/byte: a replacement needs at least {floor}/byte",
                old_fee as f64 / old_size.max(1) as f64
            )))
        }
        Some(r) => (r, None),
        None => {
            let (r, e) = resolve_fee_rate(&client, None, target, pool.min_fee_rate)?;
            (r.max(floor).min(MAX_FEE_RATE.max(floor)), e)
        }
    };
    let fresh_change = w.keys.address(Branch::Change, w.data.change_next)?;
    let mut plan = plan(&raw, &view.ours, inputs, ctx.prefix(), fresh_change)?;
    // Extra coins: confirmed only (the node refuses a replacement adding
    // unconfirmed parents), none already reserved by another payment.
    let mut extra: Vec<Coin> = {
        view::prune_pending(&mut w.data.pending, &view.mempool, now());
        let coins = view::coins(&client, &view, &w.data.pending, ctx.spec.coinbase_maturity)?;
        coins.confirmed
    };
    extra.sort_by_key(|c| std::cmp::Reverse(c.amount));
    let mut extra = extra.into_iter();
    let auto = fees.fee_rate.is_none();
    let (outputs, fee, change_pos) = loop {
        let built = plan.finish(|n, outs| {
            // An automatic rate rises to what the node's second rule needs.
            let size = tx_size(n, outs);
            let need = old_fee.saturating_add(pool.incremental_relay_fee.saturating_mul(size));
            if auto {
                fee_rate.max(need.div_ceil(size))
            } else {
                fee_rate
            }
        });
        match built? {
            Some(b) => break b,
            None => match extra.next() {
                Some(c) => plan.inputs.push(c),
                None => {
                    return Err(msg(format!(
                        "insufficient balance to bump {txid} to {fee_rate}/byte: its change and the confirmed coins \
                         left do not cover the new fee"
                    )))
                }
            },
        }
    };
    let new_size = tx_size(plan.inputs.len() as u64, outputs.len() as u64);
    if new_size > MAX_TX_SIZE {
        return Err(msg(format!(
            "the replacement would be {new_size} bytes, above the {MAX_TX_SIZE}-byte relay limit"
        )));
    }
    if !pays_enough(fee, new_size, old_fee, old_size, pool.incremental_relay_fee) {
        let need = old_fee.saturating_add(pool.incremental_relay_fee.saturating_mul(new_size));
        return Err(msg(format!(
            "fee rate {fee_rate} is not enough to replace {txid}: the replacement must pay at least {} \
             (the original's fee plus {}/byte of its {new_size} bytes) at a higher rate than {:.2}/byte; pass a higher --fee-rate",
            coins_text(need),
            pool.incremental_relay_fee,
            old_fee as f64 / old_size.max(1) as f64
        )));
    }
    let new_rate = fee as f64 / new_size as f64;
    let source = fee_source_text(!auto, &estimate, target);
    ctx.confirm(
        fees.yes,
        &format!(
            "replace {txid} (fee {}, {:.2}/byte) with a fee of {} ({new_rate:.2}/byte, {source}), paying {}",
            coins_text(old_fee),
            old_fee as f64 / old_size.max(1) as f64,
            coins_text(fee),
            plan.recipients(ctx.prefix())
        ),
    )?;
    let tx = sign(ctx, &w, &plan.inputs, outputs)?;
    if tx.encoded_size() as u64 != new_size {
        return Err(msg("internal error: the signed replacement does not have the expected size; nothing was sent"));
    }
    let new_txid = tx.txid();
    let hex = hex::encode(tx.encode());
    if plan.fresh_change && change_pos.is_some() {
        w.data.change_next = w.data.change_next.checked_add(1).ok_or_else(|| msg("no more change addresses"))?;
    }
    let old_text = txid.to_hex();
    w.data.pending.retain(|p| p.txid != old_text);
    w.data.pending.push(PendingTx {
        txid: new_txid.to_hex(),
        spends: plan.inputs.iter().map(|c| outpoint_text(&c.outpoint)).collect(),
        hex: hex.clone(),
        created: now(),
        broadcast: true,
    });
    w.data.replaced.push(ReplacedTx {
        txid: old_text,
        replaced_by: new_txid.to_hex(),
        amount: -i64::try_from(plan.paid).unwrap_or(i64::MAX),
        fee: old_fee,
        time: now(),
    });
    submit(&client, &new_txid, &hex).map_err(|e| msg(format!("{e}; the original {txid} stays")))?;
    ctx.save(&w)
        .map_err(|e| msg(format!("replaced {txid} by {new_txid}, but the wallet file was not updated: {e}")))?;
    let json = json!({
        "txid": new_txid,
        "replaces": txid,
        "fee": fee,
        "fee_rate": new_rate,
        "old_fee": old_fee,
        "old_fee_rate": old_fee as f64 / old_size.max(1) as f64,
        "size": new_size,
        "inputs": plan.inputs.len(),
        "change_vout": change_pos,
        "fee_source": source,
    });
    let text = format!(
        "replaced {txid} (fee {}) by {new_txid} (fee {}, {new_rate:.2}/byte)",
        coins_text(old_fee),
        coins_text(fee)
    );
    Ok(Output { json, text })
}

/// A finished replacement: its outputs, fee and change position.
type Built = (Vec<TxOut>, u64, Option<usize>);

/// A replacement being put together.
struct Plan {
    inputs: Vec<Coin>,
    /// The original's outputs except its change, in order.
    payments: Vec<TxOut>,
    /// Where the change goes among the outputs, and its address.
    change: (usize, Address),
    /// Whether the change address is a fresh one (the original had none).
    fresh_change: bool,
    /// What the payments send to others.
    paid: u64,
}

/// The original's payments and change, for rebuilding: outputs to the
/// wallet's change branch are change (the wallet makes at most one), the
/// rest are payments (kept as they are, even to the wallet itself).
fn plan(
    original: &Transaction,
    ours: &std::collections::HashMap<String, (Branch, u32)>,
    inputs: Vec<Coin>,
    prefix: &str,
    fresh_change: Address,
) -> Result<Plan, Error> {
    let mut payments = Vec::new();
    let mut change = None;
    let mut paid = 0u64;
    for (vout, o) in original.outputs.iter().enumerate() {
        let text = o
            .address
            .encode(prefix)
            .map_err(|_| msg(format!("output {vout} of {} has an address the wallet cannot write", original.txid())))?;
        match ours.get(&text) {
            Some((Branch::Change, _)) if change.is_none() => change = Some((payments.len(), o.address)),
            owner => {
                if owner.is_none() {
                    paid = paid.saturating_add(o.value.units());
                }
                payments.push(*o);
            }
        }
    }
    if payments.is_empty() {
        return Err(msg(format!("transaction {} pays nothing but change; nothing to bump", original.txid())));
    }
    Ok(Plan {
        inputs,
        change: change.unwrap_or((payments.len(), fresh_change)),
        fresh_change: change.is_none(),
        payments,
        paid,
    })
}

/// The original's bytes: the wallet's own copy when it made it, else the
/// node's raw answer, which must hash to the id asked for.
fn original_bytes(client: &Client, pending: &[PendingTx], txid: &Hash256) -> Result<Transaction, Error> {
    let text = txid.to_hex();
    let hex = match pending.iter().find(|p| p.txid == text && !p.hex.is_empty()) {
        Some(p) => p.hex.clone(),
        None => client.typed::<String>("getrawtransaction", json!([txid, false]))?,
    };
    let tx = hex::decode(hex.trim())
        .ok()
        .and_then(|b| Transaction::decode_all(&b, MAX_TX_SIZE as usize).ok())
        .ok_or_else(|| msg(format!("the node's copy of {txid} does not decode")))?;
    if tx.txid() != *txid {
        return Err(msg(format!("the node answered another transaction ({}) for {txid}", tx.txid())));
    }
    Ok(tx)
}

impl Plan {
    /// The payments, as the confirmation prompt lists them.
    fn recipients(&self, prefix: &str) -> String {
        let list: Vec<String> = self
            .payments
            .iter()
            .map(|o| format!("{} to {}", coins_text(o.value.units()), o.address.encode(prefix).unwrap_or_default()))
            .collect();
        list.join(", ")
    }

    /// The outputs, fee and change position at the rate `rate_for` gives
    /// for an input and output count, or `None` when the inputs do not
    /// cover it; refused when the inputs (the node's amounts, plus extra
    /// coins) add up to more than can exist.
    fn finish(&self, rate_for: impl Fn(u64, u64) -> u64) -> Result<Option<Built>, TooMuchMoney> {
        let n = self.inputs.len() as u64;
        let k = self.payments.len() as u64;
        let total_in = money_sum("input amounts", self.inputs.iter().map(|c| c.amount))?;
        let total_out = money_sum("payment amounts", self.payments.iter().map(|o| o.value.units()))?;
        let with_rate = rate_for(n, k + 1);
        let fee_with = with_rate.saturating_mul(tx_size(n, k + 1));
        if total_in >= total_out.saturating_add(fee_with).saturating_add(min_change(with_rate)) {
            let change = total_in - total_out - fee_with;
            let (pos, address) = self.change;
            let mut outputs = self.payments.clone();
            outputs.insert(pos.min(outputs.len()), TxOut { value: Amount::from_units(change), address });
            return Ok(Some((outputs, fee_with, Some(pos.min(self.payments.len())))));
        }
        let without_rate = rate_for(n, k);
        let fee_without = without_rate.saturating_mul(tx_size(n, k));
        if total_in >= total_out.saturating_add(fee_without) {
            // The change would be worth less than it costs: it is fee.
            return Ok(Some((self.payments.clone(), total_in - total_out, None)));
        }
        Ok(None)
    }
}
