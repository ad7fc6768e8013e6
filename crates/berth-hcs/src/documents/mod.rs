//! HCS configuration documents as serde types.
//!
//! `v1` is the schema that vmcompute.dll takes (`ContainerConfig`, what the reference
//! sends); `v2` is the `ComputeSystem` schema that computecore.dll takes. Statistics,
//! process lists, property queries and process modify requests have the same shape
//! in both schemas and live in `v1`.

pub mod v1;
pub mod v2;
