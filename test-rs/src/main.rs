use std::process::ExitCode;

fn main() -> ExitCode {
    let result = test_rs::run(std::env::args_os());
    xitc_common::exit::report(test_rs::TOOL, result)
}
