//! `lode-wallet`: keys, addresses, balances and payments over a node's RPC.

mod commands;
mod file;
mod keys;
mod rpc;
mod select;

use clap::{Parser, Subcommand};
use lode_core::ChainSpec;
use std::path::PathBuf;

/// The Lode wallet.
#[derive(Parser, Debug)]
#[command(name = "lode-wallet", version, about = "Lode wallet: keys, addresses, balances, payments")]
pub struct Cli {
    /// Network: regtest, devnet, testnet or a chain-spec path.
    #[arg(long, global = true, default_value = "devnet")]
    chain: String,
    /// Wallet file (default: <user data dir>/lode/<chain>/wallet.json).
    #[arg(long, global = true)]
    wallet: Option<PathBuf>,
    /// Node RPC URL (default: http://127.0.0.1:<spec rpc port>/).
    #[arg(long, global = true)]
    rpc: Option<String>,
    /// RPC cookie file.
    #[arg(long, global = true)]
    cookie: Option<PathBuf>,
    /// The node's data directory (its .cookie is used).
    #[arg(long, global = true)]
    data_dir: Option<PathBuf>,
    /// Machine-readable output (amounts in base units).
    #[arg(long, global = true)]
    json: bool,
    #[command(subcommand)]
    command: Command,
}

/// Wallet commands.
#[derive(Subcommand, Debug)]
pub enum Command {
    /// Create a wallet from fresh BIP-39 words.
    New,
    /// Rebuild a wallet from its words.
    Restore {
        /// The words (read from standard input when absent).
        #[arg(long)]
        words: Option<String>,
    },
    /// Show the current receiving address (or a fresh one).
    Address {
        /// Hand out a new address.
        #[arg(long)]
        new: bool,
    },
    /// Confirmed, unconfirmed and immature balance.
    Balance,
    /// Pay an address.
    Send {
        /// Recipient address.
        #[arg(long)]
        to: String,
        /// Amount in coins, e.g. 1.5.
        #[arg(long, allow_hyphen_values = true)]
        amount: String,
        /// Fee rate in base units per byte.
        #[arg(long, default_value_t = 2)]
        fee_rate: u64,
        /// Wait for the first confirmation.
        #[arg(long)]
        wait: bool,
        /// Print the signed transaction instead of submitting it.
        #[arg(long)]
        offline: bool,
    },
    /// The wallet's transactions.
    History,
    /// Where a transaction is: mempool, confirmed, or unknown.
    Status {
        /// Transaction id.
        txid: String,
    },
    /// Submit a signed transaction (hex).
    Broadcast {
        /// Transaction hex.
        hex: String,
    },
}

fn load_spec(chain: &str) -> Result<ChainSpec, String> {
    match chain {
        "regtest" | "devnet" | "testnet" => ChainSpec::builtin(chain).map_err(|e| e.to_string()),
        path => {
            let text = std::fs::read_to_string(path).map_err(|e| format!("cannot read chain spec {path}: {e}"))?;
            ChainSpec::from_json(&text).map_err(|e| format!("chain spec {path}: {e}"))
        }
    }
}

fn main() {
    let cli = Cli::parse();
    let result = load_spec(&cli.chain).and_then(|spec| commands::run(&cli, &spec));
    match result {
        Ok(out) => {
            if !out.is_empty() {
                println!("{out}");
            }
        }
        Err(e) => {
            eprintln!("lode-wallet: error: {e}");
            std::process::exit(1);
        }
    }
}
