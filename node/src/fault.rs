//! What a panic does: it ends the process. Tokio catches a panicking task
//! and carries on, which would leave a node whose networking or miner died
//! silently; the database survives SIGKILL (one atomic batch per block), so
//! aborting and letting a supervisor (systemd, see docs/operating.md)
//! restart the node is the safe choice.

/// Installs a panic hook that logs the panic, then aborts the process.
pub fn abort_on_panic() {
    let default = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        default(info);
        tracing::error!(%info, "panic: aborting so a supervisor restarts the node");
        std::process::abort();
    }));
}
