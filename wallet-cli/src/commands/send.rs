//! `send`: refuse bad input, select coins, sign, submit (or print, with
//! `--offline`), remember the spend, optionally wait for a confirmation.

use super::{msg, now, Ctx, Error, Output};
use crate::file::{outpoint_text, PendingTx};
use crate::keys::Branch;
use crate::rpc::{Client, MempoolInfo, RpcError, ALREADY_KNOWN};
use crate::select::{select, SelectError, Selection};
use crate::view::{self, Coins};
use lode_core::address::AddressError;
use lode_core::codec::Encode;
use lode_core::crypto::SecretKey;
use lode_core::{Address, Amount, Hash256, Transaction, TxIn, TxOut, Unlock};
use rand::Rng;
use serde_json::json;
use std::time::{Duration, Instant};

/// Fee rate used when `--fee-rate` is absent (raised to the node's minimum).
pub const DEFAULT_FEE_RATE: u64 = 2;
/// Fee rates above this are refused as a likely mistake.
pub const MAX_FEE_RATE: u64 = 100_000;

/// Arguments of `send`.
pub struct SendArgs<'a> {
    /// Recipient text.
    pub to: &'a str,
    /// Amount text (coins).
    pub amount: &'a str,
    /// `--fee-rate`.
    pub fee_rate: Option<u64>,
    /// `--wait`.
    pub wait: bool,
    /// How long `--wait` waits.
    pub timeout: Duration,
    /// `--offline`.
    pub offline: bool,
}

/// Parses a recipient of this network, naming what is wrong.
pub fn parse_recipient(to: &str, prefix: &str, chain: &str) -> Result<Address, Error> {
    Address::decode(to.trim(), prefix).map_err(|e| match e {
        AddressError::WrongNetwork { expected, found } => msg(format!(
            "address {to} is for another network (prefix {found}); this wallet is on {chain} (prefix {expected})"
        )),
        AddressError::Malformed(_) => {
            msg(format!("address {to:?} is mistyped: bad checksum or characters (bech32m with prefix {prefix})"))
        }
        other => msg(format!("address {to:?} is invalid: {other}")),
    })
}

/// Parses a positive amount of coins, naming what is wrong.
pub fn parse_amount(text: &str) -> Result<Amount, Error> {
    let value = Amount::parse_coins(text).map_err(|e| msg(e.to_string()))?;
    if value == Amount::ZERO {
        return Err(msg(format!("invalid amount {text:?}: zero; the amount must be above zero")));
    }
    Ok(value)
}

/// Checks the fee rate against the node's minimum and a sanity ceiling.
pub fn check_fee_rate(requested: Option<u64>, node_min: u64) -> Result<u64, Error> {
    match requested {
        None => Ok(DEFAULT_FEE_RATE.max(node_min)),
        Some(0) => Err(msg("fee rate must be at least 1 base unit per byte")),
        Some(r) if r < node_min => {
            Err(msg(format!("fee rate {r} is below the node's minimum relay fee rate of {node_min} per byte")))
        }
        Some(r) if r > MAX_FEE_RATE => {
            Err(msg(format!("fee rate {r} per byte is above {MAX_FEE_RATE}, which is surely a mistake")))
        }
        Some(r) => Ok(r),
    }
}

fn coins_text(units: u64) -> String {
    Amount::from_units(units).to_string()
}

/// Confirmed coins first; the wallet's own unconfirmed change only if they
/// do not suffice.
fn choose(coins: &Coins, amount: u64, fee_rate: u64) -> Result<Selection, Error> {
    match select(&coins.confirmed, amount, fee_rate) {
        Err(SelectError::Insufficient { .. }) if !coins.own_unconfirmed.is_empty() => {}
        Err(SelectError::Insufficient { available, needed }) => return Err(insufficient(coins, available, needed)),
        other => return Ok(other?),
    }
    let all: Vec<_> = coins.confirmed.iter().chain(&coins.own_unconfirmed).cloned().collect();
    select(&all, amount, fee_rate).map_err(|e| match e {
        SelectError::Insufficient { available, needed } => insufficient(coins, available, needed),
        other => other.into(),
    })
}

