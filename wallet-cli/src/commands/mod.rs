//! The commands. Everything that can be refused is checked before a key is
//! used or the file written; a refused command leaves the file as it was.

mod bump;
mod query;
mod send;
#[cfg(test)]
mod tests;

use crate::file::{self, FileError, WalletData, WalletLock};
use crate::keys::{self, Branch, KeyError, Keychain};
use crate::rpc::{Client, RpcError, ALREADY_KNOWN};
use crate::select::{SelectError, TooMuchMoney};
use crate::view::{self, ViewError};
use crate::{Cli, Command};
use lode_core::codec::Decode;
use lode_core::{ChainSpec, Transaction};
use serde_json::{json, Value};
use std::io::{IsTerminal, Read};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// How long a command waits for another `lode-wallet` holding the file.
const LOCK_WAIT: Duration = Duration::from_secs(30);

/// A command failure, printed as one line.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The wallet file.
    #[error(transparent)]
    File(#[from] FileError),
    /// Keys.
    #[error(transparent)]
    Key(#[from] KeyError),
    /// The node.
    #[error(transparent)]
    Rpc(#[from] RpcError),
    /// Coin selection.
    #[error(transparent)]
    Select(#[from] SelectError),
    /// The node's amounts add up to more than can exist.
    #[error(transparent)]
    Money(#[from] TooMuchMoney),
    /// Refused input or any other failure, already worded.
    #[error("{0}")]
    Msg(String),
}

impl From<ViewError> for Error {
    fn from(e: ViewError) -> Self {
        match e {
            ViewError::Rpc(e) => Error::Rpc(e),
            ViewError::Key(e) => Error::Key(e),
            ViewError::Address(m) => Error::Msg(m),
            ViewError::Money(e) => Error::Money(e),
        }
    }
}

fn msg(s: impl Into<String>) -> Error {
    Error::Msg(s.into())
}

/// What a command prints: JSON for `--json`, text otherwise.
#[derive(Debug, Clone)]
pub struct Output {
    /// The `--json` document.
    pub json: Value,
    /// The human-readable text.
    pub text: String,
}

/// What the process environment supplies.
#[derive(Debug, Clone, Default)]
pub struct Env {
    /// `LODE_WALLET_PASSPHRASE`, when set.
    pub passphrase: Option<String>,
    /// `$XDG_DATA_HOME`, or `$HOME/.local/share`.
    pub data_home: Option<PathBuf>,
    /// Whether standard input is a terminal.
    pub stdin_tty: bool,
    /// `LODE_WALLET_BIP39_PASSPHRASE`, when set (for `new` and `restore`).
    pub bip39_passphrase: Option<String>,
}

impl Env {
    /// Reads the environment of this process.
    pub fn from_process() -> Env {
        let data_home = match std::env::var_os("XDG_DATA_HOME") {
            Some(d) if !d.is_empty() => Some(PathBuf::from(d)),
            _ => std::env::var_os("HOME").filter(|h| !h.is_empty()).map(|h| PathBuf::from(h).join(".local/share")),
        };
        Env {
            passphrase: std::env::var("LODE_WALLET_PASSPHRASE").ok(),
            data_home,
            stdin_tty: std::io::stdin().is_terminal(),
            bip39_passphrase: std::env::var("LODE_WALLET_BIP39_PASSPHRASE").ok(),
        }
    }
}

/// Seconds since the Unix epoch.
pub fn now() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
}

/// An opened wallet: held lock, contents, keys and passphrase.
pub struct Opened {
    _lock: WalletLock,
    data: WalletData,
    keys: Keychain,
    pass: String,
}

/// Everything a command needs.
pub struct Ctx<'a> {
    cli: &'a Cli,
    env: &'a Env,
    spec: ChainSpec,
    wallet: PathBuf,
}

/// Largest chain-spec file read (the node's limit too): a spec is a few
/// hundred bytes of JSON, and `--chain /dev/zero` must not fill memory.
const MAX_SPEC_FILE_BYTES: u64 = 1024 * 1024;

fn load_spec(chain: &str) -> Result<ChainSpec, Error> {
    match chain {
        "regtest" | "devnet" | "testnet" => ChainSpec::builtin(chain).map_err(|e| msg(e.to_string())),
        path => {
            let bytes = crate::bounded::read_capped(Path::new(path), MAX_SPEC_FILE_BYTES).map_err(|e| {
                msg(format!("--chain {path:?} is not regtest, devnet or testnet, nor a readable spec file: {e}"))
            })?;
            let text = String::from_utf8(bytes).map_err(|_| msg(format!("chain spec {path}: not UTF-8 text")))?;
            ChainSpec::from_json(&text).map_err(|e| msg(format!("chain spec {path}: {e}")))
        }
    }
}

impl<'a> Ctx<'a> {
    fn new(cli: &'a Cli, env: &'a Env) -> Result<Ctx<'a>, Error> {
        let spec = load_spec(&cli.chain)?;
        let wallet = match &cli.wallet {
            Some(p) => p.clone(),
            None => node_dir(env, &spec)?.join("wallet.json"),
        };
        Ok(Ctx { cli, env, spec, wallet })
    }

    fn prefix(&self) -> &str {
        &self.spec.address_prefix
    }

    /// Connects to the node and checks it runs this wallet's chain.
    fn client(&self) -> Result<Client, Error> {
        let url = self.cli.rpc.clone().unwrap_or_else(|| format!("http://127.0.0.1:{}/", self.spec.default_rpc_port));
        let cookie = match (&self.cli.cookie, &self.cli.data_dir) {
            (Some(c), _) => c.clone(),
            (None, Some(d)) => d.join(".cookie"),
            (None, None) => node_dir(self.env, &self.spec)?.join(".cookie"),
        };
        let client = Client::new(&url, &cookie)?;
        client.check_chain(&self.spec.name)?;
        Ok(client)
    }

    /// The passphrase: the environment's, or asked on the terminal
    /// (twice when `confirm`).
    fn passphrase(&self, confirm: bool) -> Result<String, Error> {
        let pass = match &self.env.passphrase {
            Some(p) => p.clone(),
            None => {
                let ask = |prompt: &str| {
                    rpassword::prompt_password(prompt).map_err(|e| {
                        msg(format!("cannot read the passphrase from the terminal ({e}); set LODE_WALLET_PASSPHRASE"))
                    })
                };
                let p = ask("wallet passphrase: ")?;
                if confirm && ask("repeat the passphrase: ")? != p {
                    return Err(msg("the two passphrases differ; nothing was written"));
                }
                p
            }
        };
        if confirm && pass.is_empty() {
            return Err(msg("refusing an empty passphrase: the wallet file holds the keys to your coins"));
        }
        Ok(pass)
    }

    /// Locks, decrypts and checks the wallet file.
    fn open(&self) -> Result<Opened, Error> {
        if !self.wallet.exists() {
            return Err(FileError::Missing(self.wallet.display().to_string()).into());
        }
        let lock = file::lock(&self.wallet, LOCK_WAIT)?;
        let pass = self.passphrase(false)?;
        let data = file::load(&self.wallet, &pass)?;
        if data.chain != self.spec.name {
            return Err(msg(format!(
                "wallet {} belongs to {}, not {} (pass --chain {})",
                self.wallet.display(),
                data.chain,
                self.spec.name,
                data.chain
            )));
        }
        let bip39 = data.bip39_passphrase.as_deref().unwrap_or("");
        let keys = Keychain::from_mnemonic(&data.mnemonic, bip39, &data.account_path)?;
        Ok(Opened { _lock: lock, data, keys, pass })
    }

    fn save(&self, w: &Opened) -> Result<(), Error> {
        Ok(file::save(&self.wallet, &w.pass, &w.data, false)?)
    }

    fn address_text(&self, keys: &Keychain, branch: Branch, index: u32) -> Result<String, Error> {
        Ok(view::encode(&keys.address(branch, index)?, self.prefix())?)
    }

    /// The BIP-39 passphrase for `new`/`restore`: the environment's, or
    /// asked on the terminal when `ask` (twice for a new wallet); none
    /// otherwise.
    fn bip39_passphrase(&self, ask: bool, confirm: bool) -> Result<Option<String>, Error> {
        if let Some(p) = &self.env.bip39_passphrase {
            return Ok(Some(p.clone()).filter(|p| !p.is_empty()));
        }
        if !ask {
            return Ok(None);
        }
        let read = |prompt: &str| {
            rpassword::prompt_password(prompt).map_err(|e| {
                msg(format!(
                    "cannot read the BIP-39 passphrase from the terminal ({e}); set LODE_WALLET_BIP39_PASSPHRASE"
                ))
            })
        };
        let p = read("BIP-39 passphrase (the 25th word): ")?;
        if confirm && read("repeat the BIP-39 passphrase: ")? != p {
            return Err(msg("the two BIP-39 passphrases differ; nothing was written"));
        }
        Ok(Some(p).filter(|p| !p.is_empty()))
    }

    /// Shows what a payment costs and asks to go on, only when someone can
    /// answer: at a terminal, without LODE_WALLET_PASSPHRASE (scripts set
    /// it and are never asked) and without `--yes`. Declining changes nothing.
    fn confirm(&self, yes: bool, summary: &str) -> Result<(), Error> {
        if yes || self.env.passphrase.is_some() || !self.env.stdin_tty {
            return Ok(());
        }
        eprint!("{summary}\nsend it? [y/N] ");
        let mut line = String::new();
        std::io::stdin().read_line(&mut line).map_err(|e| msg(format!("cannot read the answer: {e}")))?;
        if matches!(line.trim().to_ascii_lowercase().as_str(), "y" | "yes") {
            Ok(())
        } else {
            Err(msg("cancelled: nothing was signed or sent"))
        }
    }
}

/// The node's default data directory for `spec`: `<data home>/lode/<name>`.
fn node_dir(env: &Env, spec: &ChainSpec) -> Result<PathBuf, Error> {
    let home = env
        .data_home
        .clone()
        .ok_or_else(|| msg("neither XDG_DATA_HOME nor HOME is set; pass --wallet and --data-dir"))?;
    Ok(home.join("lode").join(&spec.name))
}

/// Printed when `restore` got its words in `--words`: the command line is
/// readable by every user of the machine (`ps`, /proc) and is kept in
/// shell history.
pub const WORDS_ON_COMMAND_LINE: &str = "lode-wallet: warning: words given with --words \"...\" are visible to other \
     users (ps) and stay in your shell history; clear that history, and next time use --words - (standard input) or \
     leave --words out (a hidden prompt)";

/// Runs the command line, reading the process's standard input where a
/// command needs it.
pub fn run(cli: &Cli, env: &Env) -> Result<Output, Error> {
    // Not a held lock: `confirm` reads standard input on its own.
    run_with_input(cli, env, &mut std::io::stdin())
}

/// Runs the command line with `stdin` as standard input (for `restore`'s
/// words).
pub fn run_with_input(cli: &Cli, env: &Env, stdin: &mut dyn Read) -> Result<Output, Error> {
    let ctx = Ctx::new(cli, env)?;
    match &cli.command {
        Command::New { word_count, bip39_passphrase } => {
            create(&ctx, keys::new_mnemonic(*word_count)?, *bip39_passphrase, true)
        }
        Command::Restore { words, bip39_passphrase } => {
            let words = match words.as_deref() {
                // "-" (like no --words): the words stay off the command line.
                None | Some("-") => read_words(&ctx, stdin)?,
                Some(w) => {
                    // Kept working (the interface contract), but the words
                    // have already leaked by the time they arrive here.
                    eprintln!("{WORDS_ON_COMMAND_LINE}");
                    w.to_string()
                }
            };
            create(&ctx, keys::parse_mnemonic(&words)?, *bip39_passphrase, false)
        }
        Command::Address { new } => address(&ctx, *new),
        Command::Balance => query::balance(&ctx),
        Command::Send { to, amount, fee_rate, conf_target, yes, wait, timeout, offline } => send::send(
            &ctx,
            &send::SendArgs {
                to,
                amount,
                fee_rate: *fee_rate,
                conf_target: *conf_target,
                yes: *yes,
                wait: *wait,
                timeout: Duration::from_secs(*timeout),
                offline: *offline,
            },
        ),
        Command::Sweep { to, fee_rate, conf_target, yes } => {
            send::sweep(&ctx, &send::FeeArgs { fee_rate: *fee_rate, conf_target: *conf_target, yes: *yes }, to)
        }
        Command::Bumpfee { txid, fee_rate, conf_target, yes } => {
            bump::bumpfee(&ctx, &send::FeeArgs { fee_rate: *fee_rate, conf_target: *conf_target, yes: *yes }, txid)
        }
        Command::History => query::history(&ctx),
        Command::Status { txid } => query::status(&ctx, txid),
        Command::Broadcast { hex } => broadcast(&ctx, hex),
    }
}

/// Words for `restore` without `--words` or with `--words -`: `stdin` when
/// it is not a terminal, a hidden prompt (like the passphrase's) when it is,
/// unless the passphrase comes from the environment: then the terminal is
/// never read.
fn read_words(ctx: &Ctx, stdin: &mut dyn Read) -> Result<String, Error> {
    if ctx.env.stdin_tty {
        if ctx.env.passphrase.is_some() {
            return Err(msg(
                "pipe the words on standard input (LODE_WALLET_PASSPHRASE is set, so the terminal is not read)",
            ));
        }
        return rpassword::prompt_password("mnemonic words: ").map_err(|e| msg(format!("cannot read the words: {e}")));
    }
    let mut s = String::new();
    // Far more than 24 words: a larger input is not a mnemonic anyway.
    stdin.take(64 * 1024).read_to_string(&mut s).map_err(|e| msg(format!("cannot read the words: {e}")))?;
    if s.trim().is_empty() {
        return Err(msg("no mnemonic words given: pipe them on standard input (--words -) or type them at the prompt"));
    }
    Ok(s)
}

fn create(ctx: &Ctx, mnemonic: String, ask_bip39: bool, fresh: bool) -> Result<Output, Error> {
    let lock = file::lock(&ctx.wallet, LOCK_WAIT)?;
    if ctx.wallet.exists() {
        return Err(FileError::Exists(ctx.wallet.display().to_string()).into());
    }
    let pass = ctx.passphrase(true)?;
    let bip39 = ctx.bip39_passphrase(ask_bip39, fresh)?;
    let mut data = WalletData::new(&ctx.spec.name, mnemonic.clone());
    data.bip39_passphrase = bip39.clone();
    let keys = Keychain::from_mnemonic(&mnemonic, bip39.as_deref().unwrap_or(""), &data.account_path)?;
    let addr = ctx.address_text(&keys, Branch::Receive, 0)?;
    file::save(&ctx.wallet, &pass, &data, true)?;
    drop(lock);
    let path = ctx.wallet.display().to_string();
    let mut json =
        json!({"wallet": path, "chain": ctx.spec.name, "address": addr, "bip39_passphrase": bip39.is_some()});
    let text = if fresh {
        json["mnemonic"] = json!(mnemonic);
        let numbered: Vec<String> =
            mnemonic.split(' ').enumerate().map(|(i, w)| format!("{:>2}. {w:<10}", i + 1)).collect();
        let rows: Vec<String> = numbered.chunks(4).map(|r| format!("    {}", r.join(" ").trim_end())).collect();
        format!(
            "Wallet created: {path} ({chain})\n\n\
             Write these {n} words down, in order, and keep them offline. They are shown\n\
             only this once, and they alone restore this wallet and its coins{with}:\n\n{words}\n\n\
             Receiving address: {addr}",
            chain = ctx.spec.name,
            n = numbered.len(),
            words = rows.join("\n"),
            with = if bip39.is_some() { " (with the BIP-39 passphrase: keep it too)" } else { "" },
        )
    } else {
        format!(
            "Wallet restored: {path} ({chain})\nReceiving address: {addr}\n\
             The next command that reaches the node scans the chain for the wallet's addresses.",
            chain = ctx.spec.name
        )
    };
    Ok(Output { json, text })
}

fn address(ctx: &Ctx, new: bool) -> Result<Output, Error> {
    let mut w = ctx.open()?;
    if new {
        w.data.receive_next = w.data.receive_next.checked_add(1).ok_or_else(|| msg("no more addresses"))?;
    }
    let index = w.data.receive_next.saturating_sub(1);
    let a = ctx.address_text(&w.keys, Branch::Receive, index)?;
    if new {
        ctx.save(&w)?;
    }
    Ok(Output { json: json!({"address": a, "index": index}), text: a })
}

fn broadcast(ctx: &Ctx, hex_text: &str) -> Result<Output, Error> {
    let bytes = hex::decode(hex_text.trim()).map_err(|e| msg(format!("not transaction hex: {e}")))?;
    let tx = Transaction::decode_all(&bytes, crate::select::MAX_TX_SIZE as usize)
        .map_err(|e| msg(format!("not a transaction: {e}")))?;
    let txid = tx.txid();
    let client = ctx.client()?;
    let already = match client.call("sendrawtransaction", json!([hex_text.trim()])) {
        Ok(_) => false,
        Err(RpcError::Node { code: ALREADY_KNOWN, .. }) => true,
        Err(RpcError::Node { message, .. }) => {
            return Err(msg(format!("the node refused transaction {txid}: {message}")))
        }
        Err(e) => return Err(e.into()),
    };
    let text = if already { format!("{txid} (already known to the node)") } else { txid.to_hex() };
    Ok(Output { json: json!({"txid": txid, "already_known": already}), text })
}
