//! `lode-wallet`: keys, addresses, balances and payments over a node's RPC.
//!
//! Every command prints one result: text, or with `--json` one JSON
//! document on stdout (amounts in base units). Errors go to stderr as one
//! line, with exit code 1 (2 for a malformed command line).

mod commands;
#[cfg(test)]
mod fake;
mod file;
mod keys;
mod rpc;
mod select;
mod view;

use clap::{Parser, Subcommand};
use std::path::PathBuf;

/// The Lode wallet.
#[derive(Parser, Debug, Clone)]
#[command(
    name = "lode-wallet",
    version,
    about = "Lode wallet: keys, addresses, balances, payments",
    after_help = "The passphrase comes from LODE_WALLET_PASSPHRASE when set (then no command reads the terminal), \
                  otherwise from a prompt. Amounts are decimal coins (\"1.5\"); --json output uses base units."
)]
pub struct Cli {
    /// Network: regtest, devnet, testnet or a chain-spec file.
    #[arg(long, global = true, default_value = "devnet")]
    pub chain: String,
    /// Wallet file [default: <user data dir>/lode/<chain>/wallet.json].
    #[arg(long, global = true, value_name = "FILE")]
    pub wallet: Option<PathBuf>,
    /// Node RPC URL [default: http://127.0.0.1:<chain's RPC port>/].
    #[arg(long, global = true, value_name = "URL")]
    pub rpc: Option<String>,
    /// RPC cookie file [default: <data dir>/.cookie].
    #[arg(long, global = true, value_name = "FILE")]
    pub cookie: Option<PathBuf>,
    /// The node's data directory, to find its cookie [default: <user data dir>/lode/<chain>].
    #[arg(long, global = true, value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
    /// Print one JSON document (amounts in base units).
    #[arg(long, global = true)]
    pub json: bool,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Wallet commands.
#[derive(Subcommand, Debug, Clone)]
pub enum Command {
    /// Create a wallet from fresh BIP-39 words (shown once: write them down).
    New {
        /// Number of words: 12, 15, 18, 21 or 24.
        #[arg(long, default_value_t = 24)]
        word_count: usize,
    },
    /// Rebuild a wallet from its words into a new file.
    Restore {
        /// The words [default: read from standard input, or a hidden prompt on a terminal].
        #[arg(long)]
        words: Option<String>,
    },
    /// Show the current receiving address, or hand out a fresh one.
    Address {
        /// Hand out a new address.
        #[arg(long)]
        new: bool,
    },
    /// Confirmed, unconfirmed and immature balance over all the wallet's addresses.
    Balance,
    /// Pay an address.
    Send {
        /// Recipient address.
        #[arg(long)]
        to: String,
        /// Amount in coins, e.g. 1.5 (at most 8 decimals).
        #[arg(long, allow_hyphen_values = true)]
        amount: String,
        /// Fee rate in base units per byte [default: 2, or the node's minimum if higher].
        #[arg(long, value_name = "R")]
        fee_rate: Option<u64>,
        /// Wait until the payment has one confirmation.
        #[arg(long)]
        wait: bool,
        /// Seconds --wait waits before giving up.
        #[arg(long, default_value_t = 600, value_name = "SECS")]
        timeout: u64,
        /// Sign but do not submit: print the transaction hex (submit it later with `broadcast`).
        #[arg(long)]
        offline: bool,
    },
    /// The wallet's transactions: direction, amount, fee, confirmations.
    History,
    /// Where a transaction is: mempool, confirmed at height H, or unknown.
    Status {
        /// Transaction id (64 hex characters).
        txid: String,
    },
    /// Submit a signed transaction (hex, as printed by `send --offline`).
    Broadcast {
        /// Transaction hex.
        hex: String,
    },
}

fn main() {
    let cli = Cli::parse();
    let env = commands::Env::from_process();
    match commands::run(&cli, &env) {
        Ok(out) => {
            if cli.json {
                println!("{}", out.json);
            } else if !out.text.is_empty() {
                println!("{}", out.text);
            }
        }
        Err(e) => {
            let line = e.to_string().replace('\n', " ");
            eprintln!("lode-wallet: error: {line}");
            std::process::exit(1);
        }
    }
}
