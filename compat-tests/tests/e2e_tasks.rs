//! End-to-end: swarm tasks run as real containerd containers. The stock CLI
//! creates services against shoald on a private containerd; the tests check
//! what a user would: the CLI's progress converging, `service ps` states and
//! errors, the processes themselves (through /proc and the task's
//! namespaces), replacement of killed tasks, and adoption after a restart.

mod common;

use std::process::Command;

use common::wait_for;
use common::Daemon;

const IMAGE: &str = "shoal-test/busybox:latest";

/// One row of `service ps --no-trunc`.
#[derive(Debug, Clone)]
struct Row {
    id: String,
    name: String,
    desired: String,
    current: String,
    error: String,
}

fn ps(d: &Daemon, svc: &str) -> Vec<Row> {
    d.ok(&[
        "service",
        "ps",
        "--no-trunc",
        "--format",
        "{{.ID}}|{{.Name}}|{{.DesiredState}}|{{.CurrentState}}|{{.Error}}",
        svc,
    ])
    .lines()
    .map(|l| {
        let f: Vec<&str> = l.split('|').collect();
        Row {
            id: f[0].into(),
            name: f[1].trim().into(),
            desired: f[2].into(),
            current: f[3].into(),
            error: f[4].into(),
        }
    })
    .collect()
}

fn running(d: &Daemon, svc: &str) -> Vec<Row> {
    ps(d, svc)
        .into_iter()
        .filter(|r| r.desired == "Running" && r.current.starts_with("Running"))
        .collect()
}

#[track_caller]
fn wait_running(d: &Daemon, svc: &str, n: usize) -> Vec<Row> {
    wait_for(60, &format!("{n} running tasks of {svc}"), || {
        let r = running(d, svc);
        (r.len() == n).then_some(r)
    })
}

/// SIGKILL to `pid`, as a crash would.
fn kill9(pid: u32) {
    Command::new("kill")
        .args(["-9", &pid.to_string()])
        .status()
        .unwrap();
}

/// The task's container ID and PID from `docker inspect`.
fn container(d: &Daemon, task: &str) -> (String, u32) {
    let out = d.ok(&[
        "inspect",
        "--format",
        "{{.Status.ContainerStatus.ContainerID}} {{.Status.ContainerStatus.PID}}",
        task,
    ]);
    let (id, pid) = out.trim().split_once(' ').unwrap();
    (id.to_string(), pid.parse().unwrap())
}

fn cmdline(pid: u32) -> String {
    std::fs::read(format!("/proc/{pid}/cmdline"))
        .map(|b| String::from_utf8_lossy(&b).replace('\0', " "))
        .unwrap_or_default()
}

/// Runs `args` inside the task process's namespaces.
fn in_task(pid: u32, args: &[&str]) -> String {
    let o = Command::new("nsenter")
        .args(["-t", &pid.to_string(), "-m", "-u", "-p", "--"])
        .args(args)
        .output()
        .expect("nsenter");
    String::from_utf8_lossy(&o.stdout).trim().to_string()
}

#[test]
fn create_without_detach_converges_on_running_containers() {
    let Some((ctrd, d)) = common::swarm_with_test_image() else {
        return;
    };
    let out = d.docker(&[
        "service",
        "create",
        "--name",
        "web",
        "--replicas",
        "3",
        "--stop-grace-period",
        "1s",
        IMAGE,
        "httpd",
        "-f",
        "-p",
        "80",
    ]);
    assert_eq!(out.code, 0, "{out:?}");
    let all = format!("{}{}", out.stdout, out.stderr);
    assert!(all.contains("overall progress: 3 out of 3 tasks"), "{all}");
    assert!(
        all.contains("verify: Service") && all.contains("converged"),
        "{all}"
    );

    let rows = wait_running(&d, "web", 3);
    let ls = d.ok(&["service", "ls", "--format", "{{.Name}} {{.Replicas}}"]);
    assert_eq!(ls.trim(), "web 3/3");
    let tasks = ctrd.task_ids();
    for r in &rows {
        let (cid, pid) = container(&d, &r.id);
        assert_eq!(cid.len(), 64, "{cid}");
        assert!(tasks.contains(&cid), "{cid} not in containerd's {tasks:?}");
        assert!(
            cmdline(pid).starts_with("httpd -f -p 80"),
            "{pid}: {}",
            cmdline(pid)
        );
    }
    assert_eq!(tasks.len(), 3, "{tasks:?}");
}

