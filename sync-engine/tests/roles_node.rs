//! `Node` tests (master and worker roles) in one test binary, so the in-test pump (`support`) is
//! shared without dead code.

#[path = "roles_node/support.rs"]
mod support;

#[path = "roles_node/backpressure.rs"]
mod backpressure;
#[path = "roles_node/budgets.rs"]
mod budgets;
#[path = "roles_node/control.rs"]
mod control;
#[path = "roles_node/dapi.rs"]
mod dapi;
#[path = "roles_node/dapi_census.rs"]
mod dapi_census;
#[path = "roles_node/dapi_files.rs"]
mod dapi_files;
#[path = "roles_node/flow.rs"]
mod flow;
#[path = "roles_node/hello.rs"]
mod hello;
#[path = "roles_node/hostile_local.rs"]
mod hostile_local;
#[path = "roles_node/hostile_master.rs"]
mod hostile_master;
#[path = "roles_node/hostile_worker.rs"]
mod hostile_worker;
#[path = "roles_node/locks.rs"]
mod locks;
#[path = "roles_node/orphans.rs"]
mod orphans;
#[path = "roles_node/streamed_packages.rs"]
mod streamed_packages;
#[path = "roles_node/worker.rs"]
mod worker;
