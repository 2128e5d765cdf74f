//! The commands. Everything that can be refused is checked before a key is
//! touched or the file written.

use crate::file::{self, PendingTx, WalletData};
use crate::keys;
use crate::rpc::{Client, RpcError};
use crate::select::{select, Spendable};
use crate::{Cli, Command};
use lode_core::codec::Encode;
use lode_core::crypto::{SecretKey, Signature};
use lode_core::tx::{OutPoint, Transaction, TxIn, TxOut, Unlock};
use lode_core::{Address, Amount, ChainSpec, Hash256};
use serde_json::{json, Value};
use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// Addresses beyond the last handed out that are still scanned (restored
/// wallets find their change this way).
const LOOKAHEAD: u32 = 20;

fn data_home() -> Result<PathBuf, String> {
    match std::env::var_os("XDG_DATA_HOME") {
        Some(d) if !d.is_empty() => Ok(PathBuf::from(d)),
        _ => Ok(PathBuf::from(std::env::var_os("HOME").ok_or("HOME is not set")?).join(".local/share")),
    }
}

fn passphrase() -> Result<String, String> {
    if let Ok(p) = std::env::var("LODE_WALLET_PASSPHRASE") {
        return Ok(p);
    }
    rpassword::prompt_password("wallet passphrase: ")
        .map_err(|e| format!("cannot read the passphrase (set LODE_WALLET_PASSPHRASE): {e}"))
}

struct Ctx<'a> {
    cli: &'a Cli,
    spec: &'a ChainSpec,
    path: PathBuf,
}

impl Ctx<'_> {
    fn client(&self) -> Result<Client, String> {
        let url = self.cli.rpc.clone().unwrap_or_else(|| format!("http://127.0.0.1:{}/", self.spec.default_rpc_port));
        let cookie = match (&self.cli.cookie, &self.cli.data_dir) {
            (Some(c), _) => c.clone(),
            (None, Some(d)) => d.join(".cookie"),
            (None, None) => data_home()?.join("lode").join(&self.spec.name).join(".cookie"),
        };
        let client = Client::new(&url, &cookie).map_err(|e| e.to_string())?;
        let info = client.call("getblockchaininfo", json!([])).map_err(|e| e.to_string())?;
        let chain = info["chain"].as_str().unwrap_or("?");
        if chain != self.spec.name {
            return Err(format!("chain mismatch: the node at {url} runs {chain}, this wallet uses {}", self.spec.name));
        }
        Ok(client)
    }

    fn addr_text(&self, a: &Address) -> String {
        a.encode(&self.spec.address_prefix).unwrap_or_default()
    }
}

fn call(c: &Client, method: &str, params: Value) -> Result<Value, String> {
    c.call(method, params).map_err(|e| e.to_string())
}

/// Runs the command; returns what to print.
pub fn run(cli: &Cli, spec: &ChainSpec) -> Result<String, String> {
    let path = match &cli.wallet {
        Some(p) => p.clone(),
        None => data_home()?.join("lode").join(&spec.name).join("wallet.json"),
    };
    let ctx = Ctx { cli, spec, path };
    match &cli.command {
        Command::New => create(&ctx, keys::new_mnemonic().map_err(|e| e.to_string())?, true),
        Command::Restore { words } => {
            let words = match words {
                Some(w) => w.clone(),
                None => {
                    let mut s = String::new();
                    std::io::stdin().read_line(&mut s).map_err(|e| e.to_string())?;
                    s
                }
            };
            create(&ctx, keys::parse_mnemonic(&words).map_err(|e| e.to_string())?, false)
        }
        Command::Address { new } => address(&ctx, *new),
        Command::Balance => balance(&ctx),
        Command::Send { to, amount, fee_rate, wait, offline } => send(&ctx, to, amount, *fee_rate, *wait, *offline),
        Command::History => history(&ctx),
        Command::Status { txid } => status(&ctx, txid),
        Command::Broadcast { hex } => {
            let client = ctx.client()?;
            let txid = call(&client, "sendrawtransaction", json!([hex]))?;
            Ok(if cli.json {
                json!({"txid": txid}).to_string()
            } else {
                format!("broadcast {}", txid.as_str().unwrap_or(""))
            })
        }
    }
}

