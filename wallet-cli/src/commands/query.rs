//! `balance`, `history` and `status`: read the node, change nothing but the
//! wallet's address counters when discovery finds used addresses.

use super::{msg, Ctx, Error, Output};
use crate::file::ReplacedTx;
use crate::rpc::{Balance, VerboseTx};
use crate::select::{money_sum, TooMuchMoney};
use crate::view;
use lode_core::{Amount, Hash256, MAX_MONEY};
use serde_json::{json, Value};
use std::collections::HashMap;

fn signed(v: i64) -> String {
    format!("{}{}", if v < 0 { "-" } else { "" }, Amount::from_units(v.unsigned_abs()))
}

/// Runs `balance`: the node's per-address balances summed over every used
/// address of the wallet.
pub fn balance(ctx: &Ctx) -> Result<Output, Error> {
    let mut w = ctx.open()?;
    let client = ctx.client()?;
    let view = view::scan(&client, &w.keys, &mut w.data, ctx.prefix())?;
    let mut total = Balance::default();
    for a in &view.used {
        // Each figure is at most MAX_MONEY (checked when decoded); their
        // sums over many addresses are checked too: the node is not trusted.
        let b: Balance = client.typed("getbalance", json!([a.text]))?;
        total.confirmed = money_sum("confirmed balances", [total.confirmed, b.confirmed])?;
        total.immature = money_sum("immature balances", [total.immature, b.immature])?;
        total.unconfirmed = total
            .unconfirmed
            .checked_add(b.unconfirmed)
            .filter(|u| u.unsigned_abs() <= MAX_MONEY.units())
            .ok_or(TooMuchMoney("unconfirmed balances"))?;
    }
    if view.advanced {
        ctx.save(&w)?;
    }
    let json = json!({"confirmed": total.confirmed, "unconfirmed": total.unconfirmed, "immature": total.immature});
    let text = format!(
        "confirmed:   {}\nunconfirmed: {}\nimmature:    {}",
        Amount::from_units(total.confirmed),
        signed(total.unconfirmed),
        Amount::from_units(total.immature)
    );
    Ok(Output { json, text })
}

/// One history row, seen from the wallet whose addresses are `ours`.
///
/// `amount` is what left or reached the wallet, fee excluded (negative when
/// sent); `fee` is what the wallet paid (its transactions only); `net` is
/// the change to the wallet's balance (`amount - fee`). Refused when the
/// node's amounts for the transaction add up to more than can exist.
pub fn history_row(tx: &VerboseTx, ours: &HashMap<String, impl Sized>) -> Result<Value, TooMuchMoney> {
    let mine = |a: &Option<String>| a.as_ref().is_some_and(|a| ours.contains_key(a));
    let spent = money_sum("input amounts", tx.inputs.iter().filter(|i| mine(&i.address)).filter_map(|i| i.amount))?;
    let received =
        money_sum("output amounts", tx.outputs.iter().filter(|o| ours.contains_key(&o.address)).map(|o| o.amount))?;
    let funded = tx.inputs.iter().any(|i| mine(&i.address));
    let fee = if funded { tx.fee } else { 0 };
    let net = i128::from(received) - i128::from(spent);
    let amount = net + i128::from(fee);
    let direction = if tx.coinbase {
        "mined"
    } else if !funded {
        "received"
    } else if amount == 0 {
        "self"
    } else {
        "sent"
    };
    let clamp = |v: i128| i64::try_from(v).unwrap_or(if v < 0 { i64::MIN } else { i64::MAX });
    Ok(json!({
        "txid": tx.txid,
        "direction": direction,
        "amount": clamp(amount),
        "fee": fee,
        "net": clamp(net),
        "confirmations": tx.confirmations,
        "height": tx.height,
        "in_mempool": tx.in_mempool,
        "coinbase": tx.coinbase,
    }))
}

/// A row for a payment this wallet replaced with `bumpfee`.
pub fn replaced_row(r: &ReplacedTx) -> Value {
    json!({
        "txid": r.txid,
        "direction": "replaced",
        "amount": r.amount,
        "fee": r.fee,
        "net": 0,
        "confirmations": 0,
        "height": null,
        "in_mempool": false,
        "coinbase": false,
        "replaced_by": r.replaced_by,
    })
}

