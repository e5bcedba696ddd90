//! The server's log format. Nothing in it can identify a reporter: no timestamps (a
//! precise time links a log line to a network event), no addresses, no request content.

use tracing::Level;
use tracing_subscriber::EnvFilter;
use tracing_subscriber::filter::Targets;
use tracing_subscriber::fmt::MakeWriter;

/// Installs the global subscriber writing to `writer`, filtered by `RUST_LOG` (default
/// `info`) and by [`dependency_cap`]. Used by the binary (stderr) and by tests that capture
/// the log.
pub fn init<W>(writer: W) -> Result<(), tracing_subscriber::util::TryInitError>
where
    W: for<'a> MakeWriter<'a> + Send + Sync + 'static,
{
    use tracing_subscriber::layer::SubscriberExt as _;
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
        .with(dependency_cap())
        .try_init()
}

/// Whatever `RUST_LOG` says, libraries log warnings and errors only: at debug and trace
/// levels sled prints store keys (upload ids, hashes) and the HTTP stack prints request
/// details. Peluit's own lines follow `RUST_LOG`: a target matches by prefix, so `peluit`
/// covers the `peluit::http` request log and every `peluit_*` crate.
fn dependency_cap() -> Targets {
    Targets::new()
        .with_default(Level::WARN)
        .with_target("peluit", Level::TRACE)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn libraries_never_log_below_warn_and_peluit_follows_rust_log() {
        let cap = dependency_cap();
        for target in [
            "sled::tree",
            "hyper::proto::h1",
            "h2::codec",
            "axum::rejection",
        ] {
            assert!(!cap.would_enable(target, &Level::INFO), "{target}");
            assert!(!cap.would_enable(target, &Level::TRACE), "{target}");
            assert!(cap.would_enable(target, &Level::WARN), "{target}");
        }
        for target in [
            "peluit::http",
            "peluit_server::api",
            "peluit_store::sled_store",
            "peluit_proto::seal",
        ] {
            assert!(cap.would_enable(target, &Level::TRACE), "{target}");
        }
    }
}
