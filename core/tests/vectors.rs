//! The vectors in docs/protocol.md, recomputed: every fenced ```` ```vector
//! NAME ```` block of the document must equal, whole, the block the code
//! produces, and the document must hold exactly the code's blocks, so an
//! edited, missing or extra line (or block) fails.

mod support;

use support::vectors;

const DOC: &str = include_str!("../../docs/protocol.md");

/// The `vector` blocks of a Markdown text: (name, lines), in order.
fn documented_blocks(doc: &str) -> Result<Vec<(String, Vec<String>)>, String> {
    let mut blocks = Vec::new();
    let mut lines = doc.lines().enumerate();
    while let Some((n, line)) = lines.next() {
        let Some(name) = line.strip_prefix("```vector") else {
            continue;
        };
        let name = name.trim();
        if name.is_empty() {
            return Err(format!("line {}: vector block without a name", n + 1));
        }
        let mut body = Vec::new();
        loop {
            match lines.next() {
                Some((_, "```")) => break,
                Some((_, l)) => body.push(l.to_string()),
                None => return Err(format!("vector block {name:?} is not closed")),
            }
        }
        blocks.push((name.to_string(), body));
    }
    Ok(blocks)
}

#[test]
fn documented_vectors_equal_the_computed_ones_whole() {
    let documented = documented_blocks(DOC).unwrap_or_else(|e| panic!("docs/protocol.md: {e}"));
    let computed: Vec<(String, Vec<String>)> =
        vectors::all().into_iter().map(|v| (v.name.to_string(), v.lines)).collect();
    let names = |b: &[(String, Vec<String>)]| b.iter().map(|(n, _)| n.clone()).collect::<Vec<_>>();
    assert_eq!(
        names(&documented),
        names(&computed),
        "docs/protocol.md must hold exactly these vector blocks, in order"
    );
    for ((name, doc_lines), (_, code_lines)) in documented.iter().zip(&computed) {
        assert_eq!(
            doc_lines, code_lines,
            "vector {name:?} differs from the code; regenerate it with \
             `cargo run --release -p lode-core --example vectors`"
        );
    }
}

#[test]
fn the_block_parser_catches_edits() {
    let good = vectors::all().iter().map(|v| v.to_markdown()).collect::<Vec<_>>().join("\n\ntext\n\n");
    let parsed = documented_blocks(&good).unwrap();
    assert_eq!(parsed.len(), vectors::all().len());
    // One changed character, one dropped line, one unclosed block.
    let first_value = &vectors::all()[0].lines[0];
    let edited = good.replacen(first_value, &first_value.replacen('0', "1", 1), 1);
    assert_ne!(documented_blocks(&edited).unwrap(), parsed);
    let dropped = good.replacen(&format!("{first_value}\n"), "", 1);
    assert_ne!(documented_blocks(&dropped).unwrap(), parsed);
    assert!(documented_blocks("```vector x\nline").is_err());
}
