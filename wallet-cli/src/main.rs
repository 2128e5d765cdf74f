//! `lode-wallet`: keys, addresses, balances and payments over a node's RPC.
//!
//! Every command prints one result: text, or with `--json` one JSON
//! document on stdout (amounts in base units). Errors go to stderr as one
//! line, with exit code 1 (2 for a malformed command line).

mod bounded;
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
                  otherwise from a prompt. A BIP-39 passphrase for `new` and `restore` comes from \
                  LODE_WALLET_BIP39_PASSPHRASE (or --bip39-passphrase, a prompt). Payments ask to confirm their fee \
                  only at a terminal without LODE_WALLET_PASSPHRASE; --yes never asks. Amounts are decimal coins \
                  (\"1.5\"); --json output uses base units."
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
        /// Ask for a BIP-39 passphrase (the "25th word") on the terminal
        /// [default: LODE_WALLET_BIP39_PASSPHRASE, or none].
        #[arg(long)]
        bip39_passphrase: bool,
    },
    /// Rebuild a wallet from its words into a new file.
    Restore {
        /// The words, or "-" to read them from standard input [default: standard
        /// input, or a hidden prompt on a terminal]. Words given here are seen
        /// by other users (ps) and kept in shell history: prefer "-".
        #[arg(long)]
        words: Option<String>,
        /// Ask for the BIP-39 passphrase the words were used with
        /// [default: LODE_WALLET_BIP39_PASSPHRASE, or none].
        #[arg(long)]
        bip39_passphrase: bool,
    },
    /// Show the current receiving address, or hand out a fresh one.
    Address {
        /// Hand out a new address.
        #[arg(long)]
        new: bool,
    },
    /// Confirmed, unconfirmed and immature balance over all the wallet's addresses.
    Balance,
    /// Pay one or more addresses in one transaction (repeat --to ADDR --amount X).
    Send {
        /// Recipient address (repeatable, paired in order with --amount).
        #[arg(long, required = true)]
        to: Vec<String>,
        /// Amount in coins, e.g. 1.5 (at most 8 decimals; one per --to).
        #[arg(long, allow_hyphen_values = true, required = true)]
        amount: Vec<String>,
        /// Fee rate in base units per byte [default: the node's estimate for --conf-target].
        #[arg(long, value_name = "R")]
        fee_rate: Option<u64>,
        /// Blocks to confirm within, for the node's fee estimate.
        #[arg(long, default_value_t = 6, value_name = "N")]
        conf_target: u32,
        /// Do not ask to confirm the fee.
        #[arg(long)]
        yes: bool,
        /// Wait until the payment has one confirmation.
        #[arg(long)]
        wait: bool,
        /// Seconds --wait waits before giving up (a value too large for the
        /// clock, such as 18446744073709551615, waits without limit).
        #[arg(long, default_value_t = 600, value_name = "SECS")]
        timeout: u64,
        /// Sign but do not submit: print the transaction hex (submit it later with `broadcast`).
        #[arg(long)]
        offline: bool,
    },
    /// Send everything spendable to one address, minus the fee.
    Sweep {
        /// Recipient address.
        #[arg(long)]
        to: String,
        /// Fee rate in base units per byte [default: the node's estimate for --conf-target].
        #[arg(long, value_name = "R")]
        fee_rate: Option<u64>,
        /// Blocks to confirm within, for the node's fee estimate.
        #[arg(long, default_value_t = 6, value_name = "N")]
        conf_target: u32,
        /// Do not ask to confirm the fee.
        #[arg(long)]
        yes: bool,
    },
    /// Replace an unconfirmed payment of this wallet with a higher-fee version.
    Bumpfee {
        /// The payment's transaction id.
        txid: String,
        /// New fee rate in base units per byte [default: the node's estimate for
        /// --conf-target, and at least what a replacement must pay].
        #[arg(long, value_name = "R")]
        fee_rate: Option<u64>,
        /// Blocks to confirm within, for the node's fee estimate.
        #[arg(long, default_value_t = 6, value_name = "N")]
        conf_target: u32,
        /// Do not ask to confirm the fee.
        #[arg(long)]
        yes: bool,
    },
    /// The wallet's transactions: direction (sent, received, self, mined,
    /// replaced), amount, fee, confirmations.
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
