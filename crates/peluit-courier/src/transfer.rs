//! Pull and push over HTTP(S). A pull streams the export into a `.part` file on the stick,
//! verifies the whole bundle with proto, and only then renames it and advances the
//! cursor; a push verifies a reply bundle before uploading it.

use std::fs::{self, File};
use std::io::{BufReader, BufWriter, Read, Write as _};
use std::path::{Path, PathBuf};
use std::time::Duration;

use indicatif::ProgressBar;
use peluit_proto::bundle::{BundleKind, BundleReader, BundleSummary};
use peluit_proto::ids::InstitutionId;
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use crate::error::{CourierError, CourierResult};

/// Header carrying the export's upper cursor (server `CURSOR_HEADER`).
const CURSOR_HEADER: &str = "peluit-cursor-to";

/// A bearer token, wiped on drop and never printed.
pub struct Token(Zeroizing<String>);

impl std::fmt::Debug for Token {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Token([redacted])")
    }
}

/// The environment variable holding the token when no file is named.
pub const TOKEN_ENV: &str = "PELUIT_TOKEN";

impl Token {
    /// Reads the token from `file`, else from [`TOKEN_ENV`].
    pub fn obtain(file: Option<&Path>) -> CourierResult<Self> {
        let text = match file {
            Some(path) => Zeroizing::new(
                fs::read_to_string(path)
                    .map_err(|e| CourierError::io("read the token file", path, &e))?,
            ),
            None => Zeroizing::new(std::env::var(TOKEN_ENV).map_err(|_| {
                CourierError::new(
                    "no-token",
                    "no access token",
                    format!("name the token file with --token-file, or set {TOKEN_ENV}"),
                )
            })?),
        };
        let token = text.trim();
        if token.is_empty() || !token.bytes().all(|c| c.is_ascii_graphic()) {
            return Err(CourierError::new(
                "bad-token",
                "the access token is empty or holds spaces or control characters",
                "copy the token exactly as the server's operator issued it",
            ));
        }
        Ok(Self(Zeroizing::new(token.to_owned())))
    }

    fn header(&self) -> Zeroizing<String> {
        Zeroizing::new(format!("Bearer {}", self.0.as_str()))
    }
}

/// The courier's memory on the stick: where the last pull ended.
#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CourierState {
    /// Always 1.
    pub version: u64,
    /// The next export starts here.
    pub cursor: u64,
}

fn state_path(dir: &Path, institution: &InstitutionId) -> PathBuf {
    dir.join(format!("courier-state-{institution}.json"))
}