fn create(ctx: &Ctx, mnemonic: String, fresh: bool) -> Result<String, String> {
    let pass = passphrase()?;
    let data = WalletData { chain: ctx.spec.name.clone(), mnemonic: mnemonic.clone(), next_index: 1, pending: vec![] };
    file::save(&ctx.path, &pass, &data, true).map_err(|e| e.to_string())?;
    let seed = keys::seed(&mnemonic).map_err(|e| e.to_string())?;
    let addr = ctx.addr_text(&keys::address(&seed, 0).map_err(|e| e.to_string())?);
    if ctx.cli.json {
        return Ok(json!({"mnemonic": mnemonic, "address": addr, "wallet": ctx.path.display().to_string()}).to_string());
    }
    let head = if fresh {
        format!("Write these {} words down and keep them offline. They are shown once and are the only way to restore this wallet:\n\n    {mnemonic}\n", mnemonic.split(' ').count())
    } else {
        "Wallet restored.".to_string()
    };
    Ok(format!("{head}\nwallet file: {}\naddress: {addr}", ctx.path.display()))
}

fn open(ctx: &Ctx) -> Result<(WalletData, [u8; 64], String), String> {
    let pass = passphrase()?;
    let data = file::load(&ctx.path, &pass).map_err(|e| e.to_string())?;
    if data.chain != ctx.spec.name {
        return Err(format!("this wallet belongs to {}, not {}", data.chain, ctx.spec.name));
    }
    let seed = keys::seed(&data.mnemonic).map_err(|e| e.to_string())?;
    Ok((data, seed, pass))
}

fn address(ctx: &Ctx, new: bool) -> Result<String, String> {
    let (mut data, seed, pass) = open(ctx)?;
    if new {
        data.next_index += 1;
        file::save(&ctx.path, &pass, &data, false).map_err(|e| e.to_string())?;
    }
    let a = ctx.addr_text(&keys::address(&seed, data.next_index - 1).map_err(|e| e.to_string())?);
    Ok(if ctx.cli.json { json!({"address": a}).to_string() } else { a })
}

/// Addresses to scan, with their key index.
fn scan_set(ctx: &Ctx, seed: &[u8; 64], data: &WalletData) -> Result<Vec<(u32, String)>, String> {
    (0..data.next_index + LOOKAHEAD)
        .map(|i| Ok((i, ctx.addr_text(&keys::address(seed, i).map_err(|e| e.to_string())?))))
        .collect()
}

fn balance(ctx: &Ctx) -> Result<String, String> {
    let (data, seed, _) = open(ctx)?;
    let client = ctx.client()?;
    let (mut c, mut u, mut i) = (0u64, 0i64, 0u64);
    for (_, a) in scan_set(ctx, &seed, &data)? {
        let b = call(&client, "getbalance", json!([a]))?;
        c += b["confirmed"].as_u64().unwrap_or(0);
        u += b["unconfirmed"].as_i64().unwrap_or(0);
        i += b["immature"].as_u64().unwrap_or(0);
    }
    if ctx.cli.json {
        return Ok(json!({"confirmed": c, "unconfirmed": u, "immature": i}).to_string());
    }
    let fmt = |v: i64| format!("{}{}", if v < 0 { "-" } else { "" }, Amount::from_units(v.unsigned_abs()));
    Ok(format!(
        "confirmed:   {}\nunconfirmed: {}\nimmature:    {}",
        Amount::from_units(c),
        fmt(u),
        Amount::from_units(i)
    ))
}

