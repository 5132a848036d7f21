//! Service spec validation with swarmkit's and dockerd's texts.

use crate::error::Error;
use crate::error::ErrorKind;
use crate::error::Result;
use crate::model::api;

const MIN_MEMORY: i64 = 4 * 1024 * 1024;

/// dockerd's answer to undecodable base64 in a JSON `[]byte` field: Go's
/// decoder text with the offset of the first bad byte, as a plain 400.
pub fn base64_error(e: &base64::DecodeError) -> Error {
    let at = match e {
        base64::DecodeError::InvalidByte(at, _) | base64::DecodeError::InvalidLastSymbol(at, _) => {
            *at
        }
        base64::DecodeError::InvalidLength(len) => *len,
        base64::DecodeError::InvalidPadding => 0,
    };
    Error::new(
        crate::error::ErrorKind::InvalidArgument,
        format!("illegal base64 data at input byte {at}"),
    )
}

/// Whether `name` passes swarmkit's service name rule (a DNS label that may
/// also hold `_`, as the generated `adjective_name` names do).
pub fn is_dns_label(name: &str) -> bool {
    let b = name.as_bytes();
    !b.is_empty()
        && b.len() <= 63
        && b[0].is_ascii_alphanumeric()
        && b[b.len() - 1].is_ascii_alphanumeric()
        && b.iter()
            .all(|c| c.is_ascii_alphanumeric() || *c == b'-' || *c == b'_')
}

/// Whether `image` parses as a Docker image reference (lowercase repository
/// path, optional tag, optional digest).
pub fn is_valid_reference(image: &str) -> bool {
    crate::reference::Reference::parse(image).is_some()
}

fn check_resources(r: Option<&api::TaskSpecResources>) -> Result<()> {
    let Some(r) = r else { return Ok(()) };
    let mems = [
        r.limits.as_ref().and_then(|l| l.memory_bytes),
        r.reservations.as_ref().and_then(|l| l.memory_bytes),
    ];
    for m in mems.into_iter().flatten() {
        if m > 0 && m < MIN_MEMORY {
            return Err(Error::invalid(format!(
                "invalid memory value {m}: Must be at least 4MiB"
            )));
        }
    }
    // A generic resource of no kind is no resource. dockerd has no answer
    // for one: its conversion leaves a nil entry and the handler panics
    // (the connection closes unanswered); this is the 400 it should give.
    let generic = r
        .reservations
        .as_ref()
        .and_then(|res| res.generic_resources.as_ref());
    let kindless = generic
        .into_iter()
        .flatten()
        .any(|g| g.named_resource_spec.is_none() && g.discrete_resource_spec.is_none());
    if kindless {
        return Err(Error::invalid(
            "invalid generic resource: it has neither NamedResourceSpec nor DiscreteResourceSpec",
        ));
    }
    Ok(())
}

/// Checks placement constraints: each must be `key==value` or `key!=value`.
pub fn check_constraints(constraints: &[String]) -> Result<()> {
    for c in constraints {
        let ok = match c.find("==").or_else(|| c.find("!=")) {
            Some(i) => {
                let (k, v) = (c[..i].trim(), c[i + 2..].trim());
                !k.is_empty() && !v.is_empty() && !v.contains("==") && !v.contains("!=")
            }
            None => false,
        };
        if !ok {
            return Err(Error::unknown_bad_input(
                "constraint expected one operator from ==, !=",
            ));
        }
    }
    Ok(())
}

