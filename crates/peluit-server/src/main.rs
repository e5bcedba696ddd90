//! `peluit-server`: the online drop box. The HTTP API and the demo institution are not
//! built yet; until they are, this binary says so and exits with an error.

fn main() -> std::process::ExitCode {
    eprintln!("peluit-server: the server is not built yet; only the protocol crate exists so far.");
    eprintln!("Next step: see the open server issue, or run the tests with ./tests/run.sh.");
    std::process::ExitCode::FAILURE
}
