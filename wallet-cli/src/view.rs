//! What the node knows about the wallet: which of its addresses are used
//! (gap-limit discovery, so a restored wallet finds every address), their
//! transactions, and the coins the wallet may spend.
//!
//! Spending policy:
//! - confirmed outputs, except coinbase outputs not yet mature in the next
//!   block (`tip + 1 - height < coinbase_maturity`);
//! - never an outpoint spent by a mempool transaction touching the wallet,
//!   nor one spent by a transaction this wallet signed that is still in the
//!   mempool (or signed `--offline` less than a day ago and not yet seen);
//! - unconfirmed outputs only of the wallet's own mempool transactions
//!   (every input the wallet's: its change), and only when confirmed coins
//!   do not suffice. Unconfirmed payments from others are never spent.

use crate::file::{parse_outpoint, PendingTx, WalletData};
use crate::keys::{Branch, KeyError, Keychain};
use crate::rpc::{Client, HistoryEntry, RpcError, Unspent, VerboseTx};
use crate::select::{money_sum, Coin, TooMuchMoney};
use lode_core::{Address, OutPoint};
use serde_json::json;
use std::collections::{HashMap, HashSet};

/// Unused addresses scanned past the last used one on each branch.
pub const GAP_LIMIT: u32 = 20;
/// How long an offline-signed transaction keeps its coins reserved while no
/// node has seen it.
pub const OFFLINE_RESERVATION_SECS: u64 = 24 * 3600;

