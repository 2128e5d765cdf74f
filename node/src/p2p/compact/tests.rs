//! Compact block encoding and reconstruction, without a network.

use super::encoding::{max_block_txs, CmpctRequest, CmpctResponse, CompactBlock, ShortIdKey};
use super::reconstruct::{PartialBlock, TxSource};
use super::{CompactError, ExtraPool};
use crate::testkit::ChainBuilder;
use lode_core::block::Block;
use lode_core::crypto::{SecretKey, Signature};
use lode_core::tx::{OutPoint, TxIn, TxOut, Unlock};
use lode_core::{Amount, ChainSpec, Hash256, Height, Transaction};

fn tx(n: u32) -> Transaction {
    let mut id = [7u8; 32];
    id[..4].copy_from_slice(&n.to_le_bytes());
    Transaction {
        version: 1,
        inputs: vec![TxIn {
            prevout: OutPoint { txid: Hash256(id), vout: 0 },
            unlock: Unlock::Signature { pubkey: SecretKey::generate().public_key(), sig: Signature::default() },
        }],
        outputs: vec![],
        lock_time: n,
    }
}

/// A block of a coinbase and `n` transactions.
fn block(n: u32) -> Block {
    let mut b = ChainBuilder::new(ChainSpec::regtest());
    let out = TxOut { value: Amount::from_units(1), address: b.address() };
    let mut txs = vec![Transaction::coinbase(Height(1), vec![1], vec![out])];
    txs.extend((0..n).map(tx));
    b.seal(txs)
}

/// A visitor over a pool's transactions, as the mempool scan hands them out.
type Visit<'a> = &'a mut dyn FnMut(&Hash256, &Transaction);

fn pool(txs: Vec<Transaction>) -> impl Fn(Visit<'_>) {
    let with_ids: Vec<(Hash256, Transaction)> = txs.into_iter().map(|t| (t.txid(), t)).collect();
    move |f: Visit<'_>| {
        for (id, t) in &with_ids {
            f(id, t)
        }
    }
}

const MAX: usize = 2_000_000;

#[test]
fn compact_blocks_round_trip_and_are_small() {
    let b = block(200);
    let c = CompactBlock::from_block(&b, 42);
    assert_eq!(c.tx_count(), 201);
    assert_eq!(c.prefilled.len(), 1, "only the coinbase travels whole");
    let bytes = c.encode();
    assert_eq!(CompactBlock::decode(&bytes, MAX).unwrap(), c);
    // 6 bytes a transaction, against about a hundred whole.
    assert!(bytes.len() * 10 < lode_core::codec::Encode::encode(&b).len(), "{} bytes", bytes.len());
    for req in [
        CmpctRequest::GetBlockTxn { hash: b.hash(), indexes: vec![1, 5, 9] },
        CmpctRequest::Vouch { hashes: vec![b.hash(), b.header.prev_hash] },
    ] {
        assert_eq!(CmpctRequest::decode(&req.encode(), MAX).unwrap(), req);
    }
    // A vouch names 1 to MAX_VOUCH_HASHES blocks.
    for n in [0, super::MAX_VOUCH_HASHES + 1] {
        let req = CmpctRequest::Vouch { hashes: vec![b.hash(); n] };
        assert!(CmpctRequest::decode(&req.encode(), MAX).is_err(), "{n} hashes");
    }
    let resp = CmpctResponse::BlockTxn { hash: b.hash(), txs: b.transactions[1..3].to_vec() };
    assert_eq!(CmpctResponse::decode(&resp.encode()).unwrap(), resp);
}

#[test]
fn short_ids_depend_on_the_header_and_nonce() {
    let b = block(1);
    let txid = b.transactions[1].txid();
    let a = ShortIdKey::new(&b.header, 1).short_id(&txid);
    assert_ne!(a, ShortIdKey::new(&b.header, 2).short_id(&txid));
    let mut other = b.header;
    other.time += 1;
    assert_ne!(a, ShortIdKey::new(&other, 1).short_id(&txid));
    assert!(a < 1 << 48, "six bytes");
}

