//! Running our async code from futures another tokio polls.
//!
//! DataFusion's Python bindings poll the futures of an FFI schema provider or table factory on
//! their own tokio runtime, a different copy of tokio from ours: inside them, `tokio::spawn`,
//! timers and sockets (what object_store's S3, GCS and Azure clients use) find no runtime. The
//! wrappers here enter this module's runtime around every poll of the wrapped calls.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use async_trait::async_trait;
use datafusion::catalog::{SchemaProvider, Session, TableProvider, TableProviderFactory};
use datafusion::error::Result;
use datafusion::logical_expr::CreateExternalTable;
use datafusion_python_util::get_tokio_runtime;

/// `fut`, polled with this module's tokio runtime entered.
struct InRuntime<'a, T> {
    fut: Pin<Box<dyn Future<Output = T> + Send + 'a>>,
}

impl<T> Future for InRuntime<'_, T> {
    type Output = T;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<T> {
        let _entered = get_tokio_runtime().handle().enter();
        self.fut.as_mut().poll(cx)
    }
}

fn in_runtime<'a, T>(fut: impl Future<Output = T> + Send + 'a) -> InRuntime<'a, T> {
    InRuntime { fut: Box::pin(fut) }
}

/// A schema provider whose `table` (which checks the store for newer commits) runs in this
/// module's runtime.
#[derive(Debug)]
pub(crate) struct Schema(pub(crate) Arc<dyn SchemaProvider>);

#[async_trait]
impl SchemaProvider for Schema {
    fn table_names(&self) -> Vec<String> {
        self.0.table_names()
    }

    async fn table(&self, name: &str) -> Result<Option<Arc<dyn TableProvider>>> {
        in_runtime(self.0.table(name)).await
    }

    fn table_exist(&self, name: &str) -> bool {
        self.0.table_exist(name)
    }

    fn register_table(
        &self,
        name: String,
        table: Arc<dyn TableProvider>,
    ) -> Result<Option<Arc<dyn TableProvider>>> {
        self.0.register_table(name, table)
    }

    fn deregister_table(&self, name: &str) -> Result<Option<Arc<dyn TableProvider>>> {
        self.0.deregister_table(name)
    }
}

/// A table factory whose `create` (which opens the store) runs in this module's runtime.
#[derive(Debug)]
pub(crate) struct Factory(pub(crate) Arc<dyn TableProviderFactory>);

#[async_trait]
impl TableProviderFactory for Factory {
    async fn create(
        &self,
        state: &dyn Session,
        cmd: &CreateExternalTable,
    ) -> Result<Arc<dyn TableProvider>> {
        in_runtime(self.0.create(state, cmd)).await
    }
}
