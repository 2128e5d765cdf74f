//! Code shared by the integration tests (and the `vectors` example).

pub mod vectors;