fn insufficient(coins: &Coins, available: u64, needed: u64) -> Error {
    let mut extra = Vec::new();
    if coins.immature > 0 {
        extra.push(format!("{} immature", coins_text(coins.immature)));
    }
    if coins.reserved > 0 {
        extra.push(format!("{} held by unconfirmed sends", coins_text(coins.reserved)));
    }
    let extra = if extra.is_empty() { String::new() } else { format!(" (not counting {})", extra.join(", ")) };
    msg(format!(
        "insufficient balance: {} needed including the fee, {} spendable{extra}",
        coins_text(needed),
        coins_text(available)
    ))
}

/// Builds and signs the payment; returns it with the change output's index
/// (if any). The change goes at a random position.
fn build(
    ctx: &Ctx,
    w: &super::Opened,
    sel: &Selection,
    dest: Address,
    value: Amount,
) -> Result<(Transaction, Option<usize>), Error> {
    let mut outputs = vec![TxOut { value, address: dest }];
    let mut change_pos = None;
    if sel.change > 0 {
        let change = TxOut {
            value: Amount::from_units(sel.change),
            address: w.keys.address(Branch::Change, w.data.change_next)?,
        };
        let pos = rand::rngs::OsRng.gen_range(0..=1);
        outputs.insert(pos, change);
        change_pos = Some(pos);
    }
    let mut inputs = Vec::with_capacity(sel.coins.len());
    let mut keys: Vec<SecretKey> = Vec::with_capacity(sel.coins.len());
    for c in &sel.coins {
        let key = w.keys.key(c.branch, c.index)?;
        inputs.push(TxIn {
            prevout: c.outpoint,
            unlock: Unlock::Signature { pubkey: key.public_key(), sig: Default::default() },
        });
        keys.push(key);
    }
    let values: Vec<Amount> = sel.coins.iter().map(|c| Amount::from_units(c.amount)).collect();
    let mut tx = Transaction { version: 1, inputs, outputs, lock_time: 0 };
    let refs: Vec<&SecretKey> = keys.iter().collect();
    tx.sign_inputs(&ctx.spec.genesis_hash(), &refs, &values);
    // What was built is what was selected: size, fee and sums agree.
    let in_total: u64 = values.iter().map(|v| v.units()).sum();
    let out_total: u64 = tx.outputs.iter().map(|o| o.value.units()).sum();
    if tx.encoded_size() as u64 != sel.size() || in_total != out_total + sel.fee {
        return Err(msg("internal error: the signed transaction does not match the selection; nothing was sent"));
    }
    Ok((tx, change_pos))
}

/// Runs `send`.
pub fn send(ctx: &Ctx, args: &SendArgs) -> Result<Output, Error> {
    // Refusals that need nothing but the arguments.
    let dest = parse_recipient(args.to, ctx.prefix(), &ctx.spec.name)?;
    let value = parse_amount(args.amount)?;
    if let Some(r) = args.fee_rate {
        check_fee_rate(Some(r), 1)?;
    }
    let mut w = ctx.open()?;
    let client = ctx.client()?;
    let pool: MempoolInfo = client.typed("getmempoolinfo", json!([]))?;
    let fee_rate = check_fee_rate(args.fee_rate, pool.min_fee_rate)?;
    let view = view::scan(&client, &w.keys, &mut w.data, ctx.prefix())?;
    view::prune_pending(&mut w.data.pending, &view.mempool, now());
    let coins = view::coins(&client, &view, &w.data.pending, ctx.spec.coinbase_maturity)?;
    let sel = choose(&coins, value.units(), fee_rate)?;

    let (tx, change_pos) = build(ctx, &w, &sel, dest, value)?;
    let txid = tx.txid();
    let hex = hex::encode(tx.encode());
    if sel.change > 0 {
        w.data.change_next = w.data.change_next.checked_add(1).ok_or_else(|| msg("no more change addresses"))?;
    }
    w.data.pending.push(PendingTx {
        txid: txid.to_hex(),
        spends: sel.coins.iter().map(|c| outpoint_text(&c.outpoint)).collect(),
        hex: hex.clone(),
        created: now(),
        broadcast: !args.offline,
    });
    let mut json = json!({
        "txid": txid,
        "to": args.to.trim(),
        "amount": value.units(),
        "fee": sel.fee,
        "fee_rate": fee_rate,
        "size": sel.size(),
        "change": sel.change,
        "change_vout": change_pos,
        "inputs": sel.coins.len(),
    });
    if args.offline {
        ctx.save(&w)?;
        json["hex"] = json!(hex);
        return Ok(Output { json, text: hex });
    }
    match client.call("sendrawtransaction", json!([hex])) {
        Ok(_) | Err(RpcError::Node { code: ALREADY_KNOWN, .. }) => {}
        Err(RpcError::Node { message, .. }) => {
            return Err(msg(format!("the node refused the payment (nothing was sent): {message}")))
        }
        Err(e) => return Err(msg(format!("submitting {txid} failed, it may or may not have reached the node: {e}"))),
    }
    ctx.save(&w).map_err(|e| msg(format!("sent {txid}, but the wallet file was not updated: {e}")))?;
    let mut text = format!(
        "sent {} to {} (fee {}): {txid}",
        Amount::from_units(value.units()),
        args.to.trim(),
        coins_text(sel.fee)
    );
    if args.wait {
        let height = wait_confirmed(&client, &txid, args.timeout).map_err(|e| msg(format!("sent {txid}, but {e}")))?;
        json["height"] = json!(height);
        json["confirmations"] = json!(1);
        text.push_str(&format!("\nconfirmed at height {height}"));
    }
    Ok(Output { json, text })
}

