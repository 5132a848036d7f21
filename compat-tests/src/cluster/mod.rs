//! A multi-node harness: several engines, each on a "machine" of its own,
//! on one host.
//!
//! A [`Lab`] owns a network namespace whose Linux bridge plays the LAN
//! (10.99.0.0/24). Each [`Node`] has its own network namespace (eth0 on the
//! bridge at `10.99.0.(10+N)`, no default route) and, below it, its own
//! PID, mount and UTS namespaces: hostname `node<N>`, a private `/run`,
//! sysfs showing its own links, its own containerd and its own engine
//! (shoald or Debian's dockerd, one [`Engine`] per lab) with the API socket
//! under the lab's temp dir, reachable from the host.
//!
//! ```no_run
//! use compat_tests::cluster::{Engine, Lab};
//! let lab = Lab::new(Engine::Shoald)?;
//! let n1 = lab.add_node()?;
//! let n2 = lab.add_node()?;
//! n1.ok(&["swarm", "init", "--advertise-addr", &n1.addr()]);
//! n1.load_test_image()?;
//! n2.link_down()?; // silent loss
//! n1.kill_node(); // a crash: engine, containerd and tasks die
//! n1.start_node()?; // boots again on the same data
//! # anyhow::Ok(())
//! ```
//!
//! Everything is ended by PID when the lab is dropped; if the owning
//! process dies, every node sees its lifeline FIFO close and exits.

pub mod api;
pub mod cgroups;
pub mod cli;
pub mod clock;
pub mod engine;
pub mod image;
pub mod init;
pub mod lab;
pub mod node;
pub mod ns;
pub mod procs;
pub mod slowdisk;
pub mod swarm;
pub mod writes;

pub use cli::Cli;
pub use cli::Run;
pub use engine::Engine;
pub use lab::Lab;
pub use node::Node;
pub use procs::wait_for;
