//! `send` and `sweep`: refuse bad input, pick the fee rate (the node's
//! estimate unless `--fee-rate`), select coins, show the fee (and ask, at a
//! terminal), sign, submit (or print, with `--offline`), remember the spend,
//! optionally wait for a confirmation.

use super::{msg, now, Ctx, Error, Output};
use crate::file::{outpoint_text, PendingTx};
use crate::keys::Branch;
use crate::rpc::{Client, FeeEstimateReply, MempoolInfo, RpcError, ALREADY_KNOWN};
use crate::select::{min_change, money_sum, select_many, tx_size, Coin, SelectError, Selection, MAX_TX_SIZE};
use crate::view::{self, Coins};
use lode_core::address::AddressError;
use lode_core::codec::Encode;
use lode_core::crypto::SecretKey;
use lode_core::{Address, Amount, Hash256, Transaction, TxIn, TxOut, Unlock};
use rand::Rng;
use serde_json::json;
use std::time::{Duration, Instant};

/// Fee rate used when neither `--fee-rate` nor a node estimate is available
/// (raised to the node's minimum).
pub const DEFAULT_FEE_RATE: u64 = 2;
/// Fee rates above this are refused as a likely mistake.
pub const MAX_FEE_RATE: u64 = 100_000;

/// Arguments of `send`.
pub struct SendArgs<'a> {
    /// Recipient texts, paired in order with the amounts.
    pub to: &'a [String],
    /// Amount texts (coins).
    pub amount: &'a [String],
    /// `--fee-rate`.
    pub fee_rate: Option<u64>,
    /// `--conf-target`.
    pub conf_target: u32,
    /// `--yes`.
    pub yes: bool,
    /// `--wait`.
    pub wait: bool,
    /// How long `--wait` waits.
    pub timeout: Duration,
    /// `--offline`.
    pub offline: bool,
}

/// Fee options shared by `send`, `sweep` and `bumpfee`.
pub struct FeeArgs {
    /// `--fee-rate`.
    pub fee_rate: Option<u64>,
    /// `--conf-target`.
    pub conf_target: u32,
    /// `--yes`.
    pub yes: bool,
}

/// Largest `--conf-target` accepted (the node clamps to what it tracks).
pub const MAX_CONF_TARGET: u32 = 1008;

/// Refuses a confirmation target outside 1..=[`MAX_CONF_TARGET`].
pub fn check_conf_target(t: u32) -> Result<u32, Error> {
    if (1..=MAX_CONF_TARGET).contains(&t) {
        Ok(t)
    } else {
        Err(msg(format!("--conf-target {t} is not between 1 and {MAX_CONF_TARGET} blocks")))
    }
}

/// Where a fee rate came from, for the summary.
pub fn fee_source_text(requested: bool, estimate: &Option<FeeEstimateReply>, target: u32) -> String {
    match (requested, estimate) {
        (true, _) => "--fee-rate".to_string(),
        (false, Some(e)) if e.errors.is_empty() => format!("node estimate for {} blocks", e.blocks),
        (false, Some(_)) => format!("default: the node has too little data to estimate {target} blocks"),
        (false, None) => "default: the node gives no estimate".to_string(),
    }
}

