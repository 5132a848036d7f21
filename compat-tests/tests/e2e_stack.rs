//! End-to-end: docker stack deploy/ls/services/ps/rm of a compose 3.8 file,
//! and a redeploy that changes only what the file changed.

mod common;

use common::temp_file;
use common::wait_for;
use common::Daemon;

const STACK: &str = r#"version: "3.8"
services:
  web:
    image: busybox:latest
    command: ["httpd", "-f", "-p", "80"]
    ports:
      - "8080:80"
    networks: [front, back]
    environment:
      MODE: prod
    configs:
      - source: appconf
        target: /etc/app.conf
    deploy:
      replicas: 2
      update_config:
        parallelism: 1
        delay: 10s
      restart_policy:
        condition: on-failure
        max_attempts: 3
      placement:
        constraints: [node.role == manager]
      resources:
        limits: {cpus: "0.5", memory: 64M}
        reservations: {memory: 16M}
    healthcheck:
      test: ["CMD", "true"]
      interval: 10s
  db:
    image: busybox:latest
    command: ["sleep", "100000"]
    networks: [back]
    secrets: [dbpw]
    volumes:
      - dbdata:/var/lib/db
networks:
  front: {}
  back:
    driver: overlay
    attachable: true
secrets:
  dbpw:
    file: ./pw.txt
configs:
  appconf:
    file: ./app.conf
volumes:
  dbdata: {}
"#;

fn names(d: &Daemon, args: &[&str]) -> Vec<String> {
    let mut v: Vec<String> = d
        .ok(args)
        .lines()
        .filter(|l| !l.is_empty())
        .map(str::to_string)
        .collect();
    v.sort();
    v
}

fn tasks_of(d: &Daemon, svc: &str) -> Vec<String> {
    names(
        d,
        &[
            "service",
            "ps",
            "-q",
            "--filter",
            "desired-state=running",
            svc,
        ],
    )
}

