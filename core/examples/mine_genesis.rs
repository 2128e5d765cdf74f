//! Mines the genesis nonce of a chain-spec file and prints the nonce and
//! hash to write back into it: `cargo run --release -p lode-core --example
//! mine_genesis -- chain-spec/devnet.json`.

use lode_core::block::HeaderHasher;
use lode_core::spec::ChainSpec;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let path = std::env::args().nth(1).ok_or("usage: mine_genesis SPEC.json")?;
    let text = std::fs::read_to_string(&path)?;
    // Deliberately unchecked: the hash in the file is what we are computing.
    let spec: ChainSpec = serde_json::from_str(&text)?;
    let mut header = spec.genesis_block().header;
    let target = header.bits.to_target()?;
    let mut hasher = HeaderHasher::new(&header);
    let nonce = (0u64..).find(|n| target.is_met_by(&hasher.hash(*n))).ok_or("nonce space exhausted")?;
    header.nonce = nonce;
    println!("nonce {nonce}\nhash {}", header.hash());
    Ok(())
}