#[test]
fn killed_tasks_are_replaced_and_exits_show_like_dockerd() {
    let Some((_ctrd, d)) = common::swarm_with_test_image() else {
        return;
    };
    d.ok(&[
        "service",
        "create",
        "-d",
        "--name",
        "web",
        "--stop-grace-period",
        "1s",
        IMAGE,
        "httpd",
        "-f",
        "-p",
        "80",
    ]);
    let first = wait_running(&d, "web", 1).remove(0);
    let (_, pid) = container(&d, &first.id);
    kill9(pid);
    let replacement = wait_for(60, "a replacement task", || {
        running(&d, "web").into_iter().find(|r| r.id != first.id)
    });
    assert_eq!(replacement.name, "web.1");
    let old = ps(&d, "web")
        .into_iter()
        .find(|r| r.id == first.id)
        .unwrap();
    assert!(old.current.starts_with("Failed"), "{old:?}");
    assert_eq!(old.error, "\"task: non-zero exit (137)\"");
    assert_eq!(old.desired, "Shutdown");

    // A process that fails is reported with its exit code and, without a
    // restart policy, not started again.
    d.ok(&[
        "service",
        "create",
        "-d",
        "--name",
        "bad",
        "--restart-condition",
        "none",
        IMAGE,
        "sh",
        "-c",
        "exit 3",
    ]);
    let bad = wait_for(60, "bad task failed", || {
        ps(&d, "bad")
            .into_iter()
            .find(|r| r.current.starts_with("Failed"))
    });
    assert_eq!(bad.error, "\"task: non-zero exit (3)\"");
    assert_eq!(ps(&d, "bad").len(), 1);

    // A job that exits 0 completes.
    d.ok(&[
        "service",
        "create",
        "-d",
        "--name",
        "job",
        "--mode",
        "replicated-job",
        IMAGE,
        "true",
    ]);
    wait_for(60, "job complete", || {
        ps(&d, "job")
            .iter()
            .any(|r| r.current.starts_with("Complete"))
            .then_some(())
    });

    // An image the node does not have rejects the task with the reason.
    d.ok(&[
        "service",
        "create",
        "-d",
        "--name",
        "ghost",
        "nosuch/image:1",
    ]);
    let ghost = wait_for(60, "ghost task rejected", || {
        ps(&d, "ghost")
            .into_iter()
            .find(|r| r.current.starts_with("Rejected"))
    });
    // The pull fails (no registry reachable); as dockerd, the task says why
    // in terms of the image and the pull's error goes to the daemon log.
    assert_eq!(ghost.error, "\"No such image: nosuch/image:1\"");
}