fn send(ctx: &Ctx, to: &str, amount: &str, fee_rate: u64, wait: bool, offline: bool) -> Result<String, String> {
    // Refusals first: nothing is signed or written before these pass.
    let dest = Address::decode(to, &ctx.spec.address_prefix).map_err(|e| match e {
        lode_core::address::AddressError::WrongNetwork { expected, found } => {
            format!("address is for another network (prefix {found}, this is {expected})")
        }
        lode_core::address::AddressError::Malformed(_) => "address is mistyped: bad characters or checksum".to_string(),
        other => other.to_string(),
    })?;
    let value = Amount::parse_coins(amount).map_err(|e| e.to_string())?;
    if value == Amount::ZERO {
        return Err("amount must be above zero".into());
    }
    if fee_rate == 0 {
        return Err("fee rate must be at least 1 base unit per byte".into());
    }
    let (mut data, seed, pass) = open(ctx)?;
    let client = ctx.client()?;
    let mempool: HashSet<String> = call(&client, "getrawmempool", json!([]))?
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|v| v.as_str().map(str::to_owned))
        .collect();
    // Our own sends still unconfirmed: their inputs are taken, their
    // outputs to us (change) are spendable.
    data.pending.retain(|p| mempool.contains(&p.txid));
    let taken: HashSet<String> = data.pending.iter().flat_map(|p| p.spends.iter().cloned()).collect();
    let addrs = scan_set(ctx, &seed, &data)?;
    let index_of: HashMap<&str, u32> = addrs.iter().map(|(i, a)| (a.as_str(), *i)).collect();
    let maturity = u64::from(ctx.spec.coinbase_maturity);
    let mut coins = Vec::new();
    for (i, a) in &addrs {
        for c in call(&client, "listunspent", json!([a]))?.as_array().into_iter().flatten() {
            let (txid, vout) = (c["txid"].as_str().unwrap_or("").to_string(), c["vout"].as_u64().unwrap_or(0) as u32);
            let immature =
                c["coinbase"].as_bool().unwrap_or(false) && c["confirmations"].as_u64().unwrap_or(0) < maturity;
            if immature || taken.contains(&format!("{txid}:{vout}")) {
                continue;
            }
            coins.push(Spendable { txid, vout, amount: c["amount"].as_u64().unwrap_or(0), key_index: *i });
        }
    }
    for p in &data.pending {
        let tx = call(&client, "getrawtransaction", json!([p.txid, true]))?;
        for o in tx["outputs"].as_array().into_iter().flatten() {
            let vout = o["vout"].as_u64().unwrap_or(0) as u32;
            if let Some(i) = o["address"].as_str().and_then(|a| index_of.get(a)) {
                if !taken.contains(&format!("{}:{vout}", p.txid)) {
                    coins.push(Spendable {
                        txid: p.txid.clone(),
                        vout,
                        amount: o["amount"].as_u64().unwrap_or(0),
                        key_index: *i,
                    });
                }
            }
        }
    }
    let sel = select(coins, value.units(), fee_rate)?;
    let change_index = data.next_index;
    let mut outputs = vec![TxOut { value, address: dest }];
    if sel.change > 0 {
        outputs.push(TxOut {
            value: Amount::from_units(sel.change),
            address: keys::address(&seed, change_index).map_err(|e| e.to_string())?,
        });
        data.next_index += 1;
    }
    let mut inputs = Vec::new();
    let mut keys_used: Vec<SecretKey> = Vec::new();
    let mut values = Vec::new();
    for c in &sel.coins {
        let txid = Hash256::from_hex(&c.txid).map_err(|e| e.to_string())?;
        let key = keys::derive(&seed, c.key_index).map_err(|e| e.to_string())?;
        inputs.push(TxIn {
            prevout: OutPoint { txid, vout: c.vout },
            unlock: Unlock::Signature { pubkey: key.public_key(), sig: Signature::default() },
        });
        keys_used.push(key);
        values.push(Amount::from_units(c.amount));
    }
    let mut tx = Transaction { version: 1, inputs, outputs, lock_time: 0 };
    let refs: Vec<&SecretKey> = keys_used.iter().collect();
    tx.sign_inputs(&ctx.spec.genesis_hash(), &refs, &values);
    let txid = tx.txid().to_hex();
    let hex = hex::encode(tx.encode());
    data.pending.push(PendingTx {
        txid: txid.clone(),
        spends: sel.coins.iter().map(|c| format!("{}:{}", c.txid, c.vout)).collect(),
    });
    if offline {
        file::save(&ctx.path, &pass, &data, false).map_err(|e| e.to_string())?;
        return Ok(if ctx.cli.json { json!({"txid": txid, "hex": hex, "fee": sel.fee}).to_string() } else { hex });
    }
    call(&client, "sendrawtransaction", json!([hex]))?;
    file::save(&ctx.path, &pass, &data, false).map_err(|e| e.to_string())?;
    if wait {
        let deadline = Instant::now() + Duration::from_secs(600);
        loop {
            let v = call(&client, "getrawtransaction", json!([txid, true]))?;
            if v["confirmations"].as_u64().unwrap_or(0) >= 1 {
                break;
            }
            if Instant::now() > deadline {
                return Err(format!("sent {txid}, but no confirmation within 10 minutes"));
            }
            std::thread::sleep(Duration::from_millis(500));
        }
    }
    Ok(if ctx.cli.json {
        json!({"txid": txid, "fee": sel.fee, "change": sel.change}).to_string()
    } else {
        format!("sent {} to {to} (fee {}): {txid}", value, Amount::from_units(sel.fee))
    })
}

