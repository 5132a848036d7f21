//! Where rtnetlink sockets are driven: a runtime of one thread of their own.
//!
//! A request to the kernel's rtnetlink runs inside `sendto` under the
//! kernel's one `rtnl` lock, which every namespace on the machine shares.
//! With hundreds of tasks attaching at once (and namespaces being torn
//! down, which holds that lock for long) a `sendto` waits for seconds. On
//! the daemon's own runtime (a worker per core) those waits took every
//! worker, so raft stopped answering and a cluster lost its leader while
//! 1,000 tasks started. Here they only hold up other netlink requests,
//! which the kernel serializes anyway.

use std::sync::OnceLock;

use rtnetlink::Handle;

/// Opens an rtnetlink connection in the calling thread's network namespace
/// and returns its handle; the connection runs on the netlink thread.
pub fn connect() -> std::io::Result<Handle> {
    let rt = runtime()?;
    let _in_runtime = rt.enter();
    let (conn, handle, _) = rtnetlink::new_connection()?;
    rt.spawn(conn);
    Ok(handle)
}

fn runtime() -> std::io::Result<&'static tokio::runtime::Runtime> {
    static RT: OnceLock<Result<tokio::runtime::Runtime, String>> = OnceLock::new();
    RT.get_or_init(|| {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("netlink")
            .enable_io()
            .build()
            .map_err(|e| e.to_string())
    })
    .as_ref()
    .map_err(|e| std::io::Error::other(format!("start the netlink thread: {e}")))
}
