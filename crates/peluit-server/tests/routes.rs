//! The router, the OpenAPI document and the header policy agree: every documented
//! operation is a route the server answers, every route is documented, and every response
//! (good, error, 404, 405, static asset) carries the full header policy.

mod common;

use std::collections::BTreeSet;

use common::{INSTITUTION, TestServer};
use peluit_proto::wordlist::Language;
use peluit_server::api::v1::ROUTES;
use peluit_server::api::v1::openapi::OPENAPI_JSON;
use peluit_server::layers::SECURITY_HEADERS;
use serde_json::Value;

fn documented() -> BTreeSet<(String, String)> {
    let doc: Value = serde_json::from_str(OPENAPI_JSON).expect("openapi.json is JSON");
    assert_eq!(doc["openapi"], "3.1.0");
    let mut out = BTreeSet::new();
    for (path, item) in doc["paths"].as_object().expect("paths is an object") {
        for method in item.as_object().expect("a path item is an object").keys() {
            out.insert((method.clone(), path.clone()));
        }
    }
    out
}

#[test]
fn the_document_lists_exactly_the_routes() {
    let routes: BTreeSet<(String, String)> = ROUTES
        .iter()
        .map(|(m, p)| (m.to_string(), p.to_string()))
        .collect();
    assert_eq!(routes.len(), ROUTES.len(), "a route is listed twice");
    let documented = documented();
    let missing: Vec<_> = routes.difference(&documented).collect();
    let extra: Vec<_> = documented.difference(&routes).collect();
    assert!(
        missing.is_empty(),
        "routes missing from openapi.json: {missing:?}"
    );
    assert!(
        extra.is_empty(),
        "documented operations with no route: {extra:?}"
    );
}

fn assert_policy(response: &reqwest::Response, what: &str) {
    for (name, value) in SECURITY_HEADERS {
        assert_eq!(
            response.headers().get(*name).and_then(|v| v.to_str().ok()),
            Some(*value),
            "{name} on {what}"
        );
    }
    for banned in ["server", "set-cookie", "date", "x-powered-by"] {
        assert!(
            response.headers().get(banned).is_none(),
            "{banned} on {what}"
        );
    }
}

#[tokio::test]
async fn every_route_answers_with_the_header_policy() {
    let server = TestServer::start().await;
    let id = peluit_proto::ids::CaseId::random().to_string();
    for (method, template) in ROUTES {
        let path = template
            .replace("{institution}", INSTITUTION)
            .replace("{upload}", &id)
            .replace("{case}", &id)
            .replace("{seq}", "1")
            .replace("{name}", "style.css");
        let method: reqwest::Method = method.to_uppercase().parse().unwrap();
        let response = server
            .client
            .request(method.clone(), server.url(&path))
            .send()
            .await
            .unwrap();
        let what = format!("{method} {template} ({})", response.status());
        assert_policy(&response, &what);
        let status = response.status().as_u16();
        assert_ne!(status, 405, "{what}");
        if response.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("application/json")
            && status >= 400
        {
            let body: Value = response.json().await.unwrap();
            assert_ne!(body["code"], "no_such_endpoint", "{what}");
        }
    }
    // Fallbacks and refusals carry it too.
    for (method, path) in [
        ("GET", "/nothing/here"),
        ("DELETE", "/healthz"),
        ("POST", "/api/v1/openapi.json"),
    ] {
        let response = server
            .client
            .request(method.parse().unwrap(), server.url(path))
            .send()
            .await
            .unwrap();
        assert_policy(&response, path);
    }
    let oversize = server
        .client
        .post(server.api("/uploads"))
        .body(vec![b' '; 64 * 1024])
        .send()
        .await
        .unwrap();
    assert_eq!(oversize.status(), 413);
    assert_policy(&oversize, "an oversize body");
    server.stop().await;
}

#[tokio::test]
async fn every_asset_is_embedded_and_published_with_its_hash() {
    use sha2::{Digest, Sha256};
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("assets");
    let mut on_disk: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|entry| entry.unwrap().file_name().into_string().unwrap())
        .collect();
    on_disk.sort();
    let mut embedded: Vec<String> = peluit_server::assets::asset_names()
        .map(str::to_owned)
        .collect();
    embedded.sort();
    assert_eq!(embedded, on_disk, "assets/ and the embedded list differ");

    let server = TestServer::start().await;
    let published = server
        .get_json(server.url("/.well-known/peluit-bundle.json"))
        .await;
    assert_eq!(published["version"], 1);
    let assets = published["assets"].as_object().unwrap();
    assert_eq!(assets.len(), on_disk.len() + 1, "every asset and /");
    for name in &on_disk {
        let path = format!("/assets/{name}");
        let served = server.get(server.url(&path)).await.bytes().await.unwrap();
        let on_disk = std::fs::read(dir.join(name)).unwrap();
        assert_eq!(served, on_disk, "{path} is served as built");
        assert_eq!(
            assets[&path],
            hex::encode(Sha256::digest(&on_disk)),
            "{path}"
        );
    }
    assert_eq!(assets["/"], assets["/assets/index.html"]);
    server.stop().await;
}

#[tokio::test]
async fn the_poster_names_the_manifest_addresses_and_fingerprint() {
    let server = TestServer::start().await;
    let response = server
        .get(server.url(&format!("/poster/{INSTITUTION}")))
        .await;
    assert_eq!(response.status(), 200);
    assert_policy(&response, "poster");
    let page = response.text().await.unwrap();
    let manifest = server.state.institutions()[0].current().unwrap();
    for origin in &manifest.manifest().origins {
        assert!(
            page.contains(&format!("<code>{origin}/i/{INSTITUTION}</code>")),
            "{origin}"
        );
    }
    assert_eq!(
        page.matches("<svg ").count(),
        manifest.manifest().origins.len()
    );
    let key = server.state.institutions()[0].config.manifest_key;
    for language in [Language::Id, Language::En] {
        let words = peluit_proto::manifest::fingerprint_words(&key, language).join(" ");
        assert!(page.contains(&words), "{words}");
    }
    assert!(!page.contains("<script") && !page.contains("<?xml"));
    let missing = server.get(server.url("/poster/tidak-ada")).await;
    assert_eq!(missing.status(), 404);
    server.stop().await;
}
