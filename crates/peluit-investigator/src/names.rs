//! Attachment names made safe to write on the desk, and warnings for file types that can
//! carry active content or revealing metadata (the desk never opens a file itself).

use std::collections::BTreeSet;

/// Longest file name written, in bytes (most file systems allow 255).
const MAX_NAME_BYTES: usize = 180;

/// Names Windows reserves for devices, with or without an extension.
const RESERVED: [&str; 22] = [
    "con", "prn", "aux", "nul", "com1", "com2", "com3", "com4", "com5", "com6", "com7", "com8",
    "com9", "lpt1", "lpt2", "lpt3", "lpt4", "lpt5", "lpt6", "lpt7", "lpt8", "lpt9",
];

fn is_unsafe_char(c: char) -> bool {
    c.is_control()
        || matches!(c, '/' | '\\' | ':' | '*' | '?' | '"' | '<' | '>' | '|')
        // Bidirectional overrides and invisible characters disguise extensions
        // ("invoice\u{202e}fdp.exe" shows as "invoiceexe.pdf").
        || matches!(c, '\u{200b}'..='\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}' | '\u{feff}')
}

/// A file name that is safe on Linux, macOS and Windows: no path separators or
/// traversal, no control or invisible characters, not hidden, not a reserved device
/// name, not too long, and distinct from every name in `taken` (which it joins).
pub fn sanitise(original: &str, taken: &mut BTreeSet<String>) -> String {
    let mut name: String = original
        .chars()
        .map(|c| if is_unsafe_char(c) { '_' } else { c })
        .collect();
    // No hidden files and no "..": leading dots and spaces go; Windows drops trailing
    // dots and spaces, so they go too.
    name = name
        .trim_start_matches(['.', ' '])
        .trim_end_matches(['.', ' '])
        .to_owned();
    if name.is_empty() {
        name = "attachment".to_owned();
    }
    let stem = name
        .split('.')
        .next()
        .unwrap_or_default()
        .to_ascii_lowercase();
    if RESERVED.contains(&stem.as_str()) {
        name.insert(0, '_');
    }
    name = shorten(&name, MAX_NAME_BYTES);
    let mut candidate = name.clone();
    let mut n = 2;
    while taken.contains(&candidate.to_lowercase()) {
        let (stem, ext) = split_extension(&name);
        candidate = format!("{stem} ({n}){ext}");
        n += 1;
    }
    taken.insert(candidate.to_lowercase());
    candidate
}

fn split_extension(name: &str) -> (&str, &str) {
    match name.rfind('.') {
        Some(i) if i > 0 && name.len() - i <= 10 => (&name[..i], &name[i..]),
        _ => (name, ""),
    }
}

/// Cuts a name to `max` bytes on a character boundary, keeping a short extension.
fn shorten(name: &str, max: usize) -> String {
    if name.len() <= max {
        return name.to_owned();
    }
    let (stem, ext) = split_extension(name);
    let mut end = max.saturating_sub(ext.len());
    while !stem.is_char_boundary(end.min(stem.len())) {
        end -= 1;
    }
    format!("{}{ext}", &stem[..end.min(stem.len())])
}

/// Why a file deserves care before it is opened.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Risk {
    /// It can run code or fetch things when opened (macros, scripts, links).
    ActiveContent,
    /// It usually carries metadata that can identify the reporter (author, device,
    /// location).
    Metadata,
}

impl Risk {
    /// The warning shown next to the file, in English and Indonesian.
    pub fn warning(self) -> &'static str {
        match self {
            Self::ActiveContent => {
                "may hold active content (macros, scripts, links): do not open it on this \
                 desk; convert it with Dangerzone first / dapat berisi konten aktif: jangan \
                 dibuka di meja ini, ubah dulu dengan Dangerzone"
            }
            Self::Metadata => {
                "may carry metadata that identifies the reporter (author, device, location): \
                 strip it with mat2 before sharing / dapat memuat metadata yang mengungkap \
                 pelapor: hapus dengan mat2 sebelum dibagikan"
            }
        }
    }

    /// A short code for JSON output.
    pub fn code(self) -> &'static str {
        match self {
            Self::ActiveContent => "active-content",
            Self::Metadata => "metadata",
        }
    }
}

