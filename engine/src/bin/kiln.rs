//! The `kiln` binary: executors, `kiln sql` and `kiln shell` (see [`kiln::cli`]).

use std::process::ExitCode;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    kiln::cli::main(&args)
}
