//! Lode node.
