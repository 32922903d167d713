//! The `adgan` command: a thin shell over the library (see `cli.rs`).

mod cli;

use clap::Parser;

fn main() {
    restore_default_sigpipe();
    keep_freed_memory_mapped();
    let cli = cli::Cli::parse();
    if let Err(err) = cli::run(cli) {
        eprintln!("error: {err:#}");
        std::process::exit(1);
    }
}

/// Rust ignores SIGPIPE, so `adgan ... | head -1` would panic on its next `println!`; with the
/// default action the process ends quietly when the reader goes away, as Unix tools do.
fn restore_default_sigpipe() {
    #[cfg(unix)]
    // SAFETY: called first thing in main, before any thread exists; SIG_DFL is a valid action.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
}

/// libtorch frees and reallocates every activation and gradient buffer each step. With glibc's
/// defaults, buffers above the (adaptive) mmap threshold are mapped and unmapped every time and
/// the heap top is handed back to the kernel, so each step touches fresh zeroed pages and
/// training ran slower than PyTorch. Serving buffers up to 16 MiB from the heap and keeping up
/// to 64 MiB of freed heap removes most of those page faults (figures in BENCHMARKS.md, "Where
/// a step spends its time"). glibc's own `MALLOC_MMAP_THRESHOLD_` or `MALLOC_TRIM_THRESHOLD_`,
/// when set, take precedence.
fn keep_freed_memory_mapped() {
    let user_tuned = ["MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_"]
        .iter()
        .any(|v| std::env::var_os(v).is_some());
    if user_tuned {
        return;
    }
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only changes allocator parameters; it runs first thing in main, before
    // any other thread exists.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 16 << 20);
        libc::mallopt(libc::M_TRIM_THRESHOLD, 64 << 20);
    }
}
