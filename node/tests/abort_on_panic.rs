//! A panic in any task ends the node's process (see `lode_node::fault`):
//! the test runs itself again as a child that installs the node's hook and
//! panics inside a tokio task, which tokio alone would survive.

use std::os::unix::process::ExitStatusExt;
use std::process::Command;
use std::time::Duration;

const PROBE: &str = "LODE_PANIC_PROBE";

#[test]
fn a_panic_in_a_task_aborts_the_process() {
    if std::env::var_os(PROBE).is_some() {
        lode_node::fault::abort_on_panic();
        let rt = tokio::runtime::Runtime::new().expect("runtime");
        rt.block_on(async {
            let task = tokio::spawn(async { panic!("probe panic in a network task") });
            let _ = task.await;
            tokio::time::sleep(Duration::from_secs(2)).await;
        });
        // Reaching this line means the panic was swallowed.
        std::process::exit(0);
    }
    let exe = std::env::current_exe().expect("test executable");
    let out = Command::new(exe)
        .args(["--exact", "a_panic_in_a_task_aborts_the_process", "--nocapture", "--test-threads", "1"])
        .env(PROBE, "1")
        .output()
        .expect("run the probe");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.signal(), Some(6), "expected SIGABRT, got {:?}; stderr:\n{stderr}", out.status);
    assert!(stderr.contains("probe panic in a network task"), "{stderr}");
}
