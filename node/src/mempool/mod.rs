//! The transaction memory pool.