/// The fee rate to pay: `--fee-rate` checked against the node's minimum,
/// or the node's `estimatesmartfee` for the target (at least the minimum);
/// [`DEFAULT_FEE_RATE`] when the node has no estimate yet. Returns the
/// estimate too, to say where the rate came from.
pub fn resolve_fee_rate(
    client: &Client,
    requested: Option<u64>,
    target: u32,
    node_min: u64,
) -> Result<(u64, Option<FeeEstimateReply>), Error> {
    if requested.is_some() {
        return Ok((check_fee_rate(requested, node_min)?, None));
    }
    let estimate = match client.typed::<FeeEstimateReply>("estimatesmartfee", json!([target])) {
        Ok(e) => Some(e),
        // An older node without the method: the default.
        Err(RpcError::Node { .. }) => None,
        Err(e) => return Err(e.into()),
    };
    let rate = match &estimate {
        Some(e) if e.errors.is_empty() => e.feerate.max(node_min).min(MAX_FEE_RATE),
        _ => check_fee_rate(None, node_min)?,
    };
    Ok((rate, estimate))
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

/// The node's fee policy (`getmempoolinfo`), refused when it asks for
/// more per byte than the wallet would ever pay: the rate a payment pays
/// follows the node's minimum when there is no estimate, so a lying node
/// (or anyone rewriting the plain-HTTP answer) could otherwise spend most
/// of a coin on fees.
pub fn node_fee_policy(client: &Client) -> Result<MempoolInfo, Error> {
    let pool: MempoolInfo = client.typed("getmempoolinfo", json!([]))?;
    for (what, rate) in
        [("minimum relay fee rate", pool.min_fee_rate), ("incremental relay fee", pool.incremental_relay_fee)]
    {
        if rate > MAX_FEE_RATE {
            return Err(msg(format!(
                "the node's {what} is {rate} per byte, above the wallet's ceiling of {MAX_FEE_RATE}; \
                 refusing to pay it (check the node you are talking to)"
            )));
        }
    }
    Ok(pool)
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

/// Base units as coins text.
pub fn coins_text(units: u64) -> String {
    Amount::from_units(units).to_string()
}

/// Confirmed coins first; the wallet's own unconfirmed change only if they
/// do not suffice.
fn choose(coins: &Coins, amount: u64, fee_rate: u64, payments: u64) -> Result<Selection, Error> {
    let select = |c: &[Coin]| select_many(c, amount, fee_rate, payments);
    match select(&coins.confirmed) {
        Err(SelectError::Insufficient { .. }) if !coins.own_unconfirmed.is_empty() => {}
        Err(SelectError::Insufficient { available, needed }) => return Err(insufficient(coins, available, needed)),
        other => return Ok(other?),
    }
    let all: Vec<_> = coins.confirmed.iter().chain(&coins.own_unconfirmed).cloned().collect();
    select(&all).map_err(|e| match e {
        SelectError::Insufficient { available, needed } => insufficient(coins, available, needed),
        other => other.into(),
    })
}

/// "Insufficient balance", naming immature and reserved coins.
pub fn insufficient(coins: &Coins, available: u64, needed: u64) -> Error {
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

/// Signs a transaction spending `coins` into `outputs` with the wallet's keys.
pub fn sign(ctx: &Ctx, w: &super::Opened, coins: &[Coin], outputs: Vec<TxOut>) -> Result<Transaction, Error> {
    let mut inputs = Vec::with_capacity(coins.len());
    let mut keys: Vec<SecretKey> = Vec::with_capacity(coins.len());
    for c in coins {
        let key = w.keys.key(c.branch, c.index)?;
        inputs.push(TxIn {
            prevout: c.outpoint,
            unlock: Unlock::Signature { pubkey: key.public_key(), sig: Default::default() },
        });
        keys.push(key);
    }
    let values: Vec<Amount> = coins.iter().map(|c| Amount::from_units(c.amount)).collect();
    let mut tx = Transaction { version: 1, inputs, outputs, lock_time: 0 };
    let refs: Vec<&SecretKey> = keys.iter().collect();
    tx.sign_inputs(&ctx.spec.genesis_hash(), &refs, &values);
    Ok(tx)
}

/// Builds and signs the payment; returns it with the change output's index
/// (if any). The change goes at a random position.
fn build(
    ctx: &Ctx,
    w: &super::Opened,
    sel: &Selection,
    payments: &[TxOut],
) -> Result<(Transaction, Option<usize>), Error> {
    let mut outputs = payments.to_vec();
    let mut change_pos = None;
    if sel.change > 0 {
        let change = TxOut {
            value: Amount::from_units(sel.change),
            address: w.keys.address(Branch::Change, w.data.change_next)?,
        };
        let pos = rand::rngs::OsRng.gen_range(0..=outputs.len());
        outputs.insert(pos, change);
        change_pos = Some(pos);
    }
    let tx = sign(ctx, w, &sel.coins, outputs)?;
    // What was built is what was selected: size, fee and sums agree.
    let in_total = money_sum("coin amounts", sel.coins.iter().map(|c| c.amount))?;
    let out_total = tx.outputs.iter().try_fold(0u64, |t, o| t.checked_add(o.value.units()));
    if tx.encoded_size() as u64 != sel.size() || out_total.and_then(|o| o.checked_add(sel.fee)) != Some(in_total) {
        return Err(msg("internal error: the signed transaction does not match the selection; nothing was sent"));
    }
    Ok((tx, change_pos))
}

/// Runs `send`.
pub fn send(ctx: &Ctx, args: &SendArgs) -> Result<Output, Error> {
    // Refusals that need nothing but the arguments.
    if args.to.len() != args.amount.len() {
        return Err(msg(format!(
            "{} --to but {} --amount: give one --amount after each --to",
            args.to.len(),
            args.amount.len()
        )));
    }
    let mut payments = Vec::with_capacity(args.to.len());
    let mut total = 0u64;
    for (to, amount) in args.to.iter().zip(args.amount) {
        let address = parse_recipient(to, ctx.prefix(), &ctx.spec.name)?;
        let value = parse_amount(amount)?;
        total = total.checked_add(value.units()).ok_or_else(|| msg("the amounts add up to more than exist"))?;
        payments.push(TxOut { value, address });
    }
    if let Some(r) = args.fee_rate {
        check_fee_rate(Some(r), 1)?;
    }
    let target = check_conf_target(args.conf_target)?;
    let mut w = ctx.open()?;
    let client = ctx.client()?;
    let pool = node_fee_policy(&client)?;
    let (fee_rate, estimate) = resolve_fee_rate(&client, args.fee_rate, target, pool.min_fee_rate)?;
    let view = view::scan(&client, &w.keys, &mut w.data, ctx.prefix())?;
    view::prune_pending(&mut w.data.pending, &view.mempool, now());
    let coins = view::coins(&client, &view, &w.data.pending, ctx.spec.coinbase_maturity)?;
    let sel = choose(&coins, total, fee_rate, payments.len() as u64)?;
    let source = fee_source_text(args.fee_rate.is_some(), &estimate, target);
    let to_text: Vec<String> = args.to.iter().map(|t| t.trim().to_string()).collect();
    ctx.confirm(
        args.yes,
        &format!(
            "pay {} to {} with a fee of {} ({fee_rate}/byte, {source}, {} bytes)",
            coins_text(total),
            to_text.join(", "),
            coins_text(sel.fee),
            sel.size()
        ),
    )?;

    let (tx, change_pos) = build(ctx, &w, &sel, &payments)?;
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
        "to": if to_text.len() == 1 { json!(to_text[0]) } else { json!(to_text) },
        "amount": total,
        "fee": sel.fee,
        "fee_rate": fee_rate,
        "fee_source": source,
        "size": sel.size(),
        "change": sel.change,
        "change_vout": change_pos,
        "inputs": sel.coins.len(),
    });
    if to_text.len() > 1 {
        json["payments"] = json!(to_text
            .iter()
            .zip(&payments)
            .map(|(t, p)| json!({"to": t, "amount": p.value.units()}))
            .collect::<Vec<_>>());
    }
    if args.offline {
        ctx.save(&w)?;
        json["hex"] = json!(hex);
        return Ok(Output { json, text: hex });
    }
    submit(&client, &txid, &hex)?;
    ctx.save(&w).map_err(|e| msg(format!("sent {txid}, but the wallet file was not updated: {e}")))?;
    let mut text = format!(
        "sent {} to {} (fee {}, {fee_rate}/byte): {txid}",
        coins_text(total),
        to_text.join(", "),
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

/// Submits a signed transaction; a node refusal means nothing was sent.
pub fn submit(client: &Client, txid: &Hash256, hex: &str) -> Result<(), Error> {
    match client.call("sendrawtransaction", json!([hex])) {
        Ok(_) | Err(RpcError::Node { code: ALREADY_KNOWN, .. }) => Ok(()),
        Err(RpcError::Node { message, .. }) => {
            Err(msg(format!("the node refused the transaction (nothing was sent): {message}")))
        }
        Err(e) => Err(msg(format!("submitting {txid} failed, it may or may not have reached the node: {e}"))),
    }
}

/// Runs `sweep --to ADDR`: every spendable coin (confirmed and mature, plus
/// the wallet's own unconfirmed change) into one output, minus the fee.
pub fn sweep(ctx: &Ctx, fees: &FeeArgs, to: &str) -> Result<Output, Error> {
    let dest = parse_recipient(to, ctx.prefix(), &ctx.spec.name)?;
    if let Some(r) = fees.fee_rate {
        check_fee_rate(Some(r), 1)?;
    }
    let target = check_conf_target(fees.conf_target)?;
    let mut w = ctx.open()?;
    let client = ctx.client()?;
    let pool = node_fee_policy(&client)?;
    let (fee_rate, estimate) = resolve_fee_rate(&client, fees.fee_rate, target, pool.min_fee_rate)?;
    let view = view::scan(&client, &w.keys, &mut w.data, ctx.prefix())?;
    view::prune_pending(&mut w.data.pending, &view.mempool, now());
    let coins = view::coins(&client, &view, &w.data.pending, ctx.spec.coinbase_maturity)?;
    let all: Vec<Coin> = coins.confirmed.iter().chain(&coins.own_unconfirmed).cloned().collect();
    if all.is_empty() {
        return Err(insufficient(&coins, 0, 0));
    }
    // The node's amounts: a total above MAX_MONEY is refused, not summed.
    let total = money_sum("coin amounts", all.iter().map(|c| c.amount))?;
    let size = tx_size(all.len() as u64, 1);
    if size > MAX_TX_SIZE {
        return Err(SelectError::TooLarge { inputs: all.len() as u64, size, max: MAX_TX_SIZE }.into());
    }
    let fee = fee_rate.saturating_mul(size);
    // Below this an output costs about as much to spend as it is worth.
    let dust = min_change(fee_rate);
    let value = total.saturating_sub(fee);
    if value < dust.max(1) {
        return Err(msg(format!(
            "amount too small after the fee: sweeping {} costs {} in fees, leaving {} (at least {} needed)",
            coins_text(total),
            coins_text(fee),
            coins_text(value),
            coins_text(dust.max(1))
        )));
    }
    let source = fee_source_text(fees.fee_rate.is_some(), &estimate, target);
    ctx.confirm(
        fees.yes,
        &format!(
            "sweep {} from {} coins to {}: {} arrives, fee {} ({fee_rate}/byte, {source})",
            coins_text(total),
            all.len(),
            to.trim(),
            coins_text(value),
            coins_text(fee)
        ),
    )?;
    let tx = sign(ctx, &w, &all, vec![TxOut { value: Amount::from_units(value), address: dest }])?;
    if tx.encoded_size() as u64 != size {
        return Err(msg("internal error: the signed sweep does not have the expected size; nothing was sent"));
    }
    let txid = tx.txid();
    let hex = hex::encode(tx.encode());
    w.data.pending.push(PendingTx {
        txid: txid.to_hex(),
        spends: all.iter().map(|c| outpoint_text(&c.outpoint)).collect(),
        hex: hex.clone(),
        created: now(),
        broadcast: true,
    });
    submit(&client, &txid, &hex)?;
    ctx.save(&w).map_err(|e| msg(format!("sent {txid}, but the wallet file was not updated: {e}")))?;
    let json = json!({
        "txid": txid, "to": to.trim(), "amount": value, "fee": fee, "fee_rate": fee_rate, "fee_source": source,
        "size": size, "inputs": all.len(),
    });
    let text =
        format!("swept {} to {} (fee {}, {fee_rate}/byte): {txid}", coins_text(value), to.trim(), coins_text(fee));
    Ok(Output { json, text })
}

/// How often `--wait` asks the node.
const WAIT_POLL: Duration = Duration::from_millis(500);

/// Polls until `txid` has a confirmation; returns its height. A timeout
/// too large for the clock to count down (`--timeout` is any u64 of
/// seconds) waits without a deadline rather than overflowing.
fn wait_confirmed(client: &Client, txid: &Hash256, timeout: Duration) -> Result<u32, String> {
    let deadline = Instant::now().checked_add(timeout);
    loop {
        match client.transaction(txid).map_err(|e| format!("waiting for it failed: {e}"))? {
            Some(tx) if tx.confirmations >= 1 => return Ok(tx.height.unwrap_or(0)),
            Some(tx) if tx.in_mempool => {}
            _ => return Err("it left the mempool without confirming (conflict or eviction)".to_string()),
        }
        let pause = match deadline {
            Some(d) if Instant::now() >= d => {
                return Err(format!("it has no confirmation after {} s (still in the mempool)", timeout.as_secs()))
            }
            Some(d) => WAIT_POLL.min(d.saturating_duration_since(Instant::now())),
            None => WAIT_POLL,
        };
        std::thread::sleep(pause);
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
