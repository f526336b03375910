use std::process::ExitCode;

fn main() -> ExitCode {
    let result = bin_wait_done::run(
        std::env::args_os(),
        &bin_wait_done::Environment::from_process(),
        &mut std::io::stdout().lock(),
        &mut std::io::stderr().lock(),
    );
    xitc_common::exit::report(bin_wait_done::TOOL, result)
}
