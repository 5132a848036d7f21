use super::*;

fn task(id: &str, svc: &str, constraints: &[&str]) -> Task {
    let mut t = Task::default();
    t.api.id = Some(id.into());
    t.api.service_id = Some(svc.into());
    t.api.spec = Some(api::TaskSpec {
        placement: Some(api::TaskSpecPlacement {
            constraints: Some(constraints.iter().map(|s| s.to_string()).collect()),
            ..Default::default()
        }),
        ..Default::default()
    });
    t
}

const G: i64 = 1_000_000_000;

#[test]
fn spreads_a_service_across_nodes() {
    let nodes = vec![
        ready_node("a", &[], 4 * G, 8 * G),
        ready_node("b", &[], 4 * G, 8 * G),
    ];
    let pending: Vec<Task> = (0..4).map(|i| task(&format!("t{i}"), "s", &[])).collect();
    let d = schedule(&nodes, &[], &pending);
    let on_a = d
        .iter()
        .filter(|d| matches!(d, Decision::Assign { node_id, .. } if node_id == "a"))
        .count();
    assert_eq!(on_a, 2);
}

#[test]
fn constraints_and_explanations() {
    let nodes = vec![
        ready_node("a", &[("zone", "x")], G, G),
        ready_node("b", &[("zone", "y")], G, G),
    ];
    let d = schedule(&nodes, &[], &[task("t", "s", &["node.labels.zone == y"])]);
    assert_eq!(
        d,
        vec![Decision::Assign {
            task_id: "t".into(),
            node_id: "b".into()
        }]
    );
    let d = schedule(&nodes, &[], &[task("t", "s", &["node.labels.zone == z"])]);
    assert_eq!(
        d,
        vec![Decision::Unplaceable {
            task_id: "t".into(),
            message: "no suitable node (scheduling constraints not satisfied on 2 nodes)".into()
        }]
    );
}

#[test]
fn resources_and_availability_refusals_combine() {
    let mut drained = ready_node("a", &[], 8 * G, 8 * G);
    drained.api.spec.as_mut().unwrap().availability = Some(api::NodeSpecAvailabilityEnum::DRAIN);
    let nodes = vec![drained, ready_node("b", &[], G, G)];
    let mut t = task("t", "s", &[]);
    t.api.spec.as_mut().unwrap().resources = Some(api::TaskSpecResources {
        reservations: Some(api::ResourceObject {
            nano_cpus: Some(2 * G),
            ..Default::default()
        }),
        ..Default::default()
    });
    let d = schedule(&nodes, &[], &[t]);
    assert_eq!(
        d,
        vec![Decision::Unplaceable {
            task_id: "t".into(),
            message: "no suitable node (1 node not available for new tasks; insufficient resources on 1 node)".into()
        }]
    );
}

#[test]
fn max_replicas_per_node() {
    let nodes = vec![ready_node("a", &[], G, G)];
    let mk = |id: &str| {
        let mut t = task(id, "s", &[]);
        t.api
            .spec
            .as_mut()
            .unwrap()
            .placement
            .as_mut()
            .unwrap()
            .max_replicas = Some(1);
        t
    };
    let d = schedule(&nodes, &[], &[mk("t1"), mk("t2")]);
    assert!(matches!(d[0], Decision::Assign { .. }));
    assert_eq!(
        d[1],
        Decision::Unplaceable {
            task_id: "t2".into(),
            message: "no suitable node (max replicas per node limit exceed)".into()
        }
    );
}

#[test]
fn spread_preference_balances_label_values() {
    let nodes = vec![
        ready_node("a1", &[("dc", "1")], G, G),
        ready_node("a2", &[("dc", "1")], G, G),
        ready_node("b1", &[("dc", "2")], G, G),
    ];
    let mk = |id: &str| {
        let mut t = task(id, "s", &[]);
        t.api
            .spec
            .as_mut()
            .unwrap()
            .placement
            .as_mut()
            .unwrap()
            .preferences = Some(vec![api::TaskSpecPlacementPreferences {
            spread: Some(api::TaskSpecPlacementSpread {
                spread_descriptor: Some("node.labels.dc".into()),
            }),
        }]);
        t
    };
    let d = schedule(&nodes, &[], &[mk("t1"), mk("t2")]);
    let nodes_used: Vec<&str> = d
        .iter()
        .map(|d| match d {
            Decision::Assign { node_id, .. } => node_id.as_str(),
            _ => "",
        })
        .collect();
    assert!(nodes_used.contains(&"b1"), "{nodes_used:?}");
}

#[test]
fn host_mode_ports_keep_tasks_apart() {
    let nodes = vec![ready_node("a", &[], G, G), ready_node("b", &[], G, G)];
    let with_port = |id: &str| {
        let mut t = task(id, "s", &[]);
        t.host_ports = vec![crate::exec::HostPort {
            protocol: crate::exec::PortProtocol::Tcp,
            published: 8080,
            target: 80,
        }];
        t
    };
    let d = schedule(
        &nodes,
        &[],
        &[with_port("t1"), with_port("t2"), with_port("t3")],
    );
    let mut nodes_used: Vec<&str> = d
        .iter()
        .filter_map(|d| match d {
            Decision::Assign { node_id, .. } => Some(node_id.as_str()),
            _ => None,
        })
        .collect();
    nodes_used.sort();
    assert_eq!(nodes_used, ["a", "b"], "one task per node: {d:?}");
    assert!(d.contains(&Decision::Unplaceable {
        task_id: "t3".into(),
        message: "no suitable node (host-mode port already in use on 2 nodes)".into()
    }));
}
