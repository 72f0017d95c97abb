//! `wardgate-bench`: see `wardgate_bench` for what it measures and how.

use std::process::ExitCode;

fn main() -> ExitCode {
    match wardgate_bench::cli::main() {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(1),
        Err(e) => {
            eprintln!("wardgate-bench: {e}");
            ExitCode::from(2)
        }
    }
}