#[test]
fn the_container_is_what_the_spec_says() {
    let Some((_ctrd, d)) = common::swarm_with_test_image() else {
        return;
    };
    d.ok(&[
        "service",
        "create",
        "-d",
        "--name",
        "spec",
        "--env",
        "FOO=bar",
        "--env",
        "SLOT={{.Task.Slot}}",
        "--hostname",
        "{{.Service.Name}}-{{.Task.Slot}}",
        "--user",
        "1000:1000",
        "--workdir",
        "/tmp",
        "--read-only",
        "--mount",
        "type=tmpfs,target=/scratch",
        "--mount",
        "type=volume,source=keep,target=/data",
        "--limit-memory",
        "64m",
        "--cap-add",
        "NET_ADMIN",
        "--stop-grace-period",
        "1s",
        IMAGE,
        "httpd",
        "-f",
        "-p",
        "8080",
    ]);
    let task = wait_running(&d, "spec", 1).remove(0);
    let (cid, pid) = container(&d, &task.id);
    let environ = std::fs::read(format!("/proc/{pid}/environ")).unwrap();
    let environ = String::from_utf8_lossy(&environ);
    for want in ["FOO=bar", "SLOT=1", "HOSTNAME=spec-1"] {
        assert!(
            environ.split('\0').any(|e| e == want),
            "{want} in {environ}"
        );
    }
    assert_eq!(in_task(pid, &["hostname"]), "spec-1");
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    assert!(
        status.lines().any(|l| l.starts_with("Uid:\t1000\t")),
        "{status}"
    );
    assert!(
        status.lines().any(|l| l.starts_with("Gid:\t1000\t")),
        "{status}"
    );
    let cap_eff = status
        .lines()
        .find_map(|l| l.strip_prefix("CapEff:\t"))
        .map(|h| u64::from_str_radix(h.trim(), 16).unwrap())
        .unwrap();
    assert!(cap_eff & (1 << 12) == 0, "non-root keeps no effective caps");
    let cap_bnd = status
        .lines()
        .find_map(|l| l.strip_prefix("CapBnd:\t"))
        .map(|h| u64::from_str_radix(h.trim(), 16).unwrap())
        .unwrap();
    assert!(
        cap_bnd & (1 << 12) != 0,
        "NET_ADMIN (12) in the bounding set"
    );
    assert!(cap_bnd & (1 << 21) == 0, "SYS_ADMIN (21) not granted");
    assert_eq!(
        std::fs::read_link(format!("/proc/{pid}/cwd")).unwrap(),
        std::path::PathBuf::from("/tmp")
    );
    let mounts = std::fs::read_to_string(format!("/proc/{pid}/mountinfo")).unwrap();
    let mount = |target: &str| {
        mounts
            .lines()
            .find(|l| l.split(' ').nth(4) == Some(target))
            .unwrap_or_else(|| panic!("{target} not mounted: {mounts}"))
            .to_string()
    };
    assert!(
        mount("/").split(' ').nth(5).unwrap().starts_with("ro"),
        "{}",
        mount("/")
    );
    assert!(
        mount("/scratch").contains(" - tmpfs "),
        "{}",
        mount("/scratch")
    );
    mount("/data");
    let limit = std::fs::read_to_string(format!(
        "/sys/fs/cgroup/memory/shoal/{cid}/memory.limit_in_bytes"
    ))
    .or_else(|_| std::fs::read_to_string(format!("/sys/fs/cgroup/shoal/{cid}/memory.max")))
    .unwrap();
    assert_eq!(limit.trim(), "67108864");

    // The named volume lives on the node and outlives the task.
    let volume = d.data_root().join("volumes/keep/_data");
    assert!(volume.is_dir(), "{}", volume.display());
    std::fs::write(volume.join("mark"), "kept").unwrap();
    std::fs::set_permissions(
        volume.join("mark"),
        std::os::unix::fs::PermissionsExt::from_mode(0o644),
    )
    .unwrap();
    d.ok(&["service", "update", "-d", "--force", "spec"]);
    let next = wait_for(60, "replaced task", || {
        running(&d, "spec").into_iter().find(|r| r.id != task.id)
    });
    let (_, pid2) = container(&d, &next.id);
    assert_eq!(in_task(pid2, &["cat", "/data/mark"]), "kept");
}

#[test]
fn scale_down_and_rm_stop_and_remove_containers() {
    let Some((ctrd, d)) = common::swarm_with_test_image() else {
        return;
    };
    d.ok(&[
        "service",
        "create",
        "-d",
        "--name",
        "web",
        "--replicas",
        "3",
        "--stop-grace-period",
        "1s",
        IMAGE,
        "httpd",
        "-f",
        "-p",
        "80",
    ]);
    let rows = wait_running(&d, "web", 3);
    let pids: Vec<u32> = rows.iter().map(|r| container(&d, &r.id).1).collect();
    d.ok(&["service", "scale", "-d", "web=1"]);
    wait_for(30, "two processes stopped", || {
        (pids
            .iter()
            .filter(|p| cmdline(**p).starts_with("httpd"))
            .count()
            == 1)
            .then_some(())
    });
    assert_eq!(running(&d, "web").len(), 1);
    d.ok(&["service", "rm", "web"]);
    wait_for(30, "every process stopped", || {
        pids.iter()
            .all(|p| !cmdline(*p).starts_with("httpd"))
            .then_some(())
    });
    wait_for(30, "containers removed", || {
        ctrd.task_ids().is_empty().then_some(())
    });
}

