//! The global allocator: mimalloc, and with the `heap-count` feature the same allocator
//! counting the bytes it has handed out and not had back (the `cap` crate's wrapper), which
//! `/metrics` reports as `switchyard_heap_live_bytes`. The soak (`cargo bench --bench soak
//! --features heap-count`) sets that against RSS: live bytes that grow with the calls are a
//! leak; RSS that grows while they stay flat is the allocator keeping pages. Off by default: an
//! atomic add per allocation is a cost the product does not pay.

/// mimalloc instead of the system allocator: the hot paths (events into rooms, API reads)
/// allocate many small short-lived values, and glibc malloc spent 12 % of an API read in
/// `malloc`/`free`. Set in the library, so tests and benches measure what the binary runs.
#[cfg(not(feature = "heap-count"))]
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[cfg(feature = "heap-count")]
#[global_allocator]
static ALLOCATOR: cap::Cap<mimalloc::MiMalloc> = cap::Cap::new(mimalloc::MiMalloc, usize::MAX);

/// Turns transparent huge pages off for this process (Linux; elsewhere nothing). mimalloc asks
/// for them on its arenas (`madvise(MADV_HUGEPAGE)`), and the kernel then zeroes a whole 2 MiB
/// page at the first touch of any byte in it; mimalloc gives freed pages back after a second,
/// and a saturated instance's reads land in fresh memory, so it zeroed the same pages again and
/// again: 11.6 % of its CPU in `clear_page_erms`, 2.0 % with this (perf, `fleet_events`; see
/// docs/benchmarks.md). The flag holds for regions already advised, and is inherited by child
/// processes. `MIMALLOC_ALLOW_THP` in the environment, mimalloc's own setting, leaves the choice
/// to mimalloc (`1`: huge pages). Whether the flag was set.
pub fn no_huge_pages() -> bool {
    #[cfg(target_os = "linux")]
    {
        std::env::var_os("MIMALLOC_ALLOW_THP").is_none()
            && rustix::thread::disable_transparent_huge_pages(true).is_ok()
    }
    #[cfg(not(target_os = "linux"))]
    {
        false
    }
}

/// The bytes allocated and not freed, when the `heap-count` feature counts them.
pub fn live_bytes() -> Option<u64> {
    #[cfg(feature = "heap-count")]
    {
        Some(ALLOCATOR.allocated() as u64)
    }
    #[cfg(not(feature = "heap-count"))]
    {
        None
    }
}

#[cfg(all(test, feature = "heap-count"))]
mod tests {
    #[test]
    fn the_live_heap_counts_what_is_held_and_not_what_was_freed() {
        let before = super::live_bytes().unwrap_or(0);
        let held = vec![7u8; 8 << 20];
        let during = super::live_bytes().unwrap_or(0);
        assert!(
            during >= before + (8 << 20) - (1 << 20),
            "{before} -> {during}"
        );
        drop(held);
        let after = super::live_bytes().unwrap_or(0);
        assert!(after < during - (7 << 20), "{during} -> {after}");
    }
}
