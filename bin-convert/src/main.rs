use std::process::ExitCode;

fn main() -> ExitCode {
    let result = bin_convert::run(std::env::args_os(), &mut std::io::stdout().lock());
    xitc_common::exit::report(bin_convert::TOOL, result)
}