/// Polls until `txid` has a confirmation; returns its height.
fn wait_confirmed(client: &Client, txid: &Hash256, timeout: Duration) -> Result<u32, String> {
    let deadline = Instant::now() + timeout;
    loop {
        match client.transaction(txid).map_err(|e| format!("waiting for it failed: {e}"))? {
            Some(tx) if tx.confirmations >= 1 => return Ok(tx.height.unwrap_or(0)),
            Some(tx) if tx.in_mempool => {}
            _ => return Err("it left the mempool without confirming (conflict or eviction)".to_string()),
        }
        if Instant::now() >= deadline {
            return Err(format!("it has no confirmation after {} s (still in the mempool)", timeout.as_secs()));
        }
        std::thread::sleep(Duration::from_millis(500).min(deadline.saturating_duration_since(Instant::now())));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn amounts_are_refused_with_the_reason() {
        for (text, why) in [
            ("0", "zero"),
            ("0.00000000", "zero"),
            ("-1", "negative"),
            ("1.000000001", "decimal"),
            ("abc", "not a decimal"),
            ("", "empty"),
            ("21000001", "maximum"),
        ] {
            let e = parse_amount(text).unwrap_err().to_string();
            assert!(e.contains(why), "{text:?}: {e}");
        }
        assert_eq!(parse_amount("12.5").unwrap().units(), 1_250_000_000);
        assert_eq!(parse_amount("0.00000001").unwrap().units(), 1);
    }

    #[test]
    fn addresses_are_refused_with_the_reason() {
        let good = Address([9; 20]).encode("lrt").unwrap();
        assert_eq!(parse_recipient(&good, "lrt", "regtest").unwrap(), Address([9; 20]));
        let other = Address([9; 20]).encode("ldev").unwrap();
        let e = parse_recipient(&other, "lrt", "regtest").unwrap_err().to_string();
        assert!(e.contains("another network") && e.contains("ldev"), "{e}");
        let mut typo = good.clone();
        let last = typo.pop().unwrap();
        typo.push(if last == 'q' { 'p' } else { 'q' });
        assert!(parse_recipient(&typo, "lrt", "regtest").unwrap_err().to_string().contains("checksum"));
        assert!(parse_recipient("hello", "lrt", "regtest").unwrap_err().to_string().contains("mistyped"));
    }

    #[test]
    fn fee_rates_are_checked() {
        assert_eq!(check_fee_rate(None, 1).unwrap(), DEFAULT_FEE_RATE);
        assert_eq!(check_fee_rate(None, 5).unwrap(), 5);
        assert_eq!(check_fee_rate(Some(3), 1).unwrap(), 3);
        assert!(check_fee_rate(Some(0), 1).unwrap_err().to_string().contains("at least 1"));
        assert!(check_fee_rate(Some(2), 3).unwrap_err().to_string().contains("minimum relay"));
        assert!(check_fee_rate(Some(MAX_FEE_RATE + 1), 1).is_err());
    }
}
