//! Prints the test vectors of docs/protocol.md in the document's own form
//! (fenced ```` ```vector NAME ```` blocks) to paste over the old ones:
//! `cargo run --release -p lode-core --example vectors`. `core/tests/vectors.rs`
//! checks the document holds exactly these blocks.

#[path = "../tests/support/vectors.rs"]
mod vectors;

fn main() {
    for v in vectors::all() {
        println!("{}\n", v.to_markdown());
    }
}
