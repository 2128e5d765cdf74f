//! Prints the test vectors documented in docs/protocol.md.

use lode_core::codec::Encode;
use lode_core::crypto::{SecretKey, Signature};
use lode_core::tx::{OutPoint, Transaction, TxIn, TxOut, Unlock};
use lode_core::{Address, Amount, ChainSpec, Hash256};

fn main() {
    let spec = ChainSpec::regtest();
    let g = spec.genesis_block();
    println!("genesis header: {}", hex::encode(g.header.to_bytes()));
    println!("genesis hash:   {}", g.hash());
    println!("genesis coinbase: {}", hex::encode(g.transactions[0].encode()));
    println!("genesis coinbase txid: {}", g.transactions[0].txid());
    let sk = SecretKey::from_bytes(&[1u8; 32]).expect("key");
    let addr = Address::from_pubkey(&sk.public_key());
    println!("pubkey: {}", hex::encode(sk.public_key().0));
    println!("address: {}", addr.encode("lrt").expect("addr"));
    let mut tx = Transaction {
        version: 1,
        inputs: vec![TxIn {
            prevout: OutPoint { txid: Hash256([0x11; 32]), vout: 0 },
            unlock: Unlock::Signature { pubkey: sk.public_key(), sig: Signature::default() },
        }],
        outputs: vec![TxOut { value: Amount::from_units(4_999_990_000), address: Address([0x22; 20]) }],
        lock_time: 0,
    };
    let blank = tx.blank_hash();
    let msg = lode_core::crypto::signature_hash(&spec.genesis_hash(), &blank, 0, 5_000_000_000);
    if let Unlock::Signature { sig, .. } = &mut tx.inputs[0].unlock {
        *sig = sk.sign_with_aux(&msg, &[0u8; 32]);
    }
    println!("sighash: {msg}");
    println!("signed tx: {}", hex::encode(tx.encode()));
    println!("txid: {}", tx.txid());
}
