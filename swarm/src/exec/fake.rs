//! Fakes of the exec seams for tests: scripted controllers that record calls.

use std::sync::Arc;
use std::sync::Mutex;

use async_trait::async_trait;

use super::Controller;
use super::ExecError;
use super::Executor;
use super::ExitStatus;
use crate::model::api;
use crate::model::Node;
use crate::model::Task;

/// A controller with a scripted outcome.
#[derive(Debug, Clone, Default)]
pub struct FakeController {
    exit: i64,
    prepare_err: Option<String>,
    /// The process never exits by itself.
    runs: bool,
    /// Calls received, in order.
    pub calls: Arc<Mutex<Vec<&'static str>>>,
}

impl FakeController {
    /// A task whose process exits with `code`.
    pub fn exits(code: i64) -> Self {
        FakeController {
            exit: code,
            ..Default::default()
        }
    }

    /// A task whose process runs until it is shut down.
    pub fn runs() -> Self {
        FakeController {
            runs: true,
            ..Default::default()
        }
    }

    /// A task whose preparation fails fatally with `msg`.
    pub fn failing_prepare(msg: &str) -> Self {
        FakeController {
            prepare_err: Some(msg.into()),
            ..Default::default()
        }
    }

    fn record(&self, c: &'static str) {
        self.calls.lock().unwrap_or_else(|e| e.into_inner()).push(c);
    }
}

#[async_trait]
impl Controller for FakeController {
    async fn prepare(&mut self) -> Result<(), ExecError> {
        self.record("prepare");
        match &self.prepare_err {
            Some(m) => Err(ExecError::Fatal(m.clone())),
            None => Ok(()),
        }
    }
    async fn start(&mut self) -> Result<(), ExecError> {
        self.record("start");
        Ok(())
    }
    async fn wait(&mut self) -> Result<ExitStatus, ExecError> {
        self.record("wait");
        if self.runs {
            std::future::pending::<()>().await;
        }
        Ok(ExitStatus { code: self.exit })
    }
    async fn shutdown(&mut self) -> Result<(), ExecError> {
        self.record("shutdown");
        Ok(())
    }
    async fn remove(&mut self) -> Result<(), ExecError> {
        self.record("remove");
        Ok(())
    }
    async fn update_networks(&mut self, _task: &Task) -> Result<(), ExecError> {
        self.record("update_networks");
        Ok(())
    }
}

/// An executor whose tasks all behave like `template`.
#[derive(Debug, Clone, Default)]
pub struct FakeExecutor {
    /// The controller each task gets (cloned).
    pub template: FakeController,
}

#[async_trait]
impl Executor for FakeExecutor {
    async fn describe(&self) -> Result<api::NodeDescription, ExecError> {
        Ok(api::NodeDescription {
            hostname: Some("fake".into()),
            ..Default::default()
        })
    }
    async fn configure(&self, _node: &Node) -> Result<(), ExecError> {
        Ok(())
    }
    fn controller(
        &self,
        _task: &Task,
        _deps: Arc<dyn super::DependencyGetter>,
    ) -> Result<Box<dyn Controller>, ExecError> {
        Ok(Box::new(self.template.clone()))
    }
}
