use std::process::ExitCode;

fn main() -> ExitCode {
    // Not `stdout().lock()`: the log prints from the download threads too, and a
    // lock held here for the whole run would block them forever.
    let result = bin_convert::run(std::env::args_os(), &mut std::io::stdout());
    xitc_common::exit::report(bin_convert::TOOL, result)
}
