//! Property tests: encodings round-trip, random bytes never panic the
//! decoder, and the merkle root is stable under re-encoding.

use lode_core::block::{Block, BlockHeader};
use lode_core::codec::{Decode, Encode};
use lode_core::crypto::{PublicKey, Signature};
use lode_core::pow::CompactTarget;
use lode_core::tx::{OutPoint, Transaction, TxIn, TxOut, Unlock};
use lode_core::{Address, Amount, Hash256, Height};
use proptest::prelude::*;

const LIMIT: usize = 4 * 1024 * 1024;

fn hash() -> impl Strategy<Value = Hash256> {
    any::<[u8; 32]>().prop_map(Hash256)
}

fn unlock() -> impl Strategy<Value = Unlock> {
    prop_oneof![
        (any::<u32>(), proptest::collection::vec(any::<u8>(), 0..100))
            .prop_map(|(h, extra)| Unlock::Coinbase { height: Height(h), extra }),
        (any::<[u8; 32]>(), proptest::collection::vec(any::<u8>(), 64..=64)).prop_map(|(pk, sig)| {
            let mut s = [0u8; 64];
            s.copy_from_slice(&sig);
            Unlock::Signature { pubkey: PublicKey(pk), sig: Signature(s) }
        }),
    ]
}

fn tx() -> impl Strategy<Value = Transaction> {
    let input = (hash(), any::<u32>(), unlock())
        .prop_map(|(txid, vout, unlock)| TxIn { prevout: OutPoint { txid, vout }, unlock });
    let output = (any::<u64>(), any::<[u8; 20]>())
        .prop_map(|(v, a)| TxOut { value: Amount::from_units(v), address: Address(a) });
    (any::<u32>(), proptest::collection::vec(input, 0..5), proptest::collection::vec(output, 0..5), any::<u32>())
        .prop_map(|(version, inputs, outputs, lock_time)| Transaction { version, inputs, outputs, lock_time })
}

fn header() -> impl Strategy<Value = BlockHeader> {
    (any::<u32>(), hash(), hash(), any::<u64>(), any::<u32>(), any::<u64>()).prop_map(
        |(version, prev_hash, merkle_root, time, bits, nonce)| BlockHeader {
            version,
            prev_hash,
            merkle_root,
            time,
            bits: CompactTarget(bits),
            nonce,
        },
    )
}

proptest! {
    #[test]
    fn transaction_round_trips(t in tx()) {
        let bytes = t.encode();
        prop_assert_eq!(bytes.len(), t.encoded_size());
        let back = Transaction::decode_all(&bytes, LIMIT).unwrap();
        prop_assert_eq!(back.txid(), t.txid());
        prop_assert_eq!(back, t);
    }

    /// `blank_hash` encodes in place with the signatures zeroed; it must
    /// hash exactly what a copy with zeroed signatures encodes to.
    #[test]
    fn blank_hash_is_the_hash_of_the_encoding_with_signatures_zeroed(t in tx()) {
        let mut blank = t.clone();
        for i in &mut blank.inputs {
            if let Unlock::Signature { sig, .. } = &mut i.unlock {
                *sig = Signature::default();
            }
        }
        let mut bytes = Vec::new();
        blank.encode_to(&mut bytes);
        prop_assert_eq!(t.blank_hash(), lode_core::hash::sha256d(&bytes));
        let mut signed = Vec::new();
        t.encode_to(&mut signed);
        prop_assert_eq!(t.txid(), lode_core::hash::sha256d(&signed));
    }

    #[test]
    fn header_round_trips(h in header()) {
        prop_assert_eq!(BlockHeader::decode_all(&h.encode(), LIMIT).unwrap(), h);
    }

    #[test]
    fn block_round_trips_and_merkle_root_is_stable(h in header(), txs in proptest::collection::vec(tx(), 1..6)) {
        let block = Block { header: h, transactions: txs };
        let bytes = block.encode();
        prop_assert_eq!(bytes.len(), block.encoded_size());
        let back = Block::decode_all(&bytes, LIMIT).unwrap();
        prop_assert_eq!(back.compute_merkle_root(), block.compute_merkle_root());
        prop_assert_eq!(&back, &block);
    }

    #[test]
    fn random_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        let _ = Block::decode_all(&bytes, LIMIT);
        let _ = Transaction::decode_all(&bytes, LIMIT);
        let _ = BlockHeader::decode_all(&bytes, LIMIT);
    }

    #[test]
    fn trailing_bytes_are_rejected(t in tx(), extra in 1usize..8) {
        let mut bytes = t.encode();
        bytes.extend(std::iter::repeat_n(0u8, extra));
        prop_assert!(Transaction::decode_all(&bytes, LIMIT).is_err());
    }

    #[test]
    fn compact_bits_round_trip_when_valid(bits in any::<u32>()) {
        if let Ok(t) = CompactTarget(bits).to_target() {
            // Re-encoding normalises; the normal form decodes to the same target.
            let again = t.to_compact().to_target().unwrap();
            prop_assert_eq!(again, t);
        }
    }
}
