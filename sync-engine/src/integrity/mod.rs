//! Keeping the master's integrity files identical on every worker, and the worker-owned
//! agent-info / agent-groups files flowing back (profile 3.9, PROTOCOL.md §9–§12).

pub mod agents;
pub mod apply;
pub mod compare;
pub mod items;
pub mod memory;
pub mod merged;
pub mod metadata;
pub mod package;
pub mod path;
pub mod spliced_package;
pub mod staged_package;
pub mod storage;
pub mod streamed_members;
