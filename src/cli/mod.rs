//! The user-facing subcommands that are not daemons, one file each.

pub mod admin;
pub mod cleanup;
pub mod cluster;
pub mod configs;
pub mod elect;
pub mod report;
pub mod selftest;
pub mod topics;
pub mod workload;
