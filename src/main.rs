//! The `dashcam-server` binary: the command line, run by `app`.

fn main() -> std::process::ExitCode {
    dashcam_server::app::main()
}
