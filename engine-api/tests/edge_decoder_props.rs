//! Properties of the API edge's small decoders: list filters, query strings
//! as the routes read them (`?version=`, booleans), the `/v1.NN/` prefix and
//! `X-Registry-Auth`. Each takes any input without a panic, answers a bad
//! one with a 4xx, and reads a good one exactly.

use std::collections::BTreeMap;
use std::collections::HashMap;

use axum::body::Body;
use axum::extract::Query as QueryExtractor;
use axum::http::Request;
use axum::http::StatusCode;
use axum::http::Uri;
use axum::middleware;
use axum::routing::get;
use axum::Router;
use base64::Engine;
use engine_api::body::query_strict_bool;
use engine_api::body::query_version;
use engine_api::body::BadBool;
use engine_api::body::Query;
use engine_api::body::VersionOf;
use engine_api::filters::Filters;
use engine_api::server::version;
use proptest::prelude::*;
use runtime::images::RegistryAuth;
use tower::ServiceExt;

fn config() -> ProptestConfig {
    ProptestConfig {
        cases: 512,
        ..ProptestConfig::default()
    }
}

/// Filter keys and values as clients send them, odd characters included.
fn filter_map() -> impl Strategy<Value = BTreeMap<String, Vec<String>>> {
    prop::collection::btree_map(
        "[a-z.]{1,10}",
        prop::collection::vec("[ -~\u{e9}\u{4e2d}]{0,12}", 1..4),
        0..4,
    )
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn filters_any_text_is_a_value_or_a_400(raw in any::<String>()) {
        if let Err(e) = Filters::parse(Some(&raw)) {
            prop_assert_eq!(e.status, StatusCode::BAD_REQUEST);
        }
    }

    #[test]
    fn filters_both_forms_read_the_same(m in filter_map()) {
        let map_form: serde_json::Map<String, serde_json::Value> = m
            .iter()
            .map(|(k, vs)| {
                let inner = vs.iter().map(|v| (v.clone(), serde_json::Value::Bool(true))).collect();
                (k.clone(), serde_json::Value::Object(inner))
            })
            .collect();
        let a = Filters::parse(Some(&serde_json::Value::Object(map_form).to_string())).unwrap();
        let b = Filters::parse(Some(&serde_json::to_string(&m).unwrap())).unwrap();
        prop_assert_eq!(&a, &b);
        for (k, vs) in &m {
            for v in vs {
                prop_assert!(a.exact(k, v), "{k}={v} lost");
            }
        }
    }

    #[test]
    fn version_query_is_gos_parse_uint(raw in "[+-]?[0-9]{0,22}|\\PC{0,8}") {
        let mut q = Query::new();
        q.insert("version".into(), raw.clone());
        let go = (!raw.is_empty() && raw.bytes().all(|b| b.is_ascii_digit()))
            .then(|| raw.parse::<u64>().ok())
            .flatten();
        match query_version(&q, VersionOf::Service) {
            Ok(n) => prop_assert_eq!(Some(n), go),
            Err(e) => {
                prop_assert_eq!(e.status, StatusCode::BAD_REQUEST);
                prop_assert!(go.is_none(), "{raw} refused");
            }
        }
    }

    #[test]
    fn strict_bools_take_only_gos_spellings(raw in "\\PC{0,6}") {
        let mut q = Query::new();
        q.insert("status".into(), raw.clone());
        let go = ["1", "t", "T", "TRUE", "true", "True", "0", "f", "F", "FALSE", "false", "False"];
        match query_strict_bool(&q, "status", BadBool::Wrapped) {
            Ok(v) => prop_assert!(raw.is_empty() == v.is_none() && (raw.is_empty() || go.contains(&raw.as_str()))),
            Err(e) => {
                prop_assert_eq!(e.status, StatusCode::BAD_REQUEST);
                prop_assert!(!go.contains(&raw.as_str()));
            }
        }
    }

    /// Any percent-encoded query (bytes that are not UTF-8 included) is read
    /// without a panic; an encoded map comes back as it was.
    #[test]
    fn query_strings_round_trip_and_never_panic(
        m in prop::collection::hash_map("\\PC{1,8}", "\\PC{0,8}", 0..5),
        junk in prop::collection::vec(any::<u8>(), 0..24),
    ) {
        let encoded = serde_urlencoded::to_string(&m).unwrap();
        let uri: Uri = format!("/services?{encoded}").parse().unwrap();
        let QueryExtractor(back) = QueryExtractor::<Query>::try_from_uri(&uri).unwrap();
        prop_assert_eq!(back, m);
        let raw: String = junk.iter().map(|b| format!("%{b:02X}")).collect();
        let uri: Uri = format!("/services?filters={raw}&{raw}={raw}").parse().unwrap();
        if let Ok(QueryExtractor(q)) = QueryExtractor::<Query>::try_from_uri(&uri) {
            let _ = Filters::parse(q.get("filters").map(String::as_str));
        }
    }

    #[test]
    fn registry_auth_any_header_is_a_value_or_anonymous(raw in "\\PC{0,64}|[A-Za-z0-9+/=_-]{0,64}") {
        let _ = RegistryAuth::from_header(&raw);
    }

    #[test]
    fn registry_auth_reads_what_the_cli_encodes(
        user in "[ -~]{1,16}",
        password in "\\PC{1,16}",
        server in "[a-z0-9.:/-]{0,24}",
        engine in 0usize..4,
    ) {
        let json = serde_json::json!({"username": user, "password": password, "serveraddress": server});
        let bytes = json.to_string();
        let header = match engine {
            0 => base64::engine::general_purpose::URL_SAFE.encode(&bytes),
            1 => base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(&bytes),
            2 => base64::engine::general_purpose::STANDARD.encode(&bytes),
            _ => base64::engine::general_purpose::STANDARD_NO_PAD.encode(&bytes),
        };
        let a = RegistryAuth::from_header(&header).expect("credentials");
        prop_assert_eq!(a.username, user);
        prop_assert_eq!(a.password, password);
        prop_assert_eq!(a.server_address, server);
    }
}