/// Reads the cursor kept on the stick (0 before the first pull).
pub fn read_state(dir: &Path, institution: &InstitutionId) -> CourierResult<CourierState> {
    let path = state_path(dir, institution);
    match fs::read(&path) {
        Ok(bytes) => serde_json::from_slice(&bytes).map_err(|_| {
            CourierError::new(
                "damaged-state",
                format!("{} could not be read", path.display()),
                "delete it to pull everything again from the start (the desk skips what it has)",
            )
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(CourierState {
            version: 1,
            cursor: 0,
        }),
        Err(e) => Err(CourierError::io("read", &path, &e)),
    }
}

fn write_state(dir: &Path, institution: &InstitutionId, state: &CourierState) -> CourierResult<()> {
    let path = state_path(dir, institution);
    let temp = path.with_extension("json.tmp");
    let bytes = serde_json::to_vec_pretty(state).unwrap_or_default();
    fs::write(&temp, bytes)
        .and_then(|()| fs::rename(&temp, &path))
        .map_err(|e| CourierError::io("write", &path, &e))
}

fn client() -> CourierResult<reqwest::blocking::Client> {
    reqwest::blocking::Client::builder()
        .connect_timeout(Duration::from_secs(30))
        // No whole-request timeout: a large export over Tor takes long; a stalled
        // transfer is interrupted by the person and resumed by the next pull.
        .timeout(None)
        .user_agent("peluit-courier")
        .build()
        .map_err(|_| CourierError::new("client", "could not set up HTTPS", "report this as a bug"))
}

fn url(server: &str, institution: &InstitutionId, rest: &str) -> String {
    format!(
        "{}/api/v1/institutions/{institution}{rest}",
        server.trim_end_matches('/')
    )
}

fn unreachable(server: &str, error: &reqwest::Error) -> CourierError {
    let what = if error.is_timeout() {
        "the server did not answer in time"
    } else if error.is_connect() {
        "could not connect to the server"
    } else {
        "the connection to the server broke"
    };
    CourierError::new(
        "unreachable",
        format!("{what} ({server})"),
        "check the network and the --server address, then run the same command again",
    )
}

/// Turns a non-2xx answer into an error with the server's stable code.
fn refused(response: reqwest::blocking::Response) -> CourierError {
    let status = response.status().as_u16();
    let code = response
        .json::<serde_json::Value>()
        .ok()
        .and_then(|v| v["code"].as_str().map(str::to_owned))
        .unwrap_or_default();
    let next = match status {
        401 | 403 => "check the token: it must be an investigator token of this institution",
        404 => "check --server and --institution",
        409 => "the server holds a newer state: pull and import first, then reply again",
        413 => "the bundle is larger than the server accepts: send fewer replies per bundle",
        _ => "try again later; if it persists, tell the server's operator this code",
    };
    CourierError::new(
        "refused",
        format!("the server refused the request: HTTP {status} {code}"),
        next,
    )
}

/// What a pull brought.
#[derive(Debug, Serialize)]
pub struct Pulled {
    /// The bundle on the stick, if anything was new.
    pub bundle: Option<PathBuf>,
    /// Export cursor range covered.
    pub cursor_from: u64,
    /// The next pull starts here.
    pub cursor_to: u64,
    /// Cases in the bundle.
    pub cases: u64,
    /// Attachments in it.
    pub attachments: u64,
    /// Follow-ups in it.
    pub follow_ups: u64,
    /// Bytes downloaded.
    pub bytes: u64,
}

/// Downloads everything new since the stick's cursor as one bundle into `dir`.
pub fn pull(
    server: &str,
    institution: &InstitutionId,
    token: &Token,
    dir: &Path,
    bar: &ProgressBar,
) -> CourierResult<Pulled> {
    let state = read_state(dir, institution)?;
    let part = dir.join(format!(
        ".export-{institution}-{}.bundle.part",
        state.cursor
    ));
    let response = client()?
        .get(url(
            server,
            institution,
            &format!("/export?since={}", state.cursor),
        ))
        .header(reqwest::header::AUTHORIZATION, token.header().as_str())
        .send()
        .map_err(|e| unreachable(server, &e))?;
    if !response.status().is_success() {
        return Err(refused(response));
    }
    if let Some(len) = response.content_length() {
        bar.set_length(len);
    }
    let announced: Option<u64> = response
        .headers()
        .get(CURSOR_HEADER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok());
    // A broken transfer leaves the .part file; the cursor does not move, so the next
    // pull asks for the same range again and nothing is lost.
    let bytes = download(response, &part, bar, server)?;
    let summary = verify_file(&part, BundleKind::Export, institution).inspect_err(|_| {
        let _ = fs::remove_file(&part);
    })?;
    if announced.is_some_and(|c| c != summary.header.cursor_to) {
        let _ = fs::remove_file(&part);
        return Err(CourierError::new(
            "cursor-mismatch",
            "the bundle's cursor differs from what the server announced",
            "run the pull again",
        ));
    }
    let news = summary.cases + summary.attachments + summary.follow_ups + summary.deletes;
    let header = &summary.header;
    let bundle = if news == 0 && header.cursor_to == state.cursor {
        let _ = fs::remove_file(&part);
        None
    } else {
        let path = dir.join(format!(
            "export-{institution}-{:012}-{:012}.bundle",
            header.cursor_from, header.cursor_to
        ));
        fs::rename(&part, &path).map_err(|e| CourierError::io("write", &path, &e))?;
        Some(path)
    };
    write_state(
        dir,
        institution,
        &CourierState {
            version: 1,
            cursor: header.cursor_to,
        },
    )?;
    bar.finish_and_clear();
    Ok(Pulled {
        bundle,
        cursor_from: header.cursor_from,
        cursor_to: header.cursor_to,
        cases: summary.cases,
        attachments: summary.attachments,
        follow_ups: summary.follow_ups,
        bytes,
    })
}

fn download(
    mut response: reqwest::blocking::Response,
    part: &Path,
    bar: &ProgressBar,
    server: &str,
) -> CourierResult<u64> {
    let file = File::create(part).map_err(|e| CourierError::io("write", part, &e))?;
    let mut out = BufWriter::with_capacity(256 * 1024, file);
    let mut buf = vec![0u8; 256 * 1024];
    let mut total = 0u64;
    loop {
        let n = match response.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(_) => {
                return Err(CourierError::new(
                    "transfer-broken",
                    format!("the download from {server} broke after {total} bytes"),
                    "run the same pull again: the cursor did not move, nothing is lost",
                ));
            }
        };
        out.write_all(&buf[..n])
            .map_err(|e| CourierError::io("write", part, &e))?;
        total += n as u64;
        bar.inc(n as u64);
    }
    let file = out
        .into_inner()
        .map_err(|e| CourierError::io("write", part, e.error()))?;
    file.sync_all()
        .map_err(|e| CourierError::io("write", part, &e))?;
    Ok(total)
}

/// Verifies a bundle file completely (framing, digests, End frame) and its kind and
/// institution (docs/protocol.md#bundle).
pub fn verify_file(
    path: &Path,
    kind: BundleKind,
    institution: &InstitutionId,
) -> CourierResult<BundleSummary> {
    let file = File::open(path).map_err(|e| CourierError::io("read", path, &e))?;
    let summary =
        BundleReader::verify(BufReader::with_capacity(256 * 1024, file)).map_err(|e| {
            CourierError::new(
                "bad-bundle",
                format!("{} is not a complete, intact bundle: {e}", path.display()),
                match kind {
                    BundleKind::Export => "run the pull again",
                    BundleKind::Reply => "write the reply bundle again on the desk",
                },
            )
        })?;
    if summary.header.kind != kind {
        return Err(CourierError::new(
            "wrong-kind",
            format!(
                "{} is an {} bundle",
                path.display(),
                summary.header.kind.as_str()
            ),
            match kind {
                BundleKind::Export => "pull writes export bundles; this one belongs elsewhere",
                BundleKind::Reply => {
                    "push takes the reply bundle the desk wrote with `bundle --out`"
                }
            },
        ));
    }
    if &summary.header.institution != institution {
        return Err(CourierError::new(
            "wrong-institution",
            format!(
                "the bundle is for {}, not {institution}",
                summary.header.institution
            ),
            "check --institution and the bundle file",
        ));
    }
    Ok(summary)
}

/// What the server said to a push.
#[derive(Debug, Serialize, Deserialize)]
pub struct Pushed {
    /// Replies in the bundle (already stored ones count too).
    pub replies: u64,
    /// Cases deleted.
    pub deleted: u64,
    /// The manifest serial now current, if the bundle carried one.
    pub manifest_serial: Option<u64>,
}

/// Verifies a reply bundle and uploads it.
pub fn push(
    server: &str,
    institution: &InstitutionId,
    token: &Token,
    bundle: &Path,
    bar: &ProgressBar,
) -> CourierResult<Pushed> {
    // Only a complete reply bundle of this institution travels. docs/protocol.md#bundle
    verify_file(bundle, BundleKind::Reply, institution)?;
    let file = File::open(bundle).map_err(|e| CourierError::io("read", bundle, &e))?;
    let len = file.metadata().map(|m| m.len()).unwrap_or(0);
    bar.set_length(len);
    let body = reqwest::blocking::Body::sized(bar.wrap_read(file), len);
    let response = client()?
        .post(url(server, institution, "/replies"))
        .header(reqwest::header::AUTHORIZATION, token.header().as_str())
        .header(reqwest::header::CONTENT_TYPE, "application/octet-stream")
        .body(body)
        .send()
        .map_err(|e| unreachable(server, &e))?;
    if !response.status().is_success() {
        return Err(refused(response));
    }
    bar.finish_and_clear();
    let pushed: Pushed = response.json().map_err(|_| {
        CourierError::new(
            "bad-answer",
            "the server's answer could not be read",
            "check that --server points at a Peluit server",
        )
    })?;
    Ok(pushed)
}
