use std::process::ExitCode;

fn main() -> ExitCode {
    let result = bin_print_stamp::run(std::env::args_os(), &mut std::io::stdout().lock());
    xitc_common::exit::report(bin_print_stamp::TOOL, result)
}
