//! The exec's OCI process (the container's own with the request's
//! command, environment, working directory, terminal and user), the
//! parsing dockerd does on the request, and dockerd's reading of a failed
//! start.

use std::collections::HashMap;
use std::path::PathBuf;

use serde_json::json;
use serde_json::Value;

use super::ExecConfig;
use super::ExecError;
use crate::exec::users::UserDb;

/// The codes dockerd records for an exec that could not start.
const EXIT_EACCES: i64 = 126;
const EXIT_NOT_FOUND: i64 = 127;
const EXIT_UNKNOWN: i64 = 128;

/// Why a start failed.
#[derive(Debug)]
pub(super) enum LaunchError {
    /// Before the runtime was asked (spec, user, FIFOs).
    Setup(String),
    /// containerd or runc refused; the text is theirs.
    Runtime(String),
}

impl LaunchError {
    /// dockerd's exit code and error for a failed start.
    pub(super) fn classify(self) -> (i64, ExecError) {
        let desc = match self {
            LaunchError::Setup(message) => {
                return (
                    EXIT_EACCES,
                    ExecError::Start {
                        message,
                        invalid: false,
                    },
                )
            }
            LaunchError::Runtime(m) => m,
        };
        let lower = desc.to_lowercase();
        let invalid = |code: i64, message: String| {
            (
                code,
                ExecError::Start {
                    message,
                    invalid: true,
                },
            )
        };
        if lower.contains("permission denied") {
            return invalid(EXIT_EACCES, desc);
        }
        if lower.contains("is a directory") {
            return invalid(EXIT_EACCES, format!("{desc}: permission denied"));
        }
        if lower.contains("not a directory") {
            return invalid(
                EXIT_NOT_FOUND,
                format!("{desc}: Are you trying to mount a directory onto a file (or vice-versa)? Check if the specified host path exists and is the expected type"),
            );
        }
        let not_found = [
            "executable file not found",
            "no such file or directory",
            "system cannot find the file specified",
            "failed to run runc create/exec call",
        ];
        if not_found.iter().any(|m| lower.contains(m)) {
            return invalid(EXIT_NOT_FOUND, desc);
        }
        (
            EXIT_UNKNOWN,
            ExecError::Start {
                message: desc,
                invalid: false,
            },
        )
    }
}

/// containerd's own text for a failed call.
pub(super) fn runtime_message(e: &crate::Error) -> String {
    match e {
        crate::Error::Containerd { message, .. } => message.clone(),
        other => other.to_string(),
    }
}

/// The user a process runs as.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct UserIds {
    uid: u32,
    gid: u32,
    /// The primary group first, then the groups that list the user.
    groups: Vec<u32>,
}

/// Resolves `spec` (`user[:group]`) against the files of the container
/// whose init process is `pid`, as containerd does for dockerd.
pub(super) fn user_ids(pid: u32, spec: &str) -> Result<UserIds, String> {
    let root = PathBuf::from(format!("/proc/{pid}/root/etc"));
    let passwd = std::fs::read_to_string(root.join("passwd")).unwrap_or_default();
    let group = std::fs::read_to_string(root.join("group")).unwrap_or_default();
    resolve_user(&passwd, &group, spec)
}

fn resolve_user(passwd: &str, group: &str, spec: &str) -> Result<UserIds, String> {
    let (uid, gid) = UserDb::new(passwd, group).resolve(spec)?;
    // Supplementary groups are looked up by the whole `spec` as a name,
    // or by the name of a numeric user.
    let name = match spec.parse::<u32>() {
        Ok(n) => passwd.lines().find_map(|l| {
            let f: Vec<&str> = l.split(':').collect();
            (f.len() > 2 && f[2].parse() == Ok(n)).then(|| f[0].to_string())
        }),
        Err(_) => Some(spec.to_string()),
    };
    let mut groups = vec![gid];
    if let Some(name) = name {
        for l in group.lines() {
            let f: Vec<&str> = l.split(':').collect();
            if f.len() < 4 || f[0] == name || !f[3].split(',').any(|m| m == name) {
                continue;
            }
            if let Ok(g) = f[2].parse::<u32>() {
                if !groups.contains(&g) {
                    groups.push(g);
                }
            }
        }
    }
    Ok(UserIds { uid, gid, groups })
}