#[test]
fn deploy_redeploy_and_remove_a_stack() {
    let d = Daemon::with_swarm();
    temp_file(&d, "pw.txt", b"s3cr3t\n");
    temp_file(&d, "app.conf", b"conf=1\n");
    let file = temp_file(&d, "stack.yml", STACK.as_bytes());
    let out = d.ok(&["stack", "deploy", "-c", &file, "demo"]);
    for want in [
        "Creating network demo_back",
        "Creating network demo_front",
        "Creating secret demo_dbpw",
        "Creating config demo_appconf",
        "Creating service demo_db",
        "Creating service demo_web",
    ] {
        assert!(out.contains(want), "missing {want:?} in {out}");
    }

    let ls = d.ok(&["stack", "ls", "--format", "{{.Name}} {{.Services}}"]);
    assert_eq!(ls.trim(), "demo 2");
    let svcs = names(
        &d,
        &[
            "stack",
            "services",
            "demo",
            "--format",
            "{{.Name}} {{.Replicas}} {{.Ports}}",
        ],
    );
    assert_eq!(svcs, ["demo_db 0/1 ", "demo_web 0/2 *:8080->80/tcp"]);

    // Every object carries the stack's namespace label.
    let label = "label=com.docker.stack.namespace=demo";
    assert_eq!(
        names(
            &d,
            &["network", "ls", "--filter", label, "--format", "{{.Name}}"]
        ),
        ["demo_back", "demo_front"]
    );
    assert_eq!(
        names(
            &d,
            &["secret", "ls", "--filter", label, "--format", "{{.Name}}"]
        ),
        ["demo_dbpw"]
    );
    assert_eq!(
        names(
            &d,
            &["config", "ls", "--filter", label, "--format", "{{.Name}}"]
        ),
        ["demo_appconf"]
    );

    // The compose deploy keys reached the service specs.
    let web = d.service_format("demo_web", "{{.Spec.Mode.Replicated.Replicas}}|{{.Spec.UpdateConfig.Delay}}|{{.Spec.TaskTemplate.RestartPolicy.Condition}}|{{.Spec.TaskTemplate.RestartPolicy.MaxAttempts}}|{{json .Spec.TaskTemplate.Placement.Constraints}}|{{.Spec.TaskTemplate.Resources.Limits.MemoryBytes}}|{{.Spec.TaskTemplate.ContainerSpec.Healthcheck.Interval}}|{{len .Spec.TaskTemplate.ContainerSpec.Configs}}|{{len .Spec.TaskTemplate.Networks}}");
    assert_eq!(
        web.trim(),
        r#"2|10s|on-failure|3|["node.role == manager"]|67108864|10s|1|2"#
    );
    let db = d.service_format("demo_db", "{{(index .Spec.TaskTemplate.ContainerSpec.Secrets 0).SecretName}}|{{(index .Spec.TaskTemplate.ContainerSpec.Mounts 0).Source}}");
    assert_eq!(db.trim(), "demo_dbpw|demo_dbdata");

    wait_for(20, "stack tasks assigned", || {
        let ps = d.ok(&[
            "stack",
            "ps",
            "demo",
            "--format",
            "{{.Name}} {{.CurrentState}}",
        ]);
        let rows: Vec<&str> = ps.lines().filter(|l| !l.is_empty()).collect();
        (rows.len() == 3 && rows.iter().all(|r| r.contains("Assigned"))).then_some(())
    });
    let db_tasks = tasks_of(&d, "demo_db");
    let web_tasks = tasks_of(&d, "demo_web");

    // Redeploy with one change: web's replicas. db's task is left alone.
    let edited = STACK.replace("replicas: 2", "replicas: 3");
    let file2 = temp_file(&d, "stack2.yml", edited.as_bytes());
    let out = d.ok(&["stack", "deploy", "-c", &file2, "demo"]);
    assert!(out.contains("Updating service demo_web"), "{out}");
    wait_for(20, "web scaled to 3", || {
        (tasks_of(&d, "demo_web").len() == 3).then_some(())
    });
    assert_eq!(tasks_of(&d, "demo_db"), db_tasks, "db was replaced");
    let web_now = tasks_of(&d, "demo_web");
    assert!(
        web_tasks.iter().all(|t| web_now.contains(t)),
        "web tasks replaced by a replicas-only change: {web_tasks:?} -> {web_now:?}"
    );

    let out = d.ok(&["stack", "rm", "demo"]);
    assert!(out.contains("Removing service demo_web"), "{out}");
    assert!(out.contains("Removing network demo_front"), "{out}");
    assert_eq!(d.ok(&["stack", "ls", "--format", "{{.Name}}"]).trim(), "");
    assert!(names(&d, &["service", "ls", "-q"]).is_empty());
    assert!(names(&d, &["network", "ls", "--filter", label, "-q"]).is_empty());
    assert!(names(&d, &["secret", "ls", "-q"]).is_empty());
    assert!(names(&d, &["config", "ls", "-q"]).is_empty());
}

#[test]
fn stack_deploy_warns_but_works_without_a_registry() {
    let d = Daemon::with_swarm();
    let file = temp_file(
        &d,
        "one.yml",
        b"version: \"3.8\"\nservices:\n  app:\n    image: busybox:latest\n",
    );
    d.ok(&["stack", "deploy", "-c", &file, "solo"]);
    // On update the CLI asks the daemon to resolve the image digest; no
    // registry is reachable, so it warns as it does with dockerd and goes on.
    let run = d.docker(&["stack", "deploy", "-c", &file, "solo"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(
        run.stderr.contains(
            "image busybox:latest could not be accessed on a registry to record\nits digest."
        ),
        "{}",
        run.stderr
    );
    let svc = d.ok(&["service", "ls", "--format", "{{.Name}}"]);
    assert_eq!(svc.trim(), "solo_app");
}
