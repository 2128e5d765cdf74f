//! The testnet view `lode-testnet` writes: one HTML file that polls every
//! node's explorer API (`/api/node/status`) and shows heights, tips, peers
//! and hash rates, with charts of heights and tips over time so a
//! partition or a reorganisation is visible at a glance.

use std::path::Path;

const TEMPLATE: &str = include_str!("testnet_view.html");

/// Writes the view to `path` for the explorers at `urls` (`(name, base URL)`).
pub fn write(path: &Path, urls: &[(String, String)]) -> std::io::Result<()> {
    let nodes: Vec<serde_json::Value> =
        urls.iter().map(|(name, url)| serde_json::json!({"name": name, "url": url})).collect();
    // JSON inside a script element: `</` must not end it.
    let json = serde_json::Value::Array(nodes).to_string().replace("</", "<\\/");
    std::fs::write(path, TEMPLATE.replace("/*NODES*/[]", &json))
}