#[test]
fn a_restarted_shoald_adopts_its_containers() {
    let Some((ctrd, mut d)) = common::swarm_with_test_image() else {
        return;
    };
    d.ok(&[
        "service",
        "create",
        "-d",
        "--name",
        "web",
        "--replicas",
        "2",
        "--stop-grace-period",
        "1s",
        IMAGE,
        "httpd",
        "-f",
        "-p",
        "80",
    ]);
    let before: Vec<(String, String, u32)> = wait_running(&d, "web", 2)
        .into_iter()
        .map(|r| {
            let (c, p) = container(&d, &r.id);
            (r.id, c, p)
        })
        .collect();
    for restart in [
        Daemon::restart_after_kill9 as fn(&mut Daemon),
        Daemon::restart,
    ] {
        restart(&mut d);
        // Give the agent time to resume its session, then nothing may change.
        std::thread::sleep(std::time::Duration::from_secs(3));
        let after = wait_running(&d, "web", 2);
        assert_eq!(ps(&d, "web").len(), 2, "no task was replaced");
        for (task, cid, pid) in &before {
            assert!(after.iter().any(|r| &r.id == task), "{task} still running");
            assert_eq!(&container(&d, task).0, cid);
            assert!(cmdline(*pid).starts_with("httpd"), "process {pid} survived");
        }
        assert_eq!(ctrd.task_ids().len(), 2, "no duplicates");
    }
    // A task whose process dies while shoald is down is replaced after it returns.
    d.kill9();
    Command::new("kill")
        .args(["-9", &before[0].2.to_string()])
        .status()
        .unwrap();
    d.restart_after_kill9();
    wait_for(60, "replacement after restart", || {
        let r = running(&d, "web");
        (r.len() == 2 && !r.iter().any(|r| r.id == before[0].0)).then_some(())
    });
}

/// The filesystem type of the mount at `target` inside task `pid`.
fn fs_type(pid: u32, target: &str) -> Option<String> {
    let mounts = std::fs::read_to_string(format!("/proc/{pid}/mountinfo")).ok()?;
    mounts
        .lines()
        .find(|l| l.split(' ').nth(4) == Some(target))
        .and_then(|l| l.split(" - ").nth(1))
        .and_then(|rest| rest.split(' ').next())
        .map(str::to_string)
}

#[test]
fn secrets_and_configs_are_files_on_tmpfs_for_their_service_only() {
    let Some((_ctrd, d)) = common::swarm_with_test_image() else {
        return;
    };
    let secret = common::marker("s3cret");
    d.docker_stdin(&["secret", "create", "db", "-"], Some(secret.as_bytes()));
    d.docker_stdin(&["secret", "create", "db2", "-"], Some(b"second"));
    d.docker_stdin(&["config", "create", "appcfg", "-"], Some(b"listen=80\n"));
    d.ok(&[
        "service",
        "create",
        "-d",
        "--name",
        "app",
        "--stop-grace-period",
        "1s",
        "--secret",
        "db",
        "--secret",
        "source=db,target=pw,uid=1000,gid=1000,mode=0400",
        "--config",
        "source=appcfg,target=/etc/app.conf",
        IMAGE,
        "httpd",
        "-f",
        "-p",
        "80",
    ]);
    d.ok(&[
        "service",
        "create",
        "-d",
        "--name",
        "other",
        "--stop-grace-period",
        "1s",
        IMAGE,
        "httpd",
        "-f",
        "-p",
        "80",
    ]);
    let app = wait_running(&d, "app", 1).remove(0);
    let (_, pid) = container(&d, &app.id);
    assert_eq!(in_task(pid, &["cat", "/run/secrets/db"]), secret);
    assert_eq!(in_task(pid, &["cat", "/etc/app.conf"]), "listen=80");
    assert_eq!(
        in_task(pid, &["stat", "-c", "%a %u %g", "/run/secrets/pw"]),
        "400 1000 1000"
    );
    assert_eq!(
        in_task(pid, &["stat", "-c", "%a %u %g", "/run/secrets/db"]),
        "444 0 0"
    );
    // Never on the node's disk: the files live on a tmpfs.
    assert_eq!(fs_type(pid, "/run/secrets/db").as_deref(), Some("tmpfs"));

    let other = wait_running(&d, "other", 1).remove(0);
    let (_, opid) = container(&d, &other.id);
    assert_eq!(
        in_task(opid, &["ls", "/run/secrets"]),
        "",
        "no secrets for other"
    );
    assert_eq!(fs_type(opid, "/run/secrets/db"), None);

    d.ok(&[
        "service",
        "update",
        "-d",
        "--secret-rm",
        "db",
        "--secret-add",
        "db2",
        "app",
    ]);
    let next = wait_for(60, "app task replaced", || {
        running(&d, "app").into_iter().find(|r| r.id != app.id)
    });
    let (_, pid2) = container(&d, &next.id);
    assert_eq!(in_task(pid2, &["cat", "/run/secrets/db2"]), "second");
    assert_eq!(in_task(pid2, &["cat", "/run/secrets/db"]), "");
    // The old task's tmpfs is gone with its container once reaped; the
    // secret's text is in no regular file under the data root.
    let grep = Command::new("grep")
        .args(["-rl", "--exclude-dir=deps", &secret])
        .arg(d.data_root())
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&grep.stdout), "");
}