/// The risk of a file by its name's extension and its declared media type (either may
/// lie, so the worse of the two counts).
pub fn risk(name: &str, media_type: &str) -> Option<Risk> {
    let ext = name
        .rsplit_once('.')
        .map(|(_, e)| e.to_ascii_lowercase())
        .unwrap_or_default();
    const ACTIVE_EXT: &[&str] = &[
        "html", "htm", "xhtml", "svg", "js", "mjs", "pdf", "doc", "docx", "docm", "dot", "dotm",
        "xls", "xlsx", "xlsm", "xlsb", "ppt", "pptx", "pptm", "odt", "ods", "odp", "rtf", "exe",
        "dll", "scr", "com", "bat", "cmd", "ps1", "vbs", "js", "jar", "msi", "lnk", "hta", "apk",
        "sh", "py", "iso", "img", "zip", "rar", "7z", "tar", "gz", "chm", "xml", "eml", "msg",
    ];
    const META_EXT: &[&str] = &[
        "jpg", "jpeg", "png", "heic", "heif", "tif", "tiff", "webp", "gif", "bmp", "mp4", "mov",
        "m4v", "avi", "mkv", "3gp", "mp3", "m4a", "wav", "ogg", "opus", "aac", "amr",
    ];
    let active_type = media_type.contains("html")
        || media_type.contains("javascript")
        || media_type.contains("svg")
        || media_type == "application/pdf"
        || media_type.contains("officedocument")
        || media_type.contains("msword")
        || media_type.contains("ms-excel")
        || media_type.contains("ms-powerpoint")
        || media_type.contains("opendocument")
        || media_type.contains("executable")
        || media_type.contains("zip");
    if ACTIVE_EXT.contains(&ext.as_str()) || active_type {
        return Some(Risk::ActiveContent);
    }
    let media_kind = media_type.split('/').next().unwrap_or_default();
    if META_EXT.contains(&ext.as_str()) || matches!(media_kind, "image" | "video" | "audio") {
        return Some(Risk::Metadata);
    }
    None
}

/// A media type guessed from a file name's extension, for investigator attachments.
pub fn media_type_for(name: &str) -> &'static str {
    let ext = name
        .rsplit_once('.')
        .map(|(_, e)| e.to_ascii_lowercase())
        .unwrap_or_default();
    match ext.as_str() {
        "txt" => "text/plain",
        "pdf" => "application/pdf",
        "png" => "image/png",
        "jpg" | "jpeg" => "image/jpeg",
        "odt" => "application/vnd.oasis.opendocument.text",
        "docx" => "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
        _ => "application/octet-stream",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one(name: &str) -> String {
        sanitise(name, &mut BTreeSet::new())
    }

    #[test]
    fn traversal_control_and_reserved_names_are_neutralised() {
        assert_eq!(one("../../etc/passwd"), "_.._etc_passwd");
        assert_eq!(one(".."), "attachment");
        assert_eq!(one(".bashrc"), "bashrc");
        assert_eq!(one("a\u{7}b\nc.txt"), "a_b_c.txt");
        assert_eq!(one("CON.txt"), "_CON.txt");
        assert_eq!(one("lpt1"), "_lpt1");
        assert_eq!(one("C:\\Windows\\x.exe"), "C__Windows_x.exe");
        assert_eq!(one("invoice\u{202e}fdp.exe"), "invoice_fdp.exe");
        assert_eq!(one("trailing. . "), "trailing");
        let long = format!("{}.pdf", "é".repeat(200));
        let short = one(&long);
        assert!(short.len() <= MAX_NAME_BYTES && short.ends_with(".pdf"));
    }

    #[test]
    fn duplicate_names_get_numbers() {
        let mut taken = BTreeSet::new();
        assert_eq!(sanitise("foto.jpg", &mut taken), "foto.jpg");
        assert_eq!(sanitise("FOTO.jpg", &mut taken), "FOTO (2).jpg");
        assert_eq!(sanitise("foto.jpg", &mut taken), "foto (3).jpg");
    }

    #[test]
    fn risky_types_are_flagged() {
        assert_eq!(
            risk("kontrak.docx", "application/octet-stream"),
            Some(Risk::ActiveContent)
        );
        assert_eq!(risk("x.bin", "text/html"), Some(Risk::ActiveContent));
        assert_eq!(risk("foto.JPG", "image/jpeg"), Some(Risk::Metadata));
        assert_eq!(risk("catatan.txt", "text/plain"), None);
    }
}
