//! The offline HTML view of the desk, in Indonesian and English: an index of all cases
//! and one page per case. No script and no remote resource; a CSP meta tag forbids both.

use std::path::Path;

use peluit_proto::manifest::FormDefinition;

use crate::casefile::{CaseMeta, NOT_RECEIVED, category_label};
use crate::desk::Desk;
use crate::error::DeskResult;
use crate::fsutil;

/// The policy every page carries: nothing may load or run, inline styles aside.
const CSP: &str = "default-src 'none'; style-src 'unsafe-inline'; img-src 'none'; \
                   form-action 'none'; base-uri 'none'";

const STYLE: &str = "body{font-family:sans-serif;max-width:60em;margin:1em auto;padding:0 1em}\
table{border-collapse:collapse;width:100%}td,th{border:1px solid #999;padding:.3em;text-align:left}\
pre{white-space:pre-wrap;background:#f4f4f4;padding:.5em}.warn{color:#8a0000}";

/// Escapes text for HTML element content and attribute values.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            _ => out.push(c),
        }
    }
    out
}

fn page(title: &str, body: &str) -> String {
    format!(
        "<!DOCTYPE html>\n<html lang=\"id\">\n<head>\n<meta charset=\"utf-8\">\n\
         <meta http-equiv=\"Content-Security-Policy\" content=\"{CSP}\">\n\
         <meta name=\"referrer\" content=\"no-referrer\">\n<title>{}</title>\n\
         <style>{STYLE}</style>\n</head>\n<body>\n{body}</body>\n</html>\n",
        escape(title)
    )
}

/// The status in both languages.
pub fn status_label(status: &str) -> &'static str {
    match status {
        "received" => "Diterima / Received",
        "in-review" => "Sedang ditelaah / In review",
        "forwarded" => "Diteruskan / Forwarded",
        "closed" => "Ditutup / Closed",
        _ => "?",
    }
}

/// Writes `index.html` at the desk's root, listing every case (newest received first).
pub fn write_index(desk: &Desk, form: Option<&FormDefinition>) -> DeskResult<()> {
    let mut metas = Vec::new();
    for id in desk.case_ids()? {
        metas.push(CaseMeta::load(&desk.case_dir(id))?);
    }
    metas.sort_by(|a, b| b.received.cmp(&a.received).then(a.case.cmp(&b.case)));
    let mut body = String::from(
        "<h1>Kasus / Cases</h1>\n<p>Halaman ini luring: tanpa skrip, tanpa sumber jarak jauh. \
         / This page is offline: no script, no remote resource.</p>\n",
    );
    if metas.is_empty() {
        body.push_str("<p>Belum ada kasus. / No cases yet.</p>\n");
    } else {
        body.push_str(
            "<table>\n<tr><th>Kasus / Case</th><th>Diterima / Received</th>\
             <th>Dilaporkan / Reported</th><th>Jenis / Category</th><th>Status</th>\
             <th>Tindak lanjut belum dibaca / Unread follow-ups</th>\
             <th>Lampiran / Attachments</th></tr>\n",
        );
        for meta in &metas {
            let category = match (&meta.category, form) {
                (Some(c), Some(form)) => category_label(form, c),
                (Some(c), None) => c.clone(),
                (None, _) => "-".to_owned(),
            };
            let mut status = status_label(&meta.status).to_owned();
            if meta.withdrawn {
                status.push_str(" (ditarik / withdrawn)");
            }
            body.push_str(&format!(
                "<tr><td><a href=\"cases/{id}/index.html\">{id}</a></td><td>{}</td><td>{}</td>\
                 <td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>\n",
                meta.received,
                meta.reported,
                escape(&category),
                escape(&status),
                meta.unread_follow_ups,
                escape(&meta.attachments_summary()),
                id = meta.case,
            ));
        }
        body.push_str("</table>\n");
    }
    fsutil::write_atomic(
        &desk.root().join("index.html"),
        page("Peluit", &body).as_bytes(),
    )
}

/// Writes `index.html` inside one case folder.
pub fn write_case_page(
    dir: &Path,
    meta: &CaseMeta,
    form: Option<&FormDefinition>,
) -> DeskResult<()> {
    fsutil::write_atomic(
        &dir.join("index.html"),
        case_page(dir, meta, form).as_bytes(),
    )
}

/// The page of one case folder (which may still be a temporary folder).
pub fn case_page(dir: &Path, meta: &CaseMeta, form: Option<&FormDefinition>) -> String {
    let report = std::fs::read_to_string(dir.join("report.txt")).unwrap_or_default();
    let mut body = format!(
        "<p><a href=\"../../index.html\">&larr; Semua kasus / All cases</a></p>\n\
         <h1>Kasus / Case {}</h1>\n<p>Status: {}</p>\n",
        meta.case,
        escape(status_label(&meta.status))
    );
    if let (Some(category), Some(form)) = (&meta.category, form) {
        body.push_str(&format!(
            "<p>Jenis / Category: {}</p>\n",
            escape(&category_label(form, category))
        ));
    }
    body.push_str(&format!(
        "<h2>Laporan / Report</h2>\n<pre>{}</pre>\n",
        escape(&report)
    ));
    body.push_str("<h2>Lampiran / Attachments</h2>\n");
    if meta.attachments.is_empty() {
        body.push_str("<p>-</p>\n");
    } else {
        // Names only, no links: a click would open the file in the browser, and the desk
        // never opens an attachment itself.
        body.push_str("<ul>\n");
        for a in &meta.attachments {
            let state = if a.stored {
                format!("attachments/{}", a.file)
            } else {
                NOT_RECEIVED.to_owned()
            };
            body.push_str(&format!(
                "<li>{} ({}, {}, {}) &mdash; <code>{}</code>",
                escape(&a.original_name),
                escape(&a.size_label()),
                escape(&a.media_type),
                escape(&a.source),
                escape(&state)
            ));
            if let Some(warning) = a.warning() {
                body.push_str(&format!(
                    "<br><span class=\"warn\">{}</span>",
                    escape(warning)
                ));
            }
            body.push_str("</li>\n");
        }
        body.push_str("</ul>\n");
    }
    body.push_str("<h2>Pesan / Messages</h2>\n");
    if meta.messages.is_empty() {
        body.push_str("<p>-</p>\n");
    }
    for m in &meta.messages {
        let text = std::fs::read_to_string(dir.join("messages").join(&m.file)).unwrap_or_default();
        body.push_str(&format!(
            "<h3>{} &middot; {} &middot; #{}</h3>\n<pre>{}</pre>\n",
            m.date,
            escape(&m.kind),
            m.seq,
            escape(&text)
        ));
    }
    page(&format!("Kasus {}", meta.case), &body)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pages_carry_no_script_and_escape_text() {
        let html = page("<x>", "<p>a</p>");
        assert!(html.contains("&lt;x&gt;"));
        assert!(!html.to_lowercase().contains("<script"));
        assert!(html.contains("default-src 'none'"));
        assert_eq!(
            escape("<a href='x'>&\""),
            "&lt;a href=&#39;x&#39;&gt;&amp;&quot;"
        );
    }
}