#[test]
fn health_checks_gate_running_and_replace_unhealthy_tasks() {
    let Some((_ctrd, d)) = common::swarm_with_test_image() else {
        return;
    };
    let health = [
        "--health-cmd",
        "test -e /tmp/ok",
        "--health-interval",
        "1s",
        "--health-retries",
        "2",
        "--health-timeout",
        "2s",
        "--stop-grace-period",
        "1s",
    ];
    let mut create = vec!["service", "create", "-d", "--name", "good"];
    create.extend(health);
    create.extend([IMAGE, "sh", "-c", "touch /tmp/ok; exec httpd -f -p 80"]);
    d.ok(&create);
    let good = wait_running(&d, "good", 1).remove(0);
    let (cid, pid) = container(&d, &good.id);
    let recorded =
        std::fs::read_to_string(d.data_root().join(format!("containers/{cid}/health.json")))
            .unwrap();
    let recorded: serde_json::Value = serde_json::from_str(&recorded).unwrap();
    assert_eq!(recorded["Status"], "healthy", "{recorded}");
    assert_eq!(recorded["Log"][0]["ExitCode"], 0, "{recorded}");

    // Failing checks after it was healthy: killed and replaced.
    in_task(pid, &["rm", "/tmp/ok"]);
    let old = wait_for(30, "unhealthy task failed", || {
        ps(&d, "good")
            .into_iter()
            .find(|r| r.id == good.id && r.current.starts_with("Failed"))
    });
    assert_eq!(
        old.error,
        "\"task: non-zero exit (137): dockerexec: unhealthy container\""
    );
    wait_for(30, "a replacement", || {
        running(&d, "good").into_iter().find(|r| r.id != good.id)
    });

    // Never healthy: the task stays starting, then fails; it never runs.
    let mut create = vec!["service", "create", "-d", "--name", "bad"];
    create.extend(health);
    create.extend([IMAGE, "httpd", "-f", "-p", "80"]);
    d.ok(&create);
    let seen_starting = wait_for(30, "bad task starting", || {
        ps(&d, "bad")
            .into_iter()
            .find(|r| r.current.starts_with("Starting"))
    });
    let failed = wait_for(30, "bad task failed", || {
        ps(&d, "bad")
            .into_iter()
            .find(|r| r.id == seen_starting.id && r.current.starts_with("Failed"))
    });
    assert!(failed.error.contains("unhealthy container"), "{failed:?}");
}

