//! The server's log format. Nothing in it can identify a reporter: no timestamps (a
//! precise time links a log line to a network event), no addresses, no request content.

use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::MakeWriter;

/// Installs the global subscriber writing to `writer`, filtered by `RUST_LOG` (default
/// `info`). Used by the binary (stderr) and by tests that capture the log.
pub fn init<W>(writer: W) -> Result<(), tracing_subscriber::util::TryInitError>
where
    W: for<'a> MakeWriter<'a> + Send + Sync + 'static,
{
    use tracing_subscriber::util::SubscriberInitExt as _;
    tracing_subscriber::fmt()
        .without_time()
        .with_ansi(false)
        .with_target(true)
        .with_writer(writer)
        .with_env_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")),
        )
        .finish()
        .try_init()
}
