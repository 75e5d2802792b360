fn main() {
    std::process::exit(dashcam_server::cli::main());
}
