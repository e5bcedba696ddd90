//! `GET /poster/{institution}`: a printable poster or leaflet for an institution (HTML to
//! print, no script): its reporting addresses with QR codes, the manifest key's
//! fingerprint words, and three lines on reporting safely, in Indonesian and English.
//!
//! The addresses are the origins of the institution's current signed manifest, so the
//! poster names exactly the addresses the page accepts.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use peluit_proto::manifest::{fingerprint_hex, fingerprint_words};
use peluit_proto::wordlist::Language;
use qrcode::QrCode;
use qrcode::render::svg;

use crate::api::html::{escape, html, page};
use crate::error::ApiError;
use crate::state::AppState;

/// An inline SVG QR code of `text`, or nothing if it cannot be encoded.
fn qr_svg(text: &str) -> String {
    let Ok(code) = QrCode::new(text.as_bytes()) else {
        return String::new();
    };
    let svg = code
        .render::<svg::Color<'_>>()
        .min_dimensions(220, 220)
        .quiet_zone(true)
        .build();
    // Inline in HTML, the XML declaration is not allowed.
    svg.split_once("?>")
        .map_or(svg.clone(), |(_, rest)| rest.to_owned())
        .replacen("<svg ", "<svg role=\"img\" aria-hidden=\"true\" ", 1)
}

/// `GET /poster/{institution}`.
pub async fn get_poster(
    State(state): State<AppState>,
    Path(institution): Path<String>,
) -> Result<Response, ApiError> {
    let institution = state.institution(&institution)?;
    let manifest = institution.current()?;
    let name = &manifest.manifest().institution.name;
    let key = &institution.config.manifest_key;
    let addresses: String = manifest
        .manifest()
        .origins
        .iter()
        .map(|origin| {
            // The institution's own address: with several institutions on one server,
            // `/` would open the first one's page.
            let url = format!("{origin}/i/{}", manifest.manifest().institution.id);
            format!(
                "<figure class=\"address\">{qr}<figcaption><code>{url}</code></figcaption></figure>\n",
                qr = qr_svg(&url),
                url = escape(&url)
            )
        })
        .collect();
    let body = format!(
        "<article class=\"poster\">\n\
         <h1>{name}</h1>\n\
         <p class=\"lead\">Laporkan dugaan korupsi secara aman dan rahasia.<br>\
         <span lang=\"en\">Report suspected corruption safely and confidentially.</span></p>\n\
         <div class=\"addresses\">\n{addresses}</div>\n\
         <h2>Kode kunci / Key code</h2>\n\
         <p class=\"words\">{words_id}</p>\n\
         <p class=\"words\" lang=\"en\">{words_en}</p>\n\
         <p class=\"small\"><code>{hex}</code></p>\n\
         <p class=\"small\">Halaman pelaporan harus menampilkan kata-kata yang sama. Jika berbeda, \
         jangan melapor di sana. <span lang=\"en\">The reporting page must show the same words. \
         If they differ, do not report there.</span></p>\n\
         <h2>Melapor dengan aman / Reporting safely</h2>\n\
         <ol class=\"safety\">\n\
         <li>Gunakan Tor Browser atau perangkat pribadi, bukan komputer atau jaringan kantor. \
         <span lang=\"en\">Use Tor Browser or a personal device, not an office computer or \
         network.</span></li>\n\
         <li>Jangan tulis nama Anda; hapus metadata dari foto dan dokumen. \
         <span lang=\"en\">Do not write your name; remove metadata from photos and \
         documents.</span></li>\n\
         <li>Simpan tanda terima (10 kata) di kertas: hanya dengan itu Anda dapat membaca \
         balasan, dan tidak ada yang dapat memulihkannya. <span lang=\"en\">Keep the receipt \
         (10 words) on paper: only with it can you read replies, and nobody can recover \
         it.</span></li>\n\
         </ol>\n\
         </article>\n",
        name = escape(name),
        words_id = fingerprint_words(key, Language::Id).join(" "),
        words_en = fingerprint_words(key, Language::En).join(" "),
        hex = fingerprint_hex(key),
    );
    Ok(html(
        StatusCode::OK,
        page(&format!("Peluit — {name}"), &body),
    ))
}