#[test]
fn a_containerd_restart_is_survived() {
    let Some((mut ctrd, d)) = common::swarm_with_test_image() else {
        return;
    };
    d.ok(&[
        "service",
        "create",
        "-d",
        "--name",
        "web",
        "--replicas",
        "2",
        "--stop-grace-period",
        "1s",
        IMAGE,
        "httpd",
        "-f",
        "-p",
        "80",
    ]);
    let before = wait_running(&d, "web", 2);
    ctrd.restart();
    std::thread::sleep(std::time::Duration::from_secs(2));
    let after = wait_running(&d, "web", 2);
    assert_eq!(
        ps(&d, "web").len(),
        2,
        "nothing failed: {:?}",
        ps(&d, "web")
    );
    for r in &before {
        assert!(after.iter().any(|a| a.id == r.id), "{} kept running", r.id);
    }
    // Exits are still seen through the restarted containerd.
    let (_, pid) = container(&d, &before[0].id);
    kill9(pid);
    let failed = wait_for(30, "exit seen after the restart", || {
        ps(&d, "web")
            .into_iter()
            .find(|r| r.id == before[0].id && r.current.starts_with("Failed"))
    });
    assert_eq!(failed.error, "\"task: non-zero exit (137)\"");
    wait_running(&d, "web", 2);
}

#[test]
fn init_and_stop_signal_are_honoured() {
    let Some((_ctrd, d)) = common::swarm_with_test_image() else {
        return;
    };
    // Under --init the task's process is docker-init, which forwards
    // SIGTERM: busybox httpd then stops at once instead of after the grace.
    d.ok(&[
        "service",
        "create",
        "-d",
        "--name",
        "init",
        "--init",
        "--stop-grace-period",
        "30s",
        IMAGE,
        "httpd",
        "-f",
        "-p",
        "80",
    ]);
    let t = wait_running(&d, "init", 1).remove(0);
    let (_, pid) = container(&d, &t.id);
    assert!(
        cmdline(pid).starts_with("/sbin/docker-init -- httpd -f -p 80"),
        "{}",
        cmdline(pid)
    );
    let start = std::time::Instant::now();
    d.ok(&["service", "rm", "init"]);
    wait_for(20, "init task stopped by SIGTERM", || {
        (!cmdline(pid).starts_with("/sbin/docker-init")).then_some(())
    });
    assert!(start.elapsed() < std::time::Duration::from_secs(15));

    // A custom stop signal is what the process receives on shutdown.
    d.ok(&[
        "service",
        "create",
        "-d",
        "--name",
        "sig",
        "--stop-signal",
        "SIGUSR1",
        "--stop-grace-period",
        "1s",
        IMAGE,
        "sh",
        "-c",
        "trap 'echo got-usr1' USR1; while true; do sleep 0.2; done",
    ]);
    let t = wait_running(&d, "sig", 1).remove(0);
    let (_, pid) = container(&d, &t.id);
    d.ok(&["service", "scale", "-d", "sig=0"]);
    wait_for(20, "sig task stopped", || {
        (!cmdline(pid).starts_with("sh -c")).then_some(())
    });
    let logs = d.ok(&["service", "logs", "--raw", "sig"]);
    assert!(logs.contains("got-usr1"), "{logs}");
}

#[test]
fn a_replacement_is_listed_ready_through_its_restart_delay() {
    let Some((_ctrd, d)) = common::swarm_with_test_image() else {
        return;
    };
    d.ok(&[
        "service",
        "create",
        "-d",
        "--name",
        "slow",
        "--restart-delay",
        "4s",
        "--stop-grace-period",
        "1s",
        IMAGE,
        "httpd",
        "-f",
        "-p",
        "80",
    ]);
    let first = wait_running(&d, "slow", 1).remove(0);
    let (_, pid) = container(&d, &first.id);
    let killed = std::time::Instant::now();
    kill9(pid);
    // As with swarmkit, `service ps` shows the replacement at once, meant
    // to be Ready, while the delay runs ...
    let held = wait_for(10, "the replacement listed as Ready", || {
        ps(&d, "slow")
            .into_iter()
            .find(|r| r.id != first.id && r.desired == "Ready")
    });
    assert_eq!(held.name, "slow.1");
    assert!(
        killed.elapsed() < std::time::Duration::from_secs(3),
        "listed only after {:?}",
        killed.elapsed()
    );
    // ... and the same task runs once it is over, not before.
    let running = wait_for(30, "the replacement running", || {
        running(&d, "slow").into_iter().find(|r| r.id != first.id)
    });
    assert_eq!(running.id, held.id);
    assert!(
        killed.elapsed() >= std::time::Duration::from_secs(4),
        "started after {:?}",
        killed.elapsed()
    );
}

