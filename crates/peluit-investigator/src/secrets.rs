//! Passphrases and passphrase-protected key files: a passphrase comes from a file named by
//! a flag, an environment variable, or the terminal, never from a command-line value.
//!
//! Key files are age messages encrypted to the passphrase (age's scrypt recipient, a
//! reviewed primitive); their plaintext is a short line-based text, wiped after use.

use std::io::{Read as _, Write as _};
use std::path::{Path, PathBuf};

use age::secrecy::SecretString;
use zeroize::{Zeroize as _, Zeroizing};

use crate::error::{DeskError, DeskResult};
use crate::fsutil;

/// Shortest passphrase accepted for a new key file.
pub const MIN_PASSPHRASE_CHARS: usize = 12;

/// The environment variable a script or test may use instead of the terminal.
pub const PASSPHRASE_ENV: &str = "PELUIT_PASSPHRASE";

/// Lowers the scrypt cost of new key files to 2^10 when set to `1`. Only for tests: a
/// key file written this way is cheap to brute-force.
pub const DANGEROUS_LOW_COST_ENV: &str = "PELUIT_DANGEROUSLY_LOW_KDF_COST";

/// A passphrase. Not `Clone`, redacted in `Debug`, wiped on drop.
pub struct Passphrase(Zeroizing<String>);

impl std::fmt::Debug for Passphrase {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Passphrase([redacted])")
    }
}

impl Passphrase {
    /// A passphrase from text the caller already holds (tests, other front ends).
    pub fn from_text(text: Zeroizing<String>) -> Self {
        Self(text)
    }

    fn secret(&self) -> SecretString {
        SecretString::from(self.0.as_str().to_owned())
    }
}

/// Where a passphrase comes from, in order: the file, the environment, the terminal.
#[derive(Debug, Clone, Default)]
pub struct PassphraseSource {
    /// `--passphrase-file`.
    pub file: Option<PathBuf>,
    /// Whether [`PASSPHRASE_ENV`] may be read.
    pub allow_env: bool,
}

impl PassphraseSource {
    /// Reads the passphrase for an existing key file.
    pub fn existing(&self, what: &str) -> DeskResult<Passphrase> {
        self.obtain(what, false)
    }

    /// Reads a passphrase for a new key file: asked twice on a terminal, and at least
    /// [`MIN_PASSPHRASE_CHARS`] characters from any source.
    pub fn new_passphrase(&self, what: &str) -> DeskResult<Passphrase> {
        let passphrase = self.obtain(what, true)?;
        if passphrase.0.chars().count() < MIN_PASSPHRASE_CHARS {
            return Err(DeskError::new(
                "weak-passphrase",
                format!(
                    "the passphrase for {what} is shorter than {MIN_PASSPHRASE_CHARS} characters"
                ),
                "choose a longer passphrase, for example five random words",
            ));
        }
        Ok(passphrase)
    }

    fn obtain(&self, what: &str, confirm: bool) -> DeskResult<Passphrase> {
        if let Some(path) = &self.file {
            let mut text = Zeroizing::new(String::new());
            std::fs::File::open(path)
                .and_then(|mut f| f.read_to_string(&mut text))
                .map_err(|e| DeskError::io("read the passphrase file", path, &e))?;
            // One trailing line break is the file's, not the passphrase's.
            let trimmed = text.strip_suffix('\n').unwrap_or(&text);
            let trimmed = trimmed.strip_suffix('\r').unwrap_or(trimmed);
            return Ok(Passphrase(Zeroizing::new(trimmed.to_owned())));
        }
        if self.allow_env
            && let Ok(text) = std::env::var(PASSPHRASE_ENV)
        {
            return Ok(Passphrase(Zeroizing::new(text)));
        }
        let no_terminal = |_| {
            DeskError::new(
                "no-passphrase",
                format!("no passphrase for {what}: no terminal to ask on"),
                format!(
                    "run it in a terminal, or name a file with --passphrase-file, or set {PASSPHRASE_ENV}"
                ),
            )
        };
        let first = Zeroizing::new(
            rpassword::prompt_password(format!("Passphrase for {what}: ")).map_err(no_terminal)?,
        );
        if confirm {
            let second = Zeroizing::new(
                rpassword::prompt_password("Repeat the passphrase: ").map_err(no_terminal)?,
            );
            if *first != *second {
                return Err(DeskError::new(
                    "passphrase-mismatch",
                    "the two passphrases differ",
                    "run the command again and type the same passphrase twice",
                ));
            }
        }
        Ok(Passphrase(first))
    }
}

