//! Transactions, their inputs and outputs, and their consensus encoding.

use crate::address::Address;
use crate::amount::{Amount, Height};
use crate::codec::{put_len, put_u32, put_u64, Decode, DecodeError, Encode, Reader};
use crate::crypto::{signature_hash, spent_values_hash, PublicKey, SecretKey, SigCheck, Signature};
use crate::hash::{sha256d, Hash256};
use serde::{Deserialize, Serialize};

/// Most bytes of free data a coinbase input may carry.
pub const MAX_COINBASE_EXTRA: usize = 100;
/// Smallest encoded input: outpoint, tag, and a coinbase with no extra data.
const MIN_INPUT_SIZE: usize = 36 + 1 + 4 + 1;
/// Encoded output: value and address.
const OUTPUT_SIZE: usize = 8 + 20;
/// Smallest encoding a transaction can have (no inputs, no outputs); used to
/// bound decoders, not a consensus minimum.
pub const MIN_TX_SIZE: usize = 4 + 4 + 4 + 4;

const TAG_COINBASE: u8 = 0;
const TAG_SIGNATURE: u8 = 1;

/// Reference to an output of an earlier transaction.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Debug, Serialize, Deserialize)]
pub struct OutPoint {
    /// The transaction that created the output.
    pub txid: Hash256,
    /// Index of the output in that transaction.
    pub vout: u32,
}

impl OutPoint {
    /// The outpoint a coinbase input names: it spends nothing.
    pub const NULL: OutPoint = OutPoint { txid: Hash256::ZERO, vout: u32::MAX };

    /// Whether this is the coinbase's null outpoint.
    pub fn is_null(&self) -> bool {
        *self == OutPoint::NULL
    }
}

/// What unlocks an input.
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize)]
pub enum Unlock {
    /// The coinbase's input: commits to the block height, plus free data
    /// (miner tag, extra nonce).
    Coinbase {
        /// Height of the block this coinbase belongs to.
        height: Height,
        /// Free data, at most [`MAX_COINBASE_EXTRA`] bytes.
        extra: Vec<u8>,
    },
    /// A spend: the key whose hash the spent output names and its signature.
    Signature {
        /// x-only public key.
        pubkey: PublicKey,
        /// BIP-340 signature over the input's signature hash.
        sig: Signature,
    },
}

/// A transaction input.
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize)]
pub struct TxIn {
    /// The output being spent ([`OutPoint::NULL`] for the coinbase).
    pub prevout: OutPoint,
    /// The proof that the spender may spend it.
    pub unlock: Unlock,
}

/// A transaction output: an amount locked to an address.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Serialize, Deserialize)]
pub struct TxOut {
    /// Value in base units.
    pub value: Amount,
    /// Public-key hash that may spend it.
    pub address: Address,
}

/// A transaction.
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize)]
pub struct Transaction {
    /// Format version (1).
    pub version: u32,
    /// Inputs.
    pub inputs: Vec<TxIn>,
    /// Outputs.
    pub outputs: Vec<TxOut>,
    /// Reserved; must be zero for now (kept so the format can grow).
    pub lock_time: u32,
}

impl Encode for OutPoint {
    fn encode_to(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.txid.0);
        put_u32(out, self.vout);
    }
}

impl Decode for OutPoint {
    fn decode_from(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        Ok(OutPoint { txid: Hash256(r.array()?), vout: r.u32()? })
    }
}

impl Encode for TxIn {
    fn encode_to(&self, out: &mut Vec<u8>) {
        self.encode_signed_or_blank(out, false);
    }
}

impl TxIn {
    /// The encoding, with the signature zeroed when `blank` (what
    /// [`Transaction::blank_hash`] hashes).
    fn encode_signed_or_blank(&self, out: &mut Vec<u8>, blank: bool) {
        self.prevout.encode_to(out);
        match &self.unlock {
            Unlock::Coinbase { height, extra } => {
                out.push(TAG_COINBASE);
                put_u32(out, height.0);
                // Lengths above the limit are a consensus error caught by
                // check_transaction; the encoder stays total.
                out.push(u8::try_from(extra.len()).unwrap_or(u8::MAX));
                out.extend_from_slice(&extra[..extra.len().min(255)]);
            }
            Unlock::Signature { pubkey, sig } => {
                out.push(TAG_SIGNATURE);
                out.extend_from_slice(&pubkey.0);
                out.extend_from_slice(if blank { &[0; 64] } else { &sig.0 });
            }
        }
    }
}

impl Decode for TxIn {
    fn decode_from(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let prevout = OutPoint::decode_from(r)?;
        let unlock = match r.u8()? {
            TAG_COINBASE => {
                let height = Height(r.u32()?);
                let len = r.u8()? as usize;
                Unlock::Coinbase { height, extra: r.take(len)?.to_vec() }
            }
            TAG_SIGNATURE => Unlock::Signature { pubkey: PublicKey(r.array()?), sig: Signature(r.array()?) },
            _ => return Err(DecodeError::Invalid("input unlock tag")),
        };
        Ok(TxIn { prevout, unlock })
    }
}

impl Encode for TxOut {
    fn encode_to(&self, out: &mut Vec<u8>) {
        put_u64(out, self.value.units());
        out.extend_from_slice(&self.address.0);
    }
}

