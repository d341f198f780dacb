//! `lessor server` with the test engine available as mount type `lessor-test`: for the
//! lease manager's process-level tests and benchmarks only.

// The shipped binary's allocator, so that the benchmarks run on this binary measure what
// `lessor` would do.
#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    // Accept both `lessor-test-server server -dev ...` and `lessor-test-server -dev ...`.
    let args = match args.first().map(String::as_str) {
        Some("server") => args[1..].to_vec(),
        _ => args,
    };
    std::process::exit(lessor_server::serve_with(
        args,
        lessor_engine_test::factories(),
    ));
}