/// Runs `history`: every transaction touching the wallet, oldest first,
/// mempool ones last; a payment replaced by `bumpfee` ("replaced") just
/// before the one that replaced it.
pub fn history(ctx: &Ctx) -> Result<Output, Error> {
    let mut w = ctx.open()?;
    let client = ctx.client()?;
    let view = view::scan(&client, &w.keys, &mut w.data, ctx.prefix())?;
    let mut rows = Vec::new();
    // A replaced payment that was mined after all is history like any other.
    let known: std::collections::HashSet<String> = view.history.iter().map(|e| e.txid.to_hex()).collect();
    let mut replaced: Vec<&ReplacedTx> = w.data.replaced.iter().filter(|r| !known.contains(&r.txid)).collect();
    for e in &view.history {
        // A transaction can vanish between the two calls (reorg, eviction).
        if let Some(tx) = client.transaction(&e.txid)? {
            let hex = tx.txid.to_hex();
            // Chains of replacements: each one before what replaced it.
            let mut before = Vec::new();
            let mut by = hex.clone();
            while let Some(i) = replaced.iter().position(|r| r.replaced_by == by) {
                let r = replaced.remove(i);
                by = r.txid.clone();
                before.push(replaced_row(r));
            }
            rows.extend(before.into_iter().rev());
            rows.push(history_row(&tx, &view.ours)?);
        }
    }
    rows.extend(replaced.into_iter().map(replaced_row));
    if view.advanced {
        ctx.save(&w)?;
    }
    let text = if rows.is_empty() {
        "no transactions".to_string()
    } else {
        rows.iter()
            .map(|r| {
                let when = match r["height"].as_u64() {
                    Some(h) => format!("height {h:>7}, {} conf", r["confirmations"]),
                    None => "mempool".to_string(),
                };
                format!(
                    "{} {:<8} {:>20}  fee {:>12}  {when}",
                    r["txid"].as_str().unwrap_or(""),
                    r["direction"].as_str().unwrap_or(""),
                    signed(r["amount"].as_i64().unwrap_or(0)),
                    Amount::from_units(r["fee"].as_u64().unwrap_or(0)),
                )
            })
            .collect::<Vec<_>>()
            .join("\n")
    };
    Ok(Output { json: Value::Array(rows), text })
}

/// Runs `status TXID`: mempool, confirmed at height H, or unknown. Needs no
/// wallet file.
pub fn status(ctx: &Ctx, txid_text: &str) -> Result<Output, Error> {
    let txid = Hash256::from_hex(txid_text.trim())
        .map_err(|_| msg(format!("{txid_text:?} is not a transaction id (64 hex characters)")))?;
    let client = ctx.client()?;
    let tx = client.transaction(&txid)?;
    let (status, height, confirmations, block) = match &tx {
        Some(t) if t.confirmations >= 1 => ("confirmed", t.height, t.confirmations, t.block_hash),
        Some(t) if t.in_mempool => ("mempool", None, 0, None),
        _ => ("unknown", None, 0, None),
    };
    let text = match (status, height) {
        ("confirmed", Some(h)) => format!("{txid}: confirmed at height {h} ({confirmations} confirmations)"),
        ("mempool", _) => format!("{txid}: in the mempool, unconfirmed"),
        _ if tx.is_some() => format!("{txid}: unknown (only in a block off the best chain)"),
        _ => format!("{txid}: unknown to the node"),
    };
    let json =
        json!({"txid": txid, "status": status, "height": height, "confirmations": confirmations, "block_hash": block});
    Ok(Output { json, text })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rpc::{VerboseIn, VerboseOut};

    fn tx(inputs: &[(&str, u64)], outputs: &[(&str, u64)], fee: u64) -> VerboseTx {
        VerboseTx {
            txid: Hash256([1; 32]),
            height: Some(4),
            block_hash: None,
            confirmations: 2,
            in_mempool: false,
            coinbase: inputs.is_empty(),
            inputs: inputs
                .iter()
                .map(|(a, v)| VerboseIn {
                    txid: Some(Hash256([2; 32])),
                    vout: Some(0),
                    address: Some(a.to_string()),
                    amount: Some(*v),
                })
                .collect(),
            outputs: outputs
                .iter()
                .enumerate()
                .map(|(i, (a, v))| VerboseOut { vout: i as u32, address: a.to_string(), amount: *v })
                .collect(),
            fee,
            size: 0,
        }
    }

    #[test]
    fn rows_say_direction_amount_fee_and_net() {
        let ours: HashMap<String, ()> = [("me".to_string(), ()), ("chg".to_string(), ())].into();
        let sent = history_row(&tx(&[("me", 1000)], &[("them", 600), ("chg", 390)], 10), &ours).unwrap();
        assert_eq!(
            sent,
            json!({"txid": Hash256([1; 32]), "direction": "sent", "amount": -600, "fee": 10, "net": -610,
                   "confirmations": 2, "height": 4, "in_mempool": false, "coinbase": false})
        );
        let received = history_row(&tx(&[("them", 1000)], &[("me", 600), ("them", 390)], 10), &ours).unwrap();
        assert_eq!(
            (received["direction"].as_str(), received["amount"].as_i64(), received["fee"].as_u64()),
            (Some("received"), Some(600), Some(0))
        );
        let own = history_row(&tx(&[("me", 1000)], &[("chg", 990)], 10), &ours).unwrap();
        assert_eq!(
            (own["direction"].as_str(), own["amount"].as_i64(), own["net"].as_i64()),
            (Some("self"), Some(0), Some(-10))
        );
        let mined = history_row(&tx(&[], &[("me", 5000)], 0), &ours).unwrap();
        assert_eq!(
            (mined["direction"].as_str(), mined["amount"].as_i64(), mined["coinbase"].as_bool()),
            (Some("mined"), Some(5000), Some(true))
        );
    }
}
