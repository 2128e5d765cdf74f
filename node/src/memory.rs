//! Process-wide memory settings.

/// Fewest malloc arenas [`limit_malloc_arenas`] allows.
pub const MIN_MALLOC_ARENAS: usize = 2;

/// Arenas glibc's malloc may create: one per core, at least
/// [`MIN_MALLOC_ARENAS`]. Its default (8 per core) lets each of the node's
/// many threads (async workers, RocksDB's, rayon's) fill an arena of its
/// own and keep what it freed there. With one per core, in one measured
/// pair of 10,000-block imports, the node's peak resident memory was 123
/// against 133 MiB (docs/performance.md), at no measured CPU cost.
pub fn malloc_arenas() -> usize {
    std::thread::available_parallelism().map_or(MIN_MALLOC_ARENAS, |n| n.get()).max(MIN_MALLOC_ARENAS)
}

/// Caps glibc's malloc arenas at [`malloc_arenas`] unless the operator set
/// `MALLOC_ARENA_MAX`; whether the cap was set. Call it before the process
/// starts other threads.
pub fn limit_malloc_arenas() -> bool {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        if std::env::var_os("MALLOC_ARENA_MAX").is_some() {
            return false;
        }
        // SAFETY: mallopt only changes malloc's tuning parameters; it takes
        // plain integers and is documented as safe to call at any time.
        let arenas = libc::c_int::try_from(malloc_arenas()).unwrap_or(libc::c_int::MAX);
        unsafe { libc::mallopt(libc::M_ARENA_MAX, arenas) == 1 }
    }
    #[cfg(not(all(target_os = "linux", target_env = "gnu")))]
    false
}

#[cfg(test)]
mod tests {
    #[test]
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    fn the_arena_cap_is_accepted_by_glibc_unless_the_operator_set_one() {
        let operator_set = std::env::var_os("MALLOC_ARENA_MAX").is_some();
        assert_eq!(super::limit_malloc_arenas(), !operator_set);
    }
}