impl Decode for TxOut {
    fn decode_from(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        Ok(TxOut { value: Amount::from_units(r.u64()?), address: Address(r.array()?) })
    }
}

impl Encode for Transaction {
    fn encode_to(&self, out: &mut Vec<u8>) {
        self.encode_signed_or_blank(out, false);
    }

    fn encode(&self) -> Vec<u8> {
        // Sized up front: ids and signature hashes encode every
        // transaction, and growing the vector reallocated several times.
        let mut out = Vec::with_capacity(self.encoded_size());
        self.encode_to(&mut out);
        out
    }
}

impl Decode for Transaction {
    fn decode_from(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let version = r.u32()?;
        let n_in = r.count("input", MIN_INPUT_SIZE)?;
        let mut inputs = Vec::with_capacity(n_in);
        for _ in 0..n_in {
            inputs.push(TxIn::decode_from(r)?);
        }
        let n_out = r.count("output", OUTPUT_SIZE)?;
        let mut outputs = Vec::with_capacity(n_out);
        for _ in 0..n_out {
            outputs.push(TxOut::decode_from(r)?);
        }
        let lock_time = r.u32()?;
        Ok(Transaction { version, inputs, outputs, lock_time })
    }
}

impl Transaction {
    /// The transaction id: double SHA-256 of the encoding.
    pub fn txid(&self) -> Hash256 {
        sha256d(&self.encode())
    }

    /// Encoded size in bytes.
    pub fn encoded_size(&self) -> usize {
        let inputs: usize = self
            .inputs
            .iter()
            .map(|i| match &i.unlock {
                Unlock::Coinbase { extra, .. } => 36 + 1 + 4 + 1 + extra.len().min(255),
                Unlock::Signature { .. } => 36 + 1 + 32 + 64,
            })
            .sum();
        4 + 4 + inputs + 4 + self.outputs.len() * OUTPUT_SIZE + 4
    }

    /// Whether this is a coinbase: exactly one input, with the null outpoint.
    pub fn is_coinbase(&self) -> bool {
        self.inputs.len() == 1 && self.inputs[0].prevout.is_null()
    }

    /// A coinbase for `height` paying `outputs`.
    pub fn coinbase(height: Height, extra: Vec<u8>, outputs: Vec<TxOut>) -> Transaction {
        Transaction {
            version: 1,
            inputs: vec![TxIn { prevout: OutPoint::NULL, unlock: Unlock::Coinbase { height, extra } }],
            outputs,
            lock_time: 0,
        }
    }

    /// Hash of the transaction with every signature zeroed: what all of its
    /// signature hashes commit to.
    pub fn blank_hash(&self) -> Hash256 {
        let mut out = Vec::with_capacity(self.encoded_size());
        self.encode_signed_or_blank(&mut out, true);
        sha256d(&out)
    }

    /// The encoding, every signature zeroed when `blank`.
    fn encode_signed_or_blank(&self, out: &mut Vec<u8>, blank: bool) {
        put_u32(out, self.version);
        put_len(out, self.inputs.len());
        for i in &self.inputs {
            i.encode_signed_or_blank(out, blank);
        }
        put_len(out, self.outputs.len());
        for o in &self.outputs {
            o.encode_to(out);
        }
        put_u32(out, self.lock_time);
    }

    /// Total output value, `None` above MAX_MONEY.
    pub fn output_total(&self) -> Option<Amount> {
        Amount::checked_sum(self.outputs.iter().map(|o| o.value))
    }

    /// The signature hash input `index` signs, given the value of every
    /// spent output in input order.
    pub fn signature_hash(&self, genesis: &Hash256, index: u32, spent_values: &[Amount]) -> Hash256 {
        signature_hash(genesis, &self.blank_hash(), index, &spent_values_hash(spent_values))
    }

    /// The signature checks this transaction needs, given the value of each
    /// spent output (in input order). Coinbase inputs need none.
    pub fn sig_checks(&self, genesis: &Hash256, spent_values: &[Amount]) -> Vec<SigCheck> {
        let blank = self.blank_hash();
        // Every input's message commits to all the values, so a list of the
        // wrong length yields checks that fail rather than fewer checks.
        let values = spent_values_hash(spent_values);
        self.inputs
            .iter()
            .enumerate()
            .filter_map(|(index, input)| match &input.unlock {
                Unlock::Signature { pubkey, sig } => Some(SigCheck {
                    pubkey: *pubkey,
                    msg: signature_hash(genesis, &blank, index as u32, &values),
                    sig: *sig,
                }),
                Unlock::Coinbase { .. } => None,
            })
            .collect()
    }

    /// Signs every input with `keys[i]` given the spent values (all of
    /// them, in input order), in place. The wallet and tests build
    /// transactions with this.
    pub fn sign_inputs(&mut self, genesis: &Hash256, keys: &[&SecretKey], spent_values: &[Amount]) {
        for (input, key) in self.inputs.iter_mut().zip(keys) {
            input.unlock = Unlock::Signature { pubkey: key.public_key(), sig: Signature::default() };
        }
        let blank = self.blank_hash();
        let values = spent_values_hash(spent_values);
        for (index, (input, key)) in self.inputs.iter_mut().zip(keys).enumerate() {
            let msg = signature_hash(genesis, &blank, index as u32, &values);
            if let Unlock::Signature { sig, .. } = &mut input.unlock {
                *sig = key.sign(&msg);
            }
        }
    }
}
