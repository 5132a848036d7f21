//! The containerd calls only standalone containers make: changes to a
//! container record after it was made, a running task's limits, pause
//! and resume.

use containerd_client::services::v1::containers_client::ContainersClient;
use containerd_client::services::v1::tasks_client::TasksClient;
use containerd_client::services::v1::PauseTaskRequest;
use containerd_client::services::v1::ResumeTaskRequest;
use containerd_client::services::v1::UpdateContainerRequest;
use containerd_client::services::v1::UpdateTaskRequest;

use crate::error::Result;
use crate::Containerd;

const SPEC_TYPE: &str = "types.containerd.io/opencontainers/runtime-spec/1/Spec";
const RESOURCES_TYPE: &str = "types.containerd.io/opencontainers/runtime-spec/1/LinuxResources";

impl Containerd {
    /// Replaces the OCI spec and the labels of container `id`'s record.
    pub(crate) async fn container_update(
        &self,
        id: &str,
        spec: Option<Vec<u8>>,
        labels: Option<std::collections::HashMap<String, String>>,
    ) -> Result<()> {
        let mut client = ContainersClient::new(self.channel().await?);
        let Some(mut c) = self.container_get(id).await? else {
            return Err(crate::Error::Containerd {
                op: "update container",
                code: tonic::Code::NotFound,
                message: format!("container \"{id}\": not found"),
            });
        };
        let mut paths = Vec::new();
        if let Some(spec) = spec {
            c.spec = Some(prost_types::Any {
                type_url: SPEC_TYPE.into(),
                value: spec,
            });
            paths.push("spec".to_string());
        }
        if let Some(labels) = labels {
            c.labels = labels;
            paths.push("labels".to_string());
        }
        let req = UpdateContainerRequest {
            container: Some(c),
            update_mask: Some(prost_types::FieldMask { paths }),
        };
        client
            .update(self.request(req, None))
            .await
            .map(|_| ())
            .map_err(|s| self.status("update container", s))
    }

    /// Applies `resources` to container `id`'s running task (runc
    /// update).
    pub(crate) async fn task_update(
        &self,
        id: &str,
        resources: &oci_spec::runtime::LinuxResources,
    ) -> Result<()> {
        let mut client = TasksClient::new(self.channel().await?);
        let value = serde_json::to_vec(resources).map_err(|e| crate::Error::Containerd {
            op: "update task",
            code: tonic::Code::InvalidArgument,
            message: e.to_string(),
        })?;
        let req = UpdateTaskRequest {
            container_id: id.to_string(),
            resources: Some(prost_types::Any {
                type_url: RESOURCES_TYPE.into(),
                value,
            }),
            annotations: Default::default(),
        };
        client
            .update(self.request(req, None))
            .await
            .map(|_| ())
            .map_err(|s| self.status("update task", s))
    }

    /// Freezes (`pause`) or thaws the container's processes.
    pub(crate) async fn task_pause(&self, id: &str, pause: bool) -> Result<()> {
        let mut client = TasksClient::new(self.channel().await?);
        let id = id.to_string();
        let done = if pause {
            client
                .pause(self.request(PauseTaskRequest { container_id: id }, None))
                .await
        } else {
            client
                .resume(self.request(ResumeTaskRequest { container_id: id }, None))
                .await
        };
        done.map(|_| ())
            .map_err(|s| self.status(if pause { "pause task" } else { "resume task" }, s))
    }
}
