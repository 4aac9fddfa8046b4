/// glibc's malloc was a fifth of the server's CPU under c=64 reads (many
/// small allocations freed on other threads); mimalloc's thread-local
/// free lists cost a fraction of that (docs/BENCHMARKS.md, "the allocator").
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    vibee_sessions::cli::main()
}