fn history(ctx: &Ctx) -> Result<String, String> {
    let (data, seed, _) = open(ctx)?;
    let client = ctx.client()?;
    let addrs = scan_set(ctx, &seed, &data)?;
    let ours: HashSet<String> = addrs.iter().map(|(_, a)| a.clone()).collect();
    let mut txids: Vec<(u64, String)> = Vec::new();
    let mut seen = HashSet::new();
    for (_, a) in &addrs {
        for h in call(&client, "getaddresshistory", json!([a]))?.as_array().into_iter().flatten() {
            let txid = h["txid"].as_str().unwrap_or("").to_string();
            if seen.insert(txid.clone()) {
                txids.push((h["height"].as_u64().unwrap_or(u64::MAX), txid));
            }
        }
    }
    txids.sort();
    let mut rows = Vec::new();
    for (_, txid) in txids {
        let tx = call(&client, "getrawtransaction", json!([txid, true]))?;
        let sum = |side: &str| -> i64 {
            tx[side]
                .as_array()
                .into_iter()
                .flatten()
                .filter(|x| x["address"].as_str().is_some_and(|a| ours.contains(a)))
                .map(|x| x["amount"].as_i64().unwrap_or(0))
                .sum()
        };
        let net = sum("outputs") - sum("inputs");
        let direction = if sum("inputs") == 0 {
            "received"
        } else if net + tx["fee"].as_i64().unwrap_or(0) == 0 {
            "self"
        } else {
            "sent"
        };
        rows.push(json!({"txid": txid, "direction": direction, "amount": net, "fee": tx["fee"], "confirmations": tx["confirmations"], "height": tx["height"]}));
    }
    if ctx.cli.json {
        return Ok(Value::Array(rows).to_string());
    }
    Ok(rows
        .iter()
        .map(|r| {
            let amt = r["amount"].as_i64().unwrap_or(0);
            format!(
                "{} {:>8} {}{} fee {} conf {}",
                r["txid"].as_str().unwrap_or(""),
                r["direction"].as_str().unwrap_or(""),
                if amt < 0 { "-" } else { "+" },
                Amount::from_units(amt.unsigned_abs()),
                r["fee"],
                r["confirmations"]
            )
        })
        .collect::<Vec<_>>()
        .join("\n"))
}

fn status(ctx: &Ctx, txid: &str) -> Result<String, String> {
    Hash256::from_hex(txid).map_err(|e| e.to_string())?;
    let client = ctx.client()?;
    let (state, height, conf) = match client.call("getrawtransaction", json!([txid, true])) {
        Ok(v) if v["in_mempool"].as_bool().unwrap_or(false) => ("mempool".to_string(), Value::Null, 0),
        Ok(v) => (
            format!("confirmed at height {}", v["height"]),
            v["height"].clone(),
            v["confirmations"].as_u64().unwrap_or(0),
        ),
        Err(RpcError::Node { code: -5, .. }) => ("unknown".to_string(), Value::Null, 0),
        Err(e) => return Err(e.to_string()),
    };
    if ctx.cli.json {
        let s = if height.is_null() { state.clone() } else { "confirmed".into() };
        return Ok(json!({"txid": txid, "status": s, "height": height, "confirmations": conf}).to_string());
    }
    Ok(format!("{txid}: {state}"))
}
