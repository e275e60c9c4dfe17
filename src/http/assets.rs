//! The JavaScript SDK, built from `web/` and embedded in the binary, so a
//! server without Node serves it: `/sdk/v1.js` (script tag, global
//! `MqChat`), `/sdk/v1.mjs` (ES module) and `/sdk/v1.d.ts`. Any page may
//! load them (they hold no secret); each answer carries an `ETag` so
//! browsers revalidate cheaply after a short cache.
use std::sync::OnceLock;

use bytes::Bytes;
use sha2::{Digest, Sha256};
use warp::http::{HeaderValue, StatusCode};
use warp::{Filter, Rejection, Reply};

struct Asset {
    name: &'static str,
    content_type: &'static str,
    body: &'static str,
}

const ASSETS: [Asset; 3] = [
    Asset { name: "v1.js", content_type: "text/javascript; charset=utf-8", body: include_str!("../../web/dist/v1.js") },
    Asset { name: "v1.mjs", content_type: "text/javascript; charset=utf-8", body: include_str!("../../web/dist/v1.mjs") },
    Asset { name: "v1.d.ts", content_type: "application/typescript; charset=utf-8", body: include_str!("../../web/dist/v1.d.ts") },
];

/// A browser uses its copy five minutes before asking again.
const CACHE_CONTROL: &str = "public, max-age=300";

pub fn routes() -> impl Filter<Extract = (warp::reply::Response,), Error = Rejection> + Clone {
    // GET /sdk/{v1.js | v1.mjs | v1.d.ts}
    warp::path!("sdk" / String).and(warp::get()).and(warp::header::optional::<String>("if-none-match")).and_then(
        |name: String, if_none_match: Option<String>| async move {
            let index = ASSETS.iter().position(|asset| asset.name == name).ok_or_else(warp::reject::not_found)?;
            let asset = &ASSETS[index];
            let body = Bytes::from_static(asset.body.as_bytes());
            Ok::<_, Rejection>(public_file(body, &etags()[index], asset.content_type, if_none_match.as_deref()))
        },
    )
}

/// The assets' ETags, hashed once: the files never change while the binary runs.
fn etags() -> &'static [String] {
    static ETAGS: OnceLock<Vec<String>> = OnceLock::new();
    ETAGS.get_or_init(|| {
        ASSETS
            .iter()
            .map(|asset| format!("\"{}\"", hex::encode(&Sha256::digest(asset.body.as_bytes())[..12])))
            .collect()
    })
}

/// Whether the browser's copy (`If-None-Match`) is the current `etag`.
pub(super) fn revalidated(if_none_match: Option<&str>, etag: &str) -> bool {
    if_none_match.is_some_and(|tags| tags.split(',').any(|tag| tag.trim() == etag))
}

/// A file any page may load, revalidated by its `etag` after a short cache
/// (304 when `If-None-Match` names it).
pub(super) fn public_file(body: Bytes, etag: &str, content_type: &str, if_none_match: Option<&str>) -> warp::reply::Response {
    let mut response = if revalidated(if_none_match, etag) {
        StatusCode::NOT_MODIFIED.into_response()
    } else {
        let mut response = warp::reply::Response::new(body.into());
        if let Ok(content_type) = HeaderValue::from_str(content_type) {
            response.headers_mut().insert("content-type", content_type);
        }
        response
    };
    let headers = response.headers_mut();
    if let Ok(etag) = HeaderValue::from_str(etag) {
        headers.insert("etag", etag);
    }
    headers.insert("cache-control", HeaderValue::from_static(CACHE_CONTROL));
    headers.insert("access-control-allow-origin", HeaderValue::from_static("*"));
    headers.insert("cross-origin-resource-policy", HeaderValue::from_static("cross-origin"));
    headers.insert("x-content-type-options", HeaderValue::from_static("nosniff"));
    response
}