/// Detach keys as moby's `term.ToBytes` reads them.
pub(super) fn detach_keys(keys: &str) -> Result<Vec<u8>, ExecError> {
    let mut out = Vec::new();
    if keys.is_empty() {
        return Ok(out);
    }
    for key in keys.split(',') {
        if key.len() == 1 {
            out.push(key.as_bytes()[0]);
            continue;
        }
        let code = match key {
            "DEL" => Some(127),
            k => k.strip_prefix("ctrl-").and_then(|c| match c.as_bytes() {
                [b'@'] => Some(0),
                [c @ b'a'..=b'z'] => Some(c - b'a' + 1),
                [b'['] => Some(27),
                [b'\\'] => Some(28),
                [b']'] => Some(29),
                [b'^'] => Some(30),
                [b'_'] => Some(31),
                _ => None,
            }),
        };
        match code {
            Some(c) => out.push(c),
            None => return Err(ExecError::DetachKeys(keys.to_string())),
        }
    }
    Ok(out)
}

fn env_key(e: &str) -> &str {
    e.split_once('=').map_or(e, |(k, _)| k)
}

/// dockerd's `ReplaceOrAppendEnvValues`: an override replaces the default
/// of the same key or is appended; a bare `K` removes the default `K`.
fn replace_or_append(mut defaults: Vec<String>, overrides: &[String]) -> Vec<String> {
    let cache: HashMap<String, usize> = defaults
        .iter()
        .enumerate()
        .map(|(i, e)| (env_key(e).to_string(), i))
        .collect();
    for v in overrides {
        match v.split_once('=') {
            None => {
                if let Some(&i) = cache.get(v.as_str()) {
                    defaults[i].clear();
                }
            }
            Some((k, _)) => match cache.get(k) {
                Some(&i) => defaults[i].clone_from(v),
                None => defaults.push(v.clone()),
            },
        }
    }
    defaults.retain(|e| !e.is_empty());
    defaults
}

/// The exec's environment: the container's, `TERM=xterm` with a terminal
/// (after `HOSTNAME`, where dockerd puts it, unless the container sets
/// TERM), then the request's.
fn exec_env(base: &[String], tty: bool, overrides: &[String]) -> Vec<String> {
    let mut env = base.to_vec();
    if tty && !env.iter().any(|e| env_key(e) == "TERM") {
        let at = env
            .iter()
            .position(|e| env_key(e) == "HOSTNAME")
            .map_or(0, |i| i + 1);
        env.insert(at, "TERM=xterm".into());
    }
    replace_or_append(env, overrides)
}