/// Validates a service spec as `POST /services/create` and `update` do.
pub fn service_spec(spec: &api::ServiceSpec) -> Result<()> {
    let name = spec.name.as_deref().unwrap_or("");
    if !is_dns_label(name) {
        return Err(Error::invalid("name must be valid as a DNS name component"));
    }
    let Some(tt) = spec.task_template.as_ref() else {
        return Err(Error::new(
            ErrorKind::InvalidArgument,
            "mismatched Runtime and *Spec fields",
        ));
    };
    let Some(cs) = tt.container_spec.as_ref() else {
        return Err(Error::new(
            ErrorKind::InvalidArgument,
            "mismatched Runtime and *Spec fields",
        ));
    };
    // swarmkit looks at the references before the runtime's image.
    super::refs::check_shape(spec)?;
    let image = cs.image.as_deref().unwrap_or("");
    if image.is_empty() {
        return Err(Error::invalid(
            "ContainerSpec: image reference must be provided",
        ));
    }
    if !is_valid_reference(image) {
        return Err(Error::invalid(format!(
            "ContainerSpec: \"{image}\" is not a valid repository/tag"
        )));
    }
    check_resources(tt.resources.as_ref())?;
    if let Some(p) = tt.placement.as_ref() {
        check_constraints(p.constraints.as_deref().unwrap_or(&[]))?;
        for pref in p.preferences.iter().flatten() {
            let ok = pref
                .spread
                .as_ref()
                .and_then(|s| s.spread_descriptor.as_deref())
                .is_some_and(|d| !d.is_empty());
            if !ok {
                return Err(Error::invalid(
                    "placement preference must have a spread descriptor",
                ));
            }
        }
    }
    let mode = spec.mode.clone().unwrap_or_default();
    let modes = [
        mode.replicated.is_some(),
        mode.global.is_some(),
        mode.replicated_job.is_some(),
        mode.global_job.is_some(),
    ];
    if modes.iter().filter(|m| **m).count() > 1 {
        return Err(Error::invalid(
            "service mode must be one of replicated, global, replicated-job or global-job",
        ));
    }
    // Jobs run to completion: they have nothing to update in rolling
    // steps (a rollback config is allowed, as in swarmkit).
    let job = mode.replicated_job.is_some() || mode.global_job.is_some();
    if job && spec.update_config.is_some() {
        return Err(Error::invalid("Jobs may not have an update config"));
    }
    if let Some(r) = mode.replicated.as_ref().and_then(|r| r.replicas) {
        if r < 0 {
            return Err(Error::invalid("Replicas must be non-negative"));
        }
    }
    for p in spec
        .endpoint_spec
        .iter()
        .flat_map(|e| e.ports.iter().flatten())
    {
        let bad = |v: Option<i64>| v.is_some_and(|v| !(0..=65535).contains(&v));
        if bad(p.target_port) || bad(p.published_port) {
            return Err(Error::invalid("port out of range"));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn references() {
        for ok in [
            "busybox",
            "shoal-test/busybox:latest",
            "localhost:5000/a/b:1.0",
            "nginx@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
        ] {
            assert!(is_valid_reference(ok), "{ok}");
        }
        for bad in ["Busy:Box", "", "a:", "UPPER", "a//b"] {
            assert!(!is_valid_reference(bad), "{bad}");
        }
    }

    #[test]
    fn constraints() {
        assert!(
            check_constraints(&["node.role == manager".into(), "node.labels.zone!=a".into()])
                .is_ok()
        );
        let e = check_constraints(&["a=b".into()]).unwrap_err();
        assert_eq!(e.kind(), crate::ErrorKind::InvalidArgument);
        assert_eq!(
            e.message(),
            "rpc error: code = Unknown desc = constraint expected one operator from ==, !="
        );
        assert!(check_constraints(&["a~=b".into()]).is_err());
    }

    #[test]
    fn names_and_memory() {
        assert!(is_dns_label("web-1"));
        assert!(!is_dns_label("bad_name!"));
        let spec = api::ServiceSpec {
            name: Some("web".into()),
            task_template: Some(api::TaskSpec {
                container_spec: Some(api::TaskSpecContainerSpec {
                    image: Some("busybox".into()),
                    ..Default::default()
                }),
                resources: Some(api::TaskSpecResources {
                    limits: Some(api::Limit {
                        memory_bytes: Some(1024),
                        ..Default::default()
                    }),
                    ..Default::default()
                }),
                ..Default::default()
            }),
            ..Default::default()
        };
        let e = service_spec(&spec).unwrap_err();
        assert_eq!(e.message(), "rpc error: code = InvalidArgument desc = invalid memory value 1024: Must be at least 4MiB");
    }

    #[test]
    fn generic_resources_of_no_kind_are_refused() {
        let with = |g: api::GenericResourcesInner| {
            let r = api::TaskSpecResources {
                reservations: Some(api::ResourceObject {
                    generic_resources: Some(vec![g]),
                    ..Default::default()
                }),
                ..Default::default()
            };
            check_resources(Some(&r))
        };
        let e = with(api::GenericResourcesInner::default()).unwrap_err();
        assert_eq!(e.kind(), crate::ErrorKind::InvalidArgument);
        let ssd = api::GenericResourcesInner {
            discrete_resource_spec: Some(api::GenericResourcesInnerDiscreteResourceSpec {
                kind: Some("ssd".into()),
                value: Some(1),
            }),
            ..Default::default()
        };
        assert!(with(ssd).is_ok());
    }
}