/// Highest scrypt cost (log2 N) accepted when opening a key file: 2^22 is about 16 s of
/// work on the slowest desk, far above the ~1 s cost age picks when writing.
const MAX_KEY_FILE_WORK_FACTOR: u8 = 22;

/// Encrypts `plaintext` to `passphrase` with age's scrypt recipient.
pub fn seal_to_passphrase(plaintext: &[u8], passphrase: &Passphrase) -> DeskResult<Vec<u8>> {
    let mut recipient = age::scrypt::Recipient::new(passphrase.secret());
    if std::env::var(DANGEROUS_LOW_COST_ENV).is_ok_and(|v| v == "1") {
        recipient.set_work_factor(10);
    }
    let failed = |_| {
        DeskError::new(
            "encrypt-failed",
            "could not encrypt the key file",
            "try again; if it persists, report a bug",
        )
    };
    let encryptor =
        age::Encryptor::with_recipients(std::iter::once(&recipient as &dyn age::Recipient))
            .map_err(|_| {
                DeskError::new(
                    "encrypt-failed",
                    "could not encrypt the key file",
                    "try again; if it persists, report a bug",
                )
            })?;
    let mut out = Vec::new();
    let mut writer = encryptor.wrap_output(&mut out).map_err(failed)?;
    writer.write_all(plaintext).map_err(failed)?;
    writer.finish().map_err(failed)?;
    Ok(out)
}

/// Decrypts a key file made by [`seal_to_passphrase`]. A wrong passphrase and a damaged
/// file are told apart only as far as age does.
pub fn open_with_passphrase(
    ciphertext: &[u8],
    passphrase: &Passphrase,
    path: &Path,
) -> DeskResult<Zeroizing<Vec<u8>>> {
    let not_key_file = || {
        DeskError::new(
            "not-a-key-file",
            format!("{} is not a passphrase-protected key file", path.display()),
            "check the path; key files are written by `peluit-investigator keygen`",
        )
    };
    let decryptor = age::Decryptor::new(ciphertext).map_err(|_| not_key_file())?;
    if !decryptor.is_scrypt() {
        return Err(not_key_file());
    }
    let mut identity = age::scrypt::Identity::new(passphrase.secret());
    // age refuses work factors above what this machine does in about a second *right now*,
    // so a busy desk would call a correct passphrase wrong; accept every cost the desk
    // itself may have chosen on a faster day.
    identity.set_max_work_factor(MAX_KEY_FILE_WORK_FACTOR);
    let wrong = || {
        DeskError::new(
            "wrong-passphrase",
            format!("the passphrase does not open {}", path.display()),
            "type the passphrase again (check the keyboard layout); nothing was changed",
        )
    };
    let mut reader = decryptor
        .decrypt(std::iter::once(&identity as &dyn age::Identity))
        .map_err(|_| wrong())?;
    let mut plaintext = Zeroizing::new(Vec::new());
    reader
        .read_to_end(&mut plaintext)
        .map_err(|_| not_key_file())?;
    Ok(plaintext)
}

/// Writes a new key file with owner-only permissions; refuses to replace one.
pub fn write_key_file(path: &Path, plaintext: &[u8], passphrase: &Passphrase) -> DeskResult<()> {
    if path.exists() {
        return Err(DeskError::new(
            "exists",
            format!("{} already exists", path.display()),
            "move the old key file away first, or choose another path",
        ));
    }
    let sealed = seal_to_passphrase(plaintext, passphrase)?;
    fsutil::write_atomic_private(path, &sealed)
}

/// Reads and decrypts a key file.
pub fn read_key_file(path: &Path, passphrase: &Passphrase) -> DeskResult<Zeroizing<Vec<u8>>> {
    let mut sealed = std::fs::read(path).map_err(|e| {
        let mut error = DeskError::io("read the key file", path, &e);
        if e.kind() == std::io::ErrorKind::NotFound {
            error.next = "make keys with `peluit-investigator keygen` or pass the key file's path"
                .to_owned();
        }
        error
    })?;
    let result = open_with_passphrase(&sealed, passphrase, path);
    // Clear intermediates
    sealed.zeroize();
    result
}
