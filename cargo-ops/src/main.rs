fn main() -> std::process::ExitCode {
    cargo_ops::main()
}
