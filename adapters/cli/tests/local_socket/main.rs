//! The commands that talk to a node over its local socket (`control`, `api`), run as processes
//! against a fake node that replays what real 3.9.5 local servers sent.

mod api;
mod control;
mod fake_node;
