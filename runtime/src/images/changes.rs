//! `docker import --change`: the Dockerfile instructions dockerd allows
//! there (`CMD`, `ENTRYPOINT`, `ENV`, `EXPOSE`, `LABEL`, `ONBUILD`, `USER`,
//! `VOLUME`, `WORKDIR`) applied to an image's container config.

use serde_json::json;
use serde_json::Map;
use serde_json::Value;

use crate::error::Error;
use crate::error::Result;

/// An empty container config with every field dockerd writes.
pub fn empty_config() -> Value {
    json!({
        "Hostname": "", "Domainname": "", "User": "",
        "AttachStdin": false, "AttachStdout": false, "AttachStderr": false,
        "Tty": false, "OpenStdin": false, "StdinOnce": false,
        "Env": null, "Cmd": null, "Image": "", "Volumes": null,
        "WorkingDir": "", "Entrypoint": null, "OnBuild": null, "Labels": null,
    })
}

/// Applies each change line to `config` in order. An instruction outside
/// the allowed set fails with dockerd's `X is not a valid change command`.
pub fn apply(config: &mut Value, changes: &[String]) -> Result<()> {
    for line in changes.iter().flat_map(|c| c.lines()) {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let (word, rest) = line.split_once(char::is_whitespace).unwrap_or((line, ""));
        let rest = rest.trim();
        let word = word.to_ascii_lowercase();
        match word.as_str() {
            "cmd" => config["Cmd"] = command(rest),
            "entrypoint" => config["Entrypoint"] = command(rest),
            "env" => pairs(rest)
                .into_iter()
                .for_each(|(k, v)| set_env(config, &k, &v)),
            "label" => {
                for (k, v) in pairs(rest) {
                    object(config, "Labels").insert(k, Value::from(v));
                }
            }
            "expose" => {
                for p in rest.split_whitespace() {
                    let key = if p.contains('/') {
                        p.to_string()
                    } else {
                        format!("{p}/tcp")
                    };
                    object(config, "ExposedPorts").insert(key, json!({}));
                }
            }
            "volume" => {
                for v in words(rest) {
                    object(config, "Volumes").insert(v, json!({}));
                }
            }
            "user" => config["User"] = Value::from(rest),
            "workdir" => {
                let cur = config["WorkingDir"].as_str().unwrap_or("").to_string();
                let dir = if rest.starts_with('/') || cur.is_empty() {
                    rest.to_string()
                } else {
                    format!("{}/{rest}", cur.trim_end_matches('/'))
                };
                config["WorkingDir"] = Value::from(dir);
            }
            "onbuild" => match config["OnBuild"].as_array_mut() {
                Some(a) => a.push(Value::from(rest)),
                None => config["OnBuild"] = json!([rest]),
            },
            _ => return Err(Error::InvalidChange(word)),
        }
    }
    Ok(())
}

/// JSON (exec) form as it is; shell form through `/bin/sh -c`.
fn command(rest: &str) -> Value {
    match serde_json::from_str::<Vec<String>>(rest) {
        Ok(v) => json!(v),
        Err(_) => json!(["/bin/sh", "-c", rest]),
    }
}

/// A JSON array or whitespace-separated words.
fn words(rest: &str) -> Vec<String> {
    serde_json::from_str::<Vec<String>>(rest)
        .unwrap_or_else(|_| rest.split_whitespace().map(str::to_string).collect())
}

/// `K=V K2="V 2"` or the legacy `K V with spaces`.
fn pairs(rest: &str) -> Vec<(String, String)> {
    let first = rest.split_whitespace().next().unwrap_or("");
    if !first.contains('=') {
        let (k, v) = rest.split_once(char::is_whitespace).unwrap_or((rest, ""));
        return vec![(k.to_string(), v.trim().to_string())];
    }
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut quote: Option<char> = None;
    let mut chars = rest.chars();
    while let Some(c) = chars.next() {
        match (quote, c) {
            (None, '"' | '\'') => quote = Some(c),
            (Some(q), c) if c == q => quote = None,
            (_, '\\') => cur.extend(chars.next()),
            (None, c) if c.is_whitespace() => push_pair(&mut out, &mut cur),
            (_, c) => cur.push(c),
        }
    }
    push_pair(&mut out, &mut cur);
    out
}

fn push_pair(out: &mut Vec<(String, String)>, cur: &mut String) {
    if cur.is_empty() {
        return;
    }
    let (k, v) = cur.split_once('=').unwrap_or((cur.as_str(), ""));
    out.push((k.to_string(), v.to_string()));
    cur.clear();
}

fn set_env(config: &mut Value, key: &str, value: &str) {
    let entry = format!("{key}={value}");
    let prefix = format!("{key}=");
    match config["Env"].as_array_mut() {
        Some(env) => match env
            .iter_mut()
            .find(|e| e.as_str().is_some_and(|s| s.starts_with(&prefix)))
        {
            Some(e) => *e = Value::from(entry),
            None => env.push(Value::from(entry)),
        },
        None => config["Env"] = json!([entry]),
    }
}

fn object<'a>(config: &'a mut Value, key: &str) -> &'a mut Map<String, Value> {
    if !config[key].is_object() {
        config[key] = json!({});
    }
    config[key].as_object_mut().expect("just made an object")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn applied(changes: &[&str]) -> Value {
        let mut c = empty_config();
        let changes: Vec<String> = changes.iter().map(|s| s.to_string()).collect();
        apply(&mut c, &changes).unwrap();
        c
    }

    #[test]
    fn cmd_forms() {
        assert_eq!(
            applied(&[r#"CMD ["sh", "-c", "x"]"#])["Cmd"],
            json!(["sh", "-c", "x"])
        );
        assert_eq!(
            applied(&["CMD echo hi"])["Cmd"],
            json!(["/bin/sh", "-c", "echo hi"])
        );
        assert_eq!(
            applied(&["entrypoint [\"/bin/sh\"]"])["Entrypoint"],
            json!(["/bin/sh"])
        );
    }

    #[test]
    fn env_label_expose_volume_workdir() {
        let c = applied(&[
            "ENV A=1 B=\"two words\"",
            "ENV A 3",
            "LABEL k=v",
            "EXPOSE 80 53/udp",
            "VOLUME /data",
            "WORKDIR /srv",
            "WORKDIR app",
            "USER nobody",
        ]);
        assert_eq!(c["Env"], json!(["A=3", "B=two words"]));
        assert_eq!(c["Labels"], json!({"k": "v"}));
        assert_eq!(c["ExposedPorts"], json!({"80/tcp": {}, "53/udp": {}}));
        assert_eq!(c["Volumes"], json!({"/data": {}}));
        assert_eq!(c["WorkingDir"], json!("/srv/app"));
        assert_eq!(c["User"], json!("nobody"));
    }

    #[test]
    fn refuses_other_instructions_with_dockerds_text() {
        let mut c = empty_config();
        let e = apply(&mut c, &["RUN true".to_string()]).unwrap_err();
        assert_eq!(e.to_string(), "run is not a valid change command");
    }
}
