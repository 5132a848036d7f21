//! Task logs as they travel between nodes: which task containers a
//! subscription covers, what to read of them, and the lines themselves
//! (swarmkit's `LogSelector`, `LogSubscriptionOptions` and `LogMessage`).

use serde::Deserialize;
use serde::Serialize;

/// Which task containers a log subscription covers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum LogSelector {
    /// Every task of the service with this ID.
    Service(String),
    /// The task with this ID.
    Task(String),
}

/// What to read of the selected containers' logs.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogOptions {
    /// Only the last N lines of each container (`None`: all).
    pub tail: Option<usize>,
    /// Only lines at or after this time (Unix nanoseconds).
    pub since_nanos: Option<i128>,
    /// Keep sending lines as they are written, from tasks that start later too.
    pub follow: bool,
}

/// One line of a task container's log, with where it comes from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogMessage {
    /// The node that runs the task.
    pub node_id: String,
    /// The task's service.
    pub service_id: String,
    /// The task.
    pub task_id: String,
    /// Whether the line went to standard error.
    pub stderr: bool,
    /// When the container wrote it (Unix nanoseconds).
    pub time_nanos: i128,
    /// The text, with its newline when it had one.
    #[serde(with = "base64_bytes")]
    pub line: Vec<u8>,
}

/// Bytes as base64 in JSON (a line is text most of the time, but not always).
mod base64_bytes {
    use base64::Engine;
    use serde::Deserialize;
    use serde::Deserializer;
    use serde::Serializer;

    pub fn serialize<S: Serializer>(b: &[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&base64::engine::general_purpose::STANDARD.encode(b))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        let text = String::deserialize(d)?;
        base64::engine::general_purpose::STANDARD
            .decode(text)
            .map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_travel_as_base64() {
        let m = LogMessage {
            node_id: "n".into(),
            service_id: "s".into(),
            task_id: "t".into(),
            stderr: true,
            time_nanos: 1_700_000_000_123_456_789,
            line: b"hello\n\xff".to_vec(),
        };
        let json = serde_json::to_string(&m).unwrap();
        assert!(json.contains("\"line\":\"aGVsbG8K/w==\""), "{json}");
        assert_eq!(serde_json::from_str::<LogMessage>(&json).unwrap(), m);
    }
}