/// Errors while building the view.
#[derive(Debug, thiserror::Error)]
pub enum ViewError {
    /// RPC failed.
    #[error(transparent)]
    Rpc(#[from] RpcError),
    /// Key derivation failed.
    #[error(transparent)]
    Key(#[from] KeyError),
    /// The chain spec's prefix cannot encode addresses.
    #[error("cannot encode addresses: {0}")]
    Address(String),
    /// The node's coin amounts add up to more than can exist.
    #[error(transparent)]
    Money(#[from] TooMuchMoney),
}

/// One of the wallet's addresses.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WalletAddr {
    /// Branch.
    pub branch: Branch,
    /// Index in the branch.
    pub index: u32,
    /// The address.
    pub address: Address,
    /// Its text.
    pub text: String,
}

/// The wallet as the node sees it.
pub struct View {
    /// Best-chain height.
    pub tip: u32,
    /// Addresses with any history, confirmed or in the mempool.
    pub used: Vec<WalletAddr>,
    /// Every scanned address by text.
    pub ours: HashMap<String, (Branch, u32)>,
    /// Transactions touching the wallet (txid, height), oldest first,
    /// mempool ones last, each once.
    pub history: Vec<HistoryEntry>,
    /// Mempool transactions touching the wallet.
    pub mempool: Vec<VerboseTx>,
    /// Whether discovery moved `receive_next`/`change_next` forward.
    pub advanced: bool,
}

/// Encodes `a` with the network prefix.
pub fn encode(a: &Address, prefix: &str) -> Result<String, ViewError> {
    a.encode(prefix).map_err(|e| ViewError::Address(e.to_string()))
}

/// Scans both branches with the gap limit, moving the wallet's counters past
/// any used address found.
pub fn scan(client: &Client, keys: &Keychain, data: &mut WalletData, prefix: &str) -> Result<View, ViewError> {
    let tip = client.check_chain(&data.chain)?.height;
    let mut used = Vec::new();
    let mut ours = HashMap::new();
    let mut history: Vec<HistoryEntry> = Vec::new();
    let mut seen = HashSet::new();
    let mut advanced = false;
    for branch in Branch::ALL {
        let next = match branch {
            Branch::Receive => &mut data.receive_next,
            Branch::Change => &mut data.change_next,
        };
        let mut i = 0u32;
        while i < next.saturating_add(GAP_LIMIT) {
            let address = keys.address(branch, i)?;
            let text = encode(&address, prefix)?;
            let entries: Vec<HistoryEntry> = client.typed("getaddresshistory", json!([text]))?;
            if !entries.is_empty() {
                if i >= *next {
                    *next = i + 1;
                    advanced = true;
                }
                used.push(WalletAddr { branch, index: i, address, text: text.clone() });
            }
            for e in entries {
                if seen.insert(e.txid) {
                    history.push(e);
                }
            }
            ours.insert(text, (branch, i));
            i += 1;
        }
    }
    // Confirmed by height, then the mempool; stable within a height.
    history.sort_by_key(|e| e.height.unwrap_or(u32::MAX));
    let mut mempool = Vec::new();
    for e in history.iter().filter(|e| e.height.is_none()) {
        // It may have been mined or evicted since: only mempool ones count.
        if let Some(tx) = client.transaction(&e.txid)? {
            if tx.in_mempool {
                mempool.push(tx);
            }
        }
    }
    Ok(View { tip, used, ours, history, mempool, advanced })
}

/// Drops pending entries the node no longer holds in its mempool (mined or
/// evicted), except recent offline-signed ones not yet seen anywhere.
pub fn prune_pending(pending: &mut Vec<PendingTx>, mempool: &[VerboseTx], now: u64) {
    let live: HashSet<String> = mempool.iter().map(|t| t.txid.to_hex()).collect();
    pending.retain(|p| {
        live.contains(&p.txid) || (!p.broadcast && now.saturating_sub(p.created) < OFFLINE_RESERVATION_SECS)
    });
}

/// The wallet's coins, sorted into what may be spent and what may not.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Coins {
    /// Confirmed, mature, not reserved.
    pub confirmed: Vec<Coin>,
    /// Change of the wallet's own mempool transactions, not reserved.
    pub own_unconfirmed: Vec<Coin>,
    /// Value of coinbase outputs not yet mature.
    pub immature: u64,
    /// Value of outpoints held back by pending or mempool spends.
    pub reserved: u64,
}

/// Outpoints the next payment must not spend.
pub fn reserved_outpoints(pending: &[PendingTx], mempool: &[VerboseTx]) -> HashSet<OutPoint> {
    let mut out: HashSet<OutPoint> =
        pending.iter().flat_map(|p| p.spends.iter().filter_map(|s| parse_outpoint(s))).collect();
    for tx in mempool {
        for i in &tx.inputs {
            if let (Some(txid), Some(vout)) = (i.txid, i.vout) {
                out.insert(OutPoint { txid, vout });
            }
        }
    }
    out
}

/// Outputs to the wallet of its own mempool transactions (all inputs ours).
pub fn own_change(mempool: &[VerboseTx], ours: &HashMap<String, (Branch, u32)>) -> Vec<Coin> {
    let mut coins = Vec::new();
    for tx in mempool {
        let all_ours =
            !tx.inputs.is_empty() && tx.inputs.iter().all(|i| i.address.as_ref().is_some_and(|a| ours.contains_key(a)));
        if !all_ours {
            continue;
        }
        for o in &tx.outputs {
            if let Some(&(branch, index)) = ours.get(&o.address) {
                coins.push(Coin {
                    outpoint: OutPoint { txid: tx.txid, vout: o.vout },
                    amount: o.amount,
                    branch,
                    index,
                    confirmed: false,
                });
            }
        }
    }
    coins
}

/// Sorts candidate coins: confirmed ones from `listunspent` (with their
/// owner), own unconfirmed change, minus reserved outpoints, with immature
/// coinbase outputs set aside. An outpoint listed twice (mined between two
/// calls) counts once, as confirmed. Refused when the coins counted are
/// worth more than can exist (the node's amounts are not trusted).
pub fn classify(
    listed: &[(Unspent, Branch, u32)],
    own_unconfirmed: Vec<Coin>,
    reserved: &HashSet<OutPoint>,
    tip: u32,
    maturity: u32,
) -> Result<Coins, TooMuchMoney> {
    let mut coins = Coins::default();
    let mut seen = HashSet::new();
    // Every coin counted, whatever its kind: bounding this total keeps the
    // immature and reserved sums (parts of it) from overflowing.
    let mut counted = 0u64;
    for (u, branch, index) in listed {
        let outpoint = OutPoint { txid: u.txid, vout: u.vout };
        if !seen.insert(outpoint) {
            continue;
        }
        counted = money_sum("coin amounts", [counted, u.amount])?;
        let depth_next_block = u64::from(tip) + 1 - u64::from(u.height.min(tip));
        if u.coinbase && depth_next_block < u64::from(maturity) {
            coins.immature += u.amount;
        } else if reserved.contains(&outpoint) {
            coins.reserved += u.amount;
        } else {
            coins.confirmed.push(Coin { outpoint, amount: u.amount, branch: *branch, index: *index, confirmed: true });
        }
    }
    for c in own_unconfirmed {
        if !seen.insert(c.outpoint) {
            continue;
        }
        counted = money_sum("coin amounts", [counted, c.amount])?;
        if reserved.contains(&c.outpoint) {
            coins.reserved += c.amount;
        } else {
            coins.own_unconfirmed.push(c);
        }
    }
    Ok(coins)
}

/// Lists and classifies the wallet's coins.
pub fn coins(client: &Client, view: &View, pending: &[PendingTx], maturity: u32) -> Result<Coins, ViewError> {
    let mut listed = Vec::new();
    for a in &view.used {
        let unspent: Vec<Unspent> = client.typed("listunspent", json!([a.text]))?;
        listed.extend(unspent.into_iter().map(|u| (u, a.branch, a.index)));
    }
    let reserved = reserved_outpoints(pending, &view.mempool);
    Ok(classify(&listed, own_change(&view.mempool, &view.ours), &reserved, view.tip, maturity)?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rpc::{VerboseIn, VerboseOut};
    use lode_core::Hash256;

    fn h(n: u8) -> Hash256 {
        Hash256([n; 32])
    }

    fn unspent(n: u8, amount: u64, height: u32, coinbase: bool) -> (Unspent, Branch, u32) {
        (Unspent { txid: h(n), vout: 0, amount, height, coinbase }, Branch::Receive, 0)
    }

    #[test]
    fn immature_coinbase_and_reserved_coins_are_not_spendable() {
        let maturity = 10;
        let tip = 20;
        let listed = vec![
            unspent(1, 100, 11, true),  // depth in the next block: 10 → mature
            unspent(2, 200, 12, true),  // 9 → immature
            unspent(3, 300, 20, false), // ordinary, fresh
            unspent(4, 400, 5, false),  // reserved by a pending spend
            unspent(1, 100, 11, true),  // listed twice
        ];
        let reserved: HashSet<OutPoint> = [OutPoint { txid: h(4), vout: 0 }].into();
        let c = classify(&listed, vec![], &reserved, tip, maturity).unwrap();
        let spendable: Vec<u64> = c.confirmed.iter().map(|c| c.amount).collect();
        assert_eq!(spendable, vec![100, 300]);
        assert_eq!((c.immature, c.reserved), (200, 400));
    }

    // Immature and reserved values were summed with `+=`: two coins of
    // u64::MAX from a lying node overflowed (a panic).
    #[test]
    fn coins_worth_more_than_max_money_are_refused() {
        let max = lode_core::MAX_MONEY.units();
        let immature = vec![unspent(1, u64::MAX, 12, true), unspent(2, u64::MAX, 12, true)];
        let reserved: HashSet<OutPoint> = [OutPoint { txid: h(3), vout: 0 }, OutPoint { txid: h(4), vout: 0 }].into();
        let held = vec![unspent(3, u64::MAX, 5, false), unspent(4, u64::MAX, 5, false)];
        let spendable = vec![unspent(5, max, 5, false), unspent(6, 1, 5, false)];
        for listed in [immature, held, spendable] {
            let e = classify(&listed, vec![], &reserved, 20, 10).unwrap_err();
            assert!(e.to_string().contains("MAX_MONEY"), "{e}");
        }
        // Own change counts toward the same bound.
        let change = vec![Coin {
            outpoint: OutPoint { txid: h(7), vout: 1 },
            amount: 1,
            branch: Branch::Change,
            index: 0,
            confirmed: false,
        }];
        assert!(classify(&[unspent(5, max, 5, false)], change.clone(), &reserved, 20, 10).is_err());
        assert_eq!(classify(&[unspent(5, max - 1, 5, false)], change, &reserved, 20, 10).unwrap().confirmed.len(), 1);
    }

    fn mempool_tx(n: u8, inputs: &[(u8, u32, &str)], outputs: &[(&str, u64)]) -> VerboseTx {
        VerboseTx {
            txid: h(n),
            height: None,
            block_hash: None,
            confirmations: 0,
            in_mempool: true,
            coinbase: false,
            inputs: inputs
                .iter()
                .map(|(t, v, a)| VerboseIn {
                    txid: Some(h(*t)),
                    vout: Some(*v),
                    address: Some(a.to_string()),
                    amount: Some(1),
                })
                .collect(),
            outputs: outputs
                .iter()
                .enumerate()
                .map(|(i, (a, amount))| VerboseOut { vout: i as u32, address: a.to_string(), amount: *amount })
                .collect(),
            fee: 0,
            size: 0,
        }
    }

    #[test]
    fn own_change_is_usable_but_payments_from_others_are_not() {
        let ours: HashMap<String, (Branch, u32)> =
            [("me0".to_string(), (Branch::Receive, 0)), ("chg0".to_string(), (Branch::Change, 0))].into();
        let own = mempool_tx(7, &[(1, 0, "me0")], &[("them", 50), ("chg0", 40)]);
        let incoming = mempool_tx(8, &[(2, 0, "them")], &[("me0", 30)]);
        let change = own_change(&[own.clone(), incoming.clone()], &ours);
        assert_eq!(change.len(), 1);
        assert_eq!((change[0].amount, change[0].branch, change[0].confirmed), (40, Branch::Change, false));
        // Both mempool transactions' inputs are reserved, and a pending
        // entry's spends too.
        let pending = vec![PendingTx {
            txid: "x".into(),
            spends: vec![format!("{}:3", h(9))],
            hex: String::new(),
            created: 0,
            broadcast: true,
        }];
        let r = reserved_outpoints(&pending, &[own.clone(), incoming]);
        assert!(r.contains(&OutPoint { txid: h(1), vout: 0 }));
        assert!(r.contains(&OutPoint { txid: h(2), vout: 0 }));
        assert!(r.contains(&OutPoint { txid: h(9), vout: 3 }));
        // Change that a later pending send spent is reserved, not spendable.
        let later: HashSet<OutPoint> = [OutPoint { txid: h(7), vout: 1 }].into();
        let c = classify(&[], change, &later, 5, 1).unwrap();
        assert!(c.own_unconfirmed.is_empty());
        assert_eq!(c.reserved, 40);
    }

    #[test]
    fn change_mined_between_calls_counts_once_as_confirmed() {
        let listed = vec![(Unspent { txid: h(7), vout: 1, amount: 40, height: 6, coinbase: false }, Branch::Change, 0)];
        let change = vec![Coin {
            outpoint: OutPoint { txid: h(7), vout: 1 },
            amount: 40,
            branch: Branch::Change,
            index: 0,
            confirmed: false,
        }];
        let c = classify(&listed, change, &HashSet::new(), 6, 1).unwrap();
        assert_eq!(c.confirmed.len(), 1);
        assert!(c.own_unconfirmed.is_empty());
    }

    #[test]
    fn pending_entries_live_while_in_the_mempool_or_recently_signed_offline() {
        let p = |txid: String, broadcast: bool, created: u64| PendingTx {
            txid,
            spends: vec![],
            hex: String::new(),
            created,
            broadcast,
        };
        let now = 1_000_000;
        let mut pending = vec![
            p(h(1).to_hex(), true, 0),                // in the mempool
            p(h(2).to_hex(), true, now),              // gone (mined or evicted)
            p(h(3).to_hex(), false, now - 60),        // offline, fresh
            p(h(4).to_hex(), false, now - 2 * 86400), // offline, stale
        ];
        prune_pending(&mut pending, &[mempool_tx(1, &[], &[])], now);
        let left: Vec<String> = pending.iter().map(|p| p.txid.clone()).collect();
        assert_eq!(left, vec![h(1).to_hex(), h(3).to_hex()]);
    }
}
