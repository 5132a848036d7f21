use swarm::events::Actor;

use super::*;

fn f(json: &str) -> Filters {
    Filters::parse(Some(json)).unwrap()
}

fn container(action: &str) -> Message {
    Message::local(
        "container",
        action,
        Actor::new("0123456789ab")
            .with("name", "web.1.xyz")
            .with("image", "busybox:latest")
            .with("com.docker.swarm.service.name", "web"),
    )
}

#[test]
fn times_are_seconds_with_an_optional_fraction() {
    assert_eq!(parse_time("").unwrap(), None);
    assert_eq!(parse_time("10").unwrap(), Some(10_000_000_000));
    assert_eq!(parse_time("10.5").unwrap(), Some(10_500_000_000));
    assert_eq!(
        parse_time("1700000000.000000001").unwrap(),
        Some(1_700_000_000_000_000_001)
    );
    assert_eq!(
        parse_time("1x").unwrap_err().message,
        "strconv.ParseInt: parsing \"1x\": invalid syntax"
    );
}

#[test]
fn type_event_and_object_filters() {
    let m = container("start");
    assert!(include(&Filters::default(), &m));
    assert!(include(&f(r#"{"type":["container"]}"#), &m));
    assert!(!include(&f(r#"{"type":["service"]}"#), &m));
    assert!(include(&f(r#"{"event":["start","die"]}"#), &m));
    assert!(!include(&f(r#"{"event":["sta"]}"#), &m));
    // By ID prefix or name prefix.
    assert!(include(&f(r#"{"container":["0123"]}"#), &m));
    assert!(include(&f(r#"{"container":["web.1"]}"#), &m));
    assert!(!include(&f(r#"{"container":["db"]}"#), &m));
    // As dockerd, a kind's filter looks at every event's ID and name.
    assert!(include(&f(r#"{"service":["web"]}"#), &m));
    assert!(!include(&f(r#"{"service":["db"]}"#), &m));
    assert!(include(&f(r#"{"scope":["local"]}"#), &m));
    assert!(!include(&f(r#"{"scope":["swarm"]}"#), &m));
}

#[test]
fn image_and_label_filters() {
    let m = container("create");
    assert!(include(&f(r#"{"image":["busybox"]}"#), &m));
    assert!(include(&f(r#"{"image":["busybox:latest"]}"#), &m));
    assert!(!include(&f(r#"{"image":["alpine"]}"#), &m));
    assert!(include(
        &f(r#"{"label":["com.docker.swarm.service.name=web"]}"#),
        &m
    ));
    assert!(include(
        &f(r#"{"label":["com.docker.swarm.service.name"]}"#),
        &m
    ));
    assert!(!include(
        &f(r#"{"label":["com.docker.swarm.service.name=db"]}"#),
        &m
    ));
    assert_eq!(strip_tag("localhost:5000/a:1"), "localhost:5000/a");
    assert_eq!(strip_tag("localhost:5000/a"), "localhost:5000/a");
    assert_eq!(strip_tag("a@sha256:00"), "a");
}

#[test]
fn health_status_matches_its_detailed_actions() {
    let m = container("health_status: healthy");
    assert!(include(&f(r#"{"event":["health_status"]}"#), &m));
    assert!(!include(&f(r#"{"event":["start"]}"#), &m));
}