/// The parent of `pid` (a task's init process is its shim's child).
fn ppid(pid: u32) -> u32 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    stat.rsplit_once(')')
        .and_then(|(_, rest)| rest.split_whitespace().nth(1)?.parse().ok())
        .unwrap_or(0)
}

#[test]
fn a_dead_shim_takes_only_its_group_and_its_tasks_are_replaced() {
    let Some((ctrd, d)) = common::swarm_with_test_image() else {
        return;
    };
    for (name, replicas) in [("grouped", "3"), ("other", "1")] {
        d.ok(&[
            "service",
            "create",
            "-d",
            "--name",
            name,
            "--replicas",
            replicas,
            "--stop-grace-period",
            "1s",
            IMAGE,
            "httpd",
            "-f",
            "-p",
            "80",
        ]);
    }
    let old = wait_running(&d, "grouped", 3);
    let other = wait_running(&d, "other", 1).remove(0);
    let (_, other_pid) = container(&d, &other.id);
    // The three tasks of one service share one shim; another service's
    // task runs under a shim of its own.
    let shims: Vec<u32> = old.iter().map(|r| ppid(container(&d, &r.id).1)).collect();
    let shim = shims[0];
    assert!(shims.iter().all(|s| *s == shim), "shims {shims:?}");
    assert!(
        cmdline(shim).contains("containerd-shim-runc-v2"),
        "{shim}: {}",
        cmdline(shim)
    );
    assert_ne!(ppid(other_pid), shim);

    kill9(shim);
    let old_ids: Vec<&str> = old.iter().map(|r| r.id.as_str()).collect();
    let fresh = wait_for(60, "three replacement tasks", || {
        let r = running(&d, "grouped");
        (r.len() == 3 && r.iter().all(|t| !old_ids.contains(&t.id.as_str()))).then_some(r)
    });
    let tasks = ctrd.task_ids();
    for r in &fresh {
        let (cid, pid) = container(&d, &r.id);
        assert!(tasks.contains(&cid), "{cid} not in containerd's {tasks:?}");
        assert!(cmdline(pid).starts_with("httpd"), "{pid}: {}", cmdline(pid));
    }
    let history = ps(&d, "grouped");
    for id in &old_ids {
        let row = history
            .iter()
            .find(|r| r.id == *id)
            .expect("old task listed");
        assert_eq!(row.desired, "Shutdown", "{row:?}");
    }
    // The other service lost nothing.
    let still: Vec<String> = running(&d, "other").into_iter().map(|r| r.id).collect();
    assert_eq!(still, vec![other.id.clone()]);
    assert!(cmdline(other_pid).starts_with("httpd"), "{other_pid}");
}

#[test]
fn an_image_removed_and_loaded_again_still_runs_tasks() {
    let Some((ctrd, d)) = common::swarm_with_test_image() else {
        return;
    };
    let create = |name: &str| {
        d.ok(&[
            "service",
            "create",
            "-d",
            "--name",
            name,
            "--stop-grace-period",
            "1s",
            IMAGE,
            "httpd",
            "-f",
            "-p",
            "80",
        ]);
    };
    create("before");
    wait_running(&d, "before", 1);
    d.ok(&["service", "rm", "before"]);
    wait_for(60, "the service's containers removed", || {
        ctrd.task_ids().is_empty().then_some(())
    });
    // The image's layers go with it (containerd collects them); the
    // executor, having unpacked them once, must unpack them again.
    d.ok(&["image", "rm", IMAGE]);
    let tar = common::make_test_image(d.dir.path(), false);
    d.ok(&["load", "-i", &tar.display().to_string()]);
    create("after");
    let row = wait_running(&d, "after", 1).remove(0);
    let (_, pid) = container(&d, &row.id);
    assert!(cmdline(pid).starts_with("httpd"), "{pid}: {}", cmdline(pid));
}