#[test]
fn forged_compact_blocks_are_refused() {
    let b = block(3);
    let mut c = CompactBlock::from_block(&b, 1);
    // A prefilled index beyond the block.
    c.prefilled[0].index = 10;
    assert!(matches!(CompactBlock::decode(&c.encode(), MAX), Err(CompactError::PrefilledIndex { .. })));
    // Prefilled indexes out of order.
    let mut c = CompactBlock::from_block(&b, 1);
    c.prefilled.push(c.prefilled[0].clone());
    c.short_ids.pop();
    assert!(matches!(CompactBlock::decode(&c.encode(), MAX), Err(CompactError::PrefilledOrder(0))));
    // More transactions than a block of the size can hold.
    let c = CompactBlock::from_block(&block(100), 1);
    assert!(matches!(CompactBlock::decode(&c.encode(), 1000), Err(CompactError::TooManyTransactions { .. })));
    // A count promising more ids than bytes.
    let mut bytes = CompactBlock::from_block(&b, 1).encode();
    bytes[96..100].copy_from_slice(&u32::MAX.to_le_bytes());
    assert!(CompactBlock::decode(&bytes, MAX).is_err());
    // Trailing bytes, unordered requested indexes.
    let mut bytes = CompactBlock::from_block(&b, 1).encode();
    bytes.push(0);
    assert!(CompactBlock::decode(&bytes, MAX).is_err());
    let req = CmpctRequest::GetBlockTxn { hash: b.hash(), indexes: vec![2, 2] };
    assert!(matches!(CmpctRequest::decode(&req.encode(), MAX), Err(CompactError::IndexOrder(2))));
    assert!(max_block_txs(MAX) > 100_000);
}

#[test]
fn a_block_is_rebuilt_from_the_mempool_alone() {
    let b = block(50);
    let c = CompactBlock::from_block(&b, 9);
    // The mempool holds every transaction and more, in another order.
    let mut txs: Vec<Transaction> = b.transactions[1..].iter().rev().cloned().collect();
    txs.extend((1000..1100).map(tx));
    let mempool = pool(txs);
    let p = PartialBlock::start(&c, &[&mempool as &dyn TxSource]).unwrap();
    assert!(p.missing().is_empty());
    assert_eq!(p.filled_from_pool(), 50);
    assert_eq!(p.finish().unwrap(), b);
}

#[test]
fn missing_transactions_are_asked_for_and_filled() {
    let b = block(20);
    let c = CompactBlock::from_block(&b, 9);
    // The mempool lacks 3 and 17; the extra pool has 17.
    let mempool =
        pool(b.transactions.iter().enumerate().filter(|(i, _)| *i != 3 && *i != 17).map(|(_, t)| t.clone()).collect());
    let mut extra = ExtraPool::default();
    extra.insert(b.transactions[17].clone());
    let extra_scan = |f: &mut dyn FnMut(&Hash256, &Transaction)| extra.scan(f);
    let p = PartialBlock::start(&c, &[&mempool as &dyn TxSource, &extra_scan]).unwrap();
    assert_eq!(p.missing(), &[3]);
    assert!(matches!(p.clone().fill(vec![]), Err(CompactError::WrongTxCount { expected: 1, got: 0 })));
    assert_eq!(p.fill(vec![b.transactions[3].clone()]).unwrap(), b);
}

#[test]
fn a_short_id_collision_inside_the_compact_block_is_refused() {
    let b = block(5);
    let mut c = CompactBlock::from_block(&b, 9);
    c.short_ids[3] = c.short_ids[1];
    let empty = pool(vec![]);
    assert_eq!(PartialBlock::start(&c, &[&empty as &dyn TxSource]).unwrap_err(), CompactError::ShortIdCollision);
}

#[test]
fn a_stranger_with_a_slots_short_id_fails_the_merkle_root_and_the_whole_block_mends_it() {
    let b = block(5);
    let mut c = CompactBlock::from_block(&b, 9);
    // A mempool transaction not in the block whose short id (as a
    // collision would make it) is slot 2's.
    let stranger = tx(5000);
    c.short_ids[1] = c.key().short_id(&stranger.txid());
    let mut txs = b.transactions[1..].to_vec();
    txs.push(stranger);
    let mempool = pool(txs);
    let p = PartialBlock::start(&c, &[&mempool as &dyn TxSource]).unwrap();
    assert!(p.missing().is_empty());
    assert_eq!(p.finish().unwrap_err(), CompactError::MerkleMismatch);
    // The whole block asked for mends any rebuild.
    let blank = PartialBlock::blank(b.header, b.transactions.len());
    assert_eq!(blank.missing().len(), 6);
    assert_eq!(blank.fill(b.transactions.clone()).unwrap(), b);
}