/// The exec's OCI process: the container's `process` from its spec with
/// the request's command, environment, working directory, terminal and,
/// when asked for, user.
pub(super) fn process_json(
    spec: &[u8],
    cfg: &ExecConfig,
    user: Option<&UserIds>,
    console: Option<[u32; 2]>,
) -> Result<Vec<u8>, String> {
    let mut spec: Value = serde_json::from_slice(spec).map_err(|e| e.to_string())?;
    let mut p = match spec.get_mut("process").map(Value::take) {
        Some(p @ Value::Object(_)) => p,
        _ => return Err("container spec has no process".into()),
    };
    let base: Vec<String> = p
        .get("env")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(|s| s.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default();
    let cwd = match cfg.working_dir.as_str() {
        "" => p
            .get("cwd")
            .and_then(Value::as_str)
            .filter(|c| !c.is_empty())
            .unwrap_or("/")
            .to_string(),
        dir => dir.to_string(),
    };
    p["args"] = json!(cfg.cmd);
    p["env"] = json!(exec_env(&base, cfg.tty, &cfg.env));
    p["cwd"] = json!(cwd);
    p["terminal"] = json!(cfg.tty);
    if let Some(obj) = p.as_object_mut() {
        obj.remove("consoleSize");
    }
    if let (true, Some([height, width])) = (cfg.tty, console) {
        p["consoleSize"] = json!({ "height": height, "width": width });
    }
    if let Some(u) = user {
        if !p["user"].is_object() {
            p["user"] = json!({});
        }
        p["user"]["uid"] = json!(u.uid);
        p["user"]["gid"] = json!(u.gid);
        p["user"]["additionalGids"] = json!(u.groups);
    }
    serde_json::to_vec(&p).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::ErrorKind;

    fn strings(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn env_overrides_unsets_and_term() {
        let base = strings(&["HOSTNAME=abc", "PATH=/bin", "A=1"]);
        assert_eq!(
            exec_env(&base, true, &strings(&["A=2", "B=3", "PATH"])),
            strings(&["HOSTNAME=abc", "TERM=xterm", "A=2", "B=3"])
        );
        assert_eq!(exec_env(&base, false, &[]), base);
        let with_term = strings(&["HOSTNAME=abc", "TERM=vt100"]);
        assert_eq!(exec_env(&with_term, true, &[]), with_term);
        // As in dockerd, only the container's keys are replaced or unset.
        assert_eq!(
            replace_or_append(strings(&["X=1"]), &strings(&["Y=1", "Y=2", "Y"])),
            strings(&["X=1", "Y=1", "Y=2"])
        );
    }

    #[test]
    fn detach_keys_parse_like_moby_term() {
        assert_eq!(detach_keys("").unwrap(), Vec::<u8>::new());
        assert_eq!(detach_keys("ctrl-p,ctrl-q").unwrap(), vec![16, 17]);
        assert_eq!(
            detach_keys("a,ctrl-@,ctrl-_,DEL").unwrap(),
            vec![b'a', 0, 31, 127]
        );
        assert_eq!(
            detach_keys("ctrl-pq").unwrap_err().to_string(),
            "Invalid escape keys (ctrl-pq) provided"
        );
    }

    #[test]
    fn users_resolve_with_supplementary_groups() {
        let passwd = "root:x:0:0::/root:/bin/sh\nwww:x:33:34::/:/bin/false\n";
        let group = "root:x:0:\nwww:x:34:\nstaff:x:50:www,bob\nadm:x:4:bob\n";
        let u = resolve_user(passwd, group, "www").unwrap();
        assert_eq!((u.uid, u.gid, u.groups), (33, 34, vec![34, 50]));
        let u = resolve_user(passwd, group, "33").unwrap();
        assert_eq!(u.groups, vec![34, 50]);
        let u = resolve_user(passwd, group, "1000").unwrap();
        assert_eq!((u.uid, u.gid, u.groups), (1000, 0, vec![0]));
        assert_eq!(
            resolve_user(passwd, group, "nosuch").unwrap_err(),
            "unable to find user nosuch: no matching entries in passwd file"
        );
    }

    #[test]
    fn process_takes_the_containers_settings_and_the_requests() {
        let spec = json!({"process": {
            "args": ["httpd"], "env": ["HOSTNAME=h", "PATH=/bin"], "cwd": "/srv",
            "user": {"uid": 0, "gid": 0, "umask": 18}, "terminal": false,
            "capabilities": {"bounding": ["CAP_CHOWN"]}
        }});
        let cfg = ExecConfig {
            cmd: strings(&["sh", "-c", "id"]),
            env: strings(&["A=b"]),
            tty: true,
            ..Default::default()
        };
        let user = UserIds {
            uid: 1000,
            gid: 0,
            groups: vec![0],
        };
        let p = process_json(
            spec.to_string().as_bytes(),
            &cfg,
            Some(&user),
            Some([24, 80]),
        )
        .unwrap();
        let p: Value = serde_json::from_slice(&p).unwrap();
        assert_eq!(p["args"], json!(["sh", "-c", "id"]));
        assert_eq!(
            p["env"],
            json!(["HOSTNAME=h", "TERM=xterm", "PATH=/bin", "A=b"])
        );
        assert_eq!(p["cwd"], "/srv");
        assert_eq!(p["terminal"], true);
        assert_eq!(p["consoleSize"], json!({"height": 24, "width": 80}));
        assert_eq!(
            p["user"],
            json!({"uid": 1000, "gid": 0, "umask": 18, "additionalGids": [0]})
        );
        assert_eq!(p["capabilities"]["bounding"], json!(["CAP_CHOWN"]));

        let plain = ExecConfig {
            cmd: strings(&["true"]),
            working_dir: "/tmp".into(),
            ..Default::default()
        };
        let p = process_json(spec.to_string().as_bytes(), &plain, None, Some([1, 1])).unwrap();
        let p: Value = serde_json::from_slice(&p).unwrap();
        assert_eq!(p["cwd"], "/tmp");
        assert_eq!(p["terminal"], false);
        assert!(p.get("consoleSize").is_none(), "no console without a TTY");
        assert_eq!(p["user"], json!({"uid": 0, "gid": 0, "umask": 18}));
        assert!(process_json(b"{}", &plain, None, None).is_err());
    }

    #[test]
    fn start_failures_get_dockerds_exit_codes() {
        let rt = |m: &str| LaunchError::Runtime(m.into()).classify();
        let (code, e) = rt("OCI runtime exec failed: exec failed: unable to start container process: exec: \"nope\": executable file not found in $PATH: unknown");
        assert_eq!(code, 127);
        assert_eq!(e.kind(), ErrorKind::InvalidArgument);
        let (code, e) = rt("exec: \"/tmp\": is a directory");
        assert_eq!(code, 126);
        assert!(e.to_string().ends_with("is a directory: permission denied"));
        let (code, e) = rt("something broke");
        assert_eq!(code, 128);
        assert_eq!(e.kind(), ErrorKind::Internal);
        let (code, _) = LaunchError::Setup("x".into()).classify();
        assert_eq!(code, 126);
    }
}
