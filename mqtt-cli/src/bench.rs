//! `mqtt bench`.
use crate::args::BenchArgs;
use crate::error::CliError;

/// Runs `mqtt bench`.
pub(crate) async fn run(_args: BenchArgs) -> Result<(), CliError> {
    Ok(())
}
