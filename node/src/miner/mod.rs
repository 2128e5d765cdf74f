//! Block templates and the nonce search.
