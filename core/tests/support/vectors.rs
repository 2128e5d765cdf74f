//! The test vectors of docs/protocol.md, computed from the code. Shared by
//! `tests/vectors.rs`, which compares them whole with the document, and
//! `examples/vectors.rs`, which prints them in the document's form.

use lode_core::codec::{Decode, Encode};
use lode_core::crypto::{spent_values_hash, verify, SecretKey, Signature};
use lode_core::tx::{OutPoint, Transaction, TxIn, TxOut, Unlock};
use lode_core::{Address, Amount, Block, ChainSpec, Hash256};

/// One fenced vector block: its name (the fence's info string after
/// `vector `) and its lines.
pub struct Vector {
    /// Name after `vector ` on the opening fence.
    pub name: &'static str,
    /// The block's lines, each `label  value`.
    pub lines: Vec<String>,
}

impl Vector {
    /// The block as it appears in the document, fences included.
    pub fn to_markdown(&self) -> String {
        format!("```vector {}\n{}\n```", self.name, self.lines.join("\n"))
    }
}

/// Width of the label column, so values line up.
const LABEL: usize = 18;

fn line(label: &str, value: impl std::fmt::Display) -> String {
    format!("{label:<LABEL$}{value}")
}

/// Every documented vector, in document order.
pub fn all() -> Vec<Vector> {
    vec![genesis(), signed_transaction()]
}

/// The regtest genesis block.
fn genesis() -> Vector {
    let g = ChainSpec::regtest().genesis_block();
    let coinbase = &g.transactions[0];
    // The vector is also a decoding check: the block must read back whole.
    assert_eq!(Block::decode_all(&g.encode(), 1 << 20).expect("genesis decodes"), g);
    Vector {
        name: "regtest-genesis",
        lines: vec![
            line("header", hex::encode(g.header.to_bytes())),
            line("hash", g.hash()),
            line("coinbase", hex::encode(coinbase.encode())),
            line("coinbase txid", coinbase.txid()),
        ],
    }
}

/// A two-input spend on regtest signed with a fixed key and zero auxiliary
/// randomness, so its signatures are reproducible.
fn signed_transaction() -> Vector {
    let spec = ChainSpec::regtest();
    let genesis = spec.genesis_hash();
    let sk = SecretKey::from_bytes(&[1u8; 32]).expect("a valid fixed key");
    let pubkey = sk.public_key();
    let address = Address::from_pubkey(&pubkey).encode(&spec.address_prefix).expect("regtest prefix encodes");
    let prevouts = [OutPoint { txid: Hash256([0x11; 32]), vout: 0 }, OutPoint { txid: Hash256([0x33; 32]), vout: 1 }];
    let values = [Amount::from_units(5_000_000_000), Amount::from_units(1_000_000_000)];
    let mut tx = Transaction {
        version: 1,
        inputs: prevouts
            .iter()
            .map(|prevout| TxIn { prevout: *prevout, unlock: Unlock::Signature { pubkey, sig: Signature::default() } })
            .collect(),
        outputs: vec![TxOut { value: Amount::from_units(5_999_990_000), address: Address([0x22; 20]) }],
        lock_time: 0,
    };
    let mut lines = vec![
        line("secret key", hex::encode([1u8; 32])),
        line("pubkey", hex::encode(pubkey.0)),
        line("address", address),
    ];
    for (i, (prevout, value)) in prevouts.iter().zip(values).enumerate() {
        lines.push(line(&format!("input {i}"), format!("{}:{} spends {}", prevout.txid, prevout.vout, value.units())));
    }
    lines.push(line("blank tx hash", tx.blank_hash()));
    lines.push(line("spent values hash", spent_values_hash(&values)));
    let msgs: Vec<Hash256> = (0..tx.inputs.len() as u32).map(|i| tx.signature_hash(&genesis, i, &values)).collect();
    for (input, msg) in tx.inputs.iter_mut().zip(&msgs) {
        let sig = sk.sign_with_aux(msg, &[0u8; 32]);
        assert!(verify(&pubkey, msg, &sig), "a fresh signature verifies");
        if let Unlock::Signature { sig: s, .. } = &mut input.unlock {
            *s = sig;
        }
    }
    for (i, msg) in msgs.iter().enumerate() {
        lines.push(line(&format!("sighash {i}"), msg));
    }
    // The signed transaction must pass the same checks a node runs.
    let checks = tx.sig_checks(&genesis, &values);
    assert!(checks.len() == 2 && checks.iter().all(|c| c.verify()), "the vector's signatures verify");
    assert_eq!(Transaction::decode_all(&tx.encode(), 1 << 20).expect("transaction decodes"), tx);
    lines.push(line("transaction", hex::encode(tx.encode())));
    lines.push(line("txid", tx.txid()));
    Vector { name: "signed-transaction", lines }
}
