use std::process::ExitCode;

use xitc_common::cloud::Env;

fn main() -> ExitCode {
    let result = bin_get_ip::run(
        std::env::args_os(),
        &Env::from_process(),
        &mut std::io::stdout().lock(),
    );
    xitc_common::exit::report(bin_get_ip::TOOL, result)
}