/// The version middleware in front of one route, as the real router has it.
/// (The prefix is stripped before routing: the routes sit behind a
/// fallback, as in `server::router::app`.)
fn versioned() -> Router {
    let inner = Router::new()
        .route("/_ping", get(|| async { "OK" }))
        .fallback(version::page_not_found);
    Router::new()
        .fallback_service(inner)
        .layer(middleware::from_fn(version::negotiate))
}

fn prefix() -> impl Strategy<Value = String> {
    prop_oneof![
        (0u32..200).prop_map(|n| format!("1.{n}")),
        "[0-9]{1,3}\\.[0-9+-]{0,12}",
        "[0-9.a-z+-]{0,10}",
        prop::collection::vec(any::<u8>(), 0..8)
            .prop_map(|b| b.iter().map(|x| format!("%{x:02X}")).collect()),
    ]
}

proptest! {
    #![proptest_config(config())]

    /// `/v<anything>/_ping`: a known version reaches the route, one out of
    /// range is dockerd's 400, anything else its 404; never a 5xx.
    #[test]
    fn version_prefix_is_routed_or_refused(p in prefix()) {
        let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
        let req = Request::get(format!("/v{p}/_ping")).body(Body::empty()).unwrap();
        let status = rt.block_on(versioned().oneshot(req)).unwrap().status();
        let want = match version::ApiVersion::parse(&p) {
            Some(v) if (version::MIN..=version::MAX).contains(&v) => StatusCode::OK,
            Some(_) => StatusCode::BAD_REQUEST,
            // Not a version (or no dot: not a prefix at all, so the whole
            // path is unknown).
            None => StatusCode::NOT_FOUND,
        };
        prop_assert_eq!(status, want, "/v{}/_ping", p);
    }
}

#[test]
fn empty_query_map_is_no_filter() {
    let empty: HashMap<String, String> = HashMap::new();
    assert!(Filters::parse(empty.get("filters").map(String::as_str))
        .unwrap()
        .get("name")
        .next()
        .is_none());
}
