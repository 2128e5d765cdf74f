//! The vectors in docs/protocol.md, recomputed; the document must contain
//! exactly what the code produces.

use lode_core::codec::{Decode, Encode};
use lode_core::crypto::{signature_hash, verify, SecretKey, Signature};
use lode_core::tx::{OutPoint, Transaction, TxIn, TxOut, Unlock};
use lode_core::{Address, Amount, Block, ChainSpec, Hash256};

const DOC: &str = include_str!("../../docs/protocol.md");

fn documented(value: &str) {
    assert!(DOC.contains(value), "docs/protocol.md does not contain {value}");
}

#[test]
fn genesis_vectors() {
    let g = ChainSpec::regtest().genesis_block();
    documented(&hex::encode(g.header.to_bytes()));
    documented(&g.hash().to_hex());
    documented(&hex::encode(g.transactions[0].encode()));
    documented(&g.transactions[0].txid().to_hex());
    let bytes = g.encode();
    assert_eq!(Block::decode_all(&bytes, 1 << 20).unwrap(), g);
}

#[test]
fn signed_transaction_vector() {
    let spec = ChainSpec::regtest();
    let sk = SecretKey::from_bytes(&[1u8; 32]).unwrap();
    documented(&hex::encode(sk.public_key().0));
    documented(&Address::from_pubkey(&sk.public_key()).encode("lrt").unwrap());
    let mut tx = Transaction {
        version: 1,
        inputs: vec![TxIn {
            prevout: OutPoint { txid: Hash256([0x11; 32]), vout: 0 },
            unlock: Unlock::Signature { pubkey: sk.public_key(), sig: Signature::default() },
        }],
        outputs: vec![TxOut { value: Amount::from_units(4_999_990_000), address: Address([0x22; 20]) }],
        lock_time: 0,
    };
    let msg = signature_hash(&spec.genesis_hash(), &tx.blank_hash(), 0, 5_000_000_000);
    documented(&msg.to_hex());
    let sig = sk.sign_with_aux(&msg, &[0u8; 32]);
    assert!(verify(&sk.public_key(), &msg, &sig));
    if let Unlock::Signature { sig: s, .. } = &mut tx.inputs[0].unlock {
        *s = sig;
    }
    documented(&hex::encode(tx.encode()));
    documented(&tx.txid().to_hex());
}
