fn main() -> std::process::ExitCode {
    vibee_sessions::cli::main()
}
