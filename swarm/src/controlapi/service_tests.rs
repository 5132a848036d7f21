use super::*;

fn spec(name: &str) -> api::ServiceSpec {
    api::ServiceSpec {
        name: Some(name.into()),
        task_template: Some(api::TaskSpec {
            container_spec: Some(api::TaskSpecContainerSpec {
                image: Some("busybox:latest".into()),
                ..Default::default()
            }),
            ..Default::default()
        }),
        mode: Some(api::ServiceSpecMode {
            replicated: Some(Default::default()),
            ..Default::default()
        }),
        ..Default::default()
    }
}

fn published(mut s: api::ServiceSpec, port: Option<i64>) -> api::ServiceSpec {
    s.endpoint_spec = Some(api::EndpointSpec {
        ports: Some(vec![api::EndpointPortConfig {
            target_port: Some(80),
            published_port: port,
            ..Default::default()
        }]),
        ..Default::default()
    });
    s
}

#[tokio::test]
async fn create_stores_one_replica_and_rejects_duplicates() {
    let store = Store::in_memory();
    let id = create(&store, spec("web"), None).await.unwrap();
    let s = get(&store, "web").unwrap();
    assert_eq!(s.id(), id);
    assert_eq!(
        s.spec().mode.clone().unwrap().replicated.unwrap().replicas,
        Some(1)
    );
    let e = create(&store, spec("web"), None).await.unwrap_err();
    assert_eq!(e.message(), "rpc error: code = AlreadyExists desc = name conflicts with an existing object: service web already exists");
}

#[tokio::test]
async fn update_checks_version_name_and_keeps_previous_spec() {
    let store = Store::in_memory();
    let id = create(&store, spec("web"), None).await.unwrap();
    let v = get(&store, &id).unwrap().version();
    let mut next = spec("web");
    next.labels = Some([("a".to_string(), "b".to_string())].into());
    update(&store, &id, v, next.clone(), UpdateKind::Replace, None)
        .await
        .unwrap();
    let e = update(&store, &id, v, next.clone(), UpdateKind::Replace, None)
        .await
        .unwrap_err();
    assert_eq!(
        e.message(),
        "rpc error: code = Unknown desc = update out of sequence"
    );
    let s = get(&store, &id).unwrap();
    assert_eq!(s.spec_version, 2);
    assert_eq!(
        s.previous_spec.as_ref().unwrap().labels,
        Some(Default::default()),
        "the previous spec is the one before the update (no labels)"
    );
    let e = update(
        &store,
        &id,
        s.version(),
        spec("other"),
        UpdateKind::Replace,
        None,
    )
    .await
    .unwrap_err();
    assert_eq!(
        e.message(),
        "rpc error: code = Unimplemented desc = renaming services is not supported"
    );
    update(
        &store,
        &id,
        s.version(),
        s.spec().clone(),
        UpdateKind::Rollback,
        None,
    )
    .await
    .unwrap();
    let s = get(&store, &id).unwrap();
    assert_eq!(s.spec().labels, Some(Default::default()));
    assert_eq!(
        s.api.update_status.unwrap().state,
        Some(api::ServiceUpdateStatusStateEnum::ROLLBACK_STARTED)
    );
}

#[tokio::test]
async fn rollback_without_previous_spec_fails() {
    let store = Store::in_memory();
    let id = create(&store, spec("web"), None).await.unwrap();
    let v = get(&store, &id).unwrap().version();
    let e = update(&store, &id, v, spec("web"), UpdateKind::Rollback, None)
        .await
        .unwrap_err();
    assert_eq!(e.message(), format!("rpc error: code = FailedPrecondition desc = service {id} does not have a previous spec"));
}

#[tokio::test]
async fn published_ports_are_assigned_and_conflicts_refused() {
    let store = Store::in_memory();
    let p1 = create(&store, published(spec("p1"), Some(8080)), None)
        .await
        .unwrap();
    let e = create(&store, published(spec("p2"), Some(8080)), None)
        .await
        .unwrap_err();
    assert_eq!(
        e.message(),
        format!("rpc error: code = InvalidArgument desc = port '8080' is already in use by service 'p1' ({p1}) as an ingress port")
    );
    create(&store, published(spec("p3"), None), None)
        .await
        .unwrap();
    let ports = get(&store, "p3")
        .unwrap()
        .api
        .endpoint
        .unwrap()
        .ports
        .unwrap();
    assert_eq!(
        ports[0].published_port,
        Some(crate::allocator::ports::DYNAMIC_MIN)
    );
}

fn attach(names: &[&str]) -> Option<Vec<api::NetworkAttachmentConfig>> {
    Some(
        names
            .iter()
            .map(|n| api::NetworkAttachmentConfig {
                target: Some(n.to_string()),
                ..Default::default()
            })
            .collect(),
    )
}

fn targets(list: &Option<Vec<api::NetworkAttachmentConfig>>) -> Vec<String> {
    list.iter()
        .flatten()
        .map(|n| n.target.clone().unwrap_or_default())
        .collect()
}

/// dockerd stores network IDs where the client named networks: in the task
/// template, or at service level when the template has none.
#[tokio::test]
async fn networks_named_in_a_spec_are_stored_by_id() {
    let store = Store::in_memory();
    let req = api::NetworkCreateRequest {
        name: "front".into(),
        driver: Some("overlay".into()),
        ..Default::default()
    };
    let net = crate::controlapi::network::create(&store, req)
        .await
        .unwrap();

    let mut s = spec("in-template");
    s.task_template.as_mut().unwrap().networks = attach(&["front"]);
    s.networks = attach(&["front"]);
    create(&store, s, None).await.unwrap();
    let stored = get(&store, "in-template").unwrap().spec().clone();
    assert_eq!(
        targets(&stored.task_template.unwrap().networks),
        std::slice::from_ref(&net)
    );
    assert_eq!(targets(&stored.networks), ["front"]);

    let mut s = spec("service-level");
    s.networks = attach(&["front"]);
    create(&store, s, None).await.unwrap();
    let stored = get(&store, "service-level").unwrap().spec().clone();
    assert_eq!(targets(&stored.networks), [net]);

    let mut s = spec("nowhere");
    s.networks = attach(&["missing"]);
    assert!(create(&store, s, None).await.is_err());
}
