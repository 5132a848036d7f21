//! Generates the node-to-node gRPC services (tonic clients and servers) from
//! Rust message types: every payload is a serde type the crate already has
//! (openraft's messages, store actions, tasks), carried as JSON by
//! `transport::JsonCodec`, so no .proto files and no second model.

use tonic_build::manual::Method;
use tonic_build::manual::Service;

const CODEC: &str = "crate::transport::JsonCodec";

fn unary(name: &str, route: &str, input: &str, output: &str) -> Method {
    Method::builder()
        .name(name)
        .route_name(route)
        .input_type(input)
        .output_type(output)
        .codec_path(CODEC)
        .build()
}

fn streaming(name: &str, route: &str, input: &str, output: &str) -> Method {
    Method::builder()
        .name(name)
        .route_name(route)
        .input_type(input)
        .output_type(output)
        .codec_path(CODEC)
        .server_streaming()
        .build()
}

fn main() {
    let raft = Service::builder()
        .name("Raft")
        .package("shoal")
        .method(unary(
            "append_entries",
            "AppendEntries",
            "crate::raft::wire::AppendRequest",
            "crate::raft::wire::AppendReply",
        ))
        .method(unary(
            "vote",
            "Vote",
            "crate::raft::wire::VoteRequest",
            "crate::raft::wire::VoteReply",
        ))
        .method(unary(
            "install_snapshot",
            "InstallSnapshot",
            "crate::raft::wire::SnapshotRequest",
            "crate::raft::wire::SnapshotReply",
        ))
        .build();
    let cluster = Service::builder()
        .name("Cluster")
        .package("shoal")
        .method(unary(
            "join",
            "Join",
            "crate::raft::wire::JoinRequest",
            "crate::raft::wire::JoinReply",
        ))
        .method(unary(
            "propose",
            "Propose",
            "crate::raft::wire::ProposeRequest",
            "crate::raft::wire::ProposeReply",
        ))
        .method(unary(
            "read_index",
            "ReadIndex",
            "crate::raft::wire::ReadIndexRequest",
            "crate::raft::wire::ReadIndexReply",
        ))
        .method(unary(
            "leave",
            "Leave",
            "crate::raft::wire::LeaveRequest",
            "crate::raft::wire::LeaveReply",
        ))
        .method(streaming(
            "subscribe_logs",
            "SubscribeLogs",
            "crate::dispatcher::wire::SubscribeRequest",
            "crate::dispatcher::wire::LogBatch",
        ))
        .build();
    let ca = Service::builder()
        .name("NodeCa")
        .package("shoal")
        .method(unary(
            "get_root_ca_certificate",
            "GetRootCACertificate",
            "crate::ca::server::RootRequest",
            "crate::ca::server::RootReply",
        ))
        .method(unary(
            "issue_node_certificate",
            "IssueNodeCertificate",
            "crate::ca::server::IssueRequest",
            "crate::ca::server::IssueReply",
        ))
        .build();
    let dispatcher = Service::builder()
        .name("Dispatcher")
        .package("shoal")
        .method(streaming(
            "session",
            "Session",
            "crate::dispatcher::wire::SessionRequest",
            "crate::dispatcher::wire::SessionMessage",
        ))
        .method(unary(
            "heartbeat",
            "Heartbeat",
            "crate::dispatcher::wire::HeartbeatRequest",
            "crate::dispatcher::wire::HeartbeatReply",
        ))
        .method(unary(
            "update_task_status",
            "UpdateTaskStatus",
            "crate::dispatcher::wire::StatusRequest",
            "crate::dispatcher::wire::Empty",
        ))
        .method(streaming(
            "assignments",
            "Assignments",
            "crate::dispatcher::wire::SessionRef",
            "crate::dispatcher::wire::AssignmentBatch",
        ))
        .method(unary(
            "task_dependency",
            "TaskDependency",
            "crate::dispatcher::wire::DependencyRequest",
            "crate::dispatcher::wire::DependencyReply",
        ))
        .method(streaming(
            "service_records",
            "ServiceRecords",
            "crate::dispatcher::wire::SessionRef",
            "crate::exec::ServiceRecords",
        ))
        .method(streaming(
            "log_subscriptions",
            "LogSubscriptions",
            "crate::dispatcher::wire::SessionRef",
            "crate::logbroker::Subscription",
        ))
        .method(unary(
            "attach_network",
            "AttachNetwork",
            "crate::dispatcher::wire::AttachNetworkRequest",
            "crate::exec::Attachment",
        ))
        .method(unary(
            "node_networks",
            "NodeNetworks",
            "crate::dispatcher::wire::SessionRef",
            "crate::dispatcher::wire::NodeNetworksReply",
        ))
        .method(unary(
            "detach_network",
            "DetachNetwork",
            "crate::dispatcher::wire::DetachNetworkRequest",
            "crate::dispatcher::wire::Empty",
        ))
        .method(unary(
            "publish_logs",
            "PublishLogs",
            "crate::dispatcher::wire::PublishRequest",
            "crate::dispatcher::wire::PublishReply",
        ))
        .build();
    tonic_build::manual::Builder::new().compile(&[raft, cluster, ca, dispatcher]);
    println!("cargo:rerun-if-changed=build.rs");
}
