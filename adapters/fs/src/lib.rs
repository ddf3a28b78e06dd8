//! The real [`Storage`](wazuh_cluster_sync::integrity::storage::Storage): files under one install
//! root, every path confined to it, atomic writes (temporary file, fsync, rename).
