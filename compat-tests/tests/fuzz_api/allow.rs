//! The 5xx answers the fuzz run accepts: each one dockerd 20.10 gives for
//! the same request with the same status (or, for the last, a feature
//! shoald does not have). Anything else at 500 or above fails the run.

/// Why a 5xx answer to operation `op` with `message` is accepted, if it is.
pub fn allowed(op: &str, status: u16, message: &str) -> Option<&'static str> {
    let reason = match (op, status) {
        // dockerd refuses init and join on a node already in a swarm with
        // 503 (its `notAvailableError`).
        ("SwarmInit" | "SwarmJoin", 503) if message.starts_with("This node is already part of a swarm") => {
            "init/join in a swarm: 503 as dockerd"
        }
        // The last manager leaving without `force`: dockerd's 503 too (the
        // run never sends `force`, which would end the swarm under test).
        ("SwarmLeave", 503) if message.starts_with("You are attempting to leave the swarm on a node that is participating as a manager") => {
            "leave without force: 503 as dockerd"
        }
        // A stale `version` is swarmkit's plain error, which dockerd relays
        // as gRPC Unknown, 500. The run reads the version just before each
        // update, so these come from an update that changed nothing but
        // still raised it, or from a mutated `version`.
        (_, 500) if message == "rpc error: code = Unknown desc = update out of sequence" => {
            "stale version: 500 as dockerd"
        }
        // swarmkit's gRPC Unimplemented, which dockerd relays as 501.
        ("ServiceUpdate", 501)
            if message == "rpc error: code = Unimplemented desc = service mode change is not allowed"
                || message == "rpc error: code = Unimplemented desc = renaming services is not supported" =>
        {
            "mode change or rename: 501 as dockerd"
        }
        _ => return None,
    };
    Some(reason)
}
